"""A push whose answer was lost still happened: remember it, and merge from it.

The head moves on the server by compare-and-swap; the device records its new base only
once the answer arrives. If the answer is lost (the connection drops, the device is
killed just after the server moved the head), the server holds the device's snapshot
but the device's base is the one before. On the next sync, if another device deleted a
file of that snapshot in the meantime, a merge from the old base sees the file as a
local addition and puts it back: a deletion resurrected (found by the simulator,
tests/sim, docs/reliability.md).

So the engine writes an *intent* — the id of the commit it is about to make the head —
in one index transaction before the compare-and-swap. At the next round, if the
server's head descends from that commit, the push went in, and its tree (which was on
disk: the merge is applied before the push) is the merge base, not the older base.
An intent whose sequence number the accepted base has reached is spent and dropped.
"""

from __future__ import annotations

from ..errors import ChunksyncError
from ..objects import ObjectId, id_from_hex
from ..storage.index import Index
from .lineage import Accepted, verify_descent
from .objects_io import ObjectReader

__all__ = ["INTENT", "landed_base", "record_intent"]

INTENT = "push_intent"  # index meta key: hex ids of the commits being made the head, oldest first
MAX_PENDING = 8  # intents kept while unresolved (a lost answer, then a push refused by CAS...)


def _pending(index: Index) -> list[str]:
    raw = index.get_meta(INTENT)
    return raw.decode("ascii", "replace").split() if raw else []


def record_intent(index: Index, commit_id: ObjectId) -> None:
    """Durably note the push about to happen (before the compare-and-swap). Earlier
    unresolved intents are kept: a push whose answer was lost may be followed by one the
    compare-and-swap refuses, and forgetting the first would lose the base it set."""
    ids = [*_pending(index), commit_id.hex()][-MAX_PENDING:]
    with index.write() as w:
        w.set_meta(INTENT, " ".join(ids).encode())


async def landed_base(
    reader: ObjectReader,
    index: Index,
    head: str | None,
    accepted: Accepted | None,
    base_root: ObjectId | None,
) -> ObjectId | None:
    """The merge base: the tree of this device's newest push that reached the head though
    its answer was lost, else ``base_root`` unchanged. Intents the accepted base has
    reached are spent and dropped."""
    pending = _pending(index)
    if not pending or head is None or accepted is None:
        return base_root
    spent: set[str] = set()
    landed: ObjectId | None = None
    head_commit = None
    for pushed in reversed(pending):  # newest first
        if pushed == accepted.head:
            spent.add(pushed)
            continue
        try:
            commit = await reader.commit(id_from_hex(pushed))
            if commit.seq <= accepted.seq:
                spent.add(pushed)
                continue
            if pushed != head:
                head_commit = head_commit or await reader.commit(id_from_hex(head))
                await verify_descent(reader, head, head_commit, Accepted(pushed, commit.seq))
        except ChunksyncError:
            continue  # that push never went in (or cannot be read): look at the older ones
        landed = commit.tree
        break
    if spent:
        with index.write() as w:
            rest = [p for p in pending if p not in spent]
            if rest:
                w.set_meta(INTENT, " ".join(rest).encode())
            else:
                w.delete_meta(INTENT)
    return base_root if landed is None else landed
