"""The background daemon: ``chunksync daemon DIR...`` keeps folders in sync.

One asyncio process serves one or more folders. Per folder (:class:`FolderDaemon`):

* **Local edits** arrive from the :class:`~chunksync.watcher.FolderWatcher` as debounced
  batches of dirty directories; only those are rescanned. A full rescan runs at start,
  hourly and after a watcher overflow or restart. Files the engine wrote come back as
  events, match the stat cache and make no snapshot.
* **Remote edits**: the server pushes head changes over a WebSocket; a head different
  from ours starts a pull at once. Polling the head (30 s by default) is the fallback.
* **One round at a time** per folder: a single worker task runs the engine, so rounds
  never overlap; events that arrive during a round are kept for the next one.
* **Offline**: a transport error makes the folder "offline"; local batches are still
  scanned and journaled (``engine.scan_local``); the server is retried with capped
  exponential backoff and jitter, and at once when its WebSocket comes back.
* **Revoked**: a token the server refuses for good (:class:`DeviceRevoked`) ends that
  folder's daemon with a ``revoked`` log line and state (kept in a marker for
  ``status``); the others go on, and the process exits 11 when none is left. The token
  itself is renewed long before it expires, on use and by the poll loop.
* **Pause** closes the transfer gate (:class:`~chunksync.control.GatedChunkStore`):
  network calls end at once and the round stops at its next step (never mid-thread: a
  leftover thread must not race the next round on the index); writes are atomic.
* **Files still being written wait** (:mod:`chunksync.settle`; a closed one is read at once):
  a batch is postponed while its directories hold a file written within the quiet window (three windows at
  most), and a file still not quiet when scanned is held back and looked at again, so a
  file written over seconds makes one snapshot. Paths that cannot be synced are failed
  items, logged once (:mod:`chunksync.daemon_report`).
* **Lifecycle** (:mod:`chunksync.daemon_process`): an ``fcntl`` lock on
  ``.chunksync/daemon.lock`` allows one daemon per folder; SIGTERM/SIGINT stop
  transfers, wait for the current step (at most ``stop_grace``), close the index and
  remove the control socket. A second signal exits at once.

Events are logged as one JSON line each on stderr (:func:`log_event`), never a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from . import fsops, wire
from .control import ControlServer, FolderStatus, GatedChunkStore, TransfersPaused
from .daemon_report import PathReport
from .daemon_util import clock_skew, log_event, reconnect_delay
from .errors import (
    AuthError,
    ChunksyncError,
    DeviceRevoked,
    HeldError,
    IndexDamaged,
    TransportError,
)
from .folder import SyncFolder
from .settle import DEFAULT_CAP, DEFAULT_QUIET, Settle, busy_for
from .status import clear_revoked, mark_revoked
from .storage.meta import BASE
from .storage.upkeep import IndexKeeper
from .sync.engine import SyncEngine, SyncResult
from .transport.ratelimit import BandwidthLimits
from .watcher import Batch, FolderWatcher, expand_subtrees

__all__ = ["DaemonOptions", "FolderDaemon", "clock_skew", "log_event", "reconnect_delay"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """Timings, in seconds."""

    quiet: float = 0.15
    max_delay: float = 1.0
    poll_interval: float = 30.0
    full_rescan_interval: float = 3600.0
    retention_interval: float = 6 * 3600.0  # applying the folder's stored policy (forget)
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    skew_threshold: float = 60.0
    settle_quiet: float = DEFAULT_QUIET  # a file is quiet once unchanged this long
    settle_cap: float = DEFAULT_CAP  # ...or once held this long (then synced anyway)
    stop_grace: float = 1.0  # from SIGTERM to the exit, even if a step still runs
    low_priority: bool = True  # nice and I/O priority lowered (priority.py)
    limits: BandwidthLimits = BandwidthLimits()  # process-wide, shared by all folders
    ui_port: int | None = 0  # the dashboard on 127.0.0.1 (0: any free port; None: none)


class FolderDaemon:
    """Watches and syncs one opened folder until :meth:`stop` (see module docstring)."""

    def __init__(
        self, folder: SyncFolder, options: DaemonOptions, *, stream: TextIO | None = None
    ) -> None:
        self.folder = folder
        self.options = options
        self.stream = stream
        self.name = folder.config.folder
        self.gate = GatedChunkStore(folder.store)
        base = folder.engine()
        self.engine = SyncEngine(
            base.root,
            base.keys,
            base.index,
            self.gate,
            device=base.device,
            author=base.author,
            policies=base.policies,
            tmpdir=base.tmpdir,
            on_status=self._on_engine_status,
        )
        self.watcher = FolderWatcher(
            folder.paths.root, quiet=options.quiet, max_delay=options.max_delay
        )
        self.settle = self.engine.settle = Settle(
            options.settle_quiet, options.settle_cap, opens=self.watcher.opens
        )
        self.report = PathReport(folder.index, self.settle, self.log)
        self._postponed_at: float | None = None
        self.control = ControlServer(folder.paths.socket, self.handle)
        head = folder.index.get_meta(BASE)
        self.status = FolderStatus(
            folder.config.folder, folder.config.device_name, head=head.decode() if head else None
        )
        self.status.paused = (folder.paths.state / "paused").exists()
        self.status.conflicts = self._count_conflicts()
        self.status.limits, self.status.low_priority = folder.limits, options.low_priority
        self.keeper = IndexKeeper(folder.index)  # bounds the index between rounds
        self._pending = Batch(full=True)  # the first round rescans everything
        self._kick = asyncio.Event()
        self._force = False
        self._offline_attempt = 0
        self._retry_at = 0.0
        self._stopping = False
        self._syncing = False
        self.revoked = False
        self.on_round: Callable[[str, float], None] | None = None  # the dashboard's metrics

    # --- events -----------------------------------------------------------------------
    def log(self, event: str, **fields: Any) -> None:
        log_event(event, self.stream, folder=self.name, **fields)

    def _on_engine_status(self, state: str) -> None:
        if self.status.state != "offline":  # offline until a round succeeds
            self.status.state = state

    def _count_conflicts(self) -> int:
        """What ``chunksync conflicts`` lists: this device's open records and the copies
        other devices made (a copy kept with "keep both" is recorded as dismissed)."""
        from .status import list_conflicts

        with contextlib.suppress(IndexDamaged):  # marked: the next round rebuilds the index
            return len(list_conflicts(self.folder.paths.root, self.folder.index))
        return self.status.conflicts

    def want(self, batch: Batch, *, force: bool = False) -> None:
        self._pending = self._pending.merge(batch)
        self._force = self._force or force
        self._refresh_pending()
        self._kick.set()

    def _refresh_pending(self) -> None:
        p = self._pending
        self.status.pending_changes = (
            len(p.dirs)
            + len(p.subtrees)
            + (1 if p.full else 0)
            + self.watcher.pending
            + len(self.report.waiting)
        )

    # --- control ----------------------------------------------------------------------
    async def handle(self, command: str) -> dict[str, Any]:
        marker = self.folder.paths.state / "paused"
        if command == "status":
            self._refresh_pending()
            doc = self.status.to_json()
            doc.update(round_active=self._syncing, transfers_in_flight=self.gate.in_flight)
            doc.update(self.report.to_json())
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
        helpers = [
            asyncio.create_task(c)
            for c in (
                self._local_loop(),
                self._remote_loop(),
                self._poll_loop(),
                self._skew_loop(),
                self._full_loop(),
                self._token_loop(),
                self._retention_loop(),
            )
        ]
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

    async def _retention_loop(self) -> None:
        """Apply the retention policy the owner stored with the folder (lifecycle.py):
        forgets only, never deletes; quiet where there is none or this is no owner."""
        from .lifecycle import apply_stored_policy

        while True:
            await asyncio.sleep(self.options.retention_interval)
            with contextlib.suppress(ChunksyncError):
                gone = await apply_stored_policy(self.folder.client, self.name)
                if gone:
                    self.log("retention_applied", forgotten=gone)

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
            self.log(
                "clock_skew",
                seconds=round(skew, 1),
                message=f"this clock differs from the server's by {skew:+.0f} s",
            )
        return skew

    # --- the worker -----------------------------------------------------------------------
    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await self._kick.wait()
            self._kick.clear()
            if self._stopping:
                break
            if self.status.paused or (not self._pending and not self._force):
                continue
            if self.status.state == "offline" and not self._force and loop.time() < self._retry_at:
                await self._scan_offline()
                await self._upkeep()
                continue
            force, self._force = self._force, False
            batch, self._pending = self._pending, Batch()
            if not force and await self._postpone(batch):
                continue
            await self._round(batch)
            self._refresh_pending()
            await self._upkeep()

    async def _upkeep(self) -> None:
        """Between rounds, online or not (offline scans add listings too): keep the
        index within its budget (storage/upkeep.py)."""
        if (report := await asyncio.to_thread(self.keeper.after_round)) is not None:
            self.log("index_upkeep", **report.to_json())

    async def _postpone(self, batch: Batch) -> bool:
        """Put a watcher batch back while files in its directories are being written
        (so a burst of writes makes one round), for three quiet windows at most."""
        loop, quiet = asyncio.get_running_loop(), self.options.settle_quiet
        if batch.full or quiet <= 0:
            return False
        self._postponed_at = self._postponed_at or loop.time()
        wait = 0.0
        if loop.time() - self._postponed_at < 3 * quiet:
            dirs = await asyncio.to_thread(self._dirty_of, batch)
            wait = await asyncio.to_thread(
                busy_for, self.folder.paths.root, dirs, quiet, None, self.watcher.opens
            )
        if wait <= 0:
            self._postponed_at = None
            return False
        self._pending = self._pending.merge(batch)
        self.status.state = (
            "waiting" if self.status.state in ("idle", "waiting") else self.status.state
        )
        loop.call_later(min(wait, quiet) + 0.05, self._kick.set)
        return True

    def _recheck(self, dirs: set[str]) -> None:
        """Look again at files held back as still being written, after the window."""
        if dirs:
            asyncio.get_running_loop().call_later(
                self.options.settle_quiet + 0.05, self.want, Batch(frozenset(dirs))
            )

    async def _scan_offline(self) -> None:
        batch, self._pending = self._pending, Batch()
        if not batch:
            return
        dirty = None if batch.full else await asyncio.to_thread(self._dirty_of, batch)
        try:
            scanned = await asyncio.to_thread(self.engine.scan_local, dirty)
            self._recheck(self.report.after_scan(scanned, None))
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
        delay = reconnect_delay(
            self._offline_attempt,
            self.options.backoff_base,
            self.options.backoff_max,
            random.random(),  # nosec B311  # back-off jitter, not a secret
        )
        self._offline_attempt += 1
        self._retry_at = loop.time() + delay
        loop.call_later(delay, self._kick.set)

    def _synced(self, result: SyncResult, seconds: float, full: bool) -> None:
        if self.on_round is not None:
            self.on_round(self.name, seconds)
        was_offline = self.status.state == "offline"
        clear_revoked(self.folder.paths)
        self._offline_attempt = 0
        self.status.state = "idle"
        self.status.last_error = None
        self.status.last_sync_ns = time.time_ns()
        self.status.head = self.status.server_head = result.head
        self.status.bytes_up += result.uploaded_bytes
        self.status.bytes_down += result.downloaded_bytes
        self._recheck(self.report.after_scan(result.scan, result.skipped))
        for c in result.conflicts:
            self.log(
                "conflict",
                path=c.path,
                copy_path=c.copy_path,
                kind=c.kind,
                policy=c.policy,
                explanation=c.explanation,
            )
        for m in result.merges:  # one structured line per automatic merge
            self.log("merged", path=m.path, how=m.how, kept="both sides' edits", head=result.head)
        if result.conflicts or result.changed:  # a copy may also arrive from another device
            self.status.conflicts = self._count_conflicts()
        if result.changed or was_offline:
            self.log(
                "synced",
                head=result.head,
                pushed=result.pushed,
                applied=result.applied,
                deleted=result.deleted,
                seconds=round(seconds, 3),
                full=full,
                reconnected=was_offline,
            )
        if was_offline:
            asyncio.get_running_loop().create_task(self._quiet_skew())

    async def _quiet_skew(self) -> None:
        with contextlib.suppress(ChunksyncError, ValueError, TypeError, KeyError):
            await self.check_skew()
