"""Files still being written wait: the daemon syncs a file once it is complete.

A program writing a large file over several seconds must not produce a snapshot per
write, each a partial version pushed to every other device. An ordinary save must not
wait either. The rule, per changed file:

* **closed: stable at once.** On Linux the watcher sees the kernel's open and close
  events (:mod:`chunksync.openfiles`). A file whose every handle we saw opened is closed
  again (opens minus closes of both kinds, the daemon's own reads included), whose last
  write was followed by a close-after-write, and whose size, mtime and inode are those
  seen at that close, is read now: no quiet window. An editor's save (open, write,
  close, or write a temp file and rename it) therefore syncs within the debounce.
* **otherwise the quiet window** — a file still open with writes (a download, a log),
  or one whose events we cannot vouch for (a queue overflow, a non-inotify observer, a
  path never seen opened, a writer that opened it before the daemon started):

  - a changed file whose mtime is within the quiet window (``quiet``, 2 s by default) is
    *held*: the scan keeps its previous state (a new file is left out) and the daemon looks
    again after the window;
  - it is *stable*, and read, once its mtime is older than the window, or once two looks at
    least a window apart saw the same size, mtime and inode (a file with an mtime in the
    future, or one whose writer sets an old mtime, still settles);
  - a file that never settles (a log written to all the time) is held at most ``cap``
    seconds (60 s by default); then the scan reads it anyway — a consistent read, the
    scanner re-reads a file that changed under it — and :attr:`Settle.capped` says so for
    the log.

The window stays 2 s: ordinary saves no longer pay it, and the files that still do are
the ones it protects (a writer that pauses between pieces), for which longer is safer.

:class:`Settle` is the scanner's ``hold`` callback; its clock is injectable.
:func:`busy_for` is the daemon's cheap look before a round (one ``scandir`` per dirty
directory): how long until the files there are quiet, so a burst of writes becomes one
round and one snapshot. A one-shot ``chunksync sync`` holds nothing back (it is an
explicit request, as with rsync or restic); a file that changes while it is read is
retried and then reported as a failed item "being written" (:mod:`chunksync.failed`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .openfiles import OpenFiles

__all__ = ["DEFAULT_CAP", "DEFAULT_QUIET", "Settle", "busy_for"]

DEFAULT_QUIET = 2.0
DEFAULT_CAP = 60.0


@dataclass(slots=True)
class _Look:
    sig: tuple[int, int, int]
    seen_ns: int  # when this signature was first seen
    first_ns: int  # when the file was first held (the cap counts from here)


@dataclass
class Settle:
    """Decides, per changed file, whether to hold it back this scan (module docstring)."""

    quiet: float = DEFAULT_QUIET
    cap: float = DEFAULT_CAP
    clock: Callable[[], int] = time.time_ns
    opens: OpenFiles | None = None  # the watcher's open/close tracking (None: window only)
    _looks: dict[str, _Look] = field(default_factory=dict)
    _capped: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, rel: str, st: os.stat_result) -> bool:
        """True: hold ``rel`` (still being written); False: read it now."""
        now = self.clock()
        quiet_ns, cap_ns = int(self.quiet * 1e9), int(self.cap * 1e9)
        sig = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self.opens is not None and self.opens.stable(rel, st):
            with self._lock:
                self._looks.pop(rel, None)
            return False  # every writer closed it: complete
        with self._lock:
            look = self._looks.get(rel)
            if now - st.st_mtime_ns >= 0 and now - st.st_mtime_ns >= quiet_ns:
                self._looks.pop(rel, None)
                self._release(rel)
                return False  # not written for a whole window
            if look is None:
                self._looks[rel] = _Look(sig, now, now)
                self._prune(now, cap_ns)
                return quiet_ns > 0
            if look.sig != sig:
                look.sig, look.seen_ns = sig, now
            elif now - look.seen_ns >= quiet_ns:
                del self._looks[rel]
                self._release(rel)
                return False  # two looks a window apart agree
            if now - look.first_ns >= cap_ns:
                del self._looks[rel]
                self._capped.append(rel)
                return False  # never settles: take a consistent read now
            return True

    def _release(self, rel: str) -> None:
        if self.opens is not None:
            self.opens.release(rel)

    def _prune(self, now: int, cap_ns: int) -> None:
        """Forget files not looked at for two caps (deleted while held)."""
        if len(self._looks) > 64:
            for rel in [r for r, lk in self._looks.items() if now - lk.seen_ns > 2 * cap_ns]:
                del self._looks[rel]

    def take_capped(self) -> list[str]:
        """Files read past the cap since the last call (for one log line each)."""
        with self._lock:
            out, self._capped = self._capped, []
        return out


def busy_for(
    root: Path,
    dirs: Iterable[str],
    quiet: float,
    now_ns: int | None = None,
    opens: OpenFiles | None = None,
) -> float:
    """Seconds until every file directly in ``dirs`` (relative to ``root``) has an mtime
    older than ``quiet``; 0 when they all do. Files whose open/close events ``opens``
    tracks count as quiet (the scan holds such a file while it is open, and reads it at
    once when closed, so a file being downloaded does not delay a save beside it); mtimes in the future are left to :class:`Settle` (they would postpone
    forever); unlistable directories count as quiet."""
    now = time.time_ns() if now_ns is None else now_ns
    quiet_ns = int(quiet * 1e9)
    newest = 0
    for rel in dirs:
        try:
            with os.scandir(root / rel if rel else root) as it:
                for entry in it:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            st = entry.stat(follow_symlinks=False)
                            mtime = st.st_mtime_ns
                            if (
                                opens is not None
                                and now - mtime < quiet_ns
                                and opens.tracked(f"{rel}/{entry.name}" if rel else entry.name)
                            ):
                                continue
                            if mtime <= now:
                                newest = max(newest, mtime)
                    except OSError:
                        continue
        except OSError:
            continue
    return max(0.0, (newest + quiet_ns - now) / 1e9)
