"""kill -9 during a prune's sweep and compaction, at random points, several seeds.

The server's half of a prune is ``delete_many`` (one index transaction) then
``compact`` (copy the live objects of mostly dead packs, make them durable, repoint
their rows, unlink the old pack). A child process runs exactly that on a real pack
store and SIGKILLs itself at a point a seed picks — before or after the Nth append,
index transaction, directory sync or unlink. The parent then reopens the store (the
writer's start-up reconcile runs) and requires ``check`` to pass and every live object
to read back byte for byte; a second sweep after the crash must finish the job.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from chunksync_server.storage import PackObjectStore
from chunksync_server.storage import compact as compact_mod
from chunksync_server.storage import packs as packs_mod
from tests.helpers.cli_setup import cli_world  # noqa: F401 - fixture

NS = "f1"
PACK_SIZE = 64 * 1024
POINTS = [
    (compact_mod, "append_rows"),
    (compact_mod, "transact"),
    (compact_mod, "fsync_dir"),
    (packs_mod, "transact"),  # delete_many's index transaction
]


def _fill(root: Path) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """A store with live and dead objects spread over several small packs."""
    rng = random.Random(7)
    live: dict[bytes, bytes] = {}
    dead: dict[bytes, bytes] = {}
    store = PackObjectStore(root, pack_size=PACK_SIZE)
    for batch in range(12):
        items = []
        for _ in range(8):
            oid, blob = rng.randbytes(32), rng.randbytes(rng.randrange(500, 3000))
            (dead if rng.random() < 0.7 else live)[oid] = blob
            items.append((oid, blob))
        store.put_many(NS, items)
        assert batch >= 0
    store.close()
    return live, dead


def _child(root: str, dead: list[bytes], seed: int) -> None:
    rng = random.Random(seed)
    module, name = POINTS[seed % len(POINTS)]
    real = getattr(module, name)
    when = rng.choice(("before", "after"))
    count = 1 if module is packs_mod else rng.randrange(1, 4)  # delete_many: one transaction
    calls = {"n": 0}

    def hooked(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == count and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kw)
        if calls["n"] == count:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(module, name, hooked)
    store = PackObjectStore(Path(root), pack_size=PACK_SIZE)
    store.delete_many(NS, dead)
    store.compact(NS)
    os._exit(0)  # the hook did not fire: the parent fails the test


@pytest.mark.parametrize("seed", range(8))
def test_kill_during_sweep_and_compaction_loses_nothing_live(tmp_path: Path, seed: int) -> None:
    template = tmp_path / "template"
    live, dead = _fill(template)
    root = tmp_path / "objects"
    shutil.copytree(template, root)
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_child, args=(str(root), sorted(dead), seed))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL, "the kill point was never reached"

    store = PackObjectStore(root, pack_size=PACK_SIZE)  # the reconcile runs here
    try:
        assert store.check(NS) == []
        assert store.get_many(NS, list(live)) == live
        # finishing the prune after the crash leaves exactly the live objects
        store.delete_many(NS, list(dead))
        store.compact(NS)
        assert store.check(NS) == []
        assert set(store.list(NS)) == set(live)
        assert store.get_many(NS, list(live)) == live
        packed = sum(p.stat().st_size for p in (root / NS / "packs").glob("*.pack"))
        assert packed <= 2 * sum(map(len, live.values()))  # the dead space came back
    finally:
        store.close()


# --- whole processes: the client (chunksync prune) or the server killed mid-prune ------


def _prune_process(w: Any, device: str) -> Any:
    import subprocess
    import sys

    from tests.helpers.cli_setup import PASSPHRASE
    from tests.helpers.server import DEFAULT_PASSWORD

    env = {
        **os.environ,
        "CHUNKSYNC_HOME": str(w.home(device)),
        "CHUNKSYNC_PASSWORD": DEFAULT_PASSWORD,
        "CHUNKSYNC_PASSPHRASE": PASSPHRASE,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "chunksync.cli", "prune", str(w.folder(device))],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))  # 0: the client is killed, 1: the server
def test_kill_client_or_server_mid_prune(cli_world: Any, tmp_path: Path, seed: int) -> None:
    import json
    import time

    from tests.helpers.devices import tree_of
    from tests.integration.test_lifecycle_prune import server_admin

    rng = random.Random(seed)
    w = cli_world
    a = w.folder("laptop")
    a.mkdir(parents=True)
    for i in range(30):
        (a / f"gone-{i}.bin").write_bytes(rng.randbytes(64 * 1024))
    (a / "kept.txt").write_text("kept")
    w.init("laptop")
    for i in range(30):
        (a / f"gone-{i}.bin").unlink()
    (a / "kept.txt").write_text("kept, v2")
    w.sync("laptop", "--allow-mass-delete")
    w.run("laptop", "forget", str(a), "--keep-last", "1")

    victim = "server" if seed % 2 else "client"
    proc = _prune_process(w, "laptop")
    time.sleep(rng.uniform(0.3, 1.5))  # somewhere in the mark, the sweep or the compaction
    if victim == "client":
        proc.kill()
    else:
        w.server.kill()
    proc.wait(30)
    if victim == "server":  # back on the same port, so the devices find it again
        port = w.server.base_url.rsplit(":", 1)[1]
        w.server.extra_args = (*w.server.extra_args, "--port", port)
        w.server.start()
    assert server_admin(w.server.data_dir, "check").returncode == 0
    # nothing reachable was lost: the head restores whole, and the device syncs on
    log = json.loads(w.run("laptop", "log", str(a), "--json").output)
    out = tmp_path / "restored"
    w.run("laptop", "restore", str(a), "--snapshot", log[-1]["id"], "--to", str(out))
    assert tree_of(out) == tree_of(a)
    w.run("laptop", "prune", str(a))  # a prune after the crash finishes the job
    assert server_admin(w.server.data_dir, "check").returncode == 0
    b = w.join("desktop")
    assert tree_of(b, mtimes=False) == tree_of(a, mtimes=False)
    assert "verified" in w.run("desktop", "verify", str(b)).output
