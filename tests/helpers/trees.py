"""Small in-memory Merkle trees for planner tests, and a simulator for plan actions.

``TreeStore.build({"a.txt": b"content", "d": {"b.txt": b"x"}})`` turns a nested dict
into :class:`~chunksync.objects.Tree` objects with deterministic fake ids (SHA-256 of
the canonical encoding, so equal trees get equal ids as with the real keyed hash).
Values: ``bytes`` (a file), :class:`File` (a file with mtime or exec bit),
:class:`Link` (a symlink) or a dict (a directory).

:func:`apply_actions` plays a plan's actions on a flat ``{path: TreeEntry}`` picture of
the local disk, checking each action's ``expect`` and ordering the way the engine
must (parents exist, directories empty before rmdir), so tests can assert that the
actions really turn the local tree into the merged tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Union

from chunksync.objects import ObjectId, Tree, TreeEntry
from chunksync.sync.plan import Action, Plan


@dataclass(frozen=True)
class File:
    content: bytes
    mtime_ns: int = 0
    executable: bool = False


@dataclass(frozen=True)
class Link:
    target: str


Spec = dict[str, Union[bytes, File, Link, "Spec"]]
Shown = bytes | File | Link | str


def fake_id(kind: str, data: bytes) -> ObjectId:
    return ObjectId(hashlib.sha256(kind.encode() + b"\0" + data).digest())


@dataclass
class TreeStore:
    """A dict of trees plus file contents; ``load_tree`` records and can refuse loads."""

    trees: dict[ObjectId, Tree] = field(default_factory=dict)
    contents: dict[ObjectId, bytes] = field(default_factory=dict)
    loads: list[ObjectId] = field(default_factory=list)
    refuse: set[ObjectId] = field(default_factory=set)

    def tree_id(self, tree: Tree) -> ObjectId:
        return fake_id("tree", tree.encode())

    def put(self, tree: Tree) -> ObjectId:
        oid = self.tree_id(tree)
        self.trees[oid] = tree
        return oid

    def load_tree(self, oid: ObjectId) -> Tree:
        if oid in self.refuse:
            raise AssertionError(f"planner loaded an unchanged subtree {oid.hex()[:12]}")
        self.loads.append(oid)
        return self.trees[oid]

    def entry(self, name: str, value: bytes | File | Link | Spec) -> TreeEntry:
        if isinstance(value, dict):
            return TreeEntry(name, "dir", id=self.build(value))
        if isinstance(value, Link):
            return TreeEntry(name, "symlink", target=value.target)
        file = value if isinstance(value, File) else File(value)
        oid = fake_id("file", file.content)
        self.contents[oid] = file.content
        return TreeEntry(
            name,
            "file",
            id=oid,
            size=len(file.content),
            mtime_ns=file.mtime_ns,
            executable=file.executable,
        )

    def build(self, spec: Spec) -> ObjectId:
        return self.put(Tree.of([self.entry(name, value) for name, value in spec.items()]))

    def absorb(self, plan: Plan) -> None:
        self.trees.update(plan.new_trees)

    def flatten(self, root: ObjectId | None, prefix: str = "") -> dict[str, TreeEntry]:
        out: dict[str, TreeEntry] = {}
        if root is None:
            return out
        for entry in self.trees[root].entries:
            path = f"{prefix}{entry.name}"
            out[path] = entry
            if entry.kind == "dir":
                assert entry.id is not None
                out.update(self.flatten(entry.id, path + "/"))
        return out

    def show_entry(self, entry: TreeEntry) -> Shown:
        if entry.kind == "dir":
            return "dir"
        if entry.kind == "symlink":
            assert entry.target is not None
            return Link(entry.target)
        assert entry.id is not None
        content = self.contents[entry.id]
        if entry.executable or entry.mtime_ns:
            return File(content, entry.mtime_ns, entry.executable)
        return content

    def show(self, root: ObjectId | None) -> dict[str, Shown]:
        """``{path: content | "dir" | Link | File}`` for readable assertions."""
        return {path: self.show_entry(e) for path, e in self.flatten(root).items()}

    def show_flat(self, flat: dict[str, TreeEntry]) -> dict[str, Shown]:
        return {path: self.show_entry(e) for path, e in sorted(flat.items())}

    def build_flat(self, flat: dict[str, TreeEntry], prefix: str = "") -> ObjectId:
        """Rebuild a tree from a flat picture (directories get fresh ids)."""
        entries = []
        for path, entry in flat.items():
            rest = path[len(prefix) :]
            if not path.startswith(prefix) or "/" in rest:
                continue
            if entry.kind == "dir":
                sub = self.build_flat(flat, path + "/")
                entry = TreeEntry(entry.name, "dir", id=sub, mtime_ns=entry.mtime_ns)
            entries.append(entry)
        return self.put(Tree.of(entries))


def _matches(current: TreeEntry | None, expect: TreeEntry | None) -> bool:
    if current is None or expect is None:
        return current is expect
    if expect.kind == "dir":  # a directory's content changes as its children are applied
        return current.kind == "dir"
    return current == expect


def _check_parent(state: dict[str, TreeEntry], path: str) -> None:
    parent = path.rpartition("/")[0]
    if parent:
        assert state.get(parent) is not None and state[parent].kind == "dir", (
            f"parent of {path} does not exist"
        )


def apply_actions(local: dict[str, TreeEntry], actions: Iterable[Action]) -> dict[str, TreeEntry]:
    """Play actions on a flat picture of the disk, as the engine would (with re-checks)."""
    state = dict(local)
    for action in actions:
        path = action.path
        assert _matches(state.get(path), action.expect), f"expect mismatch: {action}"
        if action.op in ("write", "symlink", "mkdir", "set_meta"):
            assert action.entry is not None and action.entry.name == path.rpartition("/")[2]
            _check_parent(state, path)
            state[path] = action.entry
        elif action.op == "delete":
            assert state[path].kind != "dir"
            del state[path]
        elif action.op == "rmdir":
            assert not any(p.startswith(path + "/") for p in state), f"rmdir non-empty {path}"
            del state[path]
        elif action.op == "rename_local":
            assert action.dest is not None and action.entry is not None
            assert action.dest not in state and state[path].kind != "dir"
            state[action.dest] = action.entry
            del state[path]
        else:  # pragma: no cover
            raise AssertionError(f"unknown op {action.op}")
    return state


def comparable(flat: dict[str, TreeEntry]) -> dict[str, TreeEntry | str]:
    """Directories compared by existence, everything else by the whole entry."""
    return {p: ("dir" if e.kind == "dir" else e) for p, e in flat.items()}
