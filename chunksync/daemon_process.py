"""The daemon process: ``chunksync daemon DIR...`` runs one :class:`FolderDaemon` per
folder until SIGTERM/SIGINT.

Each folder is locked (one daemon per folder), opened, and served by its own
:class:`~chunksync.daemon.FolderDaemon`; a folder refused for good (revoked device) ends
alone, and the process exits 11 when none is left. The first signal stops every folder
in order (transfers end at once, each worker finishes its step, indexes close, sockets
go). A step still running ``stop_grace`` seconds later (1 s by default) — a scan of a huge file, a
hung disk — does not keep the process alive: it exits then, with status 0, one
``stopped`` log line and no traceback; a second signal exits at once (status 130). That
is safe for the data: files reach their final names only by atomic rename from
``.chunksync/tmp`` (swept at the next start), and the index (LMDB) commits a transaction
whole or not at all, so the next start continues.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from pathlib import Path

from . import logsetup
from .config import FolderPaths
from .daemon import DaemonOptions, FolderDaemon
from .daemon_util import log_event
from .errors import DeviceRevoked, UserError
from .folder import FolderLock, SyncFolder
from .priority import lower_priority
from .storage.upkeep import compact_if_bloated
from .transport.ratelimit import Limiter
from .transport.retry import RetryPolicy

__all__ = ["DAEMON_RETRY", "run_daemon", "serve"]

DAEMON_RETRY = RetryPolicy(attempts=3, base_delay=0.25, max_delay=2.0, deadline=10.0)


async def serve(directories: list[Path], options: DaemonOptions) -> None:
    """Run daemons for ``directories`` until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    locks = [FolderLock(FolderPaths(d.resolve())) for d in directories]
    shared = Limiter.of(options.limits)  # one budget for all folders of this daemon
    async with contextlib.AsyncExitStack() as stack:
        for lock in locks:
            if not lock.paths.config.exists():
                raise UserError(
                    f"{lock.paths.root} is not a chunksync folder: run 'chunksync init' or 'join' first"
                )
            lock.acquire()
            stack.callback(lock.release)
            await asyncio.to_thread(compact_if_bloated, lock.paths.index)  # before anyone opens it
        daemons = []
        for d in directories:
            folder = await stack.enter_async_context(SyncFolder.open(d, limiters=(shared,)))
            folder.client.retry = DAEMON_RETRY
            daemons.append(FolderDaemon(folder, options))
        if options.ui_port is not None:  # the dashboard (chunksync/ui), gone before the folders
            from .ui.app import serve_dashboard

            await stack.enter_async_context(serve_dashboard(daemons, options.ui_port))
        # the executor's threads (scans, applies) must end before any index closes
        stack.push_async_callback(loop.shutdown_default_executor)
        tasks = [asyncio.create_task(d.run()) for d in daemons]
        signals = 0
        sockets = [d.folder.paths.socket for d in daemons]

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                _exit_now(sockets, 130, "second signal")
            log_event(
                "stopping",
                message="stopping after the current step "
                f"(at most {options.stop_grace:g} s; a second signal stops at once)",
            )
            _arm_forced_exit(sockets, options.stop_grace)
            for d in daemons:
                d.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r
        if not signals and any(d.revoked for d in daemons):
            raise DeviceRevoked(
                "no folder left to sync: the server refused this device's token "
                "(see the 'revoked' lines); run 'chunksync login' again"
            )


def _exit_now(sockets: list[Path], status: int, why: str) -> None:
    """Leave at once: no traceback, no socket left for ``status`` to find. Safe for the
    data: files reach their names by atomic rename, the index commits whole or not."""
    for path in sockets:
        with contextlib.suppress(OSError):
            path.unlink()
    with contextlib.suppress(OSError):
        line = logsetup.render(
            {
                "event": "stopped",
                "level": "warning",
                "logger": "chunksync.daemon",
                "forced": True,
                "message": f"exited at once ({why}); the next start continues",
            },
            human=logsetup.requested().fmt == "human",
        )
        os.write(2, line.encode() + b"\n")
    os._exit(status)


def _arm_forced_exit(sockets: list[Path], grace: float) -> None:
    """Exit ``grace`` seconds from now unless the orderly stop is done by then (a daemon
    thread: an orderly exit never waits for it)."""
    timer = threading.Timer(
        grace, _exit_now, (sockets, 0, f"a step was still running after {grace:g} s")
    )
    timer.daemon = True
    timer.start()


def run_daemon(directories: list[Path], options: DaemonOptions | None = None) -> None:
    """Entry point of ``chunksync daemon DIR...`` (foreground)."""
    options = options or DaemonOptions()
    if options.low_priority:
        lower_priority()  # before any thread starts: threads inherit it
    with logsetup.session(logsetup.requested()):  # one format for events and warnings
        asyncio.run(serve(directories, options))
