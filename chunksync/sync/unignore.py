"""Paths that stop being ignored are pulled, never deleted elsewhere.

:mod:`.graft` makes an ignored path agree with the server, so it also lands in the base
snapshot this device records, although this device never had it on disk. When the rules
later stop ignoring it (a ``!pattern`` arrives in the shared ``.chunksyncignore``, say
on a device that just joined, or a line leaves ``.chunksync/ignore``), the merge would
see base-has / disk-lacks — a local deletion — and push it to every device. So before
merging, the engine drops such paths from the base: for the merge they are then new on
the server and are pulled (or, if the disk has them too, merged as both added).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..objects import ObjectId, Tree
from ..treediff import join

__all__ = ["forget_unignored"]

Rule = Callable[[str, bool], bool]


def forget_unignored(
    base: ObjectId,
    was_ignored: Rule,
    is_ignored: Rule,
    load: Callable[[ObjectId], Tree],
    store: Callable[[Tree], ObjectId],
    prefix: str = "",
) -> ObjectId:
    """``base`` without the entries ignored by the previous rules and not by the current."""
    entries = []
    changed = False
    for entry in load(base).entries:
        path = join(prefix, entry.name)
        is_dir = entry.kind == "dir"
        if was_ignored(path, is_dir) and not is_ignored(path, is_dir):
            changed = True
            continue
        if is_dir and entry.id is not None:
            sub = forget_unignored(entry.id, was_ignored, is_ignored, load, store, path)
            if sub != entry.id:
                entry = dataclasses.replace(entry, id=sub)
                changed = True
        entries.append(entry)
    return store(Tree.of(entries)) if changed else base
