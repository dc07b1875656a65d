"""`chunksync-server check --repair`, and damage counted, logged once and announced.

* ``check --repair`` (the real CLI, a subprocess) lines packs up with the index,
  quarantines damaged objects, changes the storage epoch so that clients re-upload,
  and refuses with one clear line while a server holds the store's writer lock;
* a running server counts every damaged object it finds in
  ``chunksync_storage_damaged_objects_total``, logs it once, and changes the storage
  epoch that ``GET head`` reports, without an operator.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from chunksync import wire
from chunksync.errors import ObjectNotFound
from chunksync.objects import ObjectId
from chunksync.transport import HttpClient
from chunksync_server import admin
from chunksync_server.epoch import REPAIR_MARK
from chunksync_server.handlers.common import METRICS
from chunksync_server.storage.packindex import INDEX_FILE
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.devices import tree_of
from tests.helpers.server import REPO, RunningServer, serve_in_process

F = "f"


def server_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chunksync_server", *args],
        cwd=REPO,
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def index_rows(data: Path) -> list[tuple[bytes, str, int, int, int]]:
    with sqlite3.connect(data / "objects" / INDEX_FILE) as db:
        rows = db.execute(
            "SELECT oid, ns, pack, offset, length FROM objects ORDER BY ns, pack, offset"
        ).fetchall()
    db.close()
    return rows


def flip(data: Path, ns: str, pack: int, at: int) -> None:
    with open(data / "objects" / ns / "packs" / f"{pack}.pack", "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))


def test_check_repair_quarantines_damage_and_devices_reupload(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "one.bin").write_bytes(os.urandom(200_000))
    (a / "two.txt").write_text("two")
    w.sync("laptop")
    data, port = w.server.data_dir, w.server.port
    w.server.stop()
    rows = index_rows(data)
    oid, ns, pack, offset, length = max(rows, key=lambda r: r[4])
    flip(data, ns, pack, offset + length // 2)  # bit rot in one object
    last = max(rows, key=lambda r: (r[2], r[3]))
    with open(data / "objects" / last[1] / "packs" / f"{last[2]}.pack", "r+b") as f:
        f.truncate(last[3] + 1)  # and a pack cut short
    plain = server_cli("check", "--data", str(data))
    assert plain.returncode == 1 and "digest mismatch" in plain.stdout
    assert not (data / REPAIR_MARK).exists()

    repaired = server_cli("check", "--repair", "--data", str(data))
    assert repaired.returncode == 1, repaired.stderr  # the data is still missing
    assert "repair: 2 object(s) quarantined" in repaired.stdout, repaired.stdout
    assert oid.hex() in repaired.stdout and "Traceback" not in repaired.stderr
    assert (data / REPAIR_MARK).exists()  # clients will re-check
    remaining = {r[0] for r in index_rows(data)}
    assert oid not in remaining and last[0] not in remaining
    actions = [e.action for e in admin.read_audit(data)]
    assert "admin.storage.repair" in actions

    w.server.extra_args = ("--port", str(port))
    w.server.start()
    healed = w.sync("laptop").output
    assert "the server had lost 2" in healed and "re-uploaded 2" in healed, healed
    ok = server_cli("check", "--data", str(data))
    assert ok.returncode == 0 and "check ok" in ok.stdout, ok.stdout
    b = w.join("desktop")
    assert tree_of(a, mtimes=False) == tree_of(b, mtimes=False)


def test_check_repair_refuses_while_the_server_runs(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "file.txt").write_text("content")
    w.sync("laptop")
    before = index_rows(w.server.data_dir)
    refused = server_cli("check", "--repair", "--data", str(w.server.data_dir))
    assert refused.returncode == 2  # a usage refusal, like every UserError
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "writer.lock" in lines[0] and "stop it first" in lines[0], lines
    assert "Traceback" not in refused.stderr
    assert index_rows(w.server.data_dir) == before
    assert not (w.server.data_dir / REPAIR_MARK).exists()
    assert "--repair" in server_cli("check", "--help").stdout


def damaged_metric(srv: RunningServer) -> float:
    for metric in srv.app[METRICS].registry.collect():
        for sample in metric.samples:
            if sample.name == "chunksync_storage_damaged_objects_total":
                return float(sample.value)
    raise AssertionError("no chunksync_storage_damaged_objects_total metric")


async def test_damage_is_counted_logged_once_and_changes_the_epoch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chunksync_server.storage")
    async with serve_in_process(tmp_path / "srv") as srv:
        async with (
            aiohttp.ClientSession(headers=srv.headers()) as s,
            s.post(srv.url(wire.FOLDERS), json={"name": F}) as r,
        ):
            assert r.status == 201
        client = HttpClient(srv.base_url, srv.token)
        try:
            store = client.folder(F)
            items = [(ObjectId(bytes([n]) * 32), bytes([n]) * 5000) for n in range(1, 4)]
            await store.put_many(items)
            epoch = (await store.get_head()).epoch
            oid, ns, pack, offset, _ = next(
                r for r in index_rows(srv.data_dir) if r[0] == items[1][0]
            )
            flip(srv.data_dir, ns, pack, offset + 10)
            for _ in range(3):  # asked for again and again: found once, never served
                with pytest.raises(ObjectNotFound, match=oid.hex()):
                    await store.get_many([oid for oid, _ in items])
            assert set(await store.get_many([items[0][0], items[2][0]])) == {
                items[0][0],
                items[2][0],
            }
            assert damaged_metric(srv) == 1.0
            assert (await store.get_head()).epoch != epoch  # clients re-check, unasked
            assert await store.missing([oid]) == {oid}
            await store.put_many([items[1]])  # a re-upload heals it
            assert (await store.get_many([oid]))[oid] == items[1][1]
            async with aiohttp.ClientSession() as s, s.get(srv.url(wire.METRICS)) as r:
                assert "chunksync_storage_damaged_objects_total 1.0" in await r.text()
        finally:
            await client.aclose()
    logged = [rec.getMessage() for rec in caplog.records if oid.hex() in rec.getMessage()]
    assert len(logged) == 1 and "quarantined" in logged[0], logged
