"""The checked style: ``ruff check`` (the rule set in pyproject.toml) and ``ruff format``.

Run by the README's test command, so CI fails on a style regression the same way it fails
on a broken test; the rule set and its reasoned exceptions live in ``[tool.ruff.lint]``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"
TREES = ["chunksync", "chunksync_server", "tests", "tools"]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUFF), *args, *TREES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ruff_check_is_clean() -> None:
    run = _ruff("check", "--output-format", "concise")
    assert run.returncode == 0, f"ruff check:\n{run.stdout[-8000:]}{run.stderr[-2000:]}"


def test_ruff_format_is_clean() -> None:
    run = _ruff("format", "--check")
    assert run.returncode == 0, f"ruff format --check (run `ruff format`):\n{run.stdout[-4000:]}"
