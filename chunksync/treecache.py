"""Decoded directory listings, kept between scans of a daemon.

A daemon's scan takes every clean directory from its cached tree (:mod:`chunksync.scanner`)
and, to report the folder's entries, expands them: with 20,000 files that decoded every
listing of the folder on every save, ~40% of a propagation's CPU. Trees are immutable and
named by a keyed hash of their bytes, so a decoded one stays right for as long as we keep
it: :class:`TreeCache` is a small LRU, bounded by the number of entries it holds (not
trees), so one huge directory cannot pin memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from .errors import IntegrityError
from .objects import ObjectId, ObjectKind, Tree, TreeParts, decode_object
from .treeparts import load_tree

__all__ = ["TREES", "TreeCache"]


class TreeCache:
    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._trees: OrderedDict[ObjectId, Tree] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def load(
        self, tree_id: ObjectId, fetch: Callable[[ObjectId], tuple[ObjectKind, bytes] | None]
    ) -> Tree | None:
        """The decoded tree ``tree_id`` (``fetch`` reads it and its parts on a miss); None
        if it or a part is absent, not a tree, or malformed."""
        with self._lock:
            tree = self._trees.get(tree_id)
            if tree is not None:
                self._trees.move_to_end(tree_id)
                return tree

        def read(oid: ObjectId) -> Tree | TreeParts:
            found = fetch(oid)
            if found is None or found[0] != ObjectKind.TREE:
                raise KeyError(oid)
            obj = decode_object(ObjectKind.TREE, found[1], oid)
            assert isinstance(obj, Tree | TreeParts)  # nosec B101  # a TREE decodes so
            return obj

        try:
            tree = load_tree(tree_id, read)  # a split listing is put together from its parts
        except (KeyError, IntegrityError):
            return None
        with self._lock:
            if tree_id not in self._trees and len(tree.entries) <= self.max_entries:
                self._trees[tree_id] = tree
                self._size += len(tree.entries)
                while self._size > self.max_entries:
                    _, old = self._trees.popitem(last=False)
                    self._size -= len(old.entries)
        return tree


#: one per process: a daemon's folders have distinct keys, so their tree ids never collide
TREES = TreeCache()
