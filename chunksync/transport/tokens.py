"""Keeping a device token alive for months: renewal before expiry, shared between processes.

A device token expires (90 days by default, server setting). An unattended daemon must
never reach that day, so :class:`TokenKeeper` renews the token through the server's
rotate route once two thirds of its lifetime have passed (:func:`renew_at`), checked
before each request and periodically by the daemon.

The token lives in one per-user file (:class:`TokenStore`) that several processes may
use at once (daemons for several folders, a ``chunksync sync`` beside them). The server
keeps the old token valid until the new one is first used, then refuses it; so the new
token is written to the store (atomically) *before* this process sends it anywhere, an
answer lost on the way (the server rotated, the client never heard) costs nothing — the
old token still works and the next renewal rotates again — and a process must learn
the token another one wrote:

* rotation happens under the store's exclusive lock, after re-reading the file: if
  another process already rotated, its token is adopted instead;
* a request refused with 401 re-reads the file (under the same lock, so a rotation in
  progress elsewhere finishes first); if the file holds a different token, the request
  is sent once more with it; otherwise the refusal is final (:class:`DeviceRevoked`).

Times: ``expires_at`` is the server's clock; ``renew_after`` is this host's, computed
when the token arrives, so a skewed clock shifts renewal by at most the skew.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import AuthError, TransportError

__all__ = ["RENEW_FRACTION", "TokenKeeper", "TokenState", "TokenStore", "renew_at"]

log = logging.getLogger(__name__)

#: renew once this fraction of the lifetime has passed (a third is left)
RENEW_FRACTION = 2 / 3
#: after a failed renewal (server unreachable), try again after this share of what is left
_RETRY_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class TokenState:
    """A token and when to renew it; ``renew_after`` None means "renew now" (an old
    credential file that never recorded an expiry)."""

    token: str = field(repr=False)
    expires_at: float | None = None
    renew_after: float | None = None


def renew_at(expires_at: float | None, now: float) -> float | None:
    """Local time at which a token received at ``now`` and expiring at ``expires_at``
    should be renewed: when a third of its lifetime is left."""
    if not isinstance(expires_at, int | float) or isinstance(expires_at, bool):
        return None
    lifetime = max(0.0, float(expires_at) - now)
    return now + lifetime * RENEW_FRACTION


class TokenStore(Protocol):
    """Where the token is shared between processes (the per-user credentials file)."""

    def lock(self) -> AbstractAsyncContextManager[None]:
        """Exclusive across processes and across stores in this process."""

    def load(self) -> TokenState | None:
        """The token currently stored (None if the entry is gone: logged out)."""

    def save(self, state: TokenState) -> None:
        """Replace the stored token atomically (called under :meth:`lock`)."""


Rotate = Callable[[str], Awaitable[TokenState]]


class TokenKeeper:
    """The token one client sends, renewed and re-read as the module docstring says."""

    def __init__(
        self, state: TokenState, store: TokenStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.state = state
        self.store = store
        self.clock = clock
        self._lock = asyncio.Lock()
        self._not_before = 0.0

    @property
    def token(self) -> str:
        return self.state.token

    def due(self) -> bool:
        now = self.clock()
        if now < self._not_before:
            return False
        return self.state.renew_after is None or now >= self.state.renew_after

    def seconds_until_due(self, cap: float = 3600.0) -> float:
        now = self.clock()
        due_at = max(self._not_before, self.state.renew_after or now)
        return max(0.05, min(cap, due_at - now))

    async def renew_if_due(self, rotate: Rotate) -> bool:
        """Rotate the token if it is due (or adopt one another process rotated).

        A transport failure is logged and retried later: the old token still works for
        a third of its lifetime. An AuthError propagates: the token is refused already.
        """
        if not self.due():
            return False
        async with self._lock:
            if not self.due():
                return False
            async with self.store.lock():
                latest = self.store.load()
                if latest is not None and latest.token != self.state.token:
                    self.state = latest  # another process rotated first
                    if not self.due():
                        return True
                try:
                    fresh = await rotate(self.state.token)
                except AuthError:
                    raise
                except TransportError as exc:
                    self._back_off()
                    log.warning("could not renew the device token (will retry): %s", exc.message)
                    return False
                try:
                    self.store.save(fresh)  # first: once sent, the server retires the old one
                except OSError as exc:  # unsaved, it must never be used: keep the old one
                    self._back_off()
                    log.warning(
                        "could not save the renewed device token (will retry): %s",
                        exc.strerror or exc,
                    )
                    return False
                self.state = fresh
                log.info("device token renewed")
                return True

    def _back_off(self) -> None:
        now = self.clock()
        left = (self.state.expires_at or now) - now
        self._not_before = now + max(1.0, min(3600.0, left * _RETRY_SHARE))

    async def adopt_newer(self, refused: str) -> bool:
        """After a 401 for token ``refused``: whether a different token is now in use
        (renewed by this process meanwhile, or found in the store)."""
        async with self._lock:
            if self.state.token != refused:
                return True
            async with self.store.lock():
                latest = self.store.load()
            if latest is None or latest.token == refused:
                return False
            self.state = latest
            return True
