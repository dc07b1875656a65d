"""The one retry policy of the client: exponential backoff with full jitter.

Every retried call in the transport goes through :func:`call_with_retry`, so the rules
live in one place (as in restic's backend retry wrapper):

* only errors that say so are retried: a :class:`~chunksync.errors.ChunksyncError`
  whose ``retryable`` is true (timeouts, network errors, 5xx/429 answers). Anything
  else — integrity, auth, protocol, a lost compare-and-swap — is raised at once;
* attempt *n* (0-based) waits ``uniform(0, min(max_delay, base_delay * 2**n))``
  ("full jitter", AWS architecture blog), so many devices coming back online after an
  outage do not hammer the server in lock-step;
* both the number of attempts and the total time are bounded; when either bound is
  reached the last error is raised unchanged, so callers still see *why*.

Only idempotent operations may be wrapped: a retried call may have taken effect the
first time. Sleep, randomness and clock are injectable so tests never wait for real.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import ChunksyncError

__all__ = ["RetryPolicy", "backoff_delay", "call_with_retry", "is_retryable"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds and timing of retries; the callables are injectable for tests.

    Attributes:
        attempts: total tries including the first (1 = no retry).
        base_delay: seconds; the jitter window of the first retry.
        max_delay: seconds; the cap of any single wait.
        deadline: seconds since the first try after which no new attempt starts.
    """

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 15.0
    deadline: float = 120.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    rand: Callable[[], float] = field(default=random.random, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.deadline < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (0-based), jittered."""
        return backoff_delay(attempt, self.base_delay, self.max_delay, self.rand())


NO_RETRY = RetryPolicy(attempts=1)


def backoff_delay(attempt: int, base: float, cap: float, unit: float) -> float:
    """Full jitter: ``unit`` in [0, 1) scales the window ``min(cap, base * 2**attempt)``."""
    window = min(cap, base * (2 ** min(attempt, 62)))
    return float(max(0.0, min(1.0, unit)) * window)


def is_retryable(exc: BaseException) -> bool:
    """True only for project errors that declare themselves retryable."""
    return isinstance(exc, ChunksyncError) and bool(exc.retryable)


async def call_with_retry(
    fn: Callable[[], Awaitable[T]], policy: RetryPolicy, *, what: str = "request"
) -> T:
    """Await ``fn()`` until it succeeds, a non-retryable error occurs or bounds are hit.

    ``fn`` is called afresh for each attempt (so a request body is rebuilt each time).
    """
    start = policy.clock()
    attempt = 0
    while True:
        try:
            return await fn()
        except ChunksyncError as exc:
            if not is_retryable(exc) or attempt + 1 >= policy.attempts:
                raise
            wait = policy.delay(attempt)
            if policy.clock() - start + wait > policy.deadline:
                raise
            log.info("%s failed (%s); retry %d in %.2fs", what, exc, attempt + 1, wait)
            await policy.sleep(wait)
            attempt += 1
