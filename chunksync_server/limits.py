"""In-memory limits: login attempts (:class:`LoginLimiter`) and denial auditing
(:class:`DenialThrottle`). Both live on the event loop thread and never await, so a
check and its count are one step that concurrent requests cannot interleave.

Login attempts are counted **before** the password is checked: a burst of guesses
sent at once finds the budget already spent by the first ones, instead of every
guess reading the old count. An attempt that succeeds is refunded, so a user who
types the password right never eats into the budget.

Two budgets apply, so a stranger cannot lock the real user out:

* per client address (``login_max_failures`` per ``login_window``): the back-off an
  attacker meets first;
* per user name, past a much higher threshold (``login_user_max_failures`` per
  ``login_user_window``): it stops a slow spread of guesses from many addresses, and
  one address alone cannot reach it within its own budget.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["Budget", "DenialThrottle", "LoginLimiter"]

#: prune every key once the tables hold this many (unknown names, many addresses)
MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` attempts per sliding ``window`` seconds."""

    limit: int
    window: float


class LoginLimiter:
    """Attempts per ``addr:IP`` and per ``user:NAME`` in sliding windows."""

    def __init__(
        self,
        per_address: Budget,
        per_user: Budget,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._budgets = {"addr": per_address, "user": per_user}
        self._clock = clock
        self._times: defaultdict[str, deque[float]] = defaultdict(deque)

    def attempt(self, user: str, address: str) -> tuple[str, ...] | None:
        """Count one attempt on both keys and return them, or None (refuse: 429).

        A refused attempt is not counted, so retrying while refused does not push
        the end of the back-off further away.
        """
        now = self._clock()
        keys = (f"addr:{address}", f"user:{user}")
        budgets = (self._budgets["addr"], self._budgets["user"])
        if any(len(self._live(k, b, now)) >= b.limit for k, b in zip(keys, budgets)):
            return None
        for key in keys:
            self._times[key].append(now)
        if len(self._times) > MAX_KEYS:
            self._prune_all(now)
        return keys

    def refund(self, keys: tuple[str, ...]) -> None:
        """Take back the attempt counted by :meth:`attempt` (the login succeeded)."""
        for key in keys:
            times = self._times.get(key)
            if times:
                times.pop()
                if not times:
                    del self._times[key]

    def retry_after(self, address: str) -> int:
        """Whole seconds until the address has budget again (for ``Retry-After``)."""
        times = self._times.get(f"addr:{address}")
        budget = self._budgets["addr"]
        if not times:
            return 1
        return max(1, int(times[0] + budget.window - self._clock()) + 1)

    def _live(self, key: str, budget: Budget, now: float) -> deque[float]:
        times = self._times.get(key)
        if times is None:
            return deque()
        cutoff = now - budget.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._times[key]
        return times

    def _prune_all(self, now: float) -> None:
        for key in list(self._times):
            self._live(key, self._budgets[key.split(":", 1)[0]], now)


class DenialThrottle:
    """At most one audit row per key per ``window``; counts what it held back.

    A revoked device that retries every few seconds would otherwise add an audit row
    each time, burying the events that matter. :meth:`admit` answers None while the
    key's window is open (and counts the refusal), or the number suppressed since the
    last row it admitted, which that new row records. ``clock`` is public so that a
    test can move time on.
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self.clock = clock
        self._seen: dict[Hashable, tuple[float, int]] = {}

    def admit(self, key: Hashable) -> int | None:
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._window:
            self._seen[key] = (last[0], last[1] + 1)
            return None
        self._seen[key] = (now, 0)
        if len(self._seen) > MAX_KEYS:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self._window}
        return last[1] if last is not None else 0
