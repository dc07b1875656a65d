"""restic, the backup peer: ``backup`` to a local repository and ``restore`` from it.

A local repository (no network, no server process) is restic at its fastest, which is
what issue 12 compares against: chunksync pays a loopback HTTP server on the same two
cores and restic does not. The cache lives in the bench directory, not in ``~/.cache``.
``data_added`` of the ``--json`` summary is what a backup added to the repository
(restic's own accounting): the figure beside chunksync's uploaded bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .measure import Run, run

__all__ = ["Restic"]


class Restic:
    """One repository under ``base``; every call is a measured ``restic`` process."""

    def __init__(self, base: Path, binary: str = "restic") -> None:
        self.repo, self.cache = base / "repo", base / "cache"
        self.binary = binary
        shutil.rmtree(self.repo, ignore_errors=True)
        self.env = {"RESTIC_REPOSITORY": str(self.repo), "RESTIC_PASSWORD": "bench password"}

    def _run(self, *args: str, cwd: Path | None = None) -> Run:
        return run([self.binary, "--cache-dir", str(self.cache), *args], env=self.env, cwd=cwd)

    def init(self) -> Run:
        return self._run("init", "--quiet")

    def backup(self, tree: Path) -> tuple[Run, dict[str, Any]]:
        """Back ``tree`` up (cwd inside it, path ``.``); the run and restic's summary."""
        proc = self._run("backup", "--json", ".", cwd=tree)
        summary: dict[str, Any] = {}
        for line in proc.stdout.splitlines():
            if '"summary"' in line:
                summary = json.loads(line)
        return proc, summary

    def restore(self, target: Path) -> Run:
        shutil.rmtree(target, ignore_errors=True)
        return self._run("restore", "latest", "--target", str(target))
