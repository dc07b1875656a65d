"""Setting up a folder on this device (``init``, ``join``) so that an interruption costs
nothing: run the same command again and it continues.

Order, so that a failure leaves nothing behind that a re-run cannot use:

1. every local check first — the directory is (or can be) a readable, writable
   directory, not inside another synced folder, the passphrase is not empty — before
   anything is created on the server (an ``init`` that fails here leaves no orphan
   folder on the server);
2. ``init``: the local state (``.chunksync/``: config and key) next, then the server
   folder, then its passphrase key slot; ``join``: the key slot is opened, then the
   local state is written;
3. the first sync. Interrupted anywhere, the local state says which folder this
   directory is, and the same ``init``/``join`` finds it (:func:`resuming`), does
   whatever of step 2 is missing and syncs: the scan re-reads the disk, and only
   objects the server lacks (batched ``missing`` query) are uploaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import folder_key
from .config import Credential, FolderConfig, FolderPaths, token_keeper
from .crypto import keyslots
from .errors import ChunksyncError, UserError
from .folder import (
    PASSPHRASE_SLOT,
    create_folder_state,
    open_master_key,
    remove_folder_state,
    wrap_new_key,
)
from .transport.http import HttpClient

__all__ = [
    "check_joined_key",
    "check_local_dir",
    "check_passphrase",
    "create_remote",
    "join_key",
    "new_local_state",
    "resume_remote",
    "resuming",
]


def check_local_dir(root: Path) -> None:
    """Refuse a directory that cannot become a synced folder, before touching anything."""
    root = root.resolve()
    if root.exists():
        if not root.is_dir():
            raise UserError(f"{root} is not a directory")
        if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
            raise UserError(f"{root} is not readable and writable by this user")
    else:
        parent = next((p for p in root.parents if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"cannot create {root}: {parent} is not writable")
    for parent in root.parents:
        if FolderPaths(parent).config.exists():
            raise UserError(
                f"{root} is inside the synced folder {parent}; choose another directory"
            )


def resuming(root: Path, config: FolderConfig) -> bool:
    """Whether ``root`` already holds the state of this same folder (an interrupted
    init/join to continue); a directory synced as another folder is refused."""
    paths = FolderPaths(root.resolve())
    if not paths.config.exists():
        return False
    existing = FolderConfig.load(paths)
    if (existing.folder, existing.server) != (config.folder, config.server):
        raise UserError(
            f"{root} is already synced as folder {existing.folder!r} of {existing.server}"
        )
    return True


def check_passphrase(passphrase: str) -> None:
    if not passphrase:
        raise UserError("the passphrase is empty")


def _client(cred: Credential) -> HttpClient:
    return HttpClient(cred.server, ca_file=cred.ca_file, tokens=token_keeper(cred))


async def create_remote(
    cred: Credential, root: Path, config: FolderConfig, master: bytes, slot: bytes
) -> None:
    """Step 2 of a new ``init``; undoes the local state if the name is taken."""
    paths = FolderPaths(root.resolve())
    client = _client(cred)
    try:
        try:
            await client.create_folder(config.folder)
        except UserError as exc:  # the name is taken: nothing of ours to continue
            remove_folder_state(paths)
            raise UserError(f"{exc.message}; to sync it here use 'chunksync join'") from exc
        await client.folder(config.folder).put_keyslot(PASSPHRASE_SLOT, slot)
    finally:
        await client.aclose()


async def resume_remote(
    cred: Credential, root: Path, config: FolderConfig, passphrase: str
) -> None:
    """Step 2 of an interrupted ``init``: create what the server still lacks."""
    master = folder_key.load(FolderPaths(root.resolve()))
    client = _client(cred)
    try:
        names = {f["name"]: f for f in await client.list_folders()}
        if config.folder not in names:
            await client.create_folder(config.folder)
        store = client.folder(config.folder)
        slots = await store.get_keyslots()
        if not slots:
            if names.get(config.folder, {}).get("role", "owner") != "owner":
                raise UserError(f"folder {config.folder!r} on the server belongs to someone else")
            slot = keyslots.wrap_master_key(master, passphrase, params=keyslots.DEFAULT_PARAMS)
            await store.put_keyslot(PASSPHRASE_SLOT, slot)
        elif open_master_key(slots, passphrase) != master:
            raise UserError(
                f"folder {config.folder!r} on the server is not the one {root} was set up for"
            )
    finally:
        await client.aclose()


async def join_key(cred: Credential, folder: str, passphrase: str) -> bytes:
    """The folder master key from the server's key slots and the passphrase."""
    client = _client(cred)
    try:
        slots = await client.folder(folder).get_keyslots()
    finally:
        await client.aclose()
    if not slots:
        raise UserError(f"folder {folder!r} has no key slots on the server")
    return open_master_key(slots, passphrase)


def new_local_state(root: Path, config: FolderConfig, passphrase: str) -> tuple[bytes, bytes]:
    """A fresh key and its slot, with ``.chunksync/`` written (``init`` step 2, local part)."""
    master, slot = wrap_new_key(passphrase)
    create_folder_state(root, config, master)
    return master, slot


def check_joined_key(root: Path, master: bytes) -> None:
    if folder_key.load(FolderPaths(root.resolve())) != master:
        raise ChunksyncError(
            f"{root} holds another key than this folder's; set it up in a new directory"
        )
