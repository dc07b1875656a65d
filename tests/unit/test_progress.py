"""The terminal progress view (issue 19): a phase, bytes with a total, files, and never
more than 100% even when the estimate of the total was low."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from chunksync.progress import NoProgress, TerminalProgress

pytestmark = pytest.mark.unit


def _tasks(view: TerminalProgress) -> dict[str, tuple[float, float | None]]:
    return {t.description: (t.completed, t.total) for t in view._view.tasks}


def test_bars_never_read_over_100_percent() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with TerminalProgress(console) as view:
        view.phase("scanning")
        view.transferred("up", 5_000)  # total unknown while scanning
        view.phase("uploading")
        view.expect("up", 8_000)
        view.transferred("up", 6_000)  # sealed blobs are larger than the estimate
        view.expect("down", 100)
        view.transferred("down", 40)
        view.expect_files(3)
        view.files_done(5)
        tasks = _tasks(view)
        for done, total in tasks.values():
            assert total is None or done <= total
        assert tasks["upload"] == (11_000, 11_000)
        assert tasks["download"] == (40, 100)
        assert tasks["files"] == (3, 3)
        assert "uploading" in tasks and "scanning" not in tasks  # one phase line, updated
        view._view.refresh()
    assert "/?" not in out.getvalue()


def test_no_progress_takes_every_call() -> None:
    quiet = NoProgress()
    quiet.phase("restoring")
    quiet.expect("down", 1)
    quiet.transferred("down", 2)
    quiet.expect_files(1)
    quiet.files_done(1)
