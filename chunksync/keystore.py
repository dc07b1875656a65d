"""Secrets at rest: folder keys (and, with a real keyring, device tokens) kept out of
the synced folder.

A secret lives in the OS keyring (Secret Service, macOS Keychain, Windows Credential
Locker, through ``keyring``) when a real backend is available; otherwise in one 0600
file per secret under ``CHUNKSYNC_HOME/secrets/`` (the per-user config directory,
mode 0700). Never inside the synced folder, so a backup or a copy of the folder does
not carry the key that opens it.

``CHUNKSYNC_SECRET_STORE`` forces a backend (``file`` or ``keyring``); the default
``auto`` takes the keyring only when its priority says it is a real one (the "fail"
and "null" backends of a headless machine are not).

Secrets are text (keys are stored base64): the keyring API stores strings.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fsops import atomic_write_bytes

__all__ = ["SecretStore", "secret_store"]

log = logging.getLogger(__name__)

SERVICE = "chunksync"
_NAME = re.compile(r"\A[a-z]+-[A-Za-z0-9_.:/-]{1,200}\Z")


class SecretStore:
    """A place for named secrets; ``kind`` says which (for ``doctor`` and tests)."""

    kind = "file"

    def __init__(self, home: Path) -> None:
        self.dir = home / "secrets"

    def _file(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"bad secret name {name!r}")
        return self.dir / name.replace("/", "_").replace(":", "_")

    def get(self, name: str) -> str | None:
        try:
            return self._file(name).read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read the secret {self._file(name)}: {exc.strerror}") from exc

    def set(self, name: str, value: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        atomic_write_bytes(self._file(name), value.encode() + b"\n", mode=0o600)

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file(name).unlink()

    def where(self) -> str:
        return str(self.dir)


class KeyringStore(SecretStore):
    """The OS keyring, service ``chunksync``, one entry per secret name."""

    kind = "keyring"

    def __init__(self, home: Path, backend: Any) -> None:
        super().__init__(home)
        self._backend = backend

    def get(self, name: str) -> str | None:
        try:
            return self._backend.get_password(SERVICE, name)  # type: ignore[no-any-return]
        except Exception as exc:  # any keyring backend error: one clear line
            raise ConfigError(f"the OS keyring could not be read: {exc}") from exc

    def set(self, name: str, value: str) -> None:
        try:
            self._backend.set_password(SERVICE, name, value)
        except Exception as exc:
            raise ConfigError(f"the OS keyring could not store a secret: {exc}") from exc

    def delete(self, name: str) -> None:
        with contextlib.suppress(Exception):  # absent already: nothing to do
            self._backend.delete_password(SERVICE, name)

    def where(self) -> str:
        return f"OS keyring ({type(self._backend).__module__})"


def _real_keyring() -> Any | None:
    """The keyring backend if it is a real one (priority > 0), else None."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration: fall back to the file
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    return backend


@functools.lru_cache(maxsize=8)
def _store_for(home: Path, choice: str) -> SecretStore:
    if choice not in ("auto", "file", "keyring"):
        raise ConfigError("CHUNKSYNC_SECRET_STORE must be auto, file or keyring")
    if choice == "file":
        return SecretStore(home)
    backend = _real_keyring()
    if backend is None:
        if choice == "keyring":
            raise ConfigError("CHUNKSYNC_SECRET_STORE=keyring, but no OS keyring is available")
        return SecretStore(home)
    return KeyringStore(home, backend)


def secret_store() -> SecretStore:
    """The secret store of this user (see the module docstring)."""
    from .config import chunksync_home

    return _store_for(chunksync_home(), os.environ.get("CHUNKSYNC_SECRET_STORE", "auto"))
