"""Transfer progress: what the engine reports, and a terminal view of it.

The engine calls a :class:`Progress` (by default :class:`NoProgress`) with byte counts
as objects go up and come down, and with the number of files written (sync, join and
restore share the download path, :mod:`chunksync.sync.download`); the CLI passes a
:class:`TerminalProgress` (rich) when stderr is a terminal. Calls may come from worker
threads.
"""

from __future__ import annotations

from types import TracebackType
from typing import Literal, Protocol

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
    def transferred(self, direction: Direction, nbytes: int) -> None: ...
    def expect(self, direction: Direction, total: int) -> None: ...
    def expect_files(self, total: int) -> None: ...
    def files_done(self, count: int) -> None: ...


class NoProgress:
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
        if task.fields.get("files"):
            total = "?" if task.total is None else f"{int(task.total)}"
            return Text(f"{int(task.completed)}/{total} files")
        return Text.assemble(self._bytes.render(task), " ", self._speed.render(task))


class TerminalProgress:
    """Bars on stderr: bytes uploaded and downloaded with speed, and files written with
    the time remaining."""

    def __init__(self) -> None:
        self._view = RichProgress(
            TextColumn("{task.description:>8}"),
            BarColumn(),
            _Amount(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._files: TaskID | None = None

    def _task(self, direction: Direction) -> TaskID:
        if direction not in self._tasks:
            label = "upload" if direction == "up" else "download"
            self._tasks[direction] = self._view.add_task(label, total=None)
        return self._tasks[direction]

    def transferred(self, direction: Direction, nbytes: int) -> None:
        self._view.update(self._task(direction), advance=nbytes)

    def expect(self, direction: Direction, total: int) -> None:
        self._view.update(self._task(direction), total=total)

    def expect_files(self, total: int) -> None:
        if total and self._files is None:
            self._files = self._view.add_task("files", total=total, files=True)
        elif self._files is not None:
            self._view.update(self._files, total=total, completed=0)

    def files_done(self, count: int) -> None:
        if self._files is not None:
            self._view.update(self._files, advance=count)

    def __enter__(self) -> TerminalProgress:
        self._view.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._view.stop()
