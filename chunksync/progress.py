"""Transfer progress: what the engine reports, and a terminal view of it.

The engine calls a :class:`Progress` (by default :class:`NoProgress`) with byte counts
as objects go up and come down; the CLI passes a :class:`TerminalProgress` (rich) when
stdout is a terminal. Calls may come from worker threads.
"""

from __future__ import annotations

from types import TracebackType
from typing import Literal, Protocol

from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)
from rich.progress import (
    Progress as RichProgress,
)

Direction = Literal["up", "down"]

__all__ = ["Direction", "NoProgress", "Progress", "TerminalProgress"]


class Progress(Protocol):
    def transferred(self, direction: Direction, nbytes: int) -> None: ...
    def expect(self, direction: Direction, total: int) -> None: ...


class NoProgress:
    def transferred(self, direction: Direction, nbytes: int) -> None:
        pass

    def expect(self, direction: Direction, total: int) -> None:
        pass


class TerminalProgress:
    """Two bars on stderr: bytes uploaded and downloaded, with speed."""

    def __init__(self) -> None:
        self._view = RichProgress(
            TextColumn("{task.description:>8}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def _task(self, direction: Direction) -> TaskID:
        if direction not in self._tasks:
            label = "upload" if direction == "up" else "download"
            self._tasks[direction] = self._view.add_task(label, total=None)
        return self._tasks[direction]

    def transferred(self, direction: Direction, nbytes: int) -> None:
        self._view.update(self._task(direction), advance=nbytes)

    def expect(self, direction: Direction, total: int) -> None:
        self._view.update(self._task(direction), total=total)

    def __enter__(self) -> TerminalProgress:
        self._view.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._view.stop()
