"""Folder state for ``status``, ``conflicts``, ``resolve``, ``pause`` and ``resume``.

When a daemon runs for the folder these ask it over its control socket
(``.chunksync/control.sock``, mode 0600); otherwise they read the index directly, so
they also work offline and with no daemon. Pausing without a daemon leaves a
``paused`` marker that a daemon started later honours. A sync or daemon refused by the
server for good (revoked device) leaves a ``revoked`` marker holding the reason, so
``status`` says so after the process ended; the next successful sync removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import fsops
from .config import FolderConfig, FolderPaths
from .conflict import parse_conflict_copy
from .errors import ChunksyncError, ConfigError, UserError
from .failed import load as load_failed
from .paths import validate_relpath
from .storage.index import Index
from .storage.meta import BASE, HIGH_SEQ, PENDING

__all__ = [
    "ask_daemon",
    "clear_revoked",
    "control",
    "list_conflicts",
    "list_events",
    "mark_revoked",
    "read_status",
    "resolve_conflict",
]


REVOKED = "revoked"  # marker file in .chunksync/


def _paths(directory: Path) -> FolderPaths:
    paths = FolderPaths(directory.resolve())
    if not paths.config.exists():
        raise ConfigError(f"{directory} is not a chunksync folder")
    return paths


def ask_daemon(paths: FolderPaths, command: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Send one JSON command to the folder's daemon; None when no daemon listens."""
    if not paths.socket.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(paths.socket))
            sock.sendall(json.dumps({"command": command}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                part = sock.recv(65536)
                if not part:
                    break
                data += part
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except OSError as exc:
        raise ChunksyncError(f"the daemon did not answer: {exc.strerror or exc}") from exc
    reply = json.loads(data or b"{}")
    if not isinstance(reply, dict):
        raise ChunksyncError("the daemon sent a malformed answer")
    return reply


def mark_revoked(paths: FolderPaths, message: str) -> None:
    with contextlib.suppress(OSError):
        fsops.atomic_write_bytes(paths.state / REVOKED, message.encode() + b"\n", mode=0o600)


def clear_revoked(paths: FolderPaths) -> None:
    with contextlib.suppress(OSError):
        (paths.state / REVOKED).unlink(missing_ok=True)


def _revoked_reason(paths: FolderPaths) -> str | None:
    try:
        return (paths.state / REVOKED).read_text(errors="replace").strip() or "revoked"
    except OSError:
        return None


def index_status(paths: FolderPaths) -> dict[str, Any]:
    config = FolderConfig.load(paths)
    with Index.open(paths.index) as index:
        base = index.get_meta(BASE)
        pending = index.get_meta(PENDING) == b"1"
        last = next(reversed(list(index.iter_events())), None)
        conflicts = sum(1 for _, r in index.iter_conflicts() if not r.get("dismissed"))
        high = index.get_meta(HIGH_SEQ)
        failed = load_failed(index)
    revoked = _revoked_reason(paths)
    state = "paused" if (paths.state / "paused").exists() else "idle (no daemon running)"
    return {
        "folder": config.folder,
        "server": config.server,
        "device": config.device_name,
        "state": "revoked" if revoked else state,
        "last_error": revoked,
        "base": base.decode() if base else None,
        "sequence": int(high) if high else 0,
        # never synced (an init or join interrupted): everything here is still to sync
        "local_changes_pending": pending or base is None,
        "conflicts": conflicts,
        "last_event": _describe_event(last[1]) if last else None,
        "limit_upload_kib": config.limit_upload_kib,  # KiB/s, 0: none (this folder's own)
        "limit_download_kib": config.limit_download_kib,
        # paths the last scan could not sync, each with the reason and what to do
        "failed_items": sum(1 for i in failed if i.skipped),
        "failed": [i.to_json() for i in failed],
    }


def _describe_event(event: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["time_ns"] / 1e9))
    return f"{event['change']} {event['path']} ({when}, {event['device']})"


def read_status(directory: Path) -> dict[str, Any]:
    paths = _paths(directory)
    reply = ask_daemon(paths, "status")
    return reply if reply is not None else index_status(paths)


def control(directory: Path, command: str) -> str:
    """pause / resume / sync-now: through the daemon, or with the marker file."""
    paths = _paths(directory)
    reply = ask_daemon(paths, command)
    if reply is not None:
        if "error" in reply:
            raise ChunksyncError(str(reply["error"]))
        return str(reply.get("message", "ok"))
    marker = paths.state / "paused"
    if command == "pause":
        fsops.atomic_write_bytes(marker, b"paused\n", mode=0o600)
        return "paused (no daemon running; a daemon started later stays paused)"
    if command == "resume":
        marker.unlink(missing_ok=True)
        return "resumed (no daemon running)"
    raise UserError(f"no daemon is running for {directory}")


def list_events(directory: Path) -> list[dict[str, Any]]:
    """This device's journal of changes (local scans, conflicts), oldest first."""
    with Index.open(_paths(directory).index) as index:
        return [dict(event, seq=seq) for seq, event in index.iter_events()]


def _copies_on_disk(index: Index, recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conflicted copies in the folder with no record here: made on another device and
    synced to this one, recognised by their names (conflict.parse_conflict_copy)."""
    known = {row.get("copy_path") for row in recorded}
    found = []
    for state in index.iter_states():
        copy = parse_conflict_copy(state.path)
        if copy is None or copy.path in known:
            continue
        found.append(
            {
                "path": copy.original,
                "copy_path": copy.path,
                "kind": "conflicted-copy",
                "policy": "keep-both",
                "device": copy.device,
                "explanation": (
                    f"{copy.path} is the version {copy.device} had when both sides changed "
                    f"{copy.original} ({copy.made}); compare them, then keep one or both"
                ),
            }
        )
    return found


@contextlib.contextmanager
def _opened(paths: FolderPaths, index: Index | None) -> Iterator[Index]:
    """The index a caller already holds open (the daemon's dashboard: LMDB must not be
    opened twice in one process), else the folder's, opened for the call."""
    if index is not None:
        yield index
        return
    with Index.open(paths.index) as opened:
        yield opened


def list_conflicts(directory: Path, index: Index | None = None) -> list[dict[str, Any]]:
    """Conflicts still worth attention, on every device: a conflicted copy still present
    (recorded here, or recognised by its name when another device made it), a manual
    conflict not yet resolved, or a last-write-wins loser kept only in history (with the
    command that brings it back). Copies the user chose to keep beside are not shown."""
    paths = _paths(directory)
    with _opened(paths, index) as index:
        rows = [dict(record, path=path) for path, record in index.iter_conflicts()]
        dismissed = {row.get("copy_path") for row in rows if row.get("dismissed")}
        rows = [row for row in rows if not row.get("dismissed")]
        rows += [row for row in _copies_on_disk(index, rows) if row["copy_path"] not in dismissed]
    shown = []
    for row in rows:
        if row.get("snapshot"):
            row["explanation"] += (
                f" To get it back: chunksync restore {shlex.quote(str(directory))} --snapshot"
                f" {row['snapshot']} {shlex.quote(row['path'])} --to SOMEWHERE"
            )
        copy = row.get("copy_path")
        if row.get("policy") in ("manual", "last-write-wins") or (
            copy and fsops.lstat_at(paths.root, copy) is not None
        ):
            shown.append(row)
    return shown


def resolve_conflict(directory: Path, path: str, keep: str, index: Index | None = None) -> str:
    """Settle a conflict locally (the sync that follows publishes the result).

    ``path`` is the conflicted file or the copy itself. theirs: delete the conflicted
    copy; mine: move the copy over the name; both: keep the two files and stop listing
    the conflict.
    """
    path = validate_relpath(path.strip("/"))
    matches = [
        row
        for row in list_conflicts(directory, index)
        if path in (row["path"], row.get("copy_path"))
    ]
    if not matches:
        raise UserError(f"no conflict for {path}: see 'chunksync conflicts {directory}'")
    if len(matches) > 1 and keep == "mine":
        copies = ", ".join(f"'{row.get('copy_path')}'" for row in matches)
        raise UserError(
            f"{path} has {len(matches)} conflicted copies ({copies}): name the copy to keep"
        )
    paths = _paths(directory)
    with _opened(paths, index) as index:
        for record in matches:
            copy = record.get("copy_path")
            if keep != "both" and copy and fsops.lstat_at(paths.root, copy) is not None:
                if keep == "theirs":
                    fsops.remove_at(paths.root, copy)
                else:
                    os.replace(paths.root / copy, paths.root / record["path"])
            with index.write() as w:
                w.delete_conflict(record["path"])
                if keep == "both" and copy:
                    w.put_conflict(copy, {"dismissed": True, "copy_path": copy})
    kept = {"theirs": "the version at the name", "mine": "your version", "both": "both versions"}[
        keep
    ]
    return f"resolved {matches[0]['path']}: kept {kept}"
