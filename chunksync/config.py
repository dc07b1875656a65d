"""Where chunksync keeps its state, and the small files that hold it.

* Per user (``CHUNKSYNC_HOME``, else the platform config dir): ``credentials.json``
  with one device token per server, mode 0600.
* Per folder, in ``DIR/.chunksync/`` (the folder marker): ``config.json`` (folder name,
  server, device, conflict policies), ``key`` (the folder master key, 0600, so the
  daemon runs unattended, as Syncthing does), ``index/`` (LMDB) and ``tmp/`` (partial
  downloads, swept at start).

Every file here is written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ConfigError
from .fsops import STATE_DIR_NAME as STATE_DIR
from .fsops import atomic_write_bytes

__all__ = [
    "Credential",
    "FolderConfig",
    "FolderPaths",
    "chunksync_home",
    "load_credential",
    "save_credential",
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

    def __repr__(self) -> str:
        return f"Credential(server={self.server!r}, user={self.user!r}, device={self.device_name!r})"


def _credentials_path() -> Path:
    return chunksync_home() / "credentials.json"


def save_credential(cred: Credential) -> None:
    doc = _read_json(_credentials_path())
    servers = doc.setdefault("servers", {})
    servers[cred.server] = asdict(cred)
    doc["default"] = cred.server
    _write_json(_credentials_path(), doc)


def load_credential(server: str | None = None) -> Credential:
    """The credential for ``server``, or for the server of the last login."""
    doc = _read_json(_credentials_path())
    server = server or doc.get("default")
    entry = doc.get("servers", {}).get(server) if server else None
    if not entry:
        where = f" for {server}" if server else ""
        raise ConfigError(f"not logged in{where}: run 'chunksync login URL --user NAME' first")
    return Credential(**entry)


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
            return cls(**doc)
        except TypeError as exc:
            raise ConfigError(f"{paths.config}: {exc}") from exc

    def save_key(self, paths: FolderPaths, master: bytes) -> None:
        atomic_write_bytes(paths.key, master, mode=0o600)

    @staticmethod
    def load_key(paths: FolderPaths) -> bytes:
        try:
            key = paths.key.read_bytes()
        except FileNotFoundError as exc:
            raise ConfigError(f"{paths.key} is missing: run 'chunksync join' again") from exc
        if len(key) != 32:
            raise ConfigError(f"{paths.key} is damaged")
        return key
