"""Propagation: an edit on device A, how long until device B holds it, vs Syncthing.

Both tools get the same folder (the corpus's small source tree: 20,000 files in the full
suite) and run as their users run them: two ``chunksync daemon`` processes with the CLI's
default timings on one loopback server, and two Syncthing instances connected directly on
loopback with a 1 s watcher delay. Each edit rewrites one existing file of the tree with
new content; B's copy is polled every 5 ms until its bytes match. Edits alternate between
the tools (chunksync's edit *i*, then Syncthing's edit *i*), and each waits until both
sides are idle again, so one edit's traffic never overlaps the next.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers.daemons import wait_until

from .chunksync_runner import ChunksyncWorld
from .corpus import copy_tree, list_files
from .report import Row, Target
from .syncthing import FOLDER_ID, SyncthingPair

__all__ = ["propagation_row", "wait_content"]


def wait_content(path: Path, want: bytes, timeout: float = 60.0) -> float:
    """Monotonic time at which ``path`` first holds exactly ``want`` (5 ms polls)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if path.stat().st_size == len(want) and path.read_bytes() == want:
                return time.monotonic()
        except (FileNotFoundError, PermissionError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {path}")


def _edit(a: Path, b: Path, rel: str, i: int) -> float:
    data = f"propagation edit {i} at {time.time_ns()}\n".encode() * 8
    started = time.monotonic()
    (a / rel).write_bytes(data)
    return wait_content(b / rel, data) - started


def propagation_row(tree: Path, work: Path, edits: int, log: Callable[[str], None] = print) -> Row:
    """Latencies of ``edits`` edits per tool, paired edit by edit."""
    files = list_files(tree)
    victims = [files[(i * 7919) % len(files)] for i in range(edits)]
    shutil.rmtree(work, ignore_errors=True)
    ours: list[float] = []
    theirs: list[float] = []
    with ChunksyncWorld(work / "chunksync") as world:
        a = world.init("prop-a", "prop")
        staging = work / "staging"
        copy_tree(tree, staging)
        for child in staging.iterdir():
            child.rename(a / child.name)
        world.sync("prop-a")
        world.join("prop-b", "prop")
        b = world.folder("prop-b")
        st_base = work / "syncthing"
        st_base.mkdir()
        copy_tree(tree, st_base / "a")
        log(f"  propagation: {len(files)} files per folder; starting daemons and Syncthing")
        with (
            world.daemon("prop-a") as da,
            world.daemon("prop-b") as db,
            SyncthingPair(st_base) as st,
        ):
            da.wait_ready(600)
            db.wait_ready(600)
            st.wait_in_sync(len(files), timeout=900)
            for i, rel in enumerate(victims):
                ours.append(_edit(a, b, rel, i))
                da.wait_at_head(60)
                db.wait_at_head(60)
                theirs.append(_edit(st.a.folder, st.b.folder, rel, i))
                wait_until(lambda: _idle(st), 60, what="Syncthing idle")
            log(f"  propagation: chunksync {', '.join(f'{t:.2f}' for t in ours)} s")
            log(f"  propagation: Syncthing {', '.join(f'{t:.2f}' for t in theirs)} s")
    shutil.rmtree(work, ignore_errors=True)
    return Row(
        f"propagation, small-file edit, {len(files):,}-file folder",
        "s",
        tuple(ours),
        "Syncthing (1 s delay)",
        tuple(theirs),
        (Target("median", 0.3, strict=True), Target("p90", 0.5, strict=True)),
    )


def _idle(st: SyncthingPair) -> bool:
    for inst in (st.a, st.b):
        status = inst.rest(f"/rest/db/status?folder={FOLDER_ID}")
        if status["state"] != "idle" or status["needFiles"]:
            return False
    return True
