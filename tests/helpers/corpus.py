"""Deterministic test trees and benchmark corpora (also used by ``tools/``).

* :func:`write_tree` writes a ``TestDir``-style dict (restic's helper): str or bytes
  values are files, dicts are directories, :class:`Symlink` values are links.
* :func:`make_small_tree` writes many tiny source-like files in nested directories,
  quickly, with a fixed old mtime so they are never "racy" for the scanner.
* :func:`make_corpus` writes a mixed corpus of about ``total`` bytes: ~20,000 small
  text files per GiB, a few hundred medium files (100 KiB-5 MiB), several large files,
  half compressible (text-like) and half random. Same seed, same bytes.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FIXED_MTIME_NS",
    "Symlink",
    "compressible_bytes",
    "make_corpus",
    "make_small_tree",
    "random_bytes",
    "write_tree",
]

FIXED_MTIME_NS = 1_700_000_000 * 10**9  # 2023-11-14: far enough in the past
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

_WORDS = [
    "def",
    "class",
    "return",
    "import",
    "from",
    "self",
    "None",
    "True",
    "False",
    "for",
    "while",
    "if",
    "else",
    "elif",
    "try",
    "except",
    "with",
    "as",
    "yield",
    "lambda",
    "async",
    "await",
    "value",
    "result",
    "index",
    "buffer",
    "chunk",
    "tree",
    "file",
    "path",
    "name",
    "size",
    "offset",
    "count",
    "error",
    "state",
    "config",
    "client",
    "server",
    "request",
    "response",
    "data",
    "bytes",
    "str",
    "int",
]


@dataclass(frozen=True)
class Symlink:
    target: str


TreeSpec = dict[str, "str | bytes | Symlink | TreeSpec"]


def write_tree(root: Path, spec: TreeSpec, *, mtime_ns: int | None = FIXED_MTIME_NS) -> None:
    """Create ``spec`` under ``root`` (which may exist). mtime None keeps 'now'."""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in spec.items():
        path = root / name
        if isinstance(value, dict):
            write_tree(path, value, mtime_ns=mtime_ns)
        elif isinstance(value, Symlink):
            path.symlink_to(value.target)
        else:
            path.write_bytes(value.encode() if isinstance(value, str) else value)
            if mtime_ns is not None:
                os.utime(path, ns=(mtime_ns, mtime_ns))


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _text_base(seed: int) -> bytes:
    rng = random.Random(seed)
    lines = []
    for _ in range(2000):
        indent = "    " * rng.randrange(4)
        lines.append(indent + " ".join(rng.choices(_WORDS, k=rng.randrange(3, 12))))
    return ("\n".join(lines) + "\n").encode()


_BASES: dict[int, bytes] = {}


def compressible_bytes(n: int, seed: int) -> bytes:
    """Source-like text (zstd compresses it 3-5x), built from slices of a base text."""
    base = _BASES.get(seed % 8)
    if base is None:
        base = _BASES[seed % 8] = _text_base(seed % 8)
    rng = random.Random(seed)
    parts, have = [], 0
    while have < n:
        start = rng.randrange(len(base) - 4096)
        piece = base[start : start + rng.randrange(256, 4096)]
        parts.append(piece)
        have += len(piece)
    return b"".join(parts)[:n]


def _small_file(rng: random.Random, seed: int) -> bytes:
    return compressible_bytes(rng.randrange(200, 6000), seed)


def make_small_tree(
    root: Path,
    n_files: int = 20_000,
    *,
    per_dir: int = 40,
    seed: int = 0,
    mtime_ns: int = FIXED_MTIME_NS,
) -> int:
    """``n_files`` tiny files, ``per_dir`` per directory, nested two levels; returns bytes."""
    rng = random.Random(seed)
    total = 0
    for i in range(n_files):
        d = root / f"pkg{i // (per_dir * 20):03d}" / f"mod{(i // per_dir) % 20:02d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        data = _small_file(rng, seed * 1_000_003 + i)
        path = d / f"file{i:06d}.py"
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, ns=(mtime_ns, mtime_ns))
        total += len(data)
    return total


def make_corpus(root: Path, total: int = GiB, *, seed: int = 0) -> dict[str, int]:
    """The mixed benchmark corpus; returns counts and bytes per class."""
    scale = total / GiB
    rng = random.Random(seed)
    n_small = max(100, int(20_000 * scale))
    small_bytes = make_small_tree(root / "src", n_small, seed=seed)
    n_medium = max(4, int(200 * scale))
    medium_bytes = 0
    for i in range(n_medium):
        size = rng.randrange(100 * KiB, 5 * MiB)
        maker = compressible_bytes if i % 2 else random_bytes
        data = maker(size, seed * 7919 + i)
        path = root / "media" / f"d{i % 10}" / f"item{i:04d}.{'txt' if i % 2 else 'bin'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        medium_bytes += size
    remaining = max(0, total - small_bytes - medium_bytes)
    n_large = 4
    for i in range(n_large):
        size = remaining // n_large
        path = root / "large" / f"blob{i}.{'log' if i % 2 else 'img'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            step = 16 * MiB
            for off in range(0, size, step):
                n = min(step, size - off)
                maker = compressible_bytes if i % 2 else random_bytes
                f.write(maker(n, seed * 104729 + i * 1000 + off // step))
    return {
        "small_files": n_small,
        "small_bytes": small_bytes,
        "medium_files": n_medium,
        "medium_bytes": medium_bytes,
        "large_files": n_large,
        "large_bytes": remaining // n_large * n_large,
    }
