"""The properties the simulator checks after every step and at quiescence.

Each check raises :class:`Violation` naming the invariant, so a failing seed reports
one line. The names (used in docs/reliability.md and in the one-line summary):

``internal-error``   a sync raised something that is not a ChunksyncError (a crash
                     of the engine itself, not a refusal);
``invented``         a disk holds file content nobody wrote;
``lost``             content a device held before a sync is neither on its disk after
                     the sync nor in the server's honest history;
``hostile-change``   the device was shown a head that does not descend from the one
                     it accepted (rollback, replay, fork, another folder's head) and
                     it did not refuse, or its disk or base changed anyway;
``ack-lost``         a snapshot the honest server acknowledged is no longer in the
                     history of its head;
``resurrected``      a push re-added a file the server had deleted, with the content
                     it had in the base, though this device never touched it;
``conflict-version`` a keep-both conflict left one of the two versions off the disk;
``merge``            an automatic merge wrote something other than the certain merge
                     of the base, the device's and the server's versions (a verified
                     merge counts as written content for ``invented``);
``termination``      a fault-free sync fails (or refuses a head it had to accept), or
                     at quiescence a device fails to sync or keeps changing things;
``convergence``      at quiescence a device's folder differs from the head's tree;
``traffic``          at steady state a sync does more than ask for the head.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chunksync.mergepolicy import format_of
from chunksync.sync.engine import SyncResult
from chunksync.textmerge import Merged, merge_content

from .history import Flat, History
from .world import SimDevice


class Violation(Exception):
    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


def contents(tree: Flat) -> set[bytes]:
    return {d[1] for d in tree.values() if d[0] == "file"}


@dataclass
class SyncObservation:
    """One sync as the invariants see it."""

    device: SimDevice
    before: Flat
    base_before: str | None
    accept: bool
    hostile: str | None
    shown: str | None = None  # the first head this sync was shown (None: no snapshot)
    asked: bool = False  # whether the sync got as far as asking for the head
    error: str | None = None
    message: str = ""
    result: SyncResult | None = None
    after: Flat = field(default_factory=dict)
    base_after: str | None = None
    overwritten: set[bytes] = field(default_factory=set)  # replaced by a slow writer
    added: set[bytes] = field(default_factory=set)  # written by a slow writer
    writer_paths: set[str] = field(default_factory=set)  # where the slow writer wrote


def must_refuse(obs: SyncObservation, history: History, foreign: str) -> bool:
    """The ancestry rule, decided from the commit graph: a head that is neither the
    accepted one nor its descendant must be refused before anything changes."""
    if obs.accept or not obs.asked:
        return False
    if obs.shown is None:  # an empty server, though this device synced a snapshot
        return obs.base_before is not None
    if obs.shown == foreign:
        return True
    base = obs.base_before
    return base is not None and obs.shown != base and not history.descends(obs.shown, base)


def check_merges(obs: SyncObservation, history: History, written: set[bytes]) -> None:
    """Each automatic merge of the sync is recomputed from its three versions (the base
    and the server's from history, the device's from its disk before the sync) with the
    pure merge; the merged content must be exactly that, and then counts as written."""
    result = obs.result
    if result is None:
        return
    for m in result.merges:
        mine = obs.before.get(m.path)
        merged = history.file(m.entry.id)
        if m.base.id is None or m.theirs.id is None:
            raise Violation("merge", f"{obs.device.name}: merged {m.path} without versions")
        base, theirs = history.file(m.base.id), history.file(m.theirs.id)
        # the device's version: what its disk held before, or what a slow writer wrote
        locals_ = ([mine[1]] if mine is not None and mine[0] == "file" else []) + sorted(obs.added)
        for local in locals_:
            want = merge_content(base, local, theirs, format_of(m.path))
            if isinstance(want, Merged) and want.data == merged:
                break
        else:
            raise Violation("merge", f"{obs.device.name}: {m.path} is not the merge of its inputs")
        written.add(merged)


def check_sync(obs: SyncObservation, history: History, written: set[bytes], foreign: str) -> None:
    name = obs.device.name
    check_merges(obs, history, written)
    unknown = contents(obs.after) - written
    if unknown:
        raise Violation("invented", f"{name} holds {len(unknown)} content(s) nobody wrote")
    kept = contents(obs.after) | history.contents
    lost = (contents(obs.before) - obs.overwritten) | obs.added
    lost -= kept
    if lost:
        sample = next(iter(lost))[:40]
        raise Violation(
            "lost", f"{name}: {len(lost)} content(s) gone from disk and history, e.g. {sample!r}"
        )
    if must_refuse(obs, history, foreign):
        if obs.error is None:
            raise Violation(
                "hostile-change",
                f"{name} accepted head {str(obs.shown)[:12]} (not a descendant "
                f"of its base {str(obs.base_before)[:12]})",
            )
        changed = sorted(
            p
            for p in set(obs.before) | set(obs.after)
            if obs.before.get(p) != obs.after.get(p) and p not in obs.writer_paths
        )
        if changed or obs.base_after != obs.base_before:
            raise Violation(
                "hostile-change",
                f"{name} refused head {str(obs.shown)[:12]} ({obs.error}) but "
                f"changed paths {changed[:3]} base {obs.base_before != obs.base_after}",
            )
    result = obs.result
    if result is None or obs.added:
        return
    for conflict in result.conflicts:
        if conflict.copy_path is None or conflict.policy != "keep-both":
            continue
        mine = obs.before.get(conflict.path)
        if mine and mine[0] == "file" and mine[1] not in contents(obs.after):
            raise Violation(
                "conflict-version", f"{name}: local version of {conflict.path} not kept"
            )


def check_honest(obs: SyncObservation, partitioned: bool, refuse: bool) -> None:
    """A sync without faults, against the honest server, succeeds, unless it must
    refuse (its base is not in the server's history), is held for a mass deletion, or
    cannot reach the server."""
    allowed = {"HeldError"} | ({"NetworkError"} if partitioned else set())
    if obs.error is None or obs.error in allowed or (refuse and obs.error == "RollbackError"):
        return
    raise Violation(
        "termination", f"{obs.device.name}: a fault-free sync failed: {obs.error} {obs.message}"
    )


def check_resurrection(obs: SyncObservation, history: History) -> None:
    """After an honest push: nothing the remote deleted comes back unless this device
    touched it since its base."""
    result, base = obs.result, obs.base_before
    if result is None or not result.pushed or result.head is None or base is None or obs.accept:
        return
    commit = history.commit(bytes.fromhex(result.head))
    if not commit.parents or commit.parents[0].hex() == base:
        return
    parent = history.commit(commit.parents[0])
    remote = history.flat(parent.tree)
    pushed = history.flat(commit.tree)
    # what this device synced: its base, and any later snapshot of its own whose
    # acknowledgement it lost (answer dropped, crash after the head moved)
    bases = [base, *history.own_since(commit.parents[0].hex(), base, obs.device.name)]
    for known in bases:
        _check_deleted(obs, history.flat(history.commit(bytes.fromhex(known)).tree), remote, pushed)


def _check_deleted(obs: SyncObservation, base_tree: Flat, remote: Flat, pushed: Flat) -> None:
    for path, desc in sorted(base_tree.items()):
        if desc[0] != "file" or path in remote or path in obs.device.touched:
            continue
        if _replaced_above(path, remote):
            continue  # a directory replaced by a file there: a type clash keeps the local dir whole
        if pushed.get(path) == desc:
            raise Violation(
                "resurrected", f"{obs.device.name} pushed back {path}, deleted on the server"
            )


def _replaced_above(path: str, tree: Flat) -> bool:
    parts = path.split("/")
    return any(tree.get("/".join(parts[:i]), ("dir",))[0] != "dir" for i in range(1, len(parts)))


def check_acks(acks: set[str], history: History) -> None:
    for head in sorted(acks):
        if bytes.fromhex(head) not in history.reachable:
            raise Violation(
                "ack-lost", f"acknowledged snapshot {head[:12]} is not in the head's history"
            )


def check_converged(devices: list[SimDevice], trees: list[Flat], head: Flat) -> None:
    for device, tree in zip(devices, trees, strict=True):
        if tree != head:
            extra = sorted(set(tree) - set(head))[:3]
            missing = sorted(set(head) - set(tree))[:3]
            differ = sorted(p for p in set(tree) & set(head) if tree[p] != head[p])[:3]
            how = [
                f"{p}: {_short(tree[p])} here, {_short(head[p])} in the head" for p in differ[:1]
            ]
            raise Violation(
                "convergence",
                f"{device.name} differs from the head: extra {extra}, "
                f"missing {missing}, different {differ} {how}",
            )


def _short(desc: tuple) -> str:
    if desc[0] == "file":
        return f"file({len(desc[1])} bytes, exec={desc[2]})"
    return repr(desc)
