"""History replay: a real project's commits synced one by one, storage vs git's pack.

The oldest ``N`` commits of a git repository's first-parent history (the chunksync repo
itself by default: deterministic, since old history does not move) are written, one commit
at a time, into a chunksync folder, with one ``chunksync sync`` per commit. The same
states are committed, one per commit, into a fresh git repository whose work tree is that
same folder, then packed with ``git gc --aggressive``. The figure is the server's stored
object bytes for the folder over the pack's bytes: how close chunksync's snapshots come
to git's delta-compressed history of exactly the same trees.

Only files git tracks are written; each state is reached by applying the difference from
the previous one (changed blobs rewritten, removed paths deleted), as a checkout would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .chunksync_runner import ChunksyncWorld
from .report import Row, Target

__all__ = ["first_parent_commits", "history_row", "tree_listing"]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def _git(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    data: bytes | None = None,
) -> bytes:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=data,
        capture_output=True,
        check=True,
        env={**os.environ, **GIT_ENV, **(env or {})},
    ).stdout


def first_parent_commits(repo: Path, n: int) -> list[str]:
    """The oldest ``n`` commits along HEAD's first-parent chain, oldest first."""
    out = _git("-C", str(repo), "rev-list", "--first-parent", "--reverse", "HEAD")
    return out.decode().split()[:n]


def tree_listing(repo: Path, commit: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, blob id) of every blob and link in ``commit`` (submodules skipped)."""
    out = _git("-C", str(repo), "ls-tree", "-r", "-z", "--full-tree", commit)
    listing = {}
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, path = entry.split(b"\t", 1)
        mode, kind, blob = meta.decode().split()
        if kind == "blob":
            listing[path.decode()] = (mode, blob)
    return listing


class _Blobs:
    """One ``git cat-file --batch`` process: blob bytes by id, without a process per file."""

    def __init__(self, repo: Path) -> None:
        self.proc = subprocess.Popen(
            ["git", "-C", str(repo), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def read(self, blob: str) -> bytes:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(blob.encode() + b"\n")
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        size = int(header[2])
        data = self.proc.stdout.read(size)
        self.proc.stdout.read(1)  # the newline after the content
        return data

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()


def _apply(
    root: Path, old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]], blobs: _Blobs
) -> None:
    for path in old.keys() - new.keys():
        target = root / path
        target.unlink(missing_ok=True)
        parent = target.parent
        while parent != root and parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    for path, (mode, blob) in new.items():
        if old.get(path) == (mode, blob):
            continue
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        data = blobs.read(blob)
        if mode == "120000":
            target.symlink_to(data.decode())
        else:
            target.write_bytes(data)
            target.chmod(0o755 if mode == "100755" else 0o644)


def pack_bytes(git_dir: Path) -> int:
    """Bytes of every pack file (after ``git gc``, the whole history)."""
    return sum(p.stat().st_size for p in (git_dir / "objects" / "pack").glob("*.pack"))


def history_row(
    source: Path, work: Path, n: int, log: Callable[[str], None] = print, label: str = ""
) -> Row:
    """Replay ``n`` commits of ``source``; the storage row (one measurement: bytes are exact)."""
    commits = first_parent_commits(source, n)
    if not commits:
        raise RuntimeError(f"{source} has no commits to replay")
    shutil.rmtree(work, ignore_errors=True)
    git_dir = work / "replay.git"
    blobs = _Blobs(source)
    sync_seconds = 0.0
    try:
        with ChunksyncWorld(work / "chunksync") as world:
            root = world.init("history", "history")
            _git("init", "--quiet", "--bare", str(git_dir))
            genv = {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(root)}
            before = world.server_stats()["bytes"]
            previous: dict[str, tuple[str, str]] = {}
            for i, commit in enumerate(commits):
                listing = tree_listing(source, commit)
                _apply(root, previous, listing, blobs)
                previous = listing
                sync_seconds += world.sync("history", "--allow-mass-delete").seconds
                stamp = {
                    "GIT_AUTHOR_DATE": f"{1_700_000_000 + i * 60} +0000",
                    "GIT_COMMITTER_DATE": f"{1_700_000_000 + i * 60} +0000",
                }
                _git("add", "-A", "-f", "--", ".", ":(exclude).chunksync", cwd=root, env=genv)
                _git(
                    "commit",
                    "--quiet",
                    "--allow-empty",
                    "-m",
                    f"replay {i}",
                    cwd=root,
                    env={**genv, **stamp},
                )
            stored = world.server_stats()["bytes"] - before
            disk = world.server_bytes()
        _git("gc", "--quiet", "--aggressive", "--prune=now", env={"GIT_DIR": str(git_dir)})
        pack = pack_bytes(git_dir)
    finally:
        blobs.close()
    files = len(previous)
    log(
        f"  history: {len(commits)} commits ({files} files at the end): server objects "
        f"{stored / 1e6:.2f} MB (data dir {disk / 1e6:.2f} MB), git pack {pack / 1e6:.2f} MB, "
        f"syncs {sync_seconds:.1f} s in all"
    )
    shutil.rmtree(work, ignore_errors=True)
    return Row(
        f"history replay, {len(commits)} commits of {label or source.name}: server bytes",
        "MB",
        (stored / 1e6,),
        "git gc --aggressive pack",
        (pack / 1e6,),
        (Target("ratio", 3.0),),
        extra={"server_data_dir_mb": disk / 1e6, "sync_seconds_total": sync_seconds},
    )
