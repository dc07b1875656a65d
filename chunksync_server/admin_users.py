"""User administration beyond ``user add/list/disable/quota``: ``user enable``,
``user password`` (reset) and ``user delete``.

Each change runs in one ``BEGIN IMMEDIATE`` transaction with its audit row (address
``cli``), so it works while the server runs; the server re-checks tokens on every
request and closes the WebSockets of revoked ones within ``revocation_poll`` seconds.

* ``password`` replaces the hash and revokes every token of the user: a reset is what an
  admin does when a password leaked, so the devices holding the old sessions must log
  in again (``--keep-devices`` leaves them).
* ``delete`` removes the account, its devices, tokens and memberships. It refuses while
  the user owns a folder (a folder's owner carries its quota and cannot be left
  dangling): delete the folder or make someone else owner first. Audit rows and head
  history keep the name as text, so the record of what the user did stays.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import click

from chunksync.errors import UserError

from . import auth, db
from .admin import _audit, _conn, check_password
from .cli_common import confirm, data_option, friendly, read_password, yes_option
from .config import Argon2Params

__all__ = ["delete_user", "enable_user", "register", "reset_password"]


def enable_user(data_dir: Path, name: str) -> None:
    with _conn(data_dir) as conn, db.transaction(conn):
        if not auth.set_user_disabled(conn, name, False):
            raise UserError(f"no user {name!r}")
        _audit(conn, "admin.user.enable", user=name)


def reset_password(
    data_dir: Path,
    name: str,
    password: str,
    *,
    keep_devices: bool = False,
    params: Argon2Params | None = None,
) -> int:
    """Set a new password; returns how many tokens were revoked."""
    check_password(password)
    pw_hash = auth.hash_password(password, params or Argon2Params())
    with _conn(data_dir) as conn, db.transaction(conn):
        user = auth.user_by_name(conn, name)
        if user is None:
            raise UserError(f"no user {name!r}")
        conn.execute("UPDATE users SET pw_hash = ? WHERE id = ?", (pw_hash, user.id))
        revoked = 0
        if not keep_devices:
            cur = conn.execute(
                "UPDATE tokens SET revoked = 1 WHERE user_id = ? AND revoked = 0", (user.id,)
            )
            revoked = cur.rowcount
        _audit(
            conn,
            "admin.user.password",
            user=name,
            detail={"tokens_revoked": revoked, "keep_devices": keep_devices},
        )
    return revoked


def delete_user(data_dir: Path, name: str) -> int:
    """Remove the account; returns how many devices went with it."""
    with _conn(data_dir) as conn, db.transaction(conn):
        user = auth.user_by_name(conn, name)
        if user is None:
            raise UserError(f"no user {name!r}")
        owned = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM folders WHERE owner = ? ORDER BY name", (user.id,)
            )
        ]
        if owned:
            raise UserError(
                f"user {name!r} owns folder(s) {', '.join(owned)}: delete them "
                "('folder delete') or make another member owner first"
            )
        devices = conn.execute("SELECT count(*) FROM devices WHERE user_id = ?", (user.id,))
        count = int(devices.fetchone()[0])
        conn.execute("DELETE FROM tokens WHERE user_id = ?", (user.id,))
        conn.execute("DELETE FROM devices WHERE user_id = ?", (user.id,))
        conn.execute("DELETE FROM members WHERE user_id = ?", (user.id,))
        conn.execute("DELETE FROM users WHERE id = ?", (user.id,))
        _audit(conn, "admin.user.delete", user=name, detail={"devices": count})
    return count


# --- commands --------------------------------------------------------------------------


@click.command("enable")
@click.argument("name")
@data_option
@friendly
def user_enable(name: str, data_dir: Path) -> None:
    """Let a disabled user log in again (their devices' tokens work again)."""
    enable_user(data_dir, name)
    click.echo(f"user {name} enabled")


@click.command("password")
@click.argument("name")
@data_option
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--keep-devices", is_flag=True, help="leave the user's devices logged in (default: revoke)"
)
@friendly
def user_password(
    name: str, data_dir: Path, password_file: Path | None, keep_devices: bool
) -> None:
    """Reset NAME's password (from --password-file, $CHUNKSYNC_PASSWORD or a prompt).

    Every device of the user must log in again unless --keep-devices is given.
    """
    revoked = reset_password(
        data_dir, name, read_password(password_file), keep_devices=keep_devices
    )
    click.echo(f"password of {name} reset; {revoked} device token(s) revoked")


@click.command("delete")
@click.argument("name")
@data_option
@yes_option
@friendly
def user_delete(name: str, data_dir: Path, yes: bool) -> None:
    """Delete NAME with their devices and memberships (refused while NAME owns a folder).

    The audit log keeps the name; nothing of any folder is deleted.
    """
    confirm(yes, f"delete user {name} and all their devices?")
    devices = delete_user(data_dir, name)
    click.echo(f"user {name} deleted ({devices} device(s) removed)")


def register(main: click.Group) -> None:
    """Add these commands to ``chunksync-server user``."""
    group = cast(click.Group, main.commands["user"])
    for command in (user_enable, user_password, user_delete):
        group.add_command(command)
