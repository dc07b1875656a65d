"""Bandwidth limits: a token bucket, and a ChunkStore wrapper that honours it.

Limits are in KiB/s, as restic's ``--limit-upload``/``--limit-download`` and
Syncthing's per-device rates; 0 means unlimited. They are set per folder (stored in
its config) or for the whole process (``--limit-upload`` on ``sync``/``daemon``/
``join``): a transfer passes through every bucket that applies, so the folder's own
limit and the process-wide one both hold, and one process-wide bucket is shared by
all folders of a daemon.

:class:`TokenBucket` is a debt bucket: a transfer takes its bytes at once (the bucket
may go negative) and the *next* one waits until the debt is repaid. So a download,
whose size is known only once it has arrived, is charged afterwards and the long-run
rate still holds. The clock and the sleep are injected, so tests check the pacing
without timing anything.

:class:`RateLimitedChunkStore` cuts uploads into pieces of about one second's worth
and downloads into small groups of ids, so a limited transfer flows evenly instead of
a 16 MiB burst followed by a long pause. Metadata calls (head, missing, key slots) are
small and pass unlimited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..objects import ObjectId
from ..wire import HeadLogEntry, HeadState
from .base import ChunkStore

__all__ = [
    "BandwidthLimits",
    "Limiter",
    "RateLimitedChunkStore",
    "TokenBucket",
    "effective",
    "limited",
]

KIB = 1024
MIN_PIECE = 64 * KIB  # an upload piece is at least this, at most one second's worth
LIMITED_FETCH_IDS = 16  # ids per download request while a download limit applies


@dataclass(frozen=True, slots=True)
class BandwidthLimits:
    """Upload and download limits in KiB/s (0: unlimited)."""

    upload_kib: int = 0
    download_kib: int = 0

    def __post_init__(self) -> None:
        if self.upload_kib < 0 or self.download_kib < 0:
            raise ValueError("bandwidth limits must be >= 0 KiB/s")

    def __bool__(self) -> bool:
        return bool(self.upload_kib or self.download_kib)

    def to_json(self) -> dict[str, int]:
        return {"upload_kib": self.upload_kib, "download_kib": self.download_kib}


class TokenBucket:
    """``rate`` bytes per second, bursts up to ``burst`` bytes (default: one second)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a token bucket needs a positive rate")
        self.rate = float(rate)
        self.burst = float(rate if burst is None else burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock: asyncio.Lock | None = None
        self.waited = 0.0  # seconds spent waiting, for status and tests

    @classmethod
    def kib(cls, kib_per_s: int, **kw: object) -> TokenBucket:
        return cls(kib_per_s * KIB, **kw)  # type: ignore[arg-type]

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, n: int) -> None:
        """Account for ``n`` bytes; returns once the bucket is out of debt."""
        if n <= 0:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # FIFO: concurrent transfers share the rate fairly
            self._refill()
            self._tokens -= n
            if self._tokens < 0:
                wait = -self._tokens / self.rate
                self.waited += wait
                await self._sleep(wait)
                self._refill()


class RateLimitedChunkStore:
    """A ChunkStore whose blob transfers pass through token buckets."""

    def __init__(
        self, inner: ChunkStore, *, up: Sequence[TokenBucket] = (), down: Sequence[TokenBucket] = ()
    ) -> None:
        self.inner = inner
        self.up = tuple(up)
        self.down = tuple(down)

    def __repr__(self) -> str:
        return f"RateLimitedChunkStore({self.inner!r})"

    @staticmethod
    async def _charge(buckets: Sequence[TokenBucket], n: int) -> None:
        for bucket in buckets:
            await bucket.take(n)

    def _pieces(
        self, items: Sequence[tuple[ObjectId, bytes]]
    ) -> list[list[tuple[ObjectId, bytes]]]:
        limit = max(MIN_PIECE, int(min(b.rate for b in self.up)))
        out: list[list[tuple[ObjectId, bytes]]] = []
        piece: list[tuple[ObjectId, bytes]] = []
        size = 0
        for item in items:
            if piece and size + len(item[1]) > limit:
                out.append(piece)
                piece, size = [], 0
            piece.append(item)
            size += len(item[1])
        if piece:
            out.append(piece)
        return out

    async def put_many(self, items: Sequence[tuple[ObjectId, bytes]]) -> None:
        if not self.up:
            await self.inner.put_many(items)
            return
        for piece in self._pieces(items):
            await self._charge(self.up, sum(len(blob) for _, blob in piece))
            await self.inner.put_many(piece)

    async def get_many(self, ids: Sequence[ObjectId]) -> dict[ObjectId, bytes]:
        if not self.down:
            return await self.inner.get_many(ids)
        out: dict[ObjectId, bytes] = {}
        for start in range(0, len(ids), LIMITED_FETCH_IDS):
            got = await self.inner.get_many(ids[start : start + LIMITED_FETCH_IDS])
            out.update(got)
            await self._charge(self.down, sum(len(blob) for blob in got.values()))
        return out

    async def missing(self, ids: Sequence[ObjectId]) -> set[ObjectId]:
        return await self.inner.missing(ids)

    async def get_head(self) -> HeadState:
        return await self.inner.get_head()

    async def cas_head(self, expected: str | None, new: str) -> HeadState:
        return await self.inner.cas_head(expected, new)

    async def head_log(self, after: int = 0, limit: int = 1000) -> list[HeadLogEntry]:
        return await self.inner.head_log(after, limit)

    async def get_keyslots(self) -> dict[str, bytes]:
        return await self.inner.get_keyslots()

    async def role(self) -> str:
        return await self.inner.role()

    async def put_keyslot(self, name: str, blob: bytes) -> None:
        await self.inner.put_keyslot(name, blob)

    def watch(self) -> AsyncIterator[HeadState]:
        return self.inner.watch()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(frozen=True, slots=True)
class Limiter:
    """One set of limits with its buckets (``None``: that direction is unlimited)."""

    limits: BandwidthLimits
    up: TokenBucket | None
    down: TokenBucket | None

    @classmethod
    def of(cls, limits: BandwidthLimits) -> Limiter:
        return cls(
            limits,
            TokenBucket.kib(limits.upload_kib) if limits.upload_kib else None,
            TokenBucket.kib(limits.download_kib) if limits.download_kib else None,
        )


def limited(store: ChunkStore, *limiters: Limiter) -> ChunkStore:
    """``store`` behind every limiter's buckets; ``store`` itself if none limits it."""
    up = [lim.up for lim in limiters if lim.up is not None]
    down = [lim.down for lim in limiters if lim.down is not None]
    if not up and not down:
        return store
    return RateLimitedChunkStore(store, up=up, down=down)


def effective(*limits: BandwidthLimits) -> BandwidthLimits:
    """The limits that bind when all of ``limits`` apply (the smallest nonzero each way)."""

    def least(values: list[int]) -> int:
        return min((v for v in values if v), default=0)

    return BandwidthLimits(
        least([lim.upload_kib for lim in limits]), least([lim.download_kib for lim in limits])
    )
