"""Opening a synced folder: its config, keys, index, server connection and engine.

The CLI and the daemon both go through :class:`SyncFolder`, so a folder is always
opened the same way: marker checked, temp files swept, credentials loaded from the
per-user store, and everything closed on exit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from . import folder_key, fsops
from .config import FolderConfig, FolderPaths, load_credential, token_keeper
from .conflict import ConflictPolicies
from .crypto import keyslots
from .crypto.folder_keys import FolderKeys
from .errors import ChunksyncError, ConfigError, UserError
from .progress import Progress
from .storage.index import Index
from .sync.engine import SyncEngine
from .transport.base import ChunkStore
from .transport.http import HttpClient
from .transport.ratelimit import BandwidthLimits, Limiter, effective, limited

__all__ = [
    "FolderBusy",
    "FolderLock",
    "SyncFolder",
    "create_folder_state",
    "open_master_key",
    "remove_folder_state",
    "rewrap_slot",
    "wrap_new_key",
]

PASSPHRASE_SLOT = "passphrase"  # nosec B105  # a key slot name


class FolderBusy(UserError):
    """Another chunksync process (a daemon, or a sync) is working on this folder."""


class FolderLock:
    """One process syncs a folder at a time: an exclusive ``flock`` on
    ``.chunksync/daemon.lock``, held by the daemon for its lifetime and by a one-shot
    sync for its duration. The holder's pid is written in the file for the message."""

    def __init__(self, paths: FolderPaths) -> None:
        self.paths = paths
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FolderBusy(
                f"a chunksync process (pid {pid}) is already running for {self.paths.root}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class SyncFolder:
    """An opened folder; use as ``async with SyncFolder.open(dir) as f``."""

    paths: FolderPaths
    config: FolderConfig
    keys: FolderKeys
    index: Index
    client: HttpClient
    store: ChunkStore
    #: the bandwidth limits in force: the folder's own and the process-wide ones
    limits: BandwidthLimits = BandwidthLimits()

    @classmethod
    def open(cls, root: Path | str, *, limiters: Sequence[Limiter] = ()) -> SyncFolder:
        """Open the folder at ``root``; its transfers pass through its own bandwidth
        limits (config) and ``limiters`` (process-wide, possibly shared)."""
        paths = FolderPaths(Path(root).resolve())
        if not paths.state.is_dir():
            raise ConfigError(
                f"{paths.root} is not a chunksync folder (no .chunksync): "
                "run 'chunksync init' or 'chunksync join' first"
            )
        config = FolderConfig.load(paths)
        keys = FolderKeys(folder_key.load(paths))
        cred = load_credential(config.server)
        client = HttpClient(cred.server, ca_file=cred.ca_file, tokens=token_keeper(cred))
        own = BandwidthLimits(config.limit_upload_kib, config.limit_download_kib)
        store = limited(client.folder(config.folder), Limiter.of(own), *limiters)
        index = Index.open(paths.index)
        return cls(
            paths,
            config,
            keys,
            index,
            client,
            store,
            effective(own, *(lim.limits for lim in limiters)),
        )

    def engine(self, progress: Progress | None = None) -> SyncEngine:
        policies = ConflictPolicies(
            rules=tuple(self.config.policies.items()),  # type: ignore[arg-type]
        )
        return SyncEngine(
            self.paths.root,
            self.keys,
            self.index,
            self.store,
            device=self.config.device_name,
            author=self.config.user,
            policies=policies,
            tmpdir=self.paths.tmp,
            progress=progress,
        )

    async def __aenter__(self) -> SyncFolder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.client.aclose()
        self.index.close()


def create_folder_state(root: Path, config: FolderConfig, master: bytes) -> FolderPaths:
    """Write ``.chunksync/`` for a new or joined folder (config, tmp) and keep its key
    in the per-user secret store (:mod:`.folder_key`)."""
    paths = FolderPaths(root.resolve())
    if paths.config.exists():
        raise UserError(f"{root} is already a chunksync folder ({config.folder!r})")
    root.mkdir(parents=True, exist_ok=True)
    paths.state.mkdir(mode=0o700, exist_ok=True)
    os.chmod(paths.state, 0o700)
    paths.tmp.mkdir(exist_ok=True)
    folder_key.store(paths, config, master).save(paths)
    return paths


def remove_folder_state(paths: FolderPaths) -> None:
    """Undo :func:`create_folder_state` after a failed init/join (never user files)."""
    folder_key.forget(paths)
    for name in ("config.json", "key"):
        with contextlib.suppress(FileNotFoundError):
            (paths.state / name).unlink()
    fsops.sweep_tmp(paths.tmp)


def open_master_key(slots: dict[str, bytes], passphrase: str) -> bytes:
    """The folder master key from whichever slot the passphrase opens."""
    return keyslots.open_any_slot(slots, passphrase, min_params=keyslots.MIN_PARAMS)


def rewrap_slot(slots: dict[str, bytes], old: str, new: str, master: bytes) -> tuple[str, bytes]:
    """The slot that ``old`` opens to this folder's ``master`` key, wrapped under ``new``."""
    for name, slot in slots.items():
        try:
            if keyslots.unwrap_master_key(slot, old, min_params=keyslots.MIN_PARAMS) != master:
                continue
        except ChunksyncError:
            continue
        return name, keyslots.wrap_master_key(master, new, params=keyslots.DEFAULT_PARAMS)
    raise UserError("wrong passphrase: it opens none of this folder's key slots")


def wrap_new_key(passphrase: str) -> tuple[bytes, bytes]:
    """A fresh master key and its passphrase slot."""
    master = keyslots.new_master_key()
    return master, keyslots.wrap_master_key(master, passphrase, params=keyslots.DEFAULT_PARAMS)
