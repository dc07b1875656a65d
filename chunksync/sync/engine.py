"""One sync round: scan, fetch the head, merge three ways, apply, push, record.

The engine stands on narrow interfaces — a :class:`ChunkStore` (HTTP in production, in
memory in tests and simulation), the LMDB :class:`Index`, the folder keys and a
:class:`Clock` — so that the same code runs under the CLI, the daemon and a seeded
simulator. Its guarantees:

* nothing is deleted locally except what an authenticated snapshot deleted, and a sync
  that would delete more than half the files (or over 1,000) is held (``HeldError``);
  edits, renames and moves never count as deletions;
* a head is accepted only if its commit chain reaches the head this device accepted
  last, so a rollback, replay or fork is refused before anything is merged
  (``RollbackError``, :mod:`chunksync.sync.lineage`);
* a local file is replaced only after re-checking it still is what the scan saw;
  otherwise the round starts over (bounded), so a concurrent edit is never lost;
* the new base, stat cache rows, fetched metadata, known-object ids, conflicts and the
  event log are recorded in one index transaction at the end of a round.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import shlex
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from .. import fsops, tracing
from ..conflict import Conflict, ConflictPolicies
from ..crypto.folder_keys import FolderKeys
from ..errors import (
    AuthError,
    ChunksyncError,
    HeldError,
    IndexDamaged,
    RefConflict,
    RollbackError,
    TransportError,
)
from ..ignore import IgnoreRules
from ..mergepolicy import AutoMerge, MergeResolution, effective_policies
from ..objects import Commit, ObjectId, ObjectKind, Tree, id_from_hex
from ..paths import unwritable_here
from ..pipeline import Sealer
from ..progress import NoProgress, Progress
from ..scan_read import OnChunk
from ..scanner import Hold, ScanResult, scan
from ..storage.index import Index
from ..storage.meta import (  # the index meta keys of the sync state
    BASE,
    BASE_ROOT,
    BASE_SERVER_SEQ,
    CHECKED_EPOCH,
    HIGH_SEQ,
    IGNORED_BY,
    LOCAL_ROOT,
    PENDING,
    ROLE,
)
from ..storage.trust import Trust, load_trust, save_trust
from ..textmerge import DEFAULT_LIMIT
from ..transport.base import ChunkStore
from ..treediff import diff_trees
from ..treeparts import encode_tree
from ..wire import HeadState
from .apply import Applier, ApplyOutcome
from .automerge import merge_events, merge_message, merges_seen, resolve_merges
from .deletions import count_files, deleted_files
from .graft import graft_ignored
from .heal import HealReport, heal_closure
from .intent import landed_base, record_intent
from .lineage import Accepted, verify_descent
from .objects_io import ObjectReader
from .plan import Plan, plan_merge
from .push import Uploader, UploadStats
from .rebuild import rebuild_index
from .unignore import forget_unignored

__all__ = ["Clock", "SyncEngine", "SyncResult", "SystemClock"]

MAX_ROUNDS = 8
UPLOADS_IN_FLIGHT = 4  # batches uploading at once while scanning
UPLOAD_BATCH_BYTES = 16 << 20  # each batch costs the server one durability barrier
# Plaintext admitted to the sealer and not yet handed to an upload: with the batches in
# flight it bounds an initial sync's blob memory (64 + 16 + 4 x 16 MiB), however large
# the folder. 24 MiB and 8 MiB batches measured peak RSS 0.93x restic's instead of ~1.25x
# on the quick corpus, but a slower initial sync on the loaded machine: see
# docs/performance.md (session 4) before changing these.
SEAL_IN_FLIGHT_BYTES = 64 << 20
MASS_DELETE_ABSOLUTE = 1000
MASS_DELETE_MIN = 10  # tiny folders may lose half their files without asking


class Clock(Protocol):
    def time_ns(self) -> int: ...


class SystemClock:
    def time_ns(self) -> int:
        return time.time_ns()


@dataclass
class SyncResult:
    """What one sync did; ``head`` is the folder head after it."""

    head: str | None
    pushed: bool = False
    applied: int = 0
    deleted: int = 0
    conflicts: tuple[Conflict, ...] = ()
    uploaded_objects: int = 0
    uploaded_bytes: int = 0
    downloaded_bytes: int = 0
    rounds: int = 1
    scan: ScanResult | None = None
    summary: dict[str, int] = field(default_factory=dict)
    healed: HealReport = HealReport()
    #: receive-only (a read-only member): local changes kept here, never sent
    receive_only: bool = False
    local_only: int = 0
    #: server entries not written here (path, reason): this platform cannot create them
    skipped: tuple[tuple[str, str], ...] = ()
    #: files merged automatically in this sync (both sides' edits kept in one file)
    merges: tuple[AutoMerge, ...] = ()

    @property
    def changed(self) -> bool:
        return self.pushed or self.applied > 0 or self.deleted > 0


class SyncEngine:
    def __init__(
        self,
        root: Path,
        keys: FolderKeys,
        index: Index,
        store: ChunkStore,
        *,
        device: str,
        author: str,
        policies: ConflictPolicies | None = None,
        ignore: IgnoreRules | None = None,
        clock: Clock | None = None,
        tmpdir: Path | None = None,
        on_status: Callable[[str], None] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.root = root
        self.keys = keys
        self.index = index
        self.store = store
        self.device = device
        self.author = author
        self.policies = policies or ConflictPolicies()
        self.ignore = ignore
        self.clock = clock or SystemClock()
        self.tmpdir = tmpdir or root / fsops.STATE_DIR_NAME / "tmp"
        self.on_status = on_status or (lambda _s: None)
        self.progress = progress or NoProgress()
        #: re-check the server's copy of the head (heal.py) on the next round even if
        #: its storage epoch is the one checked last: set after any error, and by the
        #: daemon now and then
        self.verify_server = False
        self._role: str | None = None  # asked of the server once per engine (or cached)
        self._scan_only = False  # this round uploads nothing while scanning (receive-only)
        self._round_ignore = IgnoreRules()  # the rules of the round in progress
        self.settle: Hold | None = None  # the daemon's (chunksync.settle)
        self.merge_limit = DEFAULT_LIMIT  # bytes: bigger files are never merged automatically

    # --- helpers ----------------------------------------------------------------------
    def _tree_id(self, tree: Tree) -> ObjectId:
        return encode_tree(tree, self.keys.meta_id).id

    def _meta_int(self, key: str) -> int:
        raw = self.index.get_meta(key)
        return int(raw) if raw else 0

    def _base(self) -> tuple[str | None, ObjectId | None]:
        base = self.index.get_meta(BASE)
        root = self.index.get_meta(BASE_ROOT)
        return (base.decode() if base else None), (ObjectId(root) if root else None)

    def _ignore_rules(self) -> IgnoreRules:
        return self.ignore or IgnoreRules.load(self.root)

    def scan_local(
        self,
        dirty: Collection[str] | None = None,
        on_chunk: OnChunk | None = None,
    ) -> ScanResult:
        """Scan the folder and journal what changed since the previous scan (works offline)."""
        if not (self.root / fsops.STATE_DIR_NAME).is_dir():
            raise ChunksyncError(
                f"{self.root}: the folder marker .chunksync is gone; refusing to sync"
            )
        self.on_status("scanning")
        ignore = self._ignore_rules()
        result = scan(
            self.root,
            self.keys,
            self.index,
            ignore=ignore,
            dirty=dirty,
            on_chunk=on_chunk,
            hold=self.settle,
        )
        previous = self.index.get_meta(LOCAL_ROOT)
        previous_root = ObjectId(previous) if previous else None
        reader = ObjectReader(self.keys, self.index, self.store)
        with self.index.write() as w:
            journaled = 0
            if previous_root != result.root_id:
                for diff in diff_trees(previous_root, result.root_id, reader.load_tree):
                    entry = diff.new or diff.old
                    if entry is not None and ignore.is_ignored(diff.path, entry.kind == "dir"):
                        continue  # synced from elsewhere, ignored here: not a local change
                    journaled += 1
                    w.append_event(
                        {
                            "time_ns": self.clock.time_ns(),
                            "path": diff.path,
                            "change": diff.change,
                            "device": self.device,
                            "source": "local",
                        }
                    )
            w.set_meta(LOCAL_ROOT, result.root_id)
            if journaled:
                w.set_meta(PENDING, b"1")
        return result

    def _accepted(self) -> Accepted | None:
        """The head accepted last: from the index, or — after the index was rebuilt —
        from ``.chunksync/trust``, so rollback protection survives losing the index."""
        base, _ = self._base()
        if base is None:
            trust = load_trust(self.root / fsops.STATE_DIR_NAME)
            return Accepted(trust.head, trust.seq) if trust else None
        return Accepted(base, self._meta_int(HIGH_SEQ), self._meta_int(BASE_SERVER_SEQ))

    async def _remote(
        self, reader: ObjectReader, accept_history: bool
    ) -> tuple[HeadState, Commit | None]:
        """The server head and its commit, accepted only if it descends from the base."""
        head = await self.store.get_head()
        accepted = self._accepted()
        if head.head is None:
            if accepted is not None and not accept_history:
                raise RollbackError(
                    "the server has no snapshot of this folder, but this device synced one: "
                    "refusing to sync (server reset or rolled back?)"
                )
            return head, None
        commit = await reader.commit(id_from_hex(head.head))
        if accepted is not None and not accept_history:
            await verify_descent(
                reader,
                head.head,
                commit,
                accepted,
                head_server_seq=head.seq,
                root_hint=shlex.quote(str(self.root)),
            )
        return head, commit

    def _guard_mass_delete(
        self,
        plan: Plan,
        scan_result: ScanResult,
        remote_root: ObjectId | None,
        load: Callable[[ObjectId], Tree],
    ) -> None:
        """Hold a sync that would delete many files, on either side.

        Only deletions count (:func:`deleted_files`): edits, renames and moves, however
        many, never trip the guard. Each side's count is out of that side's files.
        """
        sides: tuple[tuple[ObjectId | None, str, Callable[[], int]], ...] = (
            (scan_result.root_id, "on this device", lambda: scan_result.files),
            (remote_root, "on the server", lambda: count_files(remote_root, load)),
        )
        for old_root, where, total_of in sides:
            count = deleted_files(old_root, plan.merged_root, load)
            if count < MASS_DELETE_MIN:
                continue
            total = max(total_of(), count, 1)
            if count > MASS_DELETE_ABSOLUTE or count * 2 > total:
                raise HeldError(
                    f"this sync would delete {count} of {total} files {where}; held for safety. "
                    f"Check the folder, then run 'chunksync sync {shlex.quote(str(self.root))} "
                    "--allow-mass-delete' to go ahead"
                )

    # --- the round --------------------------------------------------------------------
    async def sync(
        self,
        *,
        allow_mass_delete: bool = False,
        dirty: Collection[str] | None = None,
        accept_server_history: bool = False,
    ) -> SyncResult:
        """Run rounds until one completes. ``dirty``: directories the watcher saw change
        (None rescans everything); later rounds of a retried sync rescan everything.
        ``accept_server_history`` takes the server's head even if it does not descend
        from the base (a server restored from a backup) and merges without a base, so
        nothing is deleted and every difference is kept as a conflicted copy."""
        fsops.sweep_tmp(self.tmpdir)
        state_dir = self.root / fsops.STATE_DIR_NAME
        rebuilt = self.index.damaged is not None and rebuild_index(self.index, state_dir)
        for round_no in range(1, MAX_ROUNDS + 1):
            try:
                with tracing.span("sync.round", round=round_no):  # one trace per round
                    result = await self._round(
                        allow_mass_delete, dirty if round_no == 1 else None, accept_server_history
                    )
            except (fsops.LocalChanged, RefConflict):
                await asyncio.sleep(min(0.05 * round_no, 0.5))
                continue
            except IndexDamaged:
                if rebuilt:
                    raise
                rebuilt = rebuild_index(
                    self.index, state_dir
                )  # then the round again, on an empty index
                continue
            except AuthError:
                if await self._became_read_only():
                    continue  # demoted since the role was cached: sync receive-only
                self.verify_server = True
                raise
            except ChunksyncError:
                self.verify_server = True  # whatever went wrong, trust no cache next time
                raise
            result.rounds = round_no
            self.verify_server = False
            return result
        raise ChunksyncError("the folder kept changing while syncing; try again when it is quiet")

    async def _receive_only(self) -> bool:
        """A read-only member syncs receive-only (Syncthing's term): changes arrive,
        local edits stay here. The role is cached in the index; a cached read-only
        role is asked again each round, so a promotion takes effect at once."""
        if self._role is None:
            cached = (self.index.get_meta(ROLE) or b"").decode()
            if cached in ("owner", "read-write"):
                self._role = cached
            else:
                try:
                    self._role = await self.store.role()
                except TransportError:
                    return cached == "read-only"  # offline: the round fails at get_head anyway
                with self.index.write() as w:
                    w.set_meta(ROLE, self._role.encode())
        receive_only = self._role == "read-only"
        if receive_only:
            self._role = None
        return receive_only

    async def _became_read_only(self) -> bool:
        """After a refused write: ask the role afresh; True if it is read-only now."""
        with self.index.write() as w:
            w.set_meta(ROLE, b"")
        self._role = None
        try:
            return await self._receive_only()
        except ChunksyncError:
            return False

    async def _put_missing(
        self, batch: list[tuple[ObjectId, bytes]]
    ) -> list[tuple[ObjectId, bytes]]:
        """Upload what the server lacks of ``batch`` (after an interrupted first sync
        it already holds much of it); returns what was sent."""
        missing = await self.store.missing([oid for oid, _ in batch])
        todo = [item for item in batch if item[0] in missing]
        if todo:
            await self.store.put_many(todo)
        return todo

    def _scan_and_upload(
        self, dirty: Collection[str] | None, loop: asyncio.AbstractEventLoop, stats: UploadStats
    ) -> ScanResult:
        """Scan, uploading new chunks as they are read, so an initial sync reads each
        file once: the Sealer seals on a thread pool and up to ``UPLOADS_IN_FLIGHT``
        batches travel at once. Upload failures only stop the early upload: the scan goes
        on (offline journal) and the push re-reads whatever is still missing."""
        slots = threading.BoundedSemaphore(UPLOADS_IN_FLIGHT)
        scan_context = contextvars.copy_context()
        uploads: list[concurrent.futures.Future[list[tuple[ObjectId, bytes]]]] = []
        offline = threading.Event()
        if self._scan_only:
            offline.set()  # receive-only: nothing is uploaded

        def done(
            batch: list[tuple[ObjectId, bytes]],
            future: concurrent.futures.Future[list[tuple[ObjectId, bytes]]],
        ) -> None:
            slots.release()
            if future.cancelled() or future.exception() is not None:
                offline.set()
            else:
                stats.record(future.result())
                stats.uploaded.update(oid for oid, _ in batch)  # sent, or there already

        def sink(batch: list[tuple[ObjectId, bytes]]) -> None:
            if offline.is_set():
                return
            slots.acquire()
            uploads[:] = [f for f in uploads if not f.done()]  # a done one holds its blobs
            # in the scan's context (the Sealer's threads have none): the round's trace
            future = scan_context.copy().run(
                asyncio.run_coroutine_threadsafe, self._put_missing(batch), loop
            )
            future.add_done_callback(functools.partial(done, batch))
            uploads.append(future)

        try:
            sealer = Sealer(
                self.keys,
                sink,
                skip=self.index.known,
                batch_bytes=UPLOAD_BATCH_BYTES,
                max_in_flight=SEAL_IN_FLIGHT_BYTES,
            )
            with sealer:
                result = self.scan_local(dirty, on_chunk=sealer)
        finally:
            concurrent.futures.wait(uploads)
        if not offline.is_set():
            stats.chunks_uploaded_for = result.read_manifests
        return result

    async def _round(
        self, allow_mass_delete: bool, dirty: Collection[str] | None, accept_history: bool = False
    ) -> SyncResult:
        loop = asyncio.get_running_loop()
        upload_stats = UploadStats(progress=self.progress)
        receive_only = self._scan_only = await self._receive_only()
        self.progress.phase("scanning")
        with tracing.span("scan", full=dirty is None):
            scan_result = await asyncio.to_thread(self._scan_and_upload, dirty, loop, upload_stats)
        reader = ObjectReader(self.keys, self.index, self.store, self.progress)
        self.on_status("syncing")
        remote_state, remote_commit = await self._remote(reader, accept_history)
        remote_head = remote_state.head
        remote_root = remote_commit.tree if remote_commit else None
        await reader.ensure_tree_closure(remote_root)
        base_before, base_root = self._base()
        base_root = await landed_base(reader, self.index, remote_head, self._accepted(), base_root)
        ignore = self._round_ignore = self._ignore_rules()
        previous = self.index.get_meta(IGNORED_BY)
        if base_root is not None and previous is not None:
            was = IgnoreRules(tuple(previous.decode().split("\n")) if previous else ())
            if was.digest != ignore.digest:
                base_root = forget_unignored(
                    base_root,
                    was.is_ignored,
                    ignore.is_ignored,
                    reader.load_tree,
                    reader.store_tree,
                )
        if accept_history:
            base_root = None  # merge without a base: nothing is deleted on either side
        local_root = scan_result.root_id
        skipped: list[tuple[str, str]] = []

        def left_out(path: str, is_dir: bool) -> bool:
            """Server entries this device leaves alone: ignored here, or named so that
            this platform cannot create them (skipped here alone, reported, kept on the
            server). A server entry named .chunksync is never grafted: the merge refuses it."""
            if fsops.STATE_DIR_NAME in path.split("/"):
                return False
            problem = unwritable_here(path.rsplit("/", 1)[-1])
            if problem:
                skipped.append((path, problem))
                return True
            return ignore.is_ignored(path, is_dir)

        local_root = graft_ignored(
            local_root, remote_root, left_out, reader.load_tree, reader.store_tree
        )
        policies = (  # receive-only: keep both, always
            ConflictPolicies() if receive_only else effective_policies(self.policies, self.root)
        )
        now = datetime.fromtimestamp(self.clock.time_ns() / 1e9, UTC).astimezone()

        def planned(merges: dict[str, MergeResolution] | None = None) -> Plan:
            with tracing.span("plan"):
                return plan_merge(
                    base_root,
                    local_root,
                    remote_root,
                    load_tree=reader.load_tree,
                    tree_id=self._tree_id,
                    device=self.device,
                    now=now,
                    policies=policies,
                    remote_device=remote_commit.device if remote_commit else None,
                    merges=merges,
                )

        plan = planned()
        if plan.merge_candidates:  # try the content merges, then plan with their answers
            answers = await resolve_merges(
                plan.merge_candidates,
                root=self.root,
                keys=self.keys,
                reader=reader,
                store=self.store,
                stats=upload_stats,
                limit=self.merge_limit,
            )
            plan = planned(answers)
        for tree in plan.new_trees.values():
            reader.store_tree(tree)
        if not allow_mass_delete:
            self._guard_mass_delete(
                plan, scan_result, None if receive_only else remote_root, reader.load_tree
            )
        writes = [a.entry for a in plan.actions if a.op == "write" and a.entry and a.entry.id]
        await reader.ensure(ObjectKind.FILE, [e.id for e in writes if e.id])
        self.progress.expect("down", sum(e.size for e in writes))
        uploader = Uploader(self.root, self.keys, self.index, reader, self.store, upload_stats)
        healed = HealReport()
        checked_epoch = self.index.get_meta(CHECKED_EPOCH)
        epoch = remote_state.epoch
        if not receive_only and (
            self.verify_server or epoch is None or checked_epoch != epoch.encode()
        ):
            head_id = id_from_hex(remote_head) if remote_head else None
            healed = await heal_closure(head_id, reader, uploader, self.index)
            uploader.trust_known = False
        new_head, server_seq = remote_head, remote_state.seq
        remote_device = remote_commit.device if remote_commit else None
        seen_merges = merges_seen(reader, remote_head, base_before)
        seq = head_seq = remote_commit.seq if remote_commit else 0
        parents = (id_from_hex(remote_head),) if remote_head else ()
        kept_in_history: str | None = None
        lost = any(c.policy == "last-write-wins" and c.kept == "remote" for c in plan.conflicts)
        if lost or plan.auto_merges:
            # the local version is replaced on disk below: first keep it in history
            # (the second parent of the merge commit, which "undo" brings back)
            side = await self._commit(
                uploader,
                reader,
                local_root,
                parents,
                seq + 1,
                {},
                "local versions that lost under last-write-wins"
                if lost
                else "local versions before an automatic merge",
                remote_root,
            )
            parents, seq = (*parents, side), seq + 1
            kept_in_history = side.hex() if lost else None  # where LWW losers are
        self._forget_listings(plan)
        self.progress.phase("downloading" if writes else "applying")
        applier = Applier(self.root, self.tmpdir, self.keys, self.index, reader, loop)
        with tracing.span("apply", actions=len(plan.actions)):
            outcome = await asyncio.to_thread(applier.run, plan.actions)
        try:
            if not receive_only and (plan.push_needed or len(parents) > 1):
                commit_id = await self._commit(
                    uploader,
                    reader,
                    plan.merged_root,
                    parents,
                    seq + 1,
                    plan.summary,
                    merge_message(plan.auto_merges, self.device, remote_device)
                    if plan.auto_merges
                    else "",
                    remote_root=remote_root,
                )
                record_intent(self.index, commit_id)  # if the answer is lost: sync/intent.py
                with tracing.span("head CAS"):
                    moved = await self.store.cas_head(remote_head, commit_id.hex())
                new_head, head_seq, server_seq = commit_id.hex(), seq + 1, moved.seq
        finally:
            # whatever happened, remember what is on disk now and what the server holds
            synced = new_head is not None and (
                new_head != remote_head or not plan.push_needed or receive_only
            )
            # receive-only: the base is the server's tree, so local changes stay local changes
            base_after = remote_root if receive_only and remote_root else plan.merged_root
            self._record(
                plan,
                outcome,
                reader,
                uploader,
                new_head if synced else None,
                Accepted(new_head or "", head_seq, server_seq, remote_state.epoch),
                kept_in_history,
                base_after,
                merge_events(
                    plan.auto_merges,
                    new_head,
                    parents,
                    (self.device, remote_device),
                    self.clock.time_ns(),
                    seen_merges,
                ),
            )
            if synced and new_head is not None:
                save_trust(self.root / fsops.STATE_DIR_NAME, Trust(new_head, head_seq))
        local_only = 0
        if receive_only:
            local_only = sum(1 for _ in diff_trees(remote_root, plan.merged_root, reader.load_tree))
        return SyncResult(
            head=new_head,
            pushed=new_head != remote_head,
            applied=outcome.written,
            deleted=outcome.deleted,
            conflicts=plan.conflicts,
            uploaded_objects=uploader.stats.objects,
            uploaded_bytes=uploader.stats.size,
            downloaded_bytes=outcome.bytes_down,
            scan=scan_result,
            summary=plan.summary,
            healed=healed,
            receive_only=receive_only,
            local_only=local_only,
            skipped=tuple(skipped),
            merges=plan.auto_merges,
        )

    def _forget_listings(self, plan: Plan) -> None:
        """Drop the scanner's cached listing of every directory the plan will touch,
        before touching it, so a later partial (watcher-driven) scan lists them again
        instead of reusing a listing that misses what was applied."""
        touched: set[str] = set()
        for action in plan.actions:
            for path in (action.path, action.dest):
                if path is None:
                    continue
                if action.op in ("mkdir", "rmdir"):
                    touched.add(path)
                # every ancestor, up to the first one already in (its own are in too):
                # linear in the depth once, not per action, for very deep folders
                while path:
                    path = path.rpartition("/")[0]
                    if path in touched:
                        break
                    touched.add(path)
        if touched:
            with self.index.write() as w:
                for directory in touched:
                    w.delete_dirtree(directory)

    async def _commit(
        self,
        uploader: Uploader,
        reader: ObjectReader,
        tree: ObjectId,
        parents: tuple[ObjectId, ...],
        seq: int,
        summary: dict[str, int],
        message: str = "",
        remote_root: ObjectId | None = None,
    ) -> ObjectId:
        """Upload the objects below ``tree`` and a commit of it; returns the commit id."""
        self.progress.phase("uploading")
        with tracing.span("upload"):
            await uploader.push_tree(tree, remote_root)
        commit = Commit(
            tree=tree,
            parents=parents,
            seq=seq,
            device=self.device,
            author=self.author,
            time_ns=self.clock.time_ns(),
            summary=summary,
            message=message,
        )
        encoded = commit.encode()
        commit_id = self.keys.meta_id(encoded)
        reader.pending[commit_id] = (ObjectKind.COMMIT, encoded)
        await uploader.put_object(ObjectKind.COMMIT, commit_id, encoded)
        return commit_id

    def _record(
        self,
        plan: Plan,
        outcome: ApplyOutcome,
        reader: ObjectReader,
        uploader: Uploader,
        synced_head: str | None,
        accepted: Accepted,
        kept_in_history: str | None,
        base_root: ObjectId,
        merge_events: list[dict[str, object]] | None = None,
    ) -> None:
        """One index transaction: what is on disk now, what the server holds, and —
        when ``synced_head`` is set — the new base, conflicts and journal entries."""
        now = self.clock.time_ns()
        # a round that distrusted the cache (the storage epoch changed: a restart, a
        # repair, a prune's sweep) drops it: what the server held before may be gone
        stale = [] if uploader.trust_known else [k for k, _ in self.index.scan_known()]
        with self.index.write() as w:
            w.forget_known(stale)
            for path in outcome.removed:
                w.delete_state(path)
            for state in outcome.states.values():
                w.put_state(state)
            for oid, (kind, data) in reader.pending.items():
                w.put_object(oid, kind, data)
            w.add_known(uploader.stats.uploaded)
            w.add_known(uploader.verified)
            if synced_head is not None:
                w.add_known([id_from_hex(synced_head)])
                w.set_meta(BASE, synced_head.encode())
                w.set_meta(BASE_ROOT, base_root)
                w.set_meta(LOCAL_ROOT, plan.merged_root)  # what the disk holds now
                w.set_meta(PENDING, b"0" if base_root == plan.merged_root else b"1")
                w.set_meta(IGNORED_BY, "\n".join(self._round_ignore.lines).encode())
                w.set_meta(HIGH_SEQ, str(accepted.seq).encode())
                w.set_meta(BASE_SERVER_SEQ, str(accepted.server_seq).encode())
                if not uploader.trust_known and accepted.epoch is not None:
                    w.set_meta(CHECKED_EPOCH, accepted.epoch.encode())
                for event in merge_events or ():
                    w.append_event(event)
                for conflict in plan.conflicts:
                    w.put_conflict(
                        conflict.path,
                        {
                            "kind": conflict.kind,
                            "kept": conflict.kept,
                            "copy_path": conflict.copy_path,
                            "policy": conflict.policy,
                            "explanation": conflict.explanation,
                            "time_ns": now,
                            "device": self.device,
                            "snapshot": kept_in_history if conflict.copy_path is None else None,
                        },
                    )
                    w.append_event(
                        {
                            "time_ns": now,
                            "path": conflict.path,
                            "change": "conflict",
                            "device": self.device,
                            "detail": conflict.explanation,
                        }
                    )
