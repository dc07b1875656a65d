"""Password work (Argon2id) on its own small, bounded pool of daemon threads.

Why a pool of its own: an Argon2id derivation holds a thread for a few hundred
milliseconds, and the OpenSSL build under ``cryptography`` runs multi-lane hashes
(``p > 1``) on an internal thread pool that stops making progress when several such
derivations run at once. Run on the event loop's default executor — the one
:class:`chunksync_server.db.MetaDB` and the object store use — a handful of simultaneous logins
pinned every worker, so every later request and even shutdown waited forever.

Guarantees of :class:`PasswordGate`:

* at most ``workers`` derivations run at once, and a hash with more than one lane
  runs alone (a lock), so the OpenSSL pool is never asked for two at a time;
* at most ``workers + queue`` checks are admitted (running or waiting); past that
  :meth:`PasswordGate.run` raises :class:`PasswordBusy` at once, before any work, so
  a login flood is refused cheaply (503) instead of queuing without bound;
* a caller waits at most ``timeout`` seconds (then :class:`PasswordBusy`); a check
  that never finishes keeps its admission slot, so a wedged library degrades logins
  to 503 but never the rest of the server;
* the threads are daemons: a stuck derivation cannot keep the process from exiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import re
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["PasswordBusy", "PasswordGate", "phc_lanes"]

T = TypeVar("T")

_LANES = re.compile(r"[$,]p=(\d+)")


def phc_lanes(encoded: str) -> int:
    """The lane count (``p=``) recorded in a PHC string; 1 when absent or unreadable."""
    match = _LANES.search(encoded)
    return int(match.group(1)) if match else 1


class PasswordBusy(Exception):
    """Too many password checks admitted, or one took longer than the gate waits."""


_Job = tuple[Callable[[], object], "concurrent.futures.Future[object]", bool]


class PasswordGate:
    """Bounded admission and execution of password hashing; see the module docstring."""

    def __init__(self, workers: int = 2, queue_size: int = 32, timeout: float = 15.0) -> None:
        if workers < 1 or queue_size < 0 or timeout <= 0:
            raise ValueError("password gate: workers >= 1, queue >= 0, timeout > 0")
        self._limit = workers + queue_size
        self._timeout = timeout
        self._admitted = 0
        self._count_lock = threading.Lock()
        self._multi_lane = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"argon2-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def admitted(self) -> int:
        """Checks running or waiting now (for metrics and tests)."""
        return self._admitted

    async def run(self, fn: Callable[[], T], *, lanes: int = 1) -> T:
        """Run ``fn`` on the pool; :class:`PasswordBusy` when full or too slow."""
        with self._count_lock:
            if self._admitted >= self._limit:
                raise PasswordBusy("too many logins in progress; try again shortly")
            self._admitted += 1
        future: concurrent.futures.Future[object] = concurrent.futures.Future()
        future.add_done_callback(self._release)
        self._jobs.put((fn, future, lanes > 1))
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), self._timeout)
        except TimeoutError:
            raise PasswordBusy("password check timed out; try again shortly") from None
        return result  # type: ignore[return-value]

    def _release(self, _: object) -> None:
        with self._count_lock:
            self._admitted -= 1

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, future, exclusive = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if exclusive:
                    with self._multi_lane:
                        result = fn()
                else:
                    result = fn()
            except BaseException as exc:  # handed to the awaiting coroutine
                future.set_exception(exc)
            else:
                future.set_result(result)

    def close(self) -> None:
        """Ask idle threads to stop; busy ones are daemons and die with the process."""
        for _ in self._threads:
            self._jobs.put(None)
