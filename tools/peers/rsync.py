"""rsync, the delta-transfer peer: how many bytes an incremental change really needs.

A local ``rsync`` copies whole files by default; ``--no-whole-file`` makes it run its
delta algorithm as it would over a network, so "Total bytes sent" is what a remote
mirror would receive. ``--delete`` keeps the mirror exact, as a sync must.
"""

from __future__ import annotations

import re
from pathlib import Path

from .measure import Run, run

__all__ = ["bytes_sent", "mirror"]

_SENT = re.compile(r"Total bytes sent:\s*([\d,.]+)")


def mirror(src: Path, dst: Path, binary: str = "rsync") -> Run:
    """Make ``dst`` equal to ``src`` with the delta algorithm; ``--stats`` on stdout."""
    dst.mkdir(parents=True, exist_ok=True)
    return run([binary, "-a", "--delete", "--no-whole-file", "--stats", f"{src}/", f"{dst}/"])


def bytes_sent(proc: Run) -> int:
    """ "Total bytes sent" from rsync's ``--stats`` (file list and deltas)."""
    found = _SENT.search(proc.stdout)
    if found is None:
        raise ValueError(f"no 'Total bytes sent' in rsync output: {proc.stdout[-300:]}")
    return int(found.group(1).replace(",", "").replace(".", ""))
