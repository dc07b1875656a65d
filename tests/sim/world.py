"""The simulated world: N devices running the real engine against one in-memory server.

Each device is a real folder (on tmpfs when the machine has one, so fsyncs are cheap), a
real LMDB index and a real :class:`SyncEngine` built afresh for every sync, exactly as
the CLI does. The only things the simulator owns are the narrow interfaces the engine
takes: its clock (skewed per device), its transport (a :class:`~tests.sim.faults.FaultyLink`
in front of the shared :class:`MemoryChunkStore`) and, for a crash, its index.

A device crash is modelled on what survives a kill: LMDB commits are durable per
transaction, so :class:`CrashableIndex` refuses every write after the crash point (the
``finally`` blocks of the engine cannot record anything a killed process would not
have), the index is closed and opened again, and the half-written temp files stay on
disk for the next sync to sweep.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.storage.index import Index, IndexWriter
from chunksync.sync import engine as sync_engine
from chunksync.sync.engine import SyncEngine
from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.devices import StepClock

from .faults import DeviceCrash, FaultyLink

STATE = ".chunksync"
START_NS = 1_764_000_000 * 10**9
YEAR_NS = 365 * 24 * 3600 * 10**9
SIM_MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))


class _VirtualTime:
    """The engine's view of :mod:`asyncio` with sleeping made instant: simulated time
    passes only when the simulation says so (its retry back-off waits for nothing)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def sleep(_delay: float, result: Any = None) -> Any:
        return await asyncio.sleep(0, result)


@contextmanager
def virtual_time() -> Iterator[None]:
    """Run the engine's retry back-off in virtual time while the simulation runs."""
    saved = sync_engine.asyncio
    sync_engine.asyncio = _VirtualTime()  # type: ignore[assignment]
    try:
        yield
    finally:
        sync_engine.asyncio = saved


class CrashableIndex(Index):
    """An Index whose writes fail once the device has "crashed"."""

    crashed = False

    @contextmanager
    def write(self) -> Iterator[IndexWriter]:
        if self.crashed:
            raise DeviceCrash("index write after the crash point")
        with super().write() as writer:
            yield writer


class SkewedClock(StepClock):
    """A step clock (each reading one second later) that starts at the device's skew
    and can be set back or forward, like a wall clock corrected by NTP."""

    def __init__(self, skew_ns: int) -> None:
        super().__init__(START_NS + skew_ns)


@dataclass
class SimDevice:
    name: str
    root: Path
    link: FaultyLink
    keys: FolderKeys
    clock: SkewedClock
    index: CrashableIndex = field(init=False)
    #: this device was told by a lying server that its push went in (see hostile.py)
    forked: bool = False
    #: paths this device's edits touched since its last successful sync
    touched: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        (self.root / STATE / "tmp").mkdir(parents=True, exist_ok=True)
        self.index = CrashableIndex.open(self.root / STATE / "index", map_size=8 << 20)
        self.link.on_crash = self._crash

    def _crash(self) -> None:
        self.index.crashed = True

    def engine(self) -> SyncEngine:
        return SyncEngine(
            self.root,
            self.keys,
            self.index,
            self.link,
            device=self.name,
            author="sim",
            clock=self.clock,
            tmpdir=self.root / STATE / "tmp",
        )

    def reopen(self) -> None:
        """After a crash: what LMDB committed is all the device knows."""
        self.index.close()
        self.index = CrashableIndex.open(self.root / STATE / "index", map_size=8 << 20)

    def base(self) -> str | None:
        raw = self.index.get_meta("base")
        return raw.decode() if raw else None

    def close(self) -> None:
        self.index.close()


def scratch_root() -> Path:
    """A fresh directory, on tmpfs when there is one (fsync there costs nothing)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="chunksync-sim-", dir=base))


class World:
    """One server, ``n`` devices with seeded clock skews (−10 years … +1 year)."""

    def __init__(self, root: Path, n: int, skews_ns: list[int]) -> None:
        self.root = root
        self.keys = FolderKeys(SIM_MASTER)
        self.other_keys = FolderKeys(OTHER_MASTER)
        self.store = MemoryChunkStore(clock=lambda: 0.0)
        self.devices = [
            SimDevice(
                f"d{i}", root / f"d{i}", FaultyLink(self.store), self.keys, SkewedClock(skews_ns[i])
            )
            for i in range(n)
        ]
        #: every file content the simulation ever wrote: nothing else may appear on a disk
        self.written: set[bytes] = set()
        self.mtime_ns = START_NS  # deterministic mtimes for what the simulation writes

    def next_mtime(self) -> int:
        self.mtime_ns += 10**9
        return self.mtime_ns

    def close(self) -> None:
        for device in self.devices:
            device.close()
        shutil.rmtree(self.root, ignore_errors=True)
