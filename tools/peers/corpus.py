"""The seeded corpus every tool of the suite works on, and the edits between runs.

The full corpus is issue 12's: 20,000 small source-like files, 200 medium files (100 KiB
to 5 MiB, half text, half random) and 3 large files sharing the rest of ~1.1 GB (1 GiB).
The quick one keeps the shape at a tenth of the files and a tenth of the bytes. Both are
built from :mod:`tests.helpers.corpus`'s generators, so the same seed gives the same
bytes on every machine; :func:`tree_digest` proves it in a test.

:func:`apply_edits` is the "small edits" of the incremental scenario: a few small files
changed in place, a few added, a few deleted, 64 KiB rewritten inside one large file. It
picks its victims from the sorted listing, so two copies of the same tree get the very
same edits whatever tool's state directory sits inside them.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.corpus import (
    FIXED_MTIME_NS,
    compressible_bytes,
    make_small_tree,
    random_bytes,
)

__all__ = [
    "FULL",
    "QUICK",
    "CorpusSpec",
    "apply_edits",
    "build",
    "copy_tree",
    "list_files",
    "tree_digest",
    "tree_size",
]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
SKIP_DIRS = frozenset({".chunksync", ".stfolder", ".stversions", ".git"})


@dataclass(frozen=True, slots=True)
class CorpusSpec:
    """How many files of each class, and about how many bytes in all."""

    small: int
    medium: int
    large: int
    total: int
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.small, self.medium, self.large) < 1 or self.total < MiB:
            raise ValueError(f"corpus too small: {self}")

    @property
    def name(self) -> str:
        return f"corpus-{self.small}s-{self.medium}m-{self.large}l-{self.total}-seed{self.seed}"


FULL = CorpusSpec(small=20_000, medium=200, large=3, total=GiB)
QUICK = CorpusSpec(small=2_000, medium=20, large=3, total=100 * MiB)


def build(root: Path, spec: CorpusSpec) -> Path:
    """Write the corpus under ``root`` once (a marker file says it is complete)."""
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    make_small_tree(root / "src", spec.small, seed=spec.seed)
    rng = random.Random(spec.seed)
    used = 0
    for i in range(spec.medium):
        size = rng.randrange(100 * KiB, 5 * MiB)
        maker = compressible_bytes if i % 2 else random_bytes
        path = root / "media" / f"d{i % 10}" / f"item{i:04d}.{'txt' if i % 2 else 'bin'}"
        _write(path, [maker(size, spec.seed * 7919 + i)])
        used += size
    small_bytes = sum(p.stat().st_size for p in (root / "src").rglob("*") if p.is_file())
    each = max(MiB, (spec.total - used - small_bytes) // spec.large)
    for i in range(spec.large):
        maker = compressible_bytes if i % 2 else random_bytes
        step = 16 * MiB
        parts = (
            maker(min(step, each - off), spec.seed * 104729 + i * 1000 + off // step)
            for off in range(0, each, step)
        )
        _write(root / "large" / f"blob{i}.{'log' if i % 2 else 'img'}", parts)
    done.touch()
    return root


def _write(path: Path, parts: Iterable[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.writelines(parts)
    os.utime(path, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))


def list_files(root: Path) -> list[str]:
    """Every regular file's relative path, sorted, skipping tools' own state directories."""
    out = []
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        rel = os.path.relpath(dirpath, root)
        for name in names:
            if name == ".complete":
                continue
            out.append(name if rel == "." else f"{rel}/{name}")
    return sorted(out)


def tree_digest(root: Path) -> str:
    """SHA-256 over every (path, content), in order: equal digests, equal trees."""
    h = hashlib.sha256()
    for rel in list_files(root):
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()


def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) of the tree, tools' state directories left out."""
    files = list_files(root)
    return len(files), sum((root / rel).stat().st_size for rel in files)


def copy_tree(src: Path, dst: Path) -> None:
    """A full copy (not hard links: the incremental scenario edits files in place)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(".complete"))


def apply_edits(root: Path, round_no: int, *, seed: int = 0) -> dict[str, int]:
    """Round ``round_no`` of the small edits; the same round on equal trees edits equally."""
    rng = random.Random(f"edits-{seed}-{round_no}")
    files = list_files(root)
    small = [f for f in files if f.startswith("src/")]
    large = [f for f in files if f.startswith("large/")]
    n = max(5, len(small) // 200)
    changed = rng.sample(small, min(n, len(small)))
    for rel in changed:
        path = root / rel
        data = bytearray(path.read_bytes())
        at = rng.randrange(max(1, len(data)))
        data[at : at + 16] = f"edit {round_no:04d} {rng.random():.6f}"[:16].encode()
        path.write_bytes(bytes(data))
    gone = [f for f in rng.sample(small, min(5, len(small))) if f not in changed]
    for rel in gone:
        (root / rel).unlink()
    for i in range(5):
        path = root / "src" / f"new-{round_no:04d}" / f"added{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(compressible_bytes(rng.randrange(200, 6000), seed * 31 + round_no * 7 + i))
    if large:
        path = root / rng.choice(large)
        with open(path, "r+b") as fh:
            fh.seek(rng.randrange(max(1, path.stat().st_size - 64 * KiB)))
            fh.write(random_bytes(64 * KiB, round_no))
    return {"changed": len(changed), "deleted": len(gone), "added": 5, "large": len(large[:1])}
