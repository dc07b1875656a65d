"""^C and SIGTERM for one-shot commands: stop within a second, cleanly, once.

asyncio's own SIGINT handling cancels the main task and then waits for every worker
thread (a scan, an apply) to finish, which can take many seconds; a second ^C lands
in that wait and a third prints a traceback. Instead, while a command runs
(:func:`signals_handled`):

* the first signal closes the transfer gates the command registered
  (:func:`on_interrupt`): every network call ends at once with ``TransfersPaused`` and
  the sync round stops at its next step, so nothing is closed under a running thread.
  A command with no gate has its main task cancelled instead;
* whatever is still running after :data:`GRACE` seconds, and any second signal, ends
  the process with exit status 130 (``os._exit``). That is safe for the data: files
  reach their final names only by an atomic rename from ``.chunksync/tmp`` (swept at
  the next start), the index is LMDB (a transaction is committed whole or not at all),
  and the next run rescans and continues;
* exactly one line, ``chunksync: interrupted``, is printed; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

__all__ = [
    "GRACE",
    "interrupted",
    "on_interrupt",
    "run_interruptible",
    "say_interrupted",
    "signals_handled",
]

T = TypeVar("T")
#: seconds between the first signal and the forced exit
GRACE = 0.6
EXIT_STATUS = 130


class _State:
    def __init__(self) -> None:
        self.count = 0
        self.said = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.stoppers: list[Callable[[], None]] = []


_state = _State()


def interrupted() -> bool:
    return _state.count > 0


def say_interrupted() -> None:
    """Print the one line (once per process)."""
    if not _state.said:
        _state.said = True
        with contextlib.suppress(OSError):
            sys.stderr.flush()
            os.write(2, b"chunksync: interrupted\n")


def _exit_now() -> None:
    say_interrupted()
    os._exit(EXIT_STATUS)


def _stop_in_loop() -> None:
    if _state.stoppers:
        for stop in list(_state.stoppers):
            stop()
    elif _state.task is not None:
        _state.task.cancel()


def _handler(signum: int, frame: FrameType | None) -> None:
    _state.count += 1
    if _state.count > 1:
        _exit_now()
    timer = threading.Timer(GRACE, _exit_now)
    timer.daemon = True
    timer.start()
    loop = _state.loop
    if loop is None or loop.is_closed():
        raise KeyboardInterrupt
    loop.call_soon_threadsafe(_stop_in_loop)


@contextlib.contextmanager
def signals_handled() -> Iterator[None]:
    """Handle SIGINT/SIGTERM as the module docstring says (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def on_interrupt(stop: Callable[[], None]) -> Callable[[], None]:
    """Call ``stop`` (on the event loop) at the first signal; returns an unregister."""
    _state.stoppers.append(stop)
    return lambda: _state.stoppers.remove(stop) if stop in _state.stoppers else None


def run_interruptible(coro: Awaitable[T]) -> T:
    """``asyncio.run`` whose main task the first signal can stop (see module docstring)."""

    async def main() -> T:
        _state.loop, _state.task = asyncio.get_running_loop(), asyncio.current_task()
        try:
            return await coro
        finally:
            _state.loop = _state.task = None

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if interrupted():
            raise KeyboardInterrupt from None
        raise
