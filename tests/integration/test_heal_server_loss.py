"""A server that lost objects is healed by an ordinary `sync` of a device that has them.

The server's object index loses its last writes (here: rows deleted while it is
stopped, as after a SIGKILL that took the SQLite WAL with it). `check` sees the head's
objects missing and a new device cannot join. The device that holds the files still
believes the server has everything; after the restart the server's storage epoch has
changed, so its next plain `sync` re-checks the head's objects and re-uploads them.
"""

from __future__ import annotations

import os
import sqlite3

from chunksync_server import admin
from chunksync_server.storage.packs import INDEX_FILE
from tests.helpers.cli_setup import CliWorld, cli_world  # noqa: F401 - fixture
from tests.helpers.devices import tree_of


def _lose_all_but_commits(world: CliWorld) -> int:
    """Stop the server, drop every index row but the newest few, start it on its port."""
    port = world.server.port
    world.server.stop()
    index = world.server.data_dir / "objects" / INDEX_FILE
    with sqlite3.connect(index) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
        # keep one object: the head commit is the last one written
        conn.execute(
            "DELETE FROM objects WHERE oid NOT IN "
            "(SELECT oid FROM objects ORDER BY pack DESC, offset DESC LIMIT 1)"
        )
        left = conn.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
    world.server.extra_args = ("--port", str(port))
    world.server.start()
    return rows - left


def test_objects_the_server_lost_are_reuploaded_by_a_plain_sync(cli_world: CliWorld) -> None:
    w = cli_world
    a = w.init("laptop")
    (a / "docs").mkdir()
    (a / "docs" / "report.txt").write_text("quarterly numbers")
    (a / "photo.bin").write_bytes(os.urandom(400_000))
    w.sync("laptop")
    assert not admin.check(w.server.data_dir)
    lost = _lose_all_but_commits(w)
    assert lost > 0  # (the server cannot read trees: only a key holder sees what is gone)
    w.login("desktop")
    failed = w.run("desktop", "join", str(w.folder("desktop")), "--folder", "docs", ok=False)
    assert failed.exit_code != 0
    healed = w.sync("laptop")
    assert "the server had lost" in healed.output and "re-uploaded" in healed.output
    assert not admin.check(w.server.data_dir)
    b = w.folder("desktop")
    w.run("desktop", "join", str(b), "--folder", "docs")  # the failed join is simply run again
    assert tree_of(a, mtimes=False) == tree_of(b, mtimes=False)
