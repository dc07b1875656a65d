"""``mypy --strict`` on the client and the server packages (settings in pyproject.toml).

Run by the README's test command, so a type error fails CI like a broken test does. Tests
are not type-checked strictly: they are allowed the looseness of fixtures and fakes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"mypy --strict:\n{run.stdout[-8000:]}{run.stderr[-2000:]}"
