"""The record of one run: one line per step, byte-exact across replays of a seed.

A line holds only what the seed determines — the step, what it did, the outcome (error
class, counts, faults fired), the server's head-log position and a digest of the
acting device's folder (content, kinds, names; not mtimes or inode numbers, which the
operating system chooses). :meth:`Trace.digest` is what the determinism check compares.
"""

from __future__ import annotations

import hashlib

from .history import Flat


def tree_digest(tree: Flat) -> str:
    return hashlib.sha256(repr(sorted(tree.items())).encode()).hexdigest()[:12]


class Trace:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.lines).encode()).hexdigest()

    def text(self) -> str:
        return "\n".join(self.lines)
