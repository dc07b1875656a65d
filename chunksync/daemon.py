"""The background daemon (issue 6): not built yet."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


def run_daemon(directories: list[Path]) -> None:
    raise UserError("the daemon is not available yet in this version: run 'chunksync sync DIR'")
