"""The background daemon: ``chunksync daemon DIR...`` keeps folders in sync.

One asyncio process serves one or more folders. Per folder (:class:`FolderDaemon`):

* **Local edits** arrive from the :class:`~chunksync.watcher.FolderWatcher` as debounced
  batches of dirty directories; only those are rescanned (``engine.sync(dirty=...)``).
  A full rescan runs at start, periodically (hourly by default) and after a watcher
  overflow or restart. Files the engine itself wrote come back as events too, but the
  rescan finds them equal to the stat cache and the merge finds nothing to push, so no
  snapshot is made for them.
* **Remote edits**: the server pushes head changes over a WebSocket
  (``store.watch()``); a head different from ours starts a pull at once. Polling the
  head (30 s by default) is the fallback.
* **One round at a time** per folder: a single worker task runs the engine, so rounds
  never overlap; events that arrive during a round are kept for the next one.
* **Offline**: a transport error makes the folder "offline"; local batches are still
  scanned and journaled (``engine.scan_local``); the server is retried with capped
  exponential backoff and jitter, and at once when its WebSocket comes back.
* **Revoked**: a token the server refuses for good (:class:`DeviceRevoked`) ends that
  folder's daemon with a ``revoked`` log line and state (kept in a marker for
  ``status``); the others go on, and the process exits 11 when none is left. The token
  itself is renewed long before it expires, on use and by the poll loop.
* **Pause** closes the transfer gate (:class:`~chunksync.control.GatedChunkStore`): the
  running round's network calls end immediately and the round stops at its next step;
  the engine's atomic writes leave no partial file. Running rounds are not cancelled
  mid-thread, because ``asyncio`` cannot stop a worker thread and a leftover thread
  must never race the next round on the index.
* **Lifecycle**: an ``fcntl`` lock on ``.chunksync/daemon.lock`` allows one daemon per
  folder; SIGTERM/SIGINT stop transfers, wait for the current step, close the index and
  remove the control socket. A second signal stops at once.

Conflicts, held mass deletes, errors and syncs are logged as one JSON line each on
stderr (:func:`log_event`); no secret is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TextIO

from . import fsops, wire
from .config import FolderPaths
from .control import ControlServer, FolderStatus, GatedChunkStore, TransfersPaused
from .errors import AuthError, ChunksyncError, DeviceRevoked, HeldError, TransportError, UserError
from .folder import FolderLock, SyncFolder
from .status import clear_revoked, mark_revoked
from .sync.engine import BASE, SyncEngine, SyncResult
from .transport.retry import RetryPolicy
from .watcher import Batch, FolderWatcher, expand_subtrees

__all__ = ["DaemonOptions", "FolderDaemon", "log_event", "run_daemon"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """Timings, in seconds."""

    quiet: float = 0.15
    max_delay: float = 1.0
    poll_interval: float = 30.0
    full_rescan_interval: float = 3600.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    skew_threshold: float = 60.0


def log_event(event: str, stream: TextIO | None = None, **fields: Any) -> None:
    """One structured JSON line on stderr."""
    doc = {"time": round(time.time(), 3), "event": event, **fields}
    out = stream or sys.stderr
    out.write(json.dumps(doc, sort_keys=True, default=str) + "\n")
    out.flush()


def reconnect_delay(attempt: int, base: float, cap: float, unit: float) -> float:
    """Capped exponential backoff with jitter: uniform in [w/2, w], w = min(cap, base*2^n)."""
    window = min(cap, base * (2 ** min(attempt, 30)))
    return window * (0.5 + 0.5 * max(0.0, min(1.0, unit)))


def clock_skew(local_before: float, local_after: float, date_header: str) -> float:
    """Local clock minus server clock (seconds) from an HTTP ``Date`` header."""
    server = parsedate_to_datetime(date_header).timestamp()
    return (local_before + local_after) / 2 - server


class FolderDaemon:
    """Watches and syncs one opened folder until :meth:`stop` (see module docstring)."""

    def __init__(self, folder: SyncFolder, options: DaemonOptions, *, stream: TextIO | None = None) -> None:
        self.folder = folder
        self.options = options
        self.stream = stream
        self.name = folder.config.folder
        self.gate = GatedChunkStore(folder.store)
        base = folder.engine()
        self.engine = SyncEngine(
            base.root, base.keys, base.index, self.gate, device=base.device, author=base.author,
            policies=base.policies, tmpdir=base.tmpdir, on_status=self._on_engine_status,
        )
        self.watcher = FolderWatcher(folder.paths.root, quiet=options.quiet, max_delay=options.max_delay)
        self.control = ControlServer(folder.paths.socket, self.handle)
        head = folder.index.get_meta(BASE)
        self.status = FolderStatus(folder.config.folder, folder.config.device_name, head=head.decode() if head else None)
        self.status.paused = (folder.paths.state / "paused").exists()
        self.status.conflicts = self._count_conflicts()
        self._pending = Batch(full=True)  # the first round rescans everything
        self._kick = asyncio.Event()
        self._force = False
        self._offline_attempt = 0
        self._retry_at = 0.0
        self._stopping = False
        self._syncing = False
        self.revoked = False

    # --- events -----------------------------------------------------------------------
    def log(self, event: str, **fields: Any) -> None:
        log_event(event, self.stream, folder=self.name, **fields)

    def _on_engine_status(self, state: str) -> None:
        if self.status.state != "offline":  # offline until a round succeeds
            self.status.state = state

    def _count_conflicts(self) -> int:
        return sum(1 for _ in self.folder.index.iter_conflicts())

    def want(self, batch: Batch, *, force: bool = False) -> None:
        self._pending = self._pending.merge(batch)
        self._force = self._force or force
        self._refresh_pending()
        self._kick.set()

    def _refresh_pending(self) -> None:
        p = self._pending
        self.status.pending_changes = (len(p.dirs) + len(p.subtrees) + (1 if p.full else 0)
                                       + self.watcher.pending)

    # --- control ----------------------------------------------------------------------
    async def handle(self, command: str) -> dict[str, Any]:
        marker = self.folder.paths.state / "paused"
        if command == "status":
            self._refresh_pending()
            doc = self.status.to_json()
            doc.update(round_active=self._syncing, transfers_in_flight=self.gate.in_flight)
            return doc
        if command == "pause":
            self.status.paused = True
            self.gate.close()
            fsops.atomic_write_bytes(marker, b"paused\n", mode=0o600)
            self.log("paused")
            return {"message": "paused: transfers stopped"}
        if command == "resume":
            self.status.paused = False
            self.gate.open()
            marker.unlink(missing_ok=True)
            self.log("resumed")
            self.want(Batch(), force=True)
            return {"message": "resumed"}
        if self.status.paused:
            return {"error": "the folder is paused: run 'chunksync resume' first"}
        self.want(Batch(), force=True)
        return {"message": "sync started"}

    # --- tasks ------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled or :meth:`stop`; the caller closes the folder afterwards."""
        if self.status.paused:
            self.gate.close()
        self._kick.set()  # the first round: a full rescan
        self.watcher.start()
        await self.control.start()
        self.log("started", root=str(self.folder.paths.root), paused=self.status.paused)
        helpers = [asyncio.create_task(c) for c in (
            self._local_loop(), self._remote_loop(), self._poll_loop(), self._skew_loop(), self._full_loop(),
            self._token_loop())]
        try:
            await self._worker()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.watcher.stop()
            await self.control.close()
            self.log("stopped")

    def stop(self) -> None:
        """Stop transfers now; the worker ends after the step it is in."""
        self._stopping = True
        self.gate.close()
        self._kick.set()

    async def _local_loop(self) -> None:
        while True:
            batch = await self.watcher.next_batch()
            self.want(batch)
            if not self.watcher.alive():
                self.log("watcher_restart")
                self.watcher.start()

    async def _remote_loop(self) -> None:
        try:
            async for state in self.folder.store.watch():
                self._saw_server_head(state.head)
        except DeviceRevoked as exc:
            self._revoke(exc)
        except AuthError as exc:
            self.status.last_error = exc.message
            self.log("error", message=f"head watch stopped: {exc.message}")

    def _saw_server_head(self, head: str | None) -> None:
        self.status.server_head = head
        if self.status.state == "offline":
            self._retry_at = 0.0  # the server is back: reconcile now
            self._kick.set()
        if head != self.status.head:
            self.want(Batch(), force=True)  # a pull: no local directory to rescan

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval)
            if self.status.paused or self._syncing:
                continue
            try:
                state = await self.gate.get_head()
            except ChunksyncError:
                continue
            self._saw_server_head(state.head)

    async def _token_loop(self) -> None:
        """Renew the device token when due, even if the folder is idle or paused."""
        while True:
            await asyncio.sleep(self.folder.client.renewal_delay())
            try:
                await self.folder.client.renew_if_due()
            except DeviceRevoked as exc:
                self._revoke(exc)
                return
            except ChunksyncError:
                await asyncio.sleep(1.0)

    async def _full_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.full_rescan_interval)
            self.engine.verify_server = True  # and re-check the server's copy (sync/heal.py)
            self.watcher.request_full()

    async def _skew_loop(self) -> None:
        while True:
            with contextlib.suppress(ChunksyncError, ValueError, TypeError, KeyError):
                await self.check_skew()
            await asyncio.sleep(3600)

    async def check_skew(self) -> float:
        before = time.time()
        async with self.folder.client.exchange("GET", wire.HEALTHZ) as resp:
            date = resp.headers["Date"]
            await resp.read()
        skew = clock_skew(before, time.time(), date)
        self.status.clock_skew = skew
        if abs(skew) > self.options.skew_threshold:
            self.log("clock_skew", seconds=round(skew, 1),
                     message=f"this clock differs from the server's by {skew:+.0f} s")
        return skew

    # --- the worker -----------------------------------------------------------------------
    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await self._kick.wait()
            self._kick.clear()
            if self._stopping:
                break
            if self.status.paused or not self._pending and not self._force:
                continue
            if self.status.state == "offline" and not self._force and loop.time() < self._retry_at:
                await self._scan_offline()
                continue
            self._force = False
            batch, self._pending = self._pending, Batch()
            await self._round(batch)
            self._refresh_pending()

    async def _scan_offline(self) -> None:
        batch, self._pending = self._pending, Batch()
        if not batch:
            return
        dirty = None if batch.full else await asyncio.to_thread(self._dirty_of, batch)
        try:
            await asyncio.to_thread(self.engine.scan_local, dirty)
        except ChunksyncError as exc:
            self.log("error", message=exc.message)
        self.status.state = "offline"
        self._pending = self._pending.merge(Batch(full=True))  # reconcile rescans all

    def _dirty_of(self, batch: Batch) -> set[str]:
        return set(batch.dirs) | expand_subtrees(self.folder.paths.root, batch.subtrees)

    async def _round(self, batch: Batch) -> None:
        loop = asyncio.get_running_loop()
        self._syncing = True
        started = loop.time()
        full = batch.full
        try:
            dirty = None if full else await asyncio.to_thread(self._dirty_of, batch)
            result = await self.engine.sync(dirty=dirty)
        except TransfersPaused:
            self._pending = self._pending.merge(batch)
            return
        except DeviceRevoked as exc:
            self._revoke(exc)
            return
        except TransportError as exc:
            self._pending = self._pending.merge(batch)
            self._went_offline(exc)
            return
        except HeldError as exc:
            self.status.state, self.status.last_error = "error", exc.message
            self.log("held", message=exc.message)
            return
        except ChunksyncError as exc:
            self._pending = self._pending.merge(Batch(full=True))
            self.status.state, self.status.last_error = "error", exc.message
            self.log("error", message=exc.message)
            self._schedule_retry(loop)
            return
        finally:
            self._syncing = False
        self._synced(result, loop.time() - started, full)

    def _went_offline(self, exc: TransportError) -> None:
        loop = asyncio.get_running_loop()
        if self.status.state != "offline":
            self.log("offline", message=exc.message)
        self.status.state, self.status.last_error = "offline", exc.message
        self._schedule_retry(loop)

    def _revoke(self, exc: DeviceRevoked) -> None:
        """Stop this folder for good: retrying with a refused token cannot help."""
        if not self.revoked:
            self.revoked = True
            self.status.state, self.status.last_error = "revoked", exc.message
            self.log("revoked", message=f"stopped syncing this folder: {exc.message}")
            mark_revoked(self.folder.paths, exc.message)
        self.stop()

    def _schedule_retry(self, loop: asyncio.AbstractEventLoop) -> None:
        delay = reconnect_delay(self._offline_attempt, self.options.backoff_base,
                                # B311: back-off jitter, not a secret
                                self.options.backoff_max, random.random())  # nosec B311
        self._offline_attempt += 1
        self._retry_at = loop.time() + delay
        loop.call_later(delay, self._kick.set)

    def _synced(self, result: SyncResult, seconds: float, full: bool) -> None:
        was_offline = self.status.state == "offline"
        clear_revoked(self.folder.paths)
        self._offline_attempt = 0
        self.status.state = "idle"
        self.status.last_error = None
        self.status.last_sync_ns = time.time_ns()
        self.status.head = self.status.server_head = result.head
        self.status.bytes_up += result.uploaded_bytes
        self.status.bytes_down += result.downloaded_bytes
        for c in result.conflicts:
            self.log("conflict", path=c.path, copy_path=c.copy_path, kind=c.kind, policy=c.policy,
                     explanation=c.explanation)
        if result.conflicts:
            self.status.conflicts = self._count_conflicts()
        if result.changed or was_offline:
            self.log("synced", head=result.head, pushed=result.pushed, applied=result.applied,
                     deleted=result.deleted, seconds=round(seconds, 3), full=full,
                     reconnected=was_offline)
        if was_offline:
            asyncio.get_running_loop().create_task(self._quiet_skew())

    async def _quiet_skew(self) -> None:
        with contextlib.suppress(ChunksyncError, ValueError, TypeError, KeyError):
            await self.check_skew()


# --- the process ---------------------------------------------------------------------------
DAEMON_RETRY = RetryPolicy(attempts=3, base_delay=0.25, max_delay=2.0, deadline=10.0)


async def serve(directories: list[Path], options: DaemonOptions) -> None:
    """Run daemons for ``directories`` until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    locks = [FolderLock(FolderPaths(d.resolve())) for d in directories]
    async with contextlib.AsyncExitStack() as stack:
        for lock in locks:
            if not lock.paths.config.exists():
                raise UserError(f"{lock.paths.root} is not a chunksync folder: run 'chunksync init' or 'join' first")
            lock.acquire()
            stack.callback(lock.release)
        daemons = []
        for d in directories:
            folder = await stack.enter_async_context(SyncFolder.open(d))
            folder.client.retry = DAEMON_RETRY
            daemons.append(FolderDaemon(folder, options))
        # the executor's threads (scans, applies) must end before any index closes
        stack.push_async_callback(loop.shutdown_default_executor)
        tasks = [asyncio.create_task(d.run()) for d in daemons]
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            for d in daemons:
                d.stop()
            if signals > 1:
                for t in tasks:
                    t.cancel()

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
            raise DeviceRevoked("no folder left to sync: the server refused this device's token "
                                "(see the 'revoked' lines); run 'chunksync login' again")


def run_daemon(directories: list[Path], options: DaemonOptions | None = None) -> None:
    """Entry point of ``chunksync daemon DIR...`` (foreground)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="chunksync: %(name)s: %(message)s")
    asyncio.run(serve(directories, options or DaemonOptions()))
