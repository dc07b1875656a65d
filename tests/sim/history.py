"""What the honest server holds, decrypted with the folder key, incrementally.

The simulator is a key holder, so it can read the server's history the way a device
does; it reads the store's internals directly (no faults, no counting), and caches
every object it decoded, so checking after every step costs only what is new.
"""

from __future__ import annotations

import os
import unicodedata

from chunksync.crypto.folder_keys import FolderKeys
from chunksync.crypto.seal import open_blob
from chunksync.errors import ChunksyncError
from chunksync.objects import (
    Commit,
    FileManifest,
    ObjectId,
    ObjectKind,
    Tree,
    TreeParts,
    decode_object,
)
from chunksync.transport.memory import MemoryChunkStore
from chunksync.treeparts import load_tree

#: a flattened tree: NFC path -> ("file", bytes, exec) | ("dir",) | ("symlink", target)
Flat = dict[str, tuple]


class History:
    def __init__(self, store: MemoryChunkStore, keys: FolderKeys) -> None:
        self.store = store
        self.keys = keys
        self.contents: set[bytes] = set()  # every file content in any honest snapshot
        self._commits: dict[bytes, Commit] = {}
        self._trees: dict[bytes, Tree] = {}
        self._files: dict[bytes, bytes] = {}
        self._seen_commits: set[bytes] = set()
        self._seen_trees: set[bytes] = set()
        self._log_done = 0
        self.reachable: set[bytes] = set()  # commits reachable from the honest head
        self._reachable_from: bytes | None = None

    def _open(self, kind: ObjectKind, oid: bytes) -> bytes:
        blob = self.store.peek(ObjectId(oid))
        if blob is None:
            raise KeyError(oid.hex())
        return open_blob(self.keys, kind, ObjectId(oid), blob)

    def commit(self, oid: bytes) -> Commit:
        if oid not in self._commits:
            c = decode_object(ObjectKind.COMMIT, self._open(ObjectKind.COMMIT, oid))
            assert isinstance(c, Commit)
            self._commits[oid] = c
        return self._commits[oid]

    def _tree_object(self, oid: bytes) -> Tree | TreeParts:
        t = decode_object(ObjectKind.TREE, self._open(ObjectKind.TREE, oid))
        assert isinstance(t, Tree | TreeParts)
        return t

    def tree(self, oid: bytes) -> Tree:
        if oid not in self._trees:
            self._trees[oid] = load_tree(ObjectId(oid), self._tree_object)
        return self._trees[oid]

    def file(self, oid: bytes) -> bytes:
        if oid not in self._files:
            m = decode_object(ObjectKind.FILE, self._open(ObjectKind.FILE, oid))
            assert isinstance(m, FileManifest)
            self._files[oid] = b"".join(self._open(ObjectKind.CHUNK, c.id) for c in m.chunks)
        return self._files[oid]

    def update(self) -> None:
        """Take in the snapshots added to the head log since the last call."""
        log = self.store._log
        frontier = [bytes.fromhex(e.head) for e in log[self._log_done :]]
        self._log_done = len(log)
        while frontier:
            cid = frontier.pop()
            if cid in self._seen_commits:
                continue
            self._seen_commits.add(cid)
            commit = self.commit(cid)
            frontier.extend(commit.parents)
            self._collect(commit.tree)
        head = self.store._head.head
        if head is not None and bytes.fromhex(head) != self._reachable_from:
            self._reach(bytes.fromhex(head))

    def _collect(self, tree_id: bytes) -> None:
        stack = [tree_id]
        while stack:
            tid = stack.pop()
            if tid in self._seen_trees:
                continue
            self._seen_trees.add(tid)
            for entry in self.tree(tid).entries:
                if entry.kind == "dir" and entry.id is not None:
                    stack.append(entry.id)
                elif entry.kind == "file" and entry.id is not None:
                    self.contents.add(self.file(entry.id))

    def _reach(self, head: bytes) -> None:
        old = self._reachable_from
        if old is not None and not self.descends(head.hex(), old.hex()):
            self.reachable = set()  # the head moved off its own history: recompute all
        frontier = [head]
        while frontier:
            cid = frontier.pop()
            if cid in self.reachable:
                continue
            self.reachable.add(cid)
            frontier.extend(self.commit(cid).parents)
        self._reachable_from = head

    def descends(self, head: str, ancestor: str) -> bool:
        """Whether ``head`` is ``ancestor`` or has it in its history (any commit the store
        holds, honest or not; a commit that does not decrypt descends from nothing)."""
        target = bytes.fromhex(ancestor)
        seen: set[bytes] = set()
        frontier = [bytes.fromhex(head)]
        while frontier:
            cid = frontier.pop()
            if cid == target:
                return True
            if cid in seen:
                continue
            seen.add(cid)
            try:
                frontier.extend(self.commit(cid).parents)
            except (KeyError, ChunksyncError):
                continue
        return False

    def own_since(self, head: str, base: str, device: str) -> list[str]:
        """Commits by ``device`` in the history of ``head`` after ``base``."""
        out: list[str] = []
        frontier, seen = [bytes.fromhex(head)], set()
        stop = bytes.fromhex(base)
        while frontier:
            cid = frontier.pop()
            if cid in seen or cid == stop:
                continue
            seen.add(cid)
            commit = self.commit(cid)
            if commit.device == device:
                out.append(cid.hex())
            frontier.extend(commit.parents)
        return sorted(out)

    def flat(self, tree_id: bytes | None) -> Flat:
        out: Flat = {}
        if tree_id is None:
            return out
        stack = [("", tree_id)]
        while stack:
            prefix, tid = stack.pop()
            for e in self.tree(tid).entries:
                path = f"{prefix}{e.name}"
                if e.kind == "dir":
                    out[path] = ("dir",)
                    if e.id is not None:
                        stack.append((path + "/", e.id))
                elif e.kind == "symlink":
                    out[path] = ("symlink", e.target)
                else:
                    out[path] = ("file", self.file(e.id) if e.id else b"", e.executable)
        return out

    def head_flat(self) -> Flat:
        head = self.store._head.head
        return {} if head is None else self.flat(self.commit(bytes.fromhex(head)).tree)


def disk_tree(root: str) -> Flat:
    """A folder as :meth:`History.flat` describes a tree: NFC names, no mtimes, no
    ``.chunksync`` (tests.helpers.devices.tree_of, with os.scandir for speed)."""
    out: Flat = {}
    stack = [("", root)]
    while stack:
        prefix, path = stack.pop()
        with os.scandir(path) as it:
            items = sorted(it, key=lambda i: i.name)
        for item in items:
            rel = unicodedata.normalize("NFC", prefix + item.name)
            if rel in out:  # an NFC/NFD twin: kept apart, under its own spelling
                rel = f"{prefix}{item.name} (twin)"
            if item.is_symlink():
                out[rel] = ("symlink", os.readlink(item.path))
            elif item.is_dir():
                if rel == ".chunksync" and not prefix:
                    continue
                out[rel] = ("dir",)
                stack.append((rel + "/", item.path))
            else:
                with open(item.path, "rb") as f:
                    data = f.read()
                out[rel] = (
                    "file",
                    data,
                    bool(item.stat(follow_symlinks=False).st_mode & 0o111),
                )  # as the scanner
    return out
