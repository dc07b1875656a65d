"""Where a folder's master key is kept: the per-user secret store, never the folder.

Each folder's ``config.json`` names its key by ``key_ref`` (a random id, not secret);
the key itself is in :func:`chunksync.keystore.secret_store` under
``folder-key/<key_ref>``, base64. Folders set up by older versions kept the key in
``DIR/.chunksync/key``, inside the synced folder; :func:`load` moves it out the first
time the folder is opened, in an order that survives a crash at any step:

1. ``key_ref`` is chosen and written into ``config.json`` (atomically);
2. the key is stored under it and read back;
3. only then is ``DIR/.chunksync/key`` removed (and the directory fsynced).

A crash before 3 leaves the old file, which is still read (and the migration resumed
next time); after 3 the stored key is the only copy, verified. Migrations of the same
user run under the credentials lock, so a daemon and a CLI command never pick two refs.
If the secret store cannot be written the old file keeps working, with a warning.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import secrets
from dataclasses import replace

from .config import FolderConfig, FolderPaths, credentials_lock
from .errors import ConfigError
from .keystore import secret_store

__all__ = ["forget", "load", "store"]

log = logging.getLogger(__name__)

KEY_SIZE = 32


def _name(ref: str) -> str:
    return f"folder-key/{ref}"


def _decode(text: str | None, where: str) -> bytes | None:
    if text is None:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_SIZE:
        raise ConfigError(f"the folder key in {where} is damaged")
    return key


def store(paths: FolderPaths, config: FolderConfig, master: bytes) -> FolderConfig:
    """Keep ``master`` for a new folder; returns the config naming it (caller saves)."""
    ref = config.key_ref or secrets.token_hex(16)
    secret_store().set(_name(ref), base64.b64encode(master).decode())
    return replace(config, key_ref=ref)


def forget(paths: FolderPaths) -> None:
    """Remove the folder's key (undoing a failed init/join): the store's and any old file."""
    with contextlib.suppress(ConfigError, FileNotFoundError):
        config = FolderConfig.load(paths)
        if config.key_ref:
            secret_store().delete(_name(config.key_ref))
    with contextlib.suppress(FileNotFoundError):
        paths.key.unlink()


def _legacy(paths: FolderPaths) -> bytes | None:
    try:
        key = paths.key.read_bytes()
    except FileNotFoundError:
        return None
    if len(key) != KEY_SIZE:
        raise ConfigError(f"{paths.key} is damaged")
    return key


def load(paths: FolderPaths) -> bytes:
    """The folder's master key, moving an old in-folder key file out first."""
    config = FolderConfig.load(paths)
    store_ = secret_store()
    if config.key_ref:
        key = _decode(store_.get(_name(config.key_ref)), store_.where())
        if key is not None:
            if paths.key.exists():  # a migration cut short after step 2
                try:
                    _finish(paths, key)
                except (ConfigError, OSError) as exc:
                    log.warning("%s", exc)
            return key
    legacy = _legacy(paths)
    if legacy is None:
        raise ConfigError(
            f"the key of {paths.root} is missing from {store_.where()}: "
            "run 'chunksync join' again in a new directory"
        )
    try:
        _migrate(paths, legacy)
    except (ConfigError, OSError) as exc:
        log.warning("the folder key stays in %s for now: %s", paths.key, exc)
    return legacy


def _migrate(paths: FolderPaths, legacy: bytes) -> None:
    with credentials_lock():
        config = FolderConfig.load(paths)  # re-read: another process may have begun
        if not config.key_ref:
            config = replace(config, key_ref=secrets.token_hex(16))
            config.save(paths)
        store_ = secret_store()
        store_.set(_name(config.key_ref), base64.b64encode(legacy).decode())
        if _decode(store_.get(_name(config.key_ref)), store_.where()) != legacy:
            raise ConfigError(f"{store_.where()} did not keep the folder key")
        _finish(paths, legacy)
    log.warning("moved the folder key of %s out of the folder into %s", paths.root, store_.where())


def _finish(paths: FolderPaths, stored: bytes) -> None:
    """Remove the old in-folder key file once the stored copy is known to equal it."""
    if _legacy(paths) != stored:
        raise ConfigError(f"{paths.key} differs from the stored folder key; left in place")
    paths.key.unlink()
    fd = os.open(paths.state, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
