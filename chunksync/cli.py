"""The ``chunksync`` command line (DESIGN.md §6).

Parsing and printing only: every command opens the folder through
:class:`~chunksync.folder.SyncFolder`, calls the engine or a history/verify function,
and maps :class:`~chunksync.errors.ChunksyncError` to a one-line message on stderr
and its exit code. Secrets come from a file flag, the environment, or a prompt.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__, cli_account, cli_doctor, cli_history, cli_ignore
from .cli_base import FOLDER_DIR, command_errors, emit, read_secret, run, with_progress
from .cli_lifecycle import lifecycle_commands
from .cli_limits import limit_command, limit_options, limits_of
from .cli_policy import policy_command
from .cli_ui import ui_command, ui_options, ui_port_of
from .config import Credential, FolderConfig, FolderPaths
from .errors import EXIT_SKIPPED, ChunksyncError, DeviceRevoked, UserError
from .interrupt import (
    interrupted,
    on_interrupt,
)
from .logsetup import log_options
from .objects import short_id
from .output import say, setup_logging
from .transport.ratelimit import BandwidthLimits, Limiter

T = TypeVar("T")
DEFAULT_SERVER = "http://127.0.0.1:8400"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="chunksync")
def main() -> None:
    """chunksync: end-to-end-encrypted folder sync.

    DIR may be left out wherever it is optional: the synced folder that contains the
    current directory is used. With --json, a failure is one JSON object
    {"error": ..., "exit_code": ...} on stdout.
    """
    setup_logging()


# --- folders ---------------------------------------------------------------------------
def _new_config(folder: str, server: str | None) -> tuple[FolderConfig, Credential]:
    from .config import load_credential

    cred = load_credential(server.rstrip("/") if server else None)
    return FolderConfig(
        folder=folder, server=cred.server, device_name=cred.device_name, user=cred.user
    ), cred


def _sync_once(
    root: Path,
    *,
    allow_mass_delete: bool = False,
    accept_server_history: bool = False,
    quiet: bool = False,
    limits: BandwidthLimits = BandwidthLimits(),
) -> Any:
    """One sync under the folder lock; None when a running daemon was asked instead."""
    from .control import GatedChunkStore
    from .failed import record as record_failed
    from .folder import FolderBusy, FolderLock, SyncFolder
    from .status import clear_revoked, mark_revoked
    from .storage.upkeep import IndexKeeper

    async def go(progress: Any) -> Any:
        async with SyncFolder.open(root, limiters=(Limiter.of(limits),)) as f:
            with FolderLock(f.paths):
                # ^C closes the gate: transfers end at once, the round stops at its next step
                f.store = gate = GatedChunkStore(f.store)
                unregister = on_interrupt(gate.close)
                try:
                    result = await f.engine(progress).sync(
                        allow_mass_delete=allow_mass_delete,
                        accept_server_history=accept_server_history,
                    )
                except DeviceRevoked as exc:
                    mark_revoked(f.paths, exc.message)  # for 'status' after we exit
                    raise
                finally:
                    unregister()
                clear_revoked(f.paths)
                IndexKeeper(
                    f.index
                ).after_round()  # evict old listings if the cache outgrew its budget
                return result, record_failed(f.index, result.scan, result.skipped)

    try:
        return with_progress(go, quiet)
    except FolderBusy:
        from .status import ask_daemon

        reply = ask_daemon(FolderPaths(root.resolve()), "sync-now")
        if reply is None or "error" in reply:
            raise
        say(f"a daemon is syncing {root}: asked it to sync now (see 'chunksync status')", err=True)
        return None


def _first_sync(root: Path, limits: BandwidthLimits = BandwidthLimits()) -> int:
    """Sync, print the summary; returns the exit status (EXIT_SKIPPED: items skipped)."""
    done = _sync_once(root, limits=limits)
    if done is None:
        return 0
    result, failed = done
    for line in _describe(result, failed, root):
        say(line)
    return EXIT_SKIPPED if failed.skipped else 0


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--folder", required=True, help="the folder's name on the server")
@click.option("--server", help="server URL (default: the last one logged in to)")
@click.option("--passphrase-file", type=click.Path(dir_okay=False))
@limit_options("this folder (kept in its config)")
@command_errors
def init(
    directory: Path,
    folder: str,
    server: str | None,
    passphrase_file: str | None,
    limit_upload: int,
    limit_download: int,
) -> None:
    """Create a new folder: new key, then the first sync (run again to continue)."""
    from . import onboard

    config, cred = _new_config(folder, server)
    config.limit_upload_kib, config.limit_download_kib = limit_upload, limit_download
    onboard.check_local_dir(directory)
    resume = onboard.resuming(directory, config)
    passphrase = read_secret(
        passphrase_file, "CHUNKSYNC_PASSPHRASE", "Passphrase", confirm=not resume
    )
    onboard.check_passphrase(passphrase)
    if resume:
        say(f"continuing the interrupted setup of {directory} as folder '{folder}'", err=True)
        run(onboard.resume_remote(cred, directory, config, passphrase))
    else:
        master, slot = onboard.new_local_state(directory, config, passphrase)
        run(onboard.create_remote(cred, directory, config, master, slot))
    status = _first_sync(directory, limits_of(limit_upload, limit_download))
    say(f"{directory} is now synced as folder '{folder}'")
    sys.exit(status)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--folder", required=True)
@click.option("--server")
@click.option("--passphrase-file", type=click.Path(dir_okay=False))
@limit_options("this folder (kept in its config)")
@command_errors
def join(
    directory: Path,
    folder: str,
    server: str | None,
    passphrase_file: str | None,
    limit_upload: int,
    limit_download: int,
) -> None:
    """Sync an existing folder on this device (same passphrase; run again to continue)."""
    from . import onboard
    from .folder import create_folder_state, remove_folder_state

    config, cred = _new_config(folder, server)
    config.limit_upload_kib, config.limit_download_kib = limit_upload, limit_download
    limits = limits_of(limit_upload, limit_download)
    onboard.check_local_dir(directory)
    resume = onboard.resuming(directory, config)
    passphrase = read_secret(passphrase_file, "CHUNKSYNC_PASSPHRASE", "Passphrase")
    master = run(onboard.join_key(cred, folder, passphrase))
    if resume:
        onboard.check_joined_key(directory, master)
        say(f"continuing the interrupted join of {directory}", err=True)
        status = _first_sync(directory, limits)
    else:
        paths = create_folder_state(directory, config, master)
        try:
            status = _first_sync(directory, limits)
        except ChunksyncError:
            if not interrupted():
                remove_folder_state(paths)
            raise
    say(f"{directory} joined folder '{folder}'")
    sys.exit(status)


@main.command("change-passphrase")
@FOLDER_DIR
@click.option("--passphrase-file", type=click.Path(dir_okay=False), help="the current passphrase")
@click.option("--new-passphrase-file", type=click.Path(dir_okay=False))
@command_errors
def change_passphrase(
    directory: Path, passphrase_file: str | None, new_passphrase_file: str | None
) -> None:
    """Change the folder passphrase (rewraps the key; no file is re-encrypted)."""
    from .folder import SyncFolder, rewrap_slot

    old = read_secret(passphrase_file, "CHUNKSYNC_PASSPHRASE", "Current passphrase")
    new = read_secret(
        new_passphrase_file, "CHUNKSYNC_NEW_PASSPHRASE", "New passphrase", confirm=True
    )
    if not new:
        raise UserError("the new passphrase is empty")

    async def go() -> None:
        async with SyncFolder.open(directory) as f:
            slots = await f.store.get_keyslots()
            name, slot = rewrap_slot(slots, old, new, f.keys.master)
            await f.store.put_keyslot(name, slot)

    run(go())
    say("passphrase changed: other devices keep syncing; new devices join with the new one")


def _describe(result: Any, failed: Any, root: Path) -> list[str]:
    """The lines that report a sync; names raw (say() escapes each line as a whole)."""
    from .failed_text import failed_lines

    healed = result.healed
    lines = list(failed_lines(failed.items, shlex.quote(str(root))))
    if healed.missing:
        note = f"the server had lost {healed.missing} objects: re-uploaded {healed.restored}"
        if healed.unrecoverable:
            note += f" ({healed.unrecoverable} must come from another device that holds them)"
        lines.append(note)
    if result.receive_only and result.local_only:
        lines.append(
            f"receive-only (read-only member): {result.local_only} local change"
            f"{'s' if result.local_only != 1 else ''} kept here, not sent"
        )
    if not result.changed:
        return [*lines, f"in sync at {short_id(result.head) if result.head else 'an empty folder'}"]
    parts = []
    if result.pushed:
        parts.append(
            f"uploaded {result.uploaded_objects} objects ({result.uploaded_bytes / 1e6:.1f} MB)"
        )
    if result.applied:
        parts.append(f"updated {result.applied} file{'s' if result.applied != 1 else ''} here")
    if result.deleted:
        parts.append(f"deleted {result.deleted} here")
    if result.conflicts:
        parts.append(f"{len(result.conflicts)} conflict(s): see 'chunksync conflicts'")
    return [*lines, "synced: " + "; ".join(parts) + f" (head {short_id(result.head or '')})"]


@main.command()
@FOLDER_DIR
@click.option(
    "--allow-mass-delete", is_flag=True, help="go ahead with a sync that deletes many files"
)
@click.option(
    "--accept-server-history",
    is_flag=True,
    help="take a server head that does not descend from the last one synced (server restored "
    "from a backup): merge without deleting anything, differences kept as conflicted copies",
)
@click.option("--json", "as_json", is_flag=True)
@limit_options("this run, on top of the folder's own")
@command_errors
def sync(
    directory: Path,
    allow_mass_delete: bool,
    accept_server_history: bool,
    as_json: bool,
    limit_upload: int,
    limit_download: int,
) -> None:
    """Sync once; exit 0 when the folder is in sync, 12 when it synced but some paths
    could not be (failed items: 'chunksync status' lists each, with what to do)."""
    from .failed_text import failed_json

    done = _sync_once(
        directory,
        allow_mass_delete=allow_mass_delete,
        accept_server_history=accept_server_history,
        quiet=as_json,
        limits=limits_of(limit_upload, limit_download),
    )
    if done is None:
        return
    result, failed = done
    doc = {
        "head": result.head,
        "pushed": result.pushed,
        "applied": result.applied,
        "deleted": result.deleted,
        "conflicts": [c.path for c in result.conflicts],
        "uploaded_bytes": result.uploaded_bytes,
        "downloaded_bytes": result.downloaded_bytes,
        "receive_only": result.receive_only,
        "skipped": [{"path": p, "reason": r} for p, r in result.skipped],
        "warnings": list(result.scan.warnings) if result.scan is not None else [],
        "local_only_changes": result.local_only,
        "healed": {"missing": result.healed.missing, "restored": result.healed.restored},
        **failed_json(failed),
    }

    def text() -> None:
        for line in _describe(result, failed, directory):
            say(line)

    emit(doc, as_json, text)
    if failed.skipped:  # synced, but some paths were not (chunksync status lists them)
        sys.exit(EXIT_SKIPPED)


# --- state -----------------------------------------------------------------------------
@main.command()
@FOLDER_DIR
@click.option("--json", "as_json", is_flag=True)
@command_errors
def status(directory: Path, as_json: bool) -> None:
    """Show the folder's sync state (from the daemon if one runs, else the index)."""
    from .status import read_status
    from .status_text import status_table

    doc = read_status(directory)

    def text() -> None:
        for line in status_table(doc):
            say(line)

    emit(doc, as_json, text)


@main.command()
@FOLDER_DIR
@click.option("--json", "as_json", is_flag=True)
@command_errors
def conflicts(directory: Path, as_json: bool) -> None:
    """List open conflicts and recent automatic merges, each explained with the
    commands that resolve it (resolve --keep) or undo it (resolve --undo-merge)."""
    from .review import conflict_review

    rows = conflict_review(directory)

    def text() -> None:
        if not rows:
            say("no conflicts and no recent automatic merges")
        for row in rows:
            say(f"{row['path']}: {row['explanation']}")
            for what, command in sorted((row.get("resolve") or row.get("undo") or {}).items()):
                say(f"    {what}: {command}")

    emit(rows, as_json, text)


@main.command()
@click.argument("args", nargs=-1, required=True, metavar="[DIR] PATH")
@click.option("--keep", type=click.Choice(["mine", "theirs", "both"]), help="settle a conflict")
@click.option(
    "--undo-merge",
    "undo",
    metavar="mine|theirs|SNAPSHOT",
    help="bring back one side of PATH's latest automatic merge: mine (the version of "
    "the device that merged), theirs (the server's) or a snapshot id from 'conflicts'",
)
@command_errors
def resolve(args: tuple[str, ...], keep: str | None, undo: str | None) -> None:
    """Settle a conflict (keep mine, theirs or both), or undo an automatic merge; then sync."""
    from .status import resolve_conflict

    directory, paths = cli_history.split_args(args)
    if len(paths) != 1:
        raise UserError("resolve takes one PATH")
    path = paths[0]
    if (keep is None) == (undo is None):
        raise UserError("give either --keep mine|theirs|both or --undo-merge mine|theirs")
    if undo is not None:
        from .cli_policy import undo_merge_now

        say(run(undo_merge_now(directory, path, undo)))
    else:
        say(resolve_conflict(directory, path, keep))  # type: ignore[arg-type]
    sys.exit(_first_sync(directory))


@main.command()
@FOLDER_DIR
@command_errors
def verify(directory: Path) -> None:
    """Re-download every object of the head and check it against the local files."""
    from .folder import SyncFolder
    from .verify import verify_folder

    async def go() -> list[str]:
        async with SyncFolder.open(directory) as f:
            return await verify_folder(f)

    problems = run(go())
    for problem in problems:
        say(problem)
    if problems:
        raise SystemExit(3)
    say("verified: every object of the head is intact and matches the local files")


# --- daemon ----------------------------------------------------------------------------
@main.command()
@click.argument(
    "directories",
    nargs=-1,
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)
@click.option(
    "--quiet-ms",
    type=click.IntRange(0, 60_000),
    default=150,
    show_default=True,
    help="sync once no edit arrived for this long",
)
@click.option(
    "--max-delay-ms",
    type=click.IntRange(1, 600_000),
    default=1000,
    show_default=True,
    help="sync at least this often under continuous edits",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.1),
    default=30.0,
    show_default=True,
    help="seconds between head polls (the WebSocket push is the fast path)",
)
@click.option(
    "--full-rescan-interval",
    type=click.FloatRange(1),
    default=3600.0,
    show_default=True,
    help="seconds between full rescans (safety net behind the watcher)",
)
@click.option(
    "--backoff-max",
    type=click.FloatRange(0.1),
    default=60.0,
    show_default=True,
    help="cap of the reconnect backoff in seconds while offline",
)
@click.option(
    "--settle-ms",
    type=click.IntRange(0, 600_000),
    default=2000,
    show_default=True,
    help="a changed file still open for writing (or not tracked by open/close "
    "events) is synced once it was not written for this long; a file all of whose "
    "writers closed it syncs at once (0: never wait)",
)
@click.option(
    "--settle-cap",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="seconds a file that never stops changing waits at most; then its latest "
    "consistent read is synced (and logged)",
)
@click.option(
    "--stop-grace",
    type=click.FloatRange(0.1, 3600),
    default=1.0,
    show_default=True,
    help="seconds SIGTERM/SIGINT wait for the current step before exiting anyway "
    "(safe: writes are atomic); a second signal exits at once",
)
@click.option(
    "--install-service",
    is_flag=True,
    help="write a systemd user unit (Linux) or launchd agent (macOS) for these folders and exit",
)
@click.option(
    "--normal-priority",
    is_flag=True,
    help="keep the CPU and I/O priority (by default the daemon lowers both: nice 10, best-effort I/O 7)",
)
@limit_options("all folders of this daemon together, on top of each folder's own")
@ui_options
@log_options("info")
@command_errors
def daemon(
    directories: tuple[Path, ...],
    quiet_ms: int,
    max_delay_ms: int,
    poll_interval: float,
    full_rescan_interval: float,
    backoff_max: float,
    settle_ms: int,
    settle_cap: float,
    stop_grace: float,
    install_service: bool,
    normal_priority: bool,
    limit_upload: int,
    limit_download: int,
    ui_port: int,
    no_ui: bool,
) -> None:
    """Watch folders and keep them in sync (foreground); serves the local dashboard."""
    from .daemon import DaemonOptions
    from .daemon_process import run_daemon

    if install_service:
        from .service import install_service as install

        say(install(list(directories)))
        return
    options = DaemonOptions(
        quiet=quiet_ms / 1000,
        max_delay=max(max_delay_ms, quiet_ms) / 1000,
        poll_interval=poll_interval,
        full_rescan_interval=full_rescan_interval,
        backoff_max=backoff_max,
        settle_quiet=settle_ms / 1000,
        settle_cap=settle_cap,
        stop_grace=stop_grace,
        low_priority=not normal_priority,
        limits=limits_of(limit_upload, limit_download),
        ui_port=ui_port_of(ui_port, no_ui),
    )
    run_daemon(list(directories), options)


@main.command()
@FOLDER_DIR
@command_errors
def pause(directory: Path) -> None:
    """Pause the daemon's transfers for this folder."""
    from .status import control

    say(control(directory, "pause"))


@main.command()
@FOLDER_DIR
@command_errors
def resume(directory: Path) -> None:
    """Resume the daemon's transfers for this folder."""
    from .status import control

    say(control(directory, "resume"))


main.add_command(limit_command(FOLDER_DIR, command_errors, emit))
main.add_command(cli_account.login)
main.add_command(cli_account.logout)
main.add_command(cli_account.devices)
main.add_command(cli_account.totp)
main.add_command(cli_account.folders)
main.add_command(cli_ignore.ignore)
main.add_command(cli_doctor.doctor)
main.add_command(cli_history.log)
main.add_command(cli_history.restore)
main.add_command(policy_command(FOLDER_DIR, command_errors, emit))
main.add_command(ui_command(command_errors))
for _command in lifecycle_commands(FOLDER_DIR, command_errors, emit, read_secret, run):
    main.add_command(_command)


if __name__ == "__main__":  # pragma: no cover
    from .entry import main as entry

    entry()
