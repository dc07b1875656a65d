"""History is verified, not trusted: a new head must descend from the accepted one.

Commit ids are keyed hashes of their encoding, and every commit names its parents by
id, so a folder's history is a hash chain that only a key holder can extend. A server
(or anything between it and this device) controls which head it shows, though. It
could show an older head (rollback), replay a head this device saw before, or keep
two devices on two diverging chains (a fork) so that one device's edits vanish from
the other's view. Each of those is caught by one rule, checked before anything is
merged, applied or deleted:

    a head is accepted only if the commit chain from it reaches the head this
    device accepted last (its *base*).

The walk follows parent ids downwards and stops below the base's sequence number:
sequence numbers grow strictly along every chain (a commit whose parent does not have
a lower one is refused as malformed), so the walk visits at most the commits made
since the base and always ends. Commits are fetched a level at a time in batches and
verified like every object; the head log (one request a page) prefetches a long chain
so a device that was away for a thousand snapshots does not pay a thousand round trips.

The same rule makes the server's snapshot listing checkable: :func:`check_timeline`
refuses a head log whose entries do not form one chain (reordered, inserted or
forged entries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import IntegrityError, RollbackError
from ..objects import Commit, ObjectId, ObjectKind, id_from_hex, short_id
from ..wire import HeadLogEntry
from .objects_io import ObjectReader

__all__ = ["Accepted", "check_timeline", "verify_descent"]

MAX_WALK = 1_000_000  # commits; far beyond any real gap, so a forged chain cannot spin us
PREFETCH_PAGES = 20  # head-log pages of 1,000 used to batch-fetch a long chain


@dataclass(frozen=True, slots=True)
class Accepted:
    """The head this device accepted last: its commit id, the commit's sequence number,
    and (when known) the server's head-log position at which it was accepted."""

    head: str
    seq: int
    server_seq: int = 0
    epoch: str | None = None  # the server's storage epoch then (wire.HeadState)


def _what_to_do(root_hint: str) -> str:
    return (
        "nothing was changed here. If the server was restored from a backup on purpose, run "
        f"'chunksync sync {root_hint} --accept-server-history' to merge with it "
        "(nothing is deleted; differing files are kept as conflicted copies)"
    )


async def _prefetch(reader: ObjectReader, accepted: Accepted, head_server_seq: int) -> None:
    """Batch-fetch the commits the head log names between the base and the head."""
    if not accepted.server_seq or head_server_seq - accepted.server_seq <= 1:
        return
    after = accepted.server_seq
    for _ in range(PREFETCH_PAGES):
        page = await reader.store.head_log(after=after, limit=1000)
        if not page:
            return
        await reader.ensure(ObjectKind.COMMIT, [id_from_hex(e.head) for e in page])
        after = page[-1].seq
        if len(page) < 1000 or after >= head_server_seq:
            return


async def verify_descent(
    reader: ObjectReader,
    head: str,
    commit: Commit,
    accepted: Accepted,
    *,
    head_server_seq: int = 0,
    root_hint: str = "DIR",
) -> None:
    """Raise :class:`RollbackError` unless ``head`` is ``accepted.head`` or descends from it.

    Raises :class:`IntegrityError` for a chain whose sequence numbers do not decrease.
    """
    if head == accepted.head:
        return
    if commit.seq <= accepted.seq:
        older = "an older" if commit.seq < accepted.seq else "a different"
        raise RollbackError(
            f"the server offers snapshot {short_id(head)} (sequence {commit.seq}), {older} one than "
            f"snapshot {short_id(accepted.head)} (sequence {accepted.seq}) this device synced last: "
            f"the server rolled back, replayed or forked the history; {_what_to_do(root_hint)}"
        )
    await _prefetch(reader, accepted, head_server_seq)
    target = id_from_hex(accepted.head)
    seqs: dict[ObjectId, int] = {id_from_hex(head): commit.seq}
    frontier: list[ObjectId] = [id_from_hex(head)]
    while frontier:
        if len(seqs) > MAX_WALK:
            raise IntegrityError(f"snapshot {short_id(head)}: history too long to verify")
        lowest_child: dict[ObjectId, int] = {}  # parent -> lowest sequence among its children
        for oid in frontier:
            for parent in reader.load_commit(oid).parents:
                if parent == target:
                    return
                lowest_child[parent] = min(lowest_child.get(parent, seqs[oid]), seqs[oid])
        await reader.ensure(ObjectKind.COMMIT, sorted(p for p in lowest_child if p not in seqs))
        frontier = []
        for parent, child_seq in sorted(lowest_child.items()):
            parent_seq = seqs.get(parent)
            fresh = parent_seq is None
            if parent_seq is None:
                parent_seq = seqs[parent] = reader.load_commit(parent).seq
            if parent_seq >= child_seq:
                raise IntegrityError(
                    f"snapshot {short_id(parent)}: sequence numbers do not grow along the history"
                )
            if fresh and parent_seq > accepted.seq:
                frontier.append(parent)
    raise RollbackError(
        f"the server offers snapshot {short_id(head)} (sequence {commit.seq}), which does not descend "
        f"from snapshot {short_id(accepted.head)} this device synced last: the history was forked "
        f"(another device's snapshots were replaced); {_what_to_do(root_hint)}"
    )


def check_timeline(entries: Sequence[HeadLogEntry], commits: Sequence[Commit]) -> None:
    """Refuse a head log that is not one chain: each head's first parent must be the
    head before it (the server moves heads only by compare-and-swap on exactly that),
    and the first entry of the whole log must be a root commit."""
    for i, (entry, commit) in enumerate(zip(entries, commits, strict=True)):
        previous = entries[i - 1].head if i else None
        first_parent = commit.parents[0].hex() if commit.parents else None
        if first_parent != previous or entry.previous != previous:
            raise IntegrityError(
                f"the server's snapshot list is not one history at entry {entry.seq} "
                f"(snapshot {short_id(entry.head)}): entries were reordered, inserted or forged"
            )
