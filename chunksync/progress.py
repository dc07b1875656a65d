"""Transfer progress: what the engine reports, and a terminal view of it.

The engine calls a :class:`Progress` (by default :class:`NoProgress`) with the phase it
is in (scanning, uploading, downloading, restoring), byte counts as objects go up and
come down, the totals once known, and the number of files written (sync, join and
restore share the download path, :mod:`chunksync.sync.download`); the CLI passes a
:class:`TerminalProgress` (rich) when stderr is a terminal, and nothing otherwise, so
logs and pipes stay quiet. Calls may come from worker threads.

A bar never reads over 100%: totals are estimates (plaintext sizes, while what travels
is sealed and padded), so a bar that reaches its total grows it instead. While the
total is unknown (uploads during the scan) the bar shows the bytes so far, not "/?".
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Literal, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import (
    Progress as RichProgress,
)
from rich.text import Text

Direction = Literal["up", "down"]

__all__ = ["Direction", "NoProgress", "Progress", "TerminalProgress"]


class Progress(Protocol):
    def phase(self, name: str) -> None: ...
    def transferred(self, direction: Direction, nbytes: int) -> None: ...
    def expect(self, direction: Direction, total: int) -> None: ...
    def expect_files(self, total: int) -> None: ...
    def files_done(self, count: int) -> None: ...


class NoProgress:
    def phase(self, name: str) -> None:
        pass

    def transferred(self, direction: Direction, nbytes: int) -> None:
        pass

    def expect(self, direction: Direction, total: int) -> None:
        pass

    def expect_files(self, total: int) -> None:
        pass

    def files_done(self, count: int) -> None:
        pass


class _Amount(ProgressColumn):
    """Bytes for the transfer bars, a count for the files bar."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()
        self._speed = TransferSpeedColumn()

    def render(self, task: Task) -> Text:
        if task.fields.get("phase"):
            return Text("")
        if task.fields.get("files"):
            total = "" if task.total is None else f"/{int(task.total)}"
            return Text(f"{int(task.completed)}{total} files")
        done = Text(_size(task.completed)) if task.total is None else self._bytes.render(task)
        return Text.assemble(done, " ", self._speed.render(task))


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class TerminalProgress:
    """Bars on stderr: the phase, bytes uploaded and downloaded with speed and total,
    and files written, each with the time remaining."""

    def __init__(self, console: Console | None = None) -> None:
        self._view = RichProgress(
            TextColumn("{task.description:>11}"),
            BarColumn(),
            _Amount(),
            TimeRemainingColumn(),
            transient=True,
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._files: TaskID | None = None
        self._phase: TaskID | None = None
        self._lock = threading.Lock()
        #: what each bar shows, kept here so the clamping needs no rich internals
        self._done: dict[TaskID, float] = {}
        self._total: dict[TaskID, float | None] = {}

    def phase(self, name: str) -> None:
        with self._lock:
            if self._phase is None:
                self._phase = self._view.add_task(name, total=None, files=True, phase=True)
            self._view.update(self._phase, description=name)

    def _task(self, direction: Direction) -> TaskID:
        if direction not in self._tasks:
            label = "upload" if direction == "up" else "download"
            self._tasks[direction] = self._view.add_task(label, total=None)
        return self._tasks[direction]

    def transferred(self, direction: Direction, nbytes: int) -> None:
        with self._lock:
            task_id = self._task(direction)
            done = self._done[task_id] = self._done.get(task_id, 0) + nbytes
            total = self._total.get(task_id)
            if total is not None and done > total:  # an estimate: never over 100%
                self._total[task_id] = done
                self._view.update(task_id, total=done)
            self._view.update(task_id, completed=done)

    def expect(self, direction: Direction, total: int) -> None:
        with self._lock:
            task_id = self._task(direction)
            self._total[task_id] = max(total, self._done.get(task_id, 0))
            self._view.update(task_id, total=self._total[task_id])

    def expect_files(self, total: int) -> None:
        with self._lock:
            if total and self._files is None:
                self._files = self._view.add_task("files", total=total, files=True)
            elif self._files is not None:
                self._view.update(self._files, total=total, completed=0)
            if self._files is not None:
                self._total[self._files], self._done[self._files] = total, 0

    def files_done(self, count: int) -> None:
        with self._lock:
            if self._files is not None:
                done = self._done.get(self._files, 0) + count
                total = self._total.get(self._files)
                self._done[self._files] = done if total is None else min(done, total)
                self._view.update(self._files, completed=self._done[self._files])

    def __enter__(self) -> TerminalProgress:
        self._view.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._view.stop()
