"""``chunksync doctor``: a troubleshooting bundle to attach to a bug report.

What it holds: versions (chunksync, Python, OS, libraries), where secrets are kept
(the kind of store, never a secret), the folder's config, its status, the failed items
by reason, the index format, the recent change journal and log, the clock skew against
the server and whether the server is reachable and accepts this device's token.

What it never holds: a token, a key, a password, a TOTP secret (tokens are reported as
present or not; the folder key as found or not). Nor, unless ``include_names``, a file
name: failed items and journal entries keep their reason and time but not their path,
the folder's own path and its ignore/policy patterns are replaced by placeholders, and
every word of a log line that is a name of the folder (from the index) is replaced.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from . import __version__, wire
from .config import FolderConfig, FolderPaths, chunksync_home, find_credential
from .errors import ChunksyncError

__all__ = ["NAME", "bundle", "log_file"]

NAME = "<name>"
LOG_LINES = 50
_MAX_NAMES = 200_000
_LIBS = ("aiohttp", "lmdb", "click", "cryptography", "keyring", "platformdirs", "rich")
_WORD = re.compile(r"[^\s'\"(),:=]+")


def log_file() -> Path:
    """The daemon's log file when one is kept (``CHUNKSYNC_LOG_FILE``, else the
    platform's log directory); a daemon under systemd logs to the journal instead."""
    env = os.environ.get("CHUNKSYNC_LOG_FILE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_log_dir("chunksync")) / "chunksync.log"


def _versions() -> dict[str, Any]:
    libs: dict[str, str | None] = {}
    for lib in _LIBS:
        try:
            libs[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            libs[lib] = None
    return {
        "chunksync": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": libs,
    }


def _secrets(paths: FolderPaths | None) -> dict[str, Any]:
    from .keystore import secret_store

    store = secret_store()
    doc: dict[str, Any] = {"store": store.kind}
    if paths is not None:
        config = FolderConfig.load(paths)
        doc["folder_key_in_folder"] = paths.key.exists()  # an old folder, not migrated yet
        doc["folder_key_stored"] = bool(config.key_ref) and (
            store.get(f"folder-key/{config.key_ref}") is not None
        )
    return doc


def _credential(server: str | None) -> dict[str, Any]:
    try:
        cred = find_credential(server)
    except ChunksyncError as exc:
        return {"error": exc.message}
    if cred is None:
        return {"logged_in": False}
    return {
        "logged_in": True,
        "server": cred.server,
        "user": cred.user,
        "device_id": cred.device_id,
        "device_name": cred.device_name,
        "token": "present" if cred.token else "missing",
        "expires_at": cred.expires_at,
        "ca_file": None if cred.ca_file is None else "set",
    }


def _config(paths: FolderPaths, names: bool) -> dict[str, Any]:
    config = FolderConfig.load(paths)
    return {
        "folder": config.folder,
        "server": config.server,
        "device_name": config.device_name,
        "user": config.user,
        "policies": config.policies if names else sorted(config.policies.values()),
        "limit_upload_kib": config.limit_upload_kib,
        "limit_download_kib": config.limit_download_kib,
    }


def _status(paths: FolderPaths, names: bool) -> dict[str, Any]:
    from .status import read_status

    doc = dict(read_status(paths.root))
    failed = doc.get("failed") or []
    doc["failed_by_reason"] = dict(Counter(str(i.get("reason")) for i in failed))
    if not names:
        doc["failed"] = [{**i, "path": NAME} for i in failed]
        doc["waiting_for_writes"] = [NAME for _ in doc.get("waiting_for_writes") or []]
        if doc.get("last_event"):
            doc["last_event"] = NAME
    return doc


def _journal_and_names(paths: FolderPaths, names: bool) -> tuple[list[dict[str, Any]], set[str]]:
    """The last change-journal entries, and every name of the folder (to scrub logs)."""
    from .storage.index import Index

    seen: set[str] = set()
    with Index.open(paths.index) as index:
        events = [e for _, e in index.iter_events()][-LOG_LINES:]
        for n, state in enumerate(index.iter_states()):
            if n >= _MAX_NAMES:
                break
            seen.add(state.path)
            seen.update(state.path.split("/"))
    if not names:
        events = [{**e, "path": NAME} for e in events]
    return events, seen


def scrub(line: str, names: set[str], root: Path) -> str:
    """``line`` with the folder's path and every word that is one of its names replaced."""
    line = line.replace(str(root), "<folder>")

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        if word in names:
            return NAME
        return "/".join(NAME if part in names else part for part in word.split("/"))

    return _WORD.sub(swap, line)


def _log_tail(names: set[str] | None, root: Path | None) -> dict[str, Any]:
    path = log_file()
    try:
        lines = path.read_text(errors="replace").splitlines()[-LOG_LINES:]
    except OSError:
        return {"file": str(path), "lines": [], "note": "no log file (under systemd: journalctl)"}
    if names is not None and root is not None:
        lines = [scrub(ln, names, root) for ln in lines]
    return {"file": str(path), "lines": lines}


async def _server(server: str | None) -> dict[str, Any]:
    """Reachability, latency, clock skew and whether this device's token is accepted."""
    from .config import token_keeper
    from .daemon_util import clock_skew
    from .transport.http import HttpClient

    cred = find_credential(server)
    if cred is None:
        return {"reachable": None, "note": "not logged in"}
    client = HttpClient(cred.server, ca_file=cred.ca_file, tokens=token_keeper(cred), timeout=10)
    doc: dict[str, Any] = {"url": cred.server}
    try:
        before = time.time()
        async with client.exchange("GET", wire.HEALTHZ, renew=False) as resp:
            date = resp.headers.get("Date", "")
            await resp.read()
        after = time.time()
        doc.update(reachable=True, latency_ms=round((after - before) * 1000, 1))
        try:
            doc["clock_skew_s"] = round(clock_skew(before, after, date), 3)
        except (ValueError, TypeError):
            doc["clock_skew_s"] = None
        try:
            who = await client.whoami()
            doc["token_accepted"] = True
            doc["totp"] = who.get("totp")
        except ChunksyncError as exc:
            doc["token_accepted"] = False
            doc["token_error"] = exc.message
    except ChunksyncError as exc:
        doc.update(reachable=False, error=exc.message)
    finally:
        await client.aclose()
    return doc


def bundle(root: Path | None, *, include_names: bool = False) -> dict[str, Any]:
    """The whole bundle (see the module docstring); ``root`` None: no folder."""
    from .cli_base import run

    paths = FolderPaths(root.resolve()) if root is not None else None
    doc: dict[str, Any] = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "names_included": include_names,
        "versions": _versions(),
        "home": str(chunksync_home()),
    }
    server = None
    names: set[str] | None = None
    try:
        if paths is not None:
            config = FolderConfig.load(paths)
            server = config.server
            doc["folder_path"] = str(paths.root) if include_names else "<folder>"
            doc["config"] = _config(paths, include_names)
            doc["status"] = _status(paths, include_names)
            doc["index"] = _index(paths)
            doc["journal"], found = _journal_and_names(paths, include_names)
            names = None if include_names else found
        doc["secrets"] = _secrets(paths)
    except ChunksyncError as exc:
        doc["error"] = exc.message
    doc["credential"] = _credential(server)
    doc["log"] = _log_tail(names, paths.root if paths else None)
    doc["server"] = run(_server(server))
    return doc


def _index(paths: FolderPaths) -> dict[str, Any]:
    from .storage.index_format import read_format

    size = sum(f.stat().st_size for f in paths.index.glob("*") if f.is_file())
    return {"format": read_format(paths.index), "bytes": size}
