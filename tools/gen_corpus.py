#!/usr/bin/env python3
"""Generate the deterministic mixed benchmark corpus.

    tools/gen_corpus.py DIR [--size 1G] [--seed 0]

About 20,000 small source-like files per GiB, a few hundred medium files (100 KiB to
5 MiB) and four large files, half compressible and half random. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.corpus import make_corpus

_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--size", default="1G", help="total size, e.g. 256M, 1G")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.dir.exists() and any(args.dir.iterdir()):
        sys.exit(f"gen_corpus: {args.dir} is not empty")
    started = time.perf_counter()
    counts = make_corpus(args.dir, parse_size(args.size), seed=args.seed)
    total = counts["small_bytes"] + counts["medium_bytes"] + counts["large_bytes"]
    files = counts["small_files"] + counts["medium_files"] + counts["large_files"]
    print(
        f"{files} files, {total / 2**20:.0f} MiB in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{k}={v}" for k, v in counts.items())
    )


if __name__ == "__main__":
    main()
