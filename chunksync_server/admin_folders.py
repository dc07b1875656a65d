"""Folder administration beyond ``folder list/add-member``: ``folder members``,
``folder remove-member`` and ``folder delete``.

Deleting a folder is two steps, in the order that can never leave a head pointing at
missing objects: first the metadata (members, head, head history, key slots, the folder
row) goes in one audited transaction, so no device can reach the folder any more; then
the folder's objects are deleted from the object store. The second step needs the
store's writer, so ``folder delete`` refuses while a server runs (the same writer-lock
test as ``check --repair``): stop the server, or cut access at once with
``remove-member`` / ``user disable`` meanwhile. If deleting objects fails half-way, the
message says how many are left in which namespace; nothing else refers to them. With
the pack store, a deleted object's index row goes at once; its encrypted bytes stay in
their pack file until a compaction rewrites the pack (not implemented yet).

Devices that synced the folder keep their local copy: deletion is of the server's
encrypted copy only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import click

from chunksync import wire
from chunksync.errors import UserError

from . import auth, db
from .admin import _audit, _conn
from .cli_common import confirm, data_option, emit, friendly, json_option, yes_option

__all__ = ["delete_folder", "list_members", "register", "remove_member"]

#: every table that refers to a folder, emptied of its rows before the folder goes
FOLDER_TABLES = (
    "members",
    "heads",
    "head_log",
    "keyslots",
    "forgotten",
    "device_heads",
    "retention",
    "folder_stores",
)


def list_members(data_dir: Path, folder: str) -> list[dict[str, Any]]:
    with _conn(data_dir) as conn:
        row = db.folder_by_name(conn, folder)
        if row is None:
            raise UserError(f"no folder {folder!r}")
        members = db.members_of(conn, row.id)
    return [{"user": u, "role": r, "folder_owner": u == row.owner} for u, r in members.items()]


def remove_member(data_dir: Path, folder: str, user: str) -> None:
    """Take ``user`` off ``folder``; their devices lose access at their next request."""
    with _conn(data_dir) as conn, db.transaction(conn):
        row = db.folder_by_name(conn, folder)
        if row is None:
            raise UserError(f"no folder {folder!r}")
        member = auth.user_by_name(conn, user)
        if member is None:
            raise UserError(f"no user {user!r}")
        if row.owner == user:
            raise UserError(
                f"{user!r} owns {folder!r} (its quota is theirs): delete the folder instead"
            )
        cur = conn.execute(
            "DELETE FROM members WHERE folder_id = ? AND user_id = ?", (row.id, member.id)
        )
        if cur.rowcount != 1:
            raise UserError(f"{user!r} is not a member of {folder!r}")
        _audit(conn, "admin.folder.member.remove", user=user, folder=folder)


@click.command("members")
@click.argument("folder_name")
@data_option
@json_option
@friendly
def folder_members(folder_name: str, data_dir: Path, as_json: bool) -> None:
    """List the members of FOLDER_NAME and their roles."""
    emit(
        list_members(data_dir, folder_name),
        as_json,
        lambda m: f"{m['user']}\t{m['role']}" + ("\tfolder owner" if m["folder_owner"] else ""),
    )


@click.command("remove-member")
@click.argument("folder_name")
@click.argument("user_name")
@data_option
@friendly
def folder_remove_member(folder_name: str, user_name: str, data_dir: Path) -> None:
    """Take USER_NAME off FOLDER_NAME (their devices are refused from the next request)."""
    remove_member(data_dir, folder_name, user_name)
    click.echo(f"{user_name} removed from {folder_name}")


def delete_folder(data_dir: Path, folder: str, store_url: str | None = None) -> int:
    """Delete the folder's metadata, then its objects; returns the objects deleted."""
    from .storage import open_store

    store = open_store(store_url if store_url is not None else data_dir)
    try:
        if getattr(store, "read_only", False):
            raise UserError(
                f"cannot delete {folder!r} while a server runs on {data_dir} (it holds "
                "objects/writer.lock): stop it first; 'folder remove-member' or "
                "'user disable' cut access at once"
            )
        with _conn(data_dir) as conn, db.transaction(conn):
            row = db.folder_by_name(conn, folder)
            if row is None:
                raise UserError(f"no folder {folder!r}")
            for table in FOLDER_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE folder_id = ?", (row.id,))  # nosec B608
            conn.execute("DELETE FROM folders WHERE id = ?", (row.id,))
            stats = store.stats(row.id)
            _audit(
                conn,
                "admin.folder.delete",
                folder=folder,
                detail={"namespace": row.id, "objects": stats.objects, "bytes": stats.bytes},
            )
        try:
            return store.delete_many(row.id, list(store.list(row.id)))
        except Exception as exc:
            left = store.stats(row.id).objects
            raise UserError(
                f"folder {folder!r} removed, but {left} of its objects are left in namespace "
                f"{row.id} ({exc}); nothing refers to them any more (the audit row names "
                "the namespace)"
            ) from exc
    finally:
        store.close()


@click.command("delete")
@click.argument("folder_name")
@data_option
@yes_option
@friendly
def folder_delete(folder_name: str, data_dir: Path, yes: bool) -> None:
    """Delete FOLDER_NAME and every object of it from the server (the server must be stopped).

    Members' devices keep their local files; the server's encrypted copy, history and key
    slots are gone for good. The audit log records the deletion.
    """
    if not wire.FOLDER_NAME.match(folder_name):
        raise UserError(f"invalid folder name {folder_name!r}")
    confirm(yes, f"delete folder {folder_name}, its history and all its objects on the server?")
    deleted = delete_folder(data_dir, folder_name)
    click.echo(f"folder {folder_name} deleted ({deleted} object(s) removed)")


def register(main: click.Group) -> None:
    """Add these commands to ``chunksync-server folder``."""
    group = cast(click.Group, main.commands["folder"])
    for command in (folder_members, folder_remove_member, folder_delete):
        group.add_command(command)
