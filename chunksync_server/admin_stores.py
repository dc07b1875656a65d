"""``chunksync-server folder pin``: keep a folder's objects in a named store (residency).

A pin is a row of ``folder_stores`` naming one of the stores the servers are started
with (``serve --named-store NAME=LOCATION``); see :mod:`chunksync_server.storage.routing`.
Only a folder that holds nothing yet can be pinned: its objects would otherwise stay
behind in the store they were written to. The change is audited like every admin
command.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from chunksync.errors import UserError

from . import admin, db

__all__ = ["pin_command", "pin_folder"]

STORE_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,31}\Z")


def pin_folder(data_dir: Path, folder_name: str, store: str) -> None:
    if not STORE_NAME.match(store):
        raise UserError(f"invalid store name {store!r}: expected [a-z0-9][a-z0-9_-]{{0,31}}")
    with admin._conn(data_dir) as conn, db.transaction(conn):
        folder = db.folder_by_name(conn, folder_name)
        if folder is None:
            raise UserError(f"no folder {folder_name!r}")
        stored = conn.execute(
            "SELECT count(*) FROM s3_objects WHERE ns = ?", (folder.id,)
        ).fetchone()[0]
        if folder.head is not None or stored:
            raise UserError(f"folder {folder_name!r} already holds data; pin folders before use")
        conn.execute(
            "INSERT INTO folder_stores (folder_id, store) VALUES (?, ?) "
            "ON CONFLICT (folder_id) DO UPDATE SET store = excluded.store",
            (folder.id, store),
        )
        admin._audit(conn, "admin.folder.pin", folder=folder_name, detail={"store": store})


@click.command("pin")
@click.argument("folder_name")
@click.argument("store")
@click.option(
    "--data",
    "data_dir",
    envvar="CHUNKSYNC_SERVER_DATA",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="data directory (or $CHUNKSYNC_SERVER_DATA)",
)
def pin_command(folder_name: str, store: str, data_dir: Path) -> None:
    """Keep FOLDER_NAME's objects in the named STORE (set before the first sync).

    STORE is a name given to every server with --named-store NAME=LOCATION.
    """
    from .cli_common import friendly

    friendly(pin_folder)(data_dir, folder_name, store)
    click.echo(f"{folder_name} is pinned to store {store}")
