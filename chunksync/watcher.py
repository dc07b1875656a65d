"""Filesystem events → a debounced set of dirty directories for the scanner.

The scanner re-lists only directories named *dirty* and takes every other directory
from its cached tree (see :mod:`chunksync.scanner`). This module decides which
directories those are, and when a batch of them is ready:

* :func:`dirty_dirs` maps one watchdog event to the directories whose listing or
  content changed, as relative POSIX NFC paths (``""`` is the root). A file event marks
  its parent; a directory created or moved in marks its parent and the directory itself
  *as a subtree* (its children may be cached under that name from an earlier life).
  Anything under ``.chunksync/`` — the engine's temp files, the index — and anything
  outside the root is ignored, so the daemon does not wake itself up.
* :class:`Debouncer` (pure; time is passed in) collects them and says a batch is
  *due* once no event arrived for ``quiet`` seconds, or ``max_delay`` seconds after the
  first event of the batch even under continuous writes — so a file appended to for
  minutes is still synced about once a second, and a burst of saves becomes one round.
  ``request_full()`` (overflow, watcher restart) turns the next batch into a full rescan.
  A close that leaves a written file with no open handle (a finished save, see
  :mod:`chunksync.openfiles`) makes the batch due after ``CLOSED_QUIET`` (30 ms) instead, unless it holds a new
  directory (whose contents watchdog may report late).
* :class:`FolderWatcher` runs a watchdog ``Observer`` thread and hands events to the
  asyncio loop thread-safely; :meth:`FolderWatcher.next_batch` awaits the next due
  batch. Kernel queue overflows (which watchdog only logs) request a full rescan. Every
  file event also feeds :class:`~chunksync.openfiles.OpenFiles` (``FolderWatcher.opens``),
  which the daemon's settle rule reads; opens and closes without a write wake nothing.

Nothing here reads file content or touches the index: a spurious dirty directory costs
one ``scandir`` and stat calls, a missed one is caught by the periodic full rescan.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from .fsops import STATE_DIR_NAME
from .objects import normalize_name
from .openfiles import OpenFiles

__all__ = [
    "DEFAULT_MAX_DELAY",
    "DEFAULT_QUIET",
    "Batch",
    "Debouncer",
    "FolderWatcher",
    "dirty_dirs",
]

log = logging.getLogger(__name__)

DEFAULT_QUIET = 0.15
DEFAULT_MAX_DELAY = 1.0
MAX_DIRTY = 10_000  # more dirty directories than this, and a full rescan is cheaper to hold
#: the quiet period after a close-after-write that left the file with no open handle: the
#: save is complete, so only the next saves of a burst (a script, ``git checkout``) are
#: worth waiting for; long enough for a loaded machine to deliver them
CLOSED_QUIET = 0.03
_IGNORED_TYPES = frozenset({"opened", "closed_no_write"})


@dataclass(frozen=True, slots=True)
class Batch:
    """Directories to rescan: ``dirs`` listed again, ``subtrees`` listed with all
    their descendants; ``full`` means rescan everything (the sets are then moot)."""

    dirs: frozenset[str] = frozenset()
    subtrees: frozenset[str] = frozenset()
    full: bool = False

    def __bool__(self) -> bool:
        return self.full or bool(self.dirs) or bool(self.subtrees)

    def merge(self, other: Batch) -> Batch:
        """Both batches; past :data:`MAX_DIRTY` directories (a long round or an offline
        spell under heavy churn) a full rescan, so the pending set stays bounded."""
        dirs, subtrees = self.dirs | other.dirs, self.subtrees | other.subtrees
        if len(dirs) + len(subtrees) > MAX_DIRTY:
            return Batch(full=True)
        return Batch(dirs, subtrees, self.full or other.full)


def relative_dir(root: str, path: str) -> str | None:
    """``path`` relative to ``root`` as POSIX NFC, or None if outside or under .chunksync."""
    rel = os.path.relpath(path, root)
    if rel == ".":
        return ""
    if rel.startswith(".." + os.sep) or rel == ".." or os.path.isabs(rel):
        return None
    parts = rel.split(os.sep)
    if parts[0] == STATE_DIR_NAME:
        return None
    try:
        return "/".join(normalize_name(p) for p in parts)
    except UnicodeError:
        return None


def parent_of(rel: str) -> str:
    return rel.rpartition("/")[0]


def dirty_dirs(root: str, event: FileSystemEvent) -> tuple[set[str], set[str]]:
    """(directories, subtrees) that ``event`` under ``root`` makes dirty."""
    dirs: set[str] = set()
    subtrees: set[str] = set()
    if event.event_type in _IGNORED_TYPES:
        return dirs, subtrees
    paths = [os.fsdecode(event.src_path)]
    if event.event_type == "moved" and event.dest_path:
        paths.append(os.fsdecode(event.dest_path))
    for i, path in enumerate(paths):
        rel = relative_dir(root, path)
        if rel is None:
            continue
        if event.is_directory:
            if rel == "":
                dirs.add("")
                continue
            dirs.add(parent_of(rel))
            if event.event_type == "modified":
                dirs.add(rel)
            elif event.event_type == "created" or (event.event_type == "moved" and i == 1):
                subtrees.add(rel)
        elif rel != "":
            dirs.add(parent_of(rel))
    return dirs, subtrees


@dataclass
class Debouncer:
    """Collects dirty directories; a batch is due after ``quiet`` s without events or
    ``max_delay`` s after its first event. Pure: every method takes ``now``."""

    quiet: float = DEFAULT_QUIET
    max_delay: float = DEFAULT_MAX_DELAY
    _dirs: set[str] = field(default_factory=set)
    _subtrees: set[str] = field(default_factory=set)
    _full: bool = False
    _first: float | None = None
    _last: float | None = None
    _closed: bool = False
    closed_quiet: float = CLOSED_QUIET

    def __post_init__(self) -> None:
        if self.quiet < 0 or self.max_delay < self.quiet:
            raise ValueError("Debouncer needs 0 <= quiet <= max_delay")

    def add(
        self,
        now: float,
        dirs: Iterable[str] = (),
        subtrees: Iterable[str] = (),
        closed: bool = False,
    ) -> None:
        """Record directories an event made dirty; any event restarts the quiet period.
        ``closed``: the event closed the last handle of a written file (a finished save),
        so the batch is due after ``closed_quiet`` unless another event follows."""
        dirs, subtrees = set(dirs), set(subtrees)
        if dirs or subtrees:
            self._dirs |= dirs
            self._subtrees |= subtrees
            self._closed = closed
            self._touch(now)

    def request_full(self, now: float) -> None:
        self._full, self._closed = True, False
        self._touch(now)

    def _touch(self, now: float) -> None:
        if self._first is None:
            self._first = now
        self._last = now

    @property
    def pending(self) -> int:
        """How many directories wait (or 1 for a pending full rescan)."""
        return max(len(self._dirs) + len(self._subtrees), int(self._full))

    def deadline(self) -> float | None:
        """The time the current batch becomes due, or None when nothing is pending."""
        if self._first is None or self._last is None:
            return None
        # a new directory's contents may still come (watchdog lists it late): never hurried
        hurry = self._closed and not self._subtrees
        quiet = min(self.quiet, self.closed_quiet) if hurry else self.quiet
        return min(self._last + quiet, self._first + self.max_delay)

    def due(self, now: float) -> bool:
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def take(self) -> Batch:
        """The collected batch (empty if none); starts a new one."""
        batch = Batch(frozenset(self._dirs), frozenset(self._subtrees), self._full)
        self._dirs, self._subtrees, self._full = set(), set(), False
        self._first = self._last = None
        self._closed = False
        return batch


class _Handler(FileSystemEventHandler):
    def __init__(
        self, root: str, sink: Callable[[set[str], set[str], bool], None], opens: OpenFiles
    ) -> None:
        self.root, self.sink, self.opens = root, sink, opens

    def on_any_event(self, event: FileSystemEvent) -> None:
        closed = False
        if not event.is_directory:
            rel = relative_dir(self.root, os.fsdecode(event.src_path))
            dest = (
                relative_dir(self.root, os.fsdecode(event.dest_path)) if event.dest_path else None
            )
            if rel is not None or dest is not None:
                self.opens.event(event.event_type, rel or "", dest)
            if event.event_type == "closed" and rel is not None:
                state = self.opens.state(rel)
                closed = state is not None and state.handles == 0
        dirs, subtrees = dirty_dirs(self.root, event)
        if dirs or subtrees:
            self.sink(dirs, subtrees, closed)


class _OverflowHook(logging.Handler):
    """watchdog reports a kernel queue overflow only as a log warning: listen for it."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.on_overflow()


class FolderWatcher:
    """A watchdog observer on one folder feeding a :class:`Debouncer` on the loop."""

    def __init__(
        self,
        root: Path,
        *,
        quiet: float = DEFAULT_QUIET,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = str(root)
        self.clock = clock
        self.debouncer = Debouncer(quiet, max_delay)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._hook = _OverflowHook(self._threadsafe_full)
        self.opens = OpenFiles(self.root)
        self.restarts = 0

    def start(self) -> None:
        """Start (or restart after a failure) the observer; a restart requests a full rescan."""
        self._loop = asyncio.get_running_loop()
        if self._observer is not None:
            self.stop()
            self.restarts += 1
            self.request_full()
        self.opens.overflow()  # events before this observer are unknown
        observer = Observer()
        self.opens.enabled = "inotify" in type(observer).__name__.lower()  # open/close events
        observer.schedule(
            _Handler(self.root, self._threadsafe_add, self.opens), self.root, recursive=True
        )
        observer.daemon = True
        observer.start()
        self._observer = observer
        logging.getLogger("watchdog.observers").addHandler(self._hook)

    def alive(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    def stop(self) -> None:
        logging.getLogger("watchdog.observers").removeHandler(self._hook)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    # --- events (any thread) → loop --------------------------------------------------
    def _threadsafe_add(self, dirs: set[str], subtrees: set[str], closed: bool = False) -> None:
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self.add, dirs, subtrees, closed)
            except RuntimeError:  # loop closing during shutdown
                pass

    def _threadsafe_full(self) -> None:
        self.opens.overflow()
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self.request_full)
            except RuntimeError:
                pass

    def add(
        self, dirs: Iterable[str] = (), subtrees: Iterable[str] = (), closed: bool = False
    ) -> None:
        self.debouncer.add(self.clock(), dirs, subtrees, closed)
        self._wake.set()

    def request_full(self) -> None:
        self.debouncer.request_full(self.clock())
        self._wake.set()

    @property
    def pending(self) -> int:
        return self.debouncer.pending

    async def next_batch(self) -> Batch:
        """Wait until a batch is due (quiet period or max delay) and return it."""
        while True:
            deadline = self.debouncer.deadline()
            if deadline is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = self.clock()
            if now >= deadline:
                return self.debouncer.take()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), deadline - now)
            except TimeoutError:
                pass


def expand_subtrees(root: Path, subtrees: Iterable[str]) -> set[str]:
    """Every directory at or below each of ``subtrees`` that exists now (relative)."""
    out: set[str] = set()
    for rel in subtrees:
        out.add(rel)
        stack = [os.fspath(root / rel)]  # explicit stack: os.walk recurses (3.11)
        while stack:
            dirpath = stack.pop()
            try:
                with os.scandir(dirpath) as it:
                    dirnames = [e.name for e in it if e.is_dir(follow_symlinks=False)]
            except OSError:
                continue
            base = os.path.relpath(dirpath, root).replace(os.sep, "/")
            for d in dirnames:
                stack.append(os.path.join(dirpath, d))
                try:
                    out.add(normalize_name(f"{base}/{d}"))
                except UnicodeError:
                    continue
    return out
