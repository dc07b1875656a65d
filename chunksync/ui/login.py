"""The dashboard's token file and its one-time login links (Jupyter's and Syncthing's way).

A daemon that serves the dashboard makes a fresh random token at start and writes it,
with the dashboard's address, to ``DIR/.chunksync/ui.json`` of each folder it serves (mode
0600, inside the 0700 state directory), and to ``CHUNKSYNC_HOME/ui.json`` for
``chunksync ui`` run outside any folder. Whoever can read that file is the folder's
owner on this machine.

``chunksync ui`` never puts the token itself in a URL (it would stay in the browser's
history): the link carries a random nonce, the time and an HMAC of both under the
token. The daemon accepts each nonce once and only for :data:`LINK_LIFETIME` seconds,
then hands the browser a session cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from .. import fsops
from ..config import FolderPaths, chunksync_home
from ..errors import UserError

__all__ = [
    "LINK_LIFETIME",
    "LinkChecker",
    "UiAddress",
    "find_address",
    "login_url",
    "write_address",
]

LINK_LIFETIME = 300.0
FILE_NAME = "ui.json"


@dataclass(frozen=True, slots=True)
class UiAddress:
    url: str  # http://127.0.0.1:PORT
    token: str
    pid: int


def write_address(address: UiAddress, folders: list[FolderPaths]) -> list[Path]:
    """Write the token file beside each folder's state and in the user's home."""
    doc = json.dumps({"url": address.url, "token": address.token, "pid": address.pid}).encode()
    home = chunksync_home()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    targets = [p.state / FILE_NAME for p in folders] + [home / FILE_NAME]
    for path in targets:
        fsops.atomic_write_bytes(path, doc, mode=0o600)
    return targets


def remove_address(paths: list[Path], address: UiAddress) -> None:
    """Remove the files that still name this daemon (another may have replaced one)."""
    for path in paths:
        try:
            if json.loads(path.read_bytes()).get("token") == address.token:
                path.unlink()
        except (OSError, ValueError):
            pass


def find_address(directory: Path | None) -> UiAddress:
    """The running dashboard for ``directory`` (or the last one started for this user)."""
    path = (
        FolderPaths(directory.resolve()).state / FILE_NAME
        if directory is not None
        else chunksync_home() / FILE_NAME
    )
    where = directory if directory is not None else "this user"
    try:
        doc = json.loads(path.read_bytes())
        address = UiAddress(str(doc["url"]), str(doc["token"]), int(doc["pid"]))
    except FileNotFoundError:
        raise UserError(
            f"no dashboard is running for {where}: start 'chunksync daemon DIR' first"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    if not _alive(address.pid):
        raise UserError(f"the daemon that served the dashboard for {where} is gone: start it again")
    return address


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mac(token: str, nonce: str, issued: int) -> str:
    return hmac.new(token.encode(), f"{nonce}.{issued}".encode(), hashlib.sha256).hexdigest()


def login_url(address: UiAddress, now: float | None = None) -> str:
    """A login link good once, for :data:`LINK_LIFETIME` seconds."""
    nonce, issued = secrets.token_urlsafe(16), int(time.time() if now is None else now)
    query = urlencode({"n": nonce, "t": issued, "m": _mac(address.token, nonce, issued)})
    return f"{address.url}/login?{query}"


class LinkChecker:
    """The daemon's side: accepts each valid link once."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._used: dict[str, float] = {}

    def accept(self, nonce: str, issued: str, mac: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        self._used = {n: t for n, t in self._used.items() if t > now - 2 * LINK_LIFETIME}
        try:
            when = int(issued)
        except ValueError:
            return False
        if not nonce or len(nonce) > 64 or nonce in self._used:
            return False
        if abs(now - when) > LINK_LIFETIME:
            return False
        if not hmac.compare_digest(mac.encode(), _mac(self.token, nonce, when).encode()):
            return False
        self._used[nonce] = now
        return True
