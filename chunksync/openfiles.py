"""Which files are still open for writing, from the kernel's open/close events.

The quiet window (:mod:`chunksync.settle`) costs every save its length. On Linux the
watcher (inotify, watchdog 7) also reports ``opened``, ``closed`` (IN_CLOSE_WRITE: a
handle opened for writing was closed) and ``closed_no_write``. From them we know, per
path, how many handles are still open and whether a close-after-write came after the
last modification. The rule (documented in :mod:`chunksync.settle` and docs/daemon.md):

* **stable at once**: every handle we saw opened is closed again (opens minus closes of
  both kinds, the daemon's own reads included, is 0), the last write was followed by a
  close-after-write, and the file's size, mtime and inode are still those seen when that
  close was handled (a write whose events are still queued changes them);
* **unknown** otherwise — still open, written after its last close, a path whose first
  event was not an open (a writer opened it before we watched, or after lost events), a
  close without an open, a file made by ``link``, a non-inotify observer — and the
  caller falls back to the quiet window.

:func:`step` is the pure event → state function and :func:`settled` the pure verdict;
:class:`OpenFiles` holds the states for one folder (thread-safe: events arrive on the
observer thread, verdicts are asked on the scan thread). A queue overflow drops every
state: after it, a path is trusted again only from an ``opened`` event on.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace

__all__ = ["EVENT_KINDS", "FileState", "OpenFiles", "settled", "step"]

Sig = tuple[int, int, int]  # size, mtime_ns, inode

#: the event types that change a file's state (watchdog's ``event_type`` strings)
MAX_STATES = 10_000
EVENT_KINDS = frozenset({"opened", "closed", "closed_no_write", "modified", "created"})


@dataclass(frozen=True, slots=True)
class FileState:
    handles: int = 0  # opens minus closes seen
    written: bool = False  # modified (or created) since the last close-after-write
    closed: bool = False  # a close-after-write came after the last modification
    trusted: bool = True  # every handle was seen opened
    sig: Sig | None = None  # (size, mtime_ns, inode) when the last close-after-write was handled


def step(state: FileState | None, kind: str, sig: Sig | None = None) -> FileState | None:
    """The state of one path after an event of ``kind`` (``sig``: its stat, for ``closed``).
    None means "nothing known": a path we have no events for."""
    if kind == "opened":
        return FileState(handles=1) if state is None else replace(state, handles=state.handles + 1)
    if kind == "created":  # open(O_CREAT) reports created, then opened; link() only created
        return (
            FileState(written=True) if state is None else replace(state, written=True, closed=False)
        )
    if state is None:  # a write or close from a handle opened before we knew the path
        return FileState(written=True, trusted=False)
    if kind == "modified":
        return replace(
            state, written=True, closed=False, trusted=state.trusted and state.handles > 0
        )
    if kind in ("closed", "closed_no_write"):
        handles = state.handles - 1
        trusted = state.trusted and handles >= 0
        if kind == "closed":
            return FileState(max(handles, 0), False, True, trusted, sig)
        return replace(state, handles=max(handles, 0), trusted=trusted)
    return state


def settled(state: FileState | None, sig: Sig) -> bool:
    """True when the events alone say the file is complete (module docstring)."""
    return (
        state is not None
        and state.trusted
        and state.handles == 0
        and state.closed
        and not state.written
        and state.sig == sig
    )


def sig_of(st: os.stat_result) -> Sig:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class OpenFiles:
    """Per-path :class:`FileState` for one folder, fed by the watcher's events."""

    def __init__(self, root: str, *, enabled: bool = True) -> None:
        self.root = root
        self.enabled = enabled  # False: the observer does not report opens (not inotify)
        self._states: dict[str, FileState] = {}
        self._lock = threading.Lock()

    def event(self, kind: str, rel: str, dest: str | None = None) -> None:
        """Apply one file event (``rel`` relative to the root; ``dest`` for a move)."""
        if not self.enabled:
            return
        with self._lock:
            if kind == "deleted":
                self._states.pop(rel, None)
            elif kind == "moved":
                state = self._states.pop(rel, None)
                if dest is not None:
                    if state is None:
                        self._states.pop(dest, None)
                    else:
                        self._states[dest] = state
            elif kind in EVENT_KINDS:
                sig = self._stat(rel) if kind == "closed" else None
                new = step(self._states.get(rel), kind, sig)
                if new is None or new == FileState():
                    self._states.pop(rel, None)
                else:
                    self._states[rel] = new
            if (
                len(self._states) > MAX_STATES
            ):  # forget settled files (their next open starts afresh)
                for path in [p for p, s in self._states.items() if s.handles == 0 and s.closed]:
                    del self._states[path]

    def _stat(self, rel: str) -> Sig | None:
        try:
            return sig_of(os.stat(os.path.join(self.root, rel), follow_symlinks=False))
        except OSError:
            return None

    def stable(self, rel: str, st: os.stat_result) -> bool:
        """True: ``rel`` with this stat is complete by the events; False: ask the window."""
        if not self.enabled:
            return False
        with self._lock:
            return settled(self._states.get(rel), sig_of(st))

    def tracked(self, rel: str) -> bool:
        """True when the events for ``rel`` can be trusted: the scan decides per file (held
        while open, read once closed), so the daemon need not postpone a whole batch."""
        if not self.enabled:
            return False
        with self._lock:
            state = self._states.get(rel)
            return state is not None and state.trusted

    def state(self, rel: str) -> FileState | None:
        with self._lock:
            return self._states.get(rel)

    def release(self, rel: str) -> None:
        """The quiet window let ``rel`` go: forget a state that can no longer be trusted,
        so its next ``opened`` starts afresh (a trusted state is kept: its count is right)."""
        with self._lock:
            state = self._states.get(rel)
            if state is not None and not state.trusted:
                del self._states[rel]

    def overflow(self) -> None:
        """Events were lost: nothing known is certain any more."""
        with self._lock:
            self._states.clear()

    def __len__(self) -> int:
        return len(self._states)
