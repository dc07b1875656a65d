"""Account commands: ``login``, ``logout``, ``devices``, ``totp`` and ``folders``.

``login`` again on a device that is logged in already replaces its token: the server
is sent this device's id, revokes the old token and keeps one device entry (instead
of a new device per login, each with a token that stays valid). The others act for
the account of one server (``--server``, default: the last one logged in to).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from .cli_base import command_errors, emit, read_secret, run
from .config import Credential, find_credential, load_credential, save_credential
from .errors import AuthError, ChunksyncError, ProtocolError, RefConflict, UserError
from .output import say

__all__ = ["devices", "folders", "login", "logout", "totp"]

T = TypeVar("T")
SERVER = click.option("--server", help="server URL (default: the last one logged in to)")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")


def _as_account(server: str | None, call: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``call(client)`` with this device's credential for ``server``."""
    from .config import token_keeper
    from .transport.http import HttpClient

    cred = load_credential(server.rstrip("/") if server else None)

    async def go() -> T:
        client = HttpClient(cred.server, ca_file=cred.ca_file, tokens=token_keeper(cred))
        try:
            return await call(client)
        finally:
            await client.aclose()

    return run(go())


def _not_an_api(url: str) -> UserError:
    from yarl import URL

    origin = URL(url).origin()
    return UserError(
        f"{url} is not the base URL of a chunksync server (it refused the login route as "
        f"a protected path): give the server's URL without a path, e.g. {origin}"
    )


@click.command()
@click.argument("url")
@click.option("--user", required=True)
@click.option("--password-file", type=click.Path(dir_okay=False))
@click.option("--device-name", default=socket.gethostname)
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--totp", help="one-time code, if the account has TOTP enabled")
@command_errors
def login(
    url: str,
    user: str,
    password_file: str | None,
    device_name: str,
    ca_file: str | None,
    totp: str | None,
) -> None:
    """Log this device in to a server and store its token (0600). Logging in again
    replaces this device's token (the old one is revoked) instead of adding a device."""
    from .transport.http import HttpClient
    from .transport.tokens import renew_at

    password = read_secret(password_file, "CHUNKSYNC_PASSWORD", "Password")
    server = url.rstrip("/")
    previous = find_credential(server)
    same = previous if previous is not None and previous.user == user else None

    async def go() -> Credential:
        client = HttpClient(url, ca_file=ca_file)
        try:
            result = await client.login(
                user, password, device_name, totp=totp, device_id=same.device_id if same else None
            )
        except (AuthError, ProtocolError) as exc:
            if "missing Authorization header" in exc.message:
                raise _not_an_api(url) from exc
            raise
        finally:
            await client.aclose()
        expires = result.expires_at if isinstance(result.expires_at, int | float) else None
        return Credential(
            server,
            user,
            result.token,
            result.device_id,
            device_name,
            ca_file,
            expires_at=expires,
            renew_after=renew_at(expires, time.time()),
        )

    cred = run(go())
    save_credential(cred)
    again = (
        " (this device's old token is revoked)" if same and same.device_id == cred.device_id else ""
    )
    say(f"logged in to {cred.server} as {user} (device '{device_name}'){again}")


@click.command()
@SERVER
@command_errors
def logout(server: str | None) -> None:
    """Revoke this device's token on the server and forget it here (folders stay; log
    in again to sync them)."""
    from .config import remove_credential
    from .transport.account import logout as do_logout

    cred = load_credential(server.rstrip("/") if server else None)
    note = ""
    try:
        _as_account(cred.server, do_logout)
    except AuthError:
        note = " (the server had already refused this token)"
    except ChunksyncError as exc:
        note = f" (the server could not be told: {exc.message}; revoke this device from another with 'chunksync devices revoke {cred.device_id}')"
    remove_credential(cred.server)
    say(f"logged out of {cred.server}{note}")


@click.group(invoke_without_command=True)
@SERVER
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@command_errors
def devices(ctx: click.Context, server: str | None, as_json: bool) -> None:
    """List your devices (the current one marked *); 'devices revoke ID' revokes one."""
    if ctx.invoked_subcommand is not None:
        ctx.ensure_object(dict)["server"] = server
        return
    from .transport.account import list_devices

    rows = _as_account(server, list_devices)

    def text() -> None:
        say(f"  {'ID':<16}  {'NAME':<20}  {'LAST SEEN':<16}  STATE")
        for d in rows:
            state = "revoked" if d.revoked else "active"
            mark = "*" if d.current else " "
            say(f"{mark} {d.id:<16}  {d.name:<20.20}  {_when(d.last_seen):<16}  {state}")

    emit([d.to_json() for d in rows], as_json, text)


@devices.command("revoke")
@click.argument("device_id")
@click.pass_context
@command_errors
def devices_revoke(ctx: click.Context, device_id: str) -> None:
    """Revoke one of your devices: its token stops working at once."""
    from .transport.account import revoke_device

    server = (ctx.obj or {}).get("server")
    _as_account(server, lambda client: revoke_device(client, device_id))
    cred = load_credential(server.rstrip("/") if server else None)
    if cred.device_id == device_id:
        say(f"revoked device {device_id}: that is this device; log in again to sync here")
    else:
        say(f"revoked device {device_id}")


@click.group()
def totp() -> None:
    """Two-factor login codes (TOTP) for your account."""


@totp.command("enable")
@SERVER
@click.option("--json", "as_json", is_flag=True)
@command_errors
def totp_enable(server: str | None, as_json: bool) -> None:
    """Enable TOTP: prints the secret and an otpauth:// URI for an authenticator app
    (shown once); every later login needs --totp CODE."""
    from .transport.account import totp_enable as enable

    try:
        secret, uri = _as_account(server, enable)
    except RefConflict as exc:
        raise UserError(
            "TOTP is already enabled: 'chunksync totp disable --code CODE' first"
        ) from exc

    def text() -> None:
        say(f"TOTP enabled. Add this secret to your authenticator app: {secret}")
        say(f"or scan/open this URI: {uri}")
        say("from now on, log in with --totp CODE")

    emit({"secret": secret, "uri": uri}, as_json, text)


@totp.command("disable")
@SERVER
@click.option("--code", required=True, help="a current code from the authenticator app")
@command_errors
def totp_disable(server: str | None, code: str) -> None:
    """Disable TOTP (needs a current code)."""
    from .transport.account import totp_disable as disable

    try:
        _as_account(server, lambda client: disable(client, code))
    except RefConflict as exc:
        raise UserError("TOTP is not enabled for this account") from exc
    except AuthError as exc:
        if "(HTTP 403)" in exc.message:
            raise UserError("wrong or already used TOTP code; try the next one") from exc
        raise
    say("TOTP disabled")


@click.command()
@SERVER
@click.option("--json", "as_json", is_flag=True)
@command_errors
def folders(server: str | None, as_json: bool) -> None:
    """List the server's folders you can join (yours and shared with you), with your role."""

    async def call(client: Any) -> list[dict[str, Any]]:
        return await client.list_folders()  # type: ignore[no-any-return]

    rows = sorted(_as_account(server, call), key=lambda f: str(f["name"]))

    def text() -> None:
        if not rows:
            say("no folders yet: create one with 'chunksync init DIR --folder NAME'")
            return
        say(f"{'NAME':<24}  {'ROLE':<10}  {'OWNER':<16}  CREATED")
        for f in rows:
            created = f.get("created")
            say(
                f"{f['name']:<24}  {f.get('role', '?')!s:<10}  {f.get('owner', '?')!s:<16}  "
                f"{_when(created if isinstance(created, int | float) else None)}"
            )
        say("join one here with: chunksync join DIR --folder NAME")

    emit(rows, as_json, text)
