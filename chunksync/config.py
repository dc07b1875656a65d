"""Where chunksync keeps its state, and the small files that hold it.

* Per user (``CHUNKSYNC_HOME``, else the platform config dir): ``credentials.json``
  with one device token per server, mode 0600 (with a real OS keyring the token is
  there and the file holds a marker), and ``credentials.lock``, which every
  process takes (``flock``) before it changes the file, so a token rotated by one
  daemon is never overwritten by another (see :mod:`chunksync.transport.tokens`).
* Per user too: the folder master keys, in the OS keyring or ``secrets/`` (0600),
  so the daemon runs unattended, as Syncthing does, while no copy of a folder carries
  its key (:mod:`chunksync.keystore`, :mod:`chunksync.folder_key`).
* Per folder, in ``DIR/.chunksync/`` (the folder marker): ``config.json`` (folder name,
  server, device, conflict policies, the ``key_ref`` naming its key), ``index/``
  (LMDB) and ``tmp/`` (partial downloads, swept at start). Older versions kept the key
  in ``key`` here; it is moved out when the folder is next opened.

Every file here is written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConfigError
from .fsops import STATE_DIR_NAME as STATE_DIR
from .fsops import atomic_write_bytes
from .keystore import secret_store
from .transport.tokens import TokenKeeper, TokenState

__all__ = [
    "Credential",
    "CredentialFile",
    "FolderConfig",
    "FolderPaths",
    "chunksync_home",
    "find_credential",
    "load_credential",
    "remove_credential",
    "save_credential",
    "token_keeper",
]


def chunksync_home() -> Path:
    env = os.environ.get("CHUNKSYNC_HOME")
    return Path(env) if env else Path(platformdirs.user_config_dir("chunksync"))


def _write_json(path: Path, doc: dict[str, Any], mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_bytes(path, json.dumps(doc, indent=2, sort_keys=True).encode(), mode=mode)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return doc


@dataclass(frozen=True)
class Credential:
    """A device token for one server, from ``chunksync login``."""

    server: str
    user: str
    token: str
    device_id: str
    device_name: str
    ca_file: str | None = None
    #: server time at which the token expires; None in files written before renewal
    expires_at: float | None = None
    #: local time after which any client renews it (two thirds of its lifetime)
    renew_after: float | None = None

    @property
    def token_state(self) -> TokenState:
        return TokenState(self.token, self.expires_at, self.renew_after)

    def __repr__(self) -> str:
        return (
            f"Credential(server={self.server!r}, user={self.user!r}, device={self.device_name!r})"
        )


def _credentials_path() -> Path:
    return chunksync_home() / "credentials.json"


def _lock_path() -> Path:
    return chunksync_home() / "credentials.lock"


def _open_lock() -> int:
    path = _lock_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextlib.contextmanager
def credentials_lock() -> Iterator[None]:
    """Exclusive use of the credentials file (blocking; for short CLI steps)."""
    fd = _open_lock()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def credentials_lock_async(timeout: float = 60.0) -> AsyncIterator[None]:
    """The same lock without blocking the event loop (polled, so cancellation is clean)."""
    fd = _open_lock()
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(f"{_lock_path()} stayed locked for {timeout:.0f} s") from None
                await asyncio.sleep(0.02)
        yield
    finally:
        os.close(fd)


#: the token field of an entry whose token is in the OS keyring (:mod:`.keystore`)
IN_KEYRING = "keyring:"  # nosec B105  # a marker, not a token


def _token_name(server: str) -> str:
    return "token-" + hashlib.sha256(server.encode()).hexdigest()[:32]


def _to_disk(cred: Credential) -> dict[str, Any]:
    """The file's entry for ``cred``: with a real OS keyring the token goes there and
    the file keeps a marker; otherwise the token is in this 0600 file."""
    entry = asdict(cred)
    store = secret_store()
    if store.kind == "keyring":
        store.set(_token_name(cred.server), cred.token)
        entry["token"] = IN_KEYRING
    return entry


def _from_disk(entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("token") != IN_KEYRING:
        return entry
    token = secret_store().get(_token_name(str(entry.get("server"))))
    if token is None:
        raise ConfigError(
            f"the token for {entry.get('server')} is missing from the OS keyring: "
            "run 'chunksync login' again"
        )
    return {**entry, "token": token}


def _entry(doc: dict[str, Any], server: str | None) -> Credential | None:
    entry = doc.get("servers", {}).get(server) if server else None
    if not entry:
        return None
    try:
        return Credential(**_from_disk(entry))
    except TypeError as exc:
        raise ConfigError(f"{_credentials_path()}: damaged entry for {server}: {exc}") from exc


def save_credential(cred: Credential) -> None:
    with credentials_lock():
        doc = _read_json(_credentials_path())
        servers = doc.setdefault("servers", {})
        servers[cred.server] = _to_disk(cred)
        doc["default"] = cred.server
        _write_json(_credentials_path(), doc)


def remove_credential(server: str) -> bool:
    """Forget this device's token for ``server`` (logout); whether there was one."""
    with credentials_lock():
        doc = _read_json(_credentials_path())
        if doc.get("servers", {}).pop(server, None) is None:
            return False
        secret_store().delete(_token_name(server))
        if doc.get("default") == server:
            doc["default"] = next(iter(doc["servers"]), None)
        _write_json(_credentials_path(), doc)
        return True


def find_credential(server: str | None = None) -> Credential | None:
    """Like :func:`load_credential`, None when not logged in."""
    doc = _read_json(_credentials_path())
    return _entry(doc, server or doc.get("default"))


def load_credential(server: str | None = None) -> Credential:
    """The credential for ``server``, or for the server of the last login."""
    doc = _read_json(_credentials_path())
    server = server or doc.get("default")
    cred = _entry(doc, server)
    if cred is None:
        where = f" for {server}" if server else ""
        raise ConfigError(f"not logged in{where}: run 'chunksync login URL --user NAME' first")
    return cred


class CredentialFile:
    """The :class:`~chunksync.transport.tokens.TokenStore` of one server's entry in
    ``credentials.json``: read fresh on every call, changed only under the lock."""

    def __init__(self, server: str) -> None:
        self.server = server

    def lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        return credentials_lock_async()

    def load(self) -> TokenState | None:
        cred = _entry(_read_json(_credentials_path()), self.server)
        return cred.token_state if cred is not None else None

    def save(self, state: TokenState) -> None:
        doc = _read_json(_credentials_path())
        cred = _entry(doc, self.server)
        if cred is None:
            return  # logged out meanwhile: do not resurrect the entry
        fresh = replace(
            cred, token=state.token, expires_at=state.expires_at, renew_after=state.renew_after
        )
        doc["servers"][self.server] = _to_disk(fresh)
        _write_json(_credentials_path(), doc)


@dataclass(frozen=True)
class FolderPaths:
    """The layout of one synced folder's state directory."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def config(self) -> Path:
        return self.state / "config.json"

    @property
    def key(self) -> Path:
        return self.state / "key"

    @property
    def index(self) -> Path:
        return self.state / "index"

    @property
    def tmp(self) -> Path:
        return self.state / "tmp"

    @property
    def socket(self) -> Path:
        return self.state / "control.sock"

    @property
    def lock(self) -> Path:
        return self.state / "daemon.lock"


@dataclass
class FolderConfig:
    """A folder's settings; ``policies`` maps gitignore patterns to conflict policies."""

    folder: str
    server: str
    device_name: str
    user: str
    policies: dict[str, str] = field(default_factory=dict)
    #: bandwidth limits of this folder in KiB/s, 0 for none (transport/ratelimit.py)
    limit_upload_kib: int = 0
    limit_download_kib: int = 0
    #: names this folder's master key in the per-user secret store (not a secret)
    key_ref: str = ""

    def save(self, paths: FolderPaths) -> None:
        _write_json(paths.config, asdict(self), mode=0o600)

    @classmethod
    def load(cls, paths: FolderPaths) -> FolderConfig:
        if not paths.config.exists():
            raise ConfigError(
                f"{paths.root} is not a chunksync folder (no {STATE_DIR}/config.json): "
                "run 'chunksync init' or 'chunksync join' first"
            )
        doc = _read_json(paths.config)
        try:
            config = cls(**doc)
        except TypeError as exc:
            raise ConfigError(f"{paths.config}: {exc}") from exc
        for limit in (config.limit_upload_kib, config.limit_download_kib):
            if type(limit) is not int or limit < 0:
                raise ConfigError(
                    f"{paths.config}: a bandwidth limit must be a whole number of KiB/s >= 0"
                )
        return config


def token_keeper(cred: Credential) -> TokenKeeper:
    """What an HttpClient needs to renew ``cred``'s token and share it with other processes."""
    return TokenKeeper(cred.token_state, CredentialFile(cred.server))
