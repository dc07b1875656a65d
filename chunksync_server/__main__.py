"""``chunksync-server``: run the chunk server and administer its data directory.

Every command takes ``--data DIR`` (or ``CHUNKSYNC_SERVER_DATA``) and works while the
server runs, except ``check --repair`` and ``folder delete``, which must be the object
store's only writer, and ``migrate``, which takes the data directory's lock
(:mod:`chunksync_server.datalock`). Command groups beyond the core live in their own
modules (``admin_users``, ``admin_folders``, ``migrate``), registered at the bottom with
one line each; ``serve`` settings may also come from a TOML file
(:mod:`chunksync_server.config_file`). See docs/server.md. Failures print one line ``chunksync-server: reason`` on stderr and exit
with the error's code (2 for usage/config, 1 otherwise; ``check`` and
``audit --verify`` exit 1 when they find problems). ``serve`` binds 127.0.0.1:8400 by
default; ``--port 0`` picks a free port, which ``--port-file F`` receives (written
atomically) and which is also printed as ``listening on URL``. SIGINT/SIGTERM stop
it gracefully, and within :data:`STOP_GRACE` seconds in any case.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from chunksync import logsetup
from chunksync.errors import UserError
from chunksync.logsetup import log_options

from . import admin, admin_folders, admin_users, migrate
from .admin_stores import pin_command
from .cli_backends import backend_config, backend_options
from .cli_common import data_option, emit, fail, friendly, json_option, version, when
from .cli_common import read_password as _read_password
from .config import DEFAULT_PORT, ServerConfig, ensure_data_dir, ssl_context
from .config_file import config_option
from .datalock import DataDirLock

__all__ = ["main"]

log = logging.getLogger("chunksync_server")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version(), "-V", "--version", prog_name="chunksync-server")
def main() -> None:
    """chunksync chunk server and its admin commands."""


@main.command()
@config_option
@data_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the bound port here (useful with --port 0)",
)
@click.option(
    "--token-days",
    default=90.0,
    show_default=True,
    type=float,
    help="lifetime of new device tokens in days (clients renew them when a third is left)",
)
@click.option(
    "--token-lifetime",
    type=click.FloatRange(min=1.0),
    metavar="SECONDS",
    help="lifetime of new device tokens in seconds (overrides --token-days)",
)
@backend_options
@log_options("info")
@friendly
def serve(
    data_dir: Path,
    host: str,
    port: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    port_file: Path | None,
    token_days: float,
    token_lifetime: float | None,
    **backends: Any,
) -> None:
    """Run the server in the foreground until SIGINT/SIGTERM.

    One server per data directory (a second one refuses). Settings may come from a
    TOML file (--config), flags win over it. Logs one structured line per request
    (JSON when stderr is not a terminal) to stderr or --log-file.
    """
    ttl = token_lifetime if token_lifetime is not None else token_days * 86_400
    config = ServerConfig(
        data_dir=data_dir,
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        token_ttl=ttl,
        **backend_config(**backends),
    )
    with (
        DataDirLock(ensure_data_dir(data_dir), "serve"),
        logsetup.session(logsetup.requested(), app="chunksync-server"),
    ):
        asyncio.run(_serve(config, port_file))


#: seconds from SIGINT/SIGTERM to a forced exit if a graceful stop has not finished
STOP_GRACE = 8.0


def _arm_forced_exit(grace: float = STOP_GRACE) -> None:
    """Exit the process ``grace`` seconds from now unless it has exited by then.

    A graceful stop waits for worker threads; one stuck in a library call (as Argon2id
    once was) would keep the server alive forever, ignoring SIGTERM. The timer is a
    daemon thread, so an orderly exit never waits for it. Committed data is durable
    (SQLite synchronous=FULL), so cutting a hung stop short loses nothing.
    """

    def force() -> None:
        print("chunksync-server: graceful stop timed out; exiting", file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(grace, force)
    timer.daemon = True
    timer.start()


async def _serve(config: ServerConfig, port_file: Path | None) -> None:
    from aiohttp import web

    from .app import make_app

    ctx = ssl_context(config)
    runner = web.AppRunner(make_app(config), access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=ctx)
        await site.start()
        port = runner.addresses[0][1]
        if port_file is not None:
            _write_atomic(port_file, f"{port}\n")
        scheme = "https" if ctx else "http"
        click.echo(f"listening on {scheme}://{config.host}:{port}")
        log.info("started", extra={"url": f"{scheme}://{config.host}:{port}", "version": version()})
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        _arm_forced_exit()
    finally:
        await runner.cleanup()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@main.group()
def user() -> None:
    """Manage user accounts."""


@user.command("add")
@click.argument("name")
@data_option
@click.option("--password-file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--admin", "is_admin", is_flag=True)
@friendly
def user_add(name: str, data_dir: Path, password_file: Path | None, is_admin: bool) -> None:
    """Create a user (password from --password-file, $CHUNKSYNC_PASSWORD or a prompt)."""
    admin.add_user(data_dir, name, _read_password(password_file), admin=is_admin)
    click.echo(f"user {name} added")


@user.command("list")
@data_option
@json_option
@friendly
def user_list(data_dir: Path, as_json: bool) -> None:
    emit(
        admin.list_users(data_dir),
        as_json,
        lambda u: (
            f"{u['name']}\t{'admin' if u['admin'] else 'user'}"
            f"\t{'disabled' if u['disabled'] else 'enabled'}\t{'totp' if u['totp'] else '-'}"
        ),
    )


@user.command("disable")
@click.argument("name")
@data_option
@friendly
def user_disable(name: str, data_dir: Path) -> None:
    admin.disable_user(data_dir, name)
    click.echo(f"user {name} disabled")


def _parse_size(text: str) -> int | None:
    """``none``/``unlimited``, or a size such as ``500M``, ``10G``, ``1T`` or bytes."""
    text = text.strip().upper()
    if text in ("NONE", "UNLIMITED"):
        return None
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if text[-1:] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 500M, 10G, none)") from None


@user.command("quota")
@click.argument("name")
@click.argument("size")
@data_option
@friendly
def user_quota(name: str, size: str, data_dir: Path) -> None:
    """Limit what NAME's folders may store: SIZE like 500M or 10G, or 'none'."""
    quota = _parse_size(size)
    admin.set_quota(data_dir, name, quota)
    click.echo(f"quota of {name}: {'none' if quota is None else f'{quota:,} bytes'}")


@main.group()
def device() -> None:
    """List and revoke devices."""


@device.command("list")
@data_option
@json_option
@friendly
def device_list(data_dir: Path, as_json: bool) -> None:
    emit(
        admin.list_devices(data_dir),
        as_json,
        lambda d: (
            f"{d['id']}\t{d['user']}\t{d['name']}\tlast seen {when(d['last_seen'])}"
            + ("\trevoked" if d["revoked"] else "")
        ),
    )


@device.command("revoke")
@click.argument("device_id")
@data_option
@friendly
def device_revoke(device_id: str, data_dir: Path) -> None:
    admin.revoke_device(data_dir, device_id)
    click.echo(f"device {device_id} revoked")


@main.group()
def folder() -> None:
    """List folders and manage members."""


@folder.command("list")
@data_option
@json_option
@friendly
def folder_list(data_dir: Path, as_json: bool) -> None:
    emit(
        admin.list_folders(data_dir),
        as_json,
        lambda f: (
            f"{f['name']}\towner {f['owner']}\thead {(f['head'] or '-')[:12]} seq {f['seq']}"
            f"\t{f['objects']} objects\t{f['bytes']} bytes\t"
            + ",".join(f"{u}:{r}" for u, r in f["members"].items())
        ),
    )


folder.add_command(pin_command)


@folder.command("add-member")
@click.argument("folder_name")
@click.argument("user_name")
@click.option("--role", required=True, type=click.Choice(["owner", "read-write", "read-only"]))
@data_option
@friendly
def folder_add_member(folder_name: str, user_name: str, role: str, data_dir: Path) -> None:
    admin.add_member(data_dir, folder_name, user_name, role)
    click.echo(f"{user_name} is {role} of {folder_name}")


def _parse_since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"--since: not an ISO 8601 time: {text!r}") from exc
    return when.timestamp()


@main.command("audit")
@data_option
@click.option("--folder", "folder_name")
@click.option("--since", help="ISO 8601 time or epoch seconds")
@click.option("--verify", is_flag=True, help="check the hash chain; exit 1 if broken")
@json_option
@friendly
def audit_cmd(
    data_dir: Path, folder_name: str | None, since: str | None, verify: bool, as_json: bool
) -> None:
    """Show the audit log, or verify its hash chain."""
    if verify:
        result = admin.verify_audit(data_dir)
        if as_json:
            head = result.head.to_json() if result.head else None
            click.echo(
                json.dumps(
                    {
                        "ok": result.ok,
                        "rows": result.rows,
                        "head": head,
                        "first_bad": result.first_bad,
                        "reason": result.reason,
                    }
                )
            )
        if not result.ok:
            where = f" at row {result.first_bad}" if result.first_bad is not None else ""
            fail(f"audit chain broken{where}: {result.reason}", 1)
        if not as_json:
            head_text = f", head {result.head.seq} {result.head.hash}" if result.head else ""
            click.echo(f"audit chain ok ({result.rows} rows{head_text})")
        return
    rows = admin.read_audit(data_dir, folder=folder_name, since=_parse_since(since))
    emit(
        [r.to_json() for r in rows],
        as_json,
        lambda r: (
            f"{r['id']}\t{when(r['time'])}\t{r['action']}\t{r['user'] or '-'}\t{r['device'] or '-'}"
            f"\t{r['address'] or '-'}\t{r['folder'] or '-'}\t{json.dumps(r['detail'], sort_keys=True)}"
        ),
    )


@main.command()
@data_option
@json_option
@friendly
def stats(data_dir: Path, as_json: bool) -> None:
    """Counts of users, devices, folders, objects and bytes; per folder, live and dead
    bytes (deleted by a prune, not yet compacted away) and the last prune."""
    from .admin_lifecycle import folder_lines, folder_space

    figures: dict[str, Any] = dict(admin.stats(data_dir).to_json())
    per_folder = folder_space(data_dir)
    if as_json:
        click.echo(json.dumps({**figures, "per_folder": per_folder}, sort_keys=True))
    else:
        for key, value in figures.items():
            click.echo(f"{key}\t{value}")
        for line in folder_lines(per_folder, when):
            click.echo(line)


@main.command()
@data_option
@click.option(
    "--repair",
    is_flag=True,
    help="quarantine damaged objects (they then read as missing), line packs up "
    "with the index, and make clients re-check and re-upload what the server "
    "lost; refused while the server runs (stop it first)",
)
@friendly
def check(data_dir: Path, repair: bool) -> None:
    """Verify every stored object, every head and the audit chain; exit 1 on problems.

    A quarantined object stays a problem until a device that holds it syncs and
    uploads it again (clients do that on their next ordinary sync).
    """
    report = admin.check_report(data_dir, repair=repair)
    for problem in report.problems:
        click.echo(problem)
    if repair:
        click.echo(
            f"repair: {report.quarantined} object(s) quarantined; devices that hold "
            "the data re-upload it on their next sync"
        )
    if report.problems:
        fail(f"{len(report.problems)} problem(s) found", 1)
    click.echo("check ok")


admin_users.register(main)
admin_folders.register(main)
migrate.register(main)

if __name__ == "__main__":
    main()
