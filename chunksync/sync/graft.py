"""Ignored paths take part in no sync: neither pulled here nor deleted elsewhere.

The scanner leaves ignored paths out of the local tree. Merged as they are, a file that
exists on the server but is ignored on this device (say by its own
``.chunksync/ignore``) would look deleted locally, and the deletion would be pushed
to every other device. Before merging, the engine therefore grafts the remote
entries of ignored paths into the local tree: for those paths the device then agrees
with the server, so the merge neither writes nor deletes them (Syncthing's behaviour).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..objects import ObjectId, Tree
from ..trampoline import Walk, run
from ..treediff import join

__all__ = ["graft_ignored"]


def graft_ignored(
    local: ObjectId,
    remote: ObjectId | None,
    is_ignored: Callable[[str, bool], bool],
    load: Callable[[ObjectId], Tree],
    store: Callable[[Tree], ObjectId],
    prefix: str = "",
) -> ObjectId:
    """``local`` plus the remote entries of ignored paths it lacks (a new root id if any).

    Descends only into directories present on both sides whose ids differ, through
    :func:`chunksync.trampoline.run` (no recursion, so any depth works).
    """
    return run(_graft(local, remote, is_ignored, load, store, prefix))


def _graft(
    local: ObjectId,
    remote: ObjectId | None,
    is_ignored: Callable[[str, bool], bool],
    load: Callable[[ObjectId], Tree],
    store: Callable[[Tree], ObjectId],
    prefix: str,
) -> Walk[ObjectId]:
    if remote is None or local == remote:
        return local
    mine = load(local).by_name()
    entries = dict(mine)
    for theirs in load(remote).entries:
        path = join(prefix, theirs.name)
        ours = mine.get(theirs.name)
        if ours is None:
            if is_ignored(path, theirs.kind == "dir"):
                entries[theirs.name] = theirs
        elif ours.kind == theirs.kind == "dir" and ours.id != theirs.id:
            # B101: invariant for the type checker
            assert ours.id is not None and theirs.id is not None  # nosec B101
            sub = yield _graft(ours.id, theirs.id, is_ignored, load, store, path)
            if sub != ours.id:
                entries[theirs.name] = dataclasses.replace(ours, id=sub)
    if entries == mine:
        return local
    return store(Tree.of(list(entries.values())))
