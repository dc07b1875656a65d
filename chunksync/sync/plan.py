"""The three-way merge planner: three Merkle trees in, a merged tree and actions out.

:func:`plan_merge` is sans-IO. It reads trees only through ``load_tree`` (a lookup in
memory that may raise ``KeyError``), takes time and device names as arguments, and
returns a :class:`Plan`: the merged root, the trees it had to build, the conflicts it
found and the :class:`Action` list that turns the local disk into the merged tree.
:mod:`chunksync.sync.engine` executes the actions; the planner never touches a file.

Guarantees (DESIGN.md §4 step 3, rules in :func:`chunksync.conflict.classify`):

* **Merkle descent**: a subtree whose id is equal on the sides that matter is never
  loaded; if ``base == local`` the plan is the diff local → remote, if ``base ==
  remote`` it keeps local and pushes.
* **No version lost**: a local file is deleted only when it is in the base and
  unchanged locally; every conflict keeps both versions (or, under last-write-wins,
  lists the loser, which stays in history). A missing remote head (``remote=None``)
  is treated as "no remote changes", so an empty or wiped server never deletes
  anything locally.
* **Safe paths**: every path an action touches passes
  :func:`chunksync.paths.validate_relpath`, so a hostile tree is refused (with
  :class:`~chunksync.errors.UnsafePathError`) before anything touches the disk.
* **Executable order**: all ``rename_local`` first (conflicting local versions move to
  their copy names), then ``delete``/``rmdir`` (children before their directory), then
  ``mkdir``/``write``/``set_meta`` (a directory before its children), then
  ``symlink``, so no write can go through a link created by the same plan. Deleting
  before creating also keeps case-only renames safe on case-insensitive filesystems.
* Every action carries ``expect``: the local entry the merge saw at that path (None:
  nothing may be there). The engine re-checks it before acting and re-plans if not.
* **Any depth**: the directory walks are generator steps driven by
  :func:`chunksync.trampoline.run` (``yield self.step(...)`` where a recursive call
  would be), so a folder nested thousands of levels deep merges without RecursionError.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..conflict import (
    Conflict,
    ConflictKind,
    ConflictPolicies,
    Policy,
    classify,
    conflict_name,
    explain,
    name_clash,
    name_keeper,
    newer_side,
    same_content,
)
from ..errors import ObjectNotFound
from ..mergepolicy import AutoMerge, MergeCandidate, MergeResolution, decide
from ..objects import ObjectId, Tree, TreeEntry, short_id
from ..paths import validate_relpath, validate_symlink_target
from ..trampoline import Walk, run

__all__ = ["Action", "Op", "Plan", "plan_merge"]

Op = Literal["write", "mkdir", "symlink", "delete", "rmdir", "rename_local", "set_meta"]


@dataclass(frozen=True, slots=True)
class Action:
    """One step for the engine.

    ``entry`` is what ends up at ``path`` (at ``dest`` for ``rename_local``; None for
    deletions); ``expect`` is what the merge saw locally at ``path`` (None: nothing).
    """

    op: Op
    path: str
    entry: TreeEntry | None
    expect: TreeEntry | None
    dest: str | None = None


@dataclass(frozen=True)
class Plan:
    """The result of a merge. ``summary`` counts files added/modified/deleted vs remote."""

    merged_root: ObjectId
    new_trees: dict[ObjectId, Tree]
    actions: tuple[Action, ...]
    conflicts: tuple[Conflict, ...]
    push_needed: bool
    summary: dict[str, int]
    #: files both sides changed whose policy is merge, with no resolution given yet:
    #: the engine tries a content merge and plans again (sync/automerge.py)
    merge_candidates: tuple[MergeCandidate, ...] = ()
    #: files merged automatically: their merged version is written and pushed
    auto_merges: tuple[AutoMerge, ...] = ()


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _fold(name: str) -> str:
    """The key under which names collide on a case-insensitive, normalizing filesystem."""
    return unicodedata.normalize("NFC", name).casefold()


class _Merger:
    """State of one merge: the action lists per phase, conflicts and built trees."""

    def __init__(
        self,
        load_tree: Callable[[ObjectId], Tree],
        tree_id: Callable[[Tree], ObjectId],
        *,
        device: str,
        now: datetime,
        policies: ConflictPolicies,
        remote_device: str | None,
        strict_portable: bool,
        merges: Mapping[str, MergeResolution],
    ) -> None:
        self._load_tree = load_tree
        self._tree_id = tree_id
        self._device = device
        self._now = now
        self._policies = policies
        self._remote_device = remote_device
        self._strict = strict_portable
        self._merges = merges
        self.candidates: list[MergeCandidate] = []
        self.auto_merges: list[AutoMerge] = []
        self.renames: list[Action] = []
        self.removals: list[Action] = []
        self.creations: list[Action] = []
        self.links: list[Action] = []
        self.conflicts: list[Conflict] = []
        self.new_trees: dict[ObjectId, Tree] = {}
        self._seen: dict[ObjectId, dict[str, TreeEntry]] = {}  # each tree loaded once

    # -- trees ---------------------------------------------------------------------

    def entries(self, oid: ObjectId | None) -> dict[str, TreeEntry]:
        if oid is None:
            return {}
        entries = self._seen.get(oid)
        if entries is None:
            tree = self.new_trees.get(oid)
            if tree is None:
                try:
                    tree = self._load_tree(oid)
                except KeyError:
                    raise ObjectNotFound(
                        f"tree {short_id(oid)} needed for the merge is not available"
                    ) from None
            entries = self._seen[oid] = tree.by_name()
        return entries

    def build(self, entries: list[TreeEntry], known: tuple[ObjectId | None, ...]) -> ObjectId:
        tree = Tree.of(entries)
        oid = self._tree_id(tree)
        if oid not in known:
            self.new_trees[oid] = tree
        return oid

    # -- actions -------------------------------------------------------------------

    def emit(self, action: Action, at: int | None = None) -> None:
        validate_relpath(action.path, strict_portable=self._strict)
        if action.dest is not None:
            validate_relpath(action.dest, strict_portable=self._strict)
        if action.entry is not None and action.entry.kind == "symlink":
            validate_symlink_target(action.entry.target or "", action.path)
        if action.op == "rename_local":
            self.renames.append(action)
        elif action.op in ("delete", "rmdir"):
            self.removals.append(action)
        elif action.op == "symlink":
            self.links.append(action)
        elif at is not None:
            self.creations.insert(at, action)
        else:
            self.creations.append(action)

    def create(self, path: str, entry: TreeEntry) -> Walk[None]:
        """Bring ``entry`` into existence where nothing is on disk now."""
        if entry.kind == "file":
            self.emit(Action("write", path, entry, None))
        elif entry.kind == "symlink":
            self.emit(Action("symlink", path, entry, None))
        else:
            self.emit(Action("mkdir", path, entry, None))
            for name, child in sorted(self.entries(entry.id).items()):
                yield self.create(_join(path, name), child)

    def remove(self, path: str, entry: TreeEntry) -> Walk[None]:
        """Delete a synced local entry (children first)."""
        if entry.kind != "dir":
            self.emit(Action("delete", path, None, entry))
            return
        for name, child in sorted(self.entries(entry.id).items()):
            yield self.remove(_join(path, name), child)
        self.emit(Action("rmdir", path, None, entry))

    def transform(self, path: str, mine: TreeEntry | None, theirs: TreeEntry | None) -> Walk[None]:
        """Turn the local ``mine`` (unchanged since base, or absent) into ``theirs``."""
        if mine == theirs:
            return
        if mine is None:
            assert theirs is not None  # nosec B101  # invariant for the type checker
            yield self.create(path, theirs)
        elif theirs is None:
            yield self.remove(path, mine)
        elif mine.kind == theirs.kind and (mine.id, mine.target) == (theirs.id, theirs.target):
            if mine.kind != "dir":  # same bytes: only mtime or the exec bit to change
                self.emit(Action("set_meta", path, theirs, mine))
        elif mine.kind == theirs.kind == "dir":
            yield self.diff_dir(path, mine.id, theirs.id)
        elif mine.kind == theirs.kind:
            self.emit(Action("write" if mine.kind == "file" else "symlink", path, theirs, mine))
        else:
            yield self.remove(path, mine)
            yield self.create(path, theirs)

    def diff_dir(self, path: str, mine: ObjectId | None, theirs: ObjectId | None) -> Walk[None]:
        if mine == theirs:
            return
        me, te = self.entries(mine), self.entries(theirs)
        for name in sorted(me.keys() | te.keys()):
            yield self.transform(_join(path, name), me.get(name), te.get(name))

    # -- merge ---------------------------------------------------------------------

    def merge_dir(
        self, path: str, base: ObjectId | None, mine: ObjectId | None, theirs: ObjectId | None
    ) -> Walk[ObjectId | None]:
        """Merge one directory; None when the merged directory has no entries."""
        if mine == theirs:
            return theirs
        if base == mine:
            yield self.diff_dir(path, mine, theirs)
            return theirs
        if base == theirs:
            return mine
        be, me, te = self.entries(base), self.entries(mine), self.entries(theirs)
        merged: dict[str, TreeEntry] = {}
        taken = set(me) | set(te)
        for name in sorted(be.keys() | me.keys() | te.keys()):
            yield self.merge_entry(
                path, name, be.get(name), me.get(name), te.get(name), merged, taken
            )
        self.report_name_clashes(path, me, te, merged)
        if not merged:
            return None
        if merged == te:
            return theirs
        if merged == me:
            return mine
        return self.build(list(merged.values()), (base, mine, theirs))

    def merge_entry(
        self,
        parent: str,
        name: str,
        base: TreeEntry | None,
        mine: TreeEntry | None,
        theirs: TreeEntry | None,
        merged: dict[str, TreeEntry],
        taken: set[str],
    ) -> Walk[None]:
        path = _join(parent, name)
        verdict = classify(base, mine, theirs)
        if verdict.outcome in ("keep", "same"):
            if mine is not None and theirs is not None:
                keep_mine = theirs.kind != "dir" and theirs == base and mine != base
                merged[name] = mine if keep_mine else theirs
                yield self.transform(path, mine, merged[name])
        elif verdict.outcome == "take-mine":
            if mine is not None:
                merged[name] = mine
        elif verdict.outcome == "take-theirs":
            if theirs is not None:
                merged[name] = theirs
            yield self.transform(path, mine, theirs)
        elif verdict.outcome == "recurse":
            yield self.merge_subdir(path, name, base, mine, theirs, merged)
        else:
            assert mine is not None and theirs is not None  # nosec B101  # for the type checker
            assert verdict.conflict is not None  # nosec B101  # invariant for the type checker
            why = self.auto_merge(path, name, base, mine, theirs, merged)
            if why is None:
                return
            yield self.keep_both(path, name, verdict.conflict, mine, theirs, merged, taken, why)
            return
        if verdict.conflict == "modify-delete":
            kept: Literal["local", "remote"] = (
                "local" if verdict.outcome == "take-mine" else "remote"
            )
            self.report("modify-delete", path, kept, None)

    def merge_subdir(
        self,
        path: str,
        name: str,
        base: TreeEntry | None,
        mine: TreeEntry | None,
        theirs: TreeEntry | None,
        merged: dict[str, TreeEntry],
    ) -> Walk[None]:
        """Two directories (or a changed one vs a deleted one): merge their children."""
        mark = len(self.creations)
        sub = yield self.merge_dir(
            path,
            base.id if base is not None and base.kind == "dir" else None,
            mine.id if mine is not None else None,
            theirs.id if theirs is not None else None,
        )
        if sub is None and (mine is None or theirs is None):
            if mine is not None:  # deleted remotely, and nothing local survived in it
                self.emit(Action("rmdir", path, None, mine))
            return
        if sub is None:
            sub = self.build([], ())
        meta = theirs if theirs is not None else mine
        assert meta is not None  # nosec B101  # invariant for the type checker
        merged[name] = TreeEntry(name, "dir", id=sub, mtime_ns=meta.mtime_ns)
        if mine is None:  # deleted locally, edited remotely: recreate before children
            self.emit(Action("mkdir", path, merged[name], None), at=mark)

    def auto_merge(
        self,
        path: str,
        name: str,
        base: TreeEntry | None,
        mine: TreeEntry,
        theirs: TreeEntry,
        merged: dict[str, TreeEntry],
    ) -> str | None:
        """Take the engine's content merge of a file both sides changed, if it made
        one for exactly these versions: None when merged, else why not ("" when the
        policy is not merge, so nothing is said)."""
        policy = self._policies.for_path(path)
        if policy != "merge":
            return ""
        fmt = decide(policy, base, mine, theirs, path)
        if fmt not in ("text", "json"):
            return fmt
        assert base is not None  # nosec B101  # decide() checked it
        resolution = self._merges.get(path)
        if resolution is None or resolution.key != MergeResolution.key_of(base, mine, theirs):
            self.candidates.append(MergeCandidate(path, base, mine, theirs))
            return "it was not merged yet"
        if resolution.entry is None:
            return resolution.reason
        entry = dataclasses.replace(resolution.entry, name=name)
        merged[name] = entry
        self.emit(Action("write", path, entry, mine))
        self.auto_merges.append(AutoMerge(path, base, mine, theirs, entry, resolution.how))
        return None

    def keep_both(
        self,
        path: str,
        name: str,
        kind: ConflictKind,
        mine: TreeEntry,
        theirs: TreeEntry,
        merged: dict[str, TreeEntry],
        taken: set[str],
        unmerged: str = "",
    ) -> Walk[None]:
        policy = self._policies.for_path(path)
        if policy == "merge":  # a merge was not certain: keep both, and say why
            policy = "keep-both"
        if policy == "last-write-wins" and kind != "type-clash":
            winner = newer_side(mine, theirs)
            merged[name] = mine if winner == "local" else theirs
            if winner == "remote":
                yield self.transform(path, mine, theirs)
            self.report(kind, path, winner, None, policy)
            return
        keeper = name_keeper(mine, theirs)
        maker = self._device if keeper == "remote" else (self._remote_device or "remote")
        copy_path = conflict_name(path, maker, self._now, taken)
        copy_name = copy_path.rpartition("/")[2]
        taken.add(copy_name)
        if keeper == "remote":
            moved = dataclasses.replace(mine, name=copy_name)
            merged[name], merged[copy_name] = theirs, moved
            self.emit(Action("rename_local", path, moved, mine, dest=copy_path))
            yield self.create(path, theirs)
        else:
            copied = dataclasses.replace(theirs, name=copy_name)
            merged[name], merged[copy_name] = mine, copied
            yield self.create(copy_path, copied)
        self.report(kind, path, keeper, copy_path, policy, unmerged)

    def report_name_clashes(
        self,
        path: str,
        mine: dict[str, TreeEntry],
        theirs: dict[str, TreeEntry],
        merged: dict[str, TreeEntry],
    ) -> None:
        """Names added on different sides that differ only in case or Unicode form."""
        local_only: dict[str, list[str]] = {}
        for name in sorted(n for n in mine if n not in theirs and n in merged):
            local_only.setdefault(_fold(name), []).append(name)
        for remote_name in sorted(n for n in theirs if n not in mine and n in merged):
            for local_name in local_only.get(_fold(remote_name), ()):
                clash = name_clash(remote_name, local_name)
                if clash is not None:
                    other = _join(path, local_name)
                    self.report(clash, _join(path, remote_name), "remote", other)

    def report(
        self,
        kind: ConflictKind,
        path: str,
        kept: Literal["local", "remote"],
        copy_path: str | None,
        policy: Policy | None = None,
        unmerged: str = "",
    ) -> None:
        chosen = policy or self._policies.for_path(path)
        if chosen == "merge":
            chosen = "keep-both"
        here, there = self._device, self._remote_device
        text = explain(kind, path, kept, copy_path, chosen, device=here, remote_device=there)
        if unmerged:
            text += f" It could not be merged automatically: {unmerged}."
        self.conflicts.append(Conflict(path, kind, kept, copy_path, chosen, text))

    # -- summary -------------------------------------------------------------------

    def count_changes(
        self, old: ObjectId | None, new: ObjectId | None, counts: dict[str, int]
    ) -> Walk[None]:
        """Files (and links) added, modified and deleted from tree ``old`` to ``new``."""
        if old == new:
            return
        oe, ne = self.entries(old), self.entries(new)
        for name in oe.keys() | ne.keys():
            before, after = oe.get(name), ne.get(name)
            if before == after:
                continue
            old_dir = before.id if before is not None and before.kind == "dir" else None
            new_dir = after.id if after is not None and after.kind == "dir" else None
            if old_dir is not None or new_dir is not None:
                yield self.count_changes(old_dir, new_dir, counts)
            was_item = before is not None and before.kind != "dir"
            is_item = after is not None and after.kind != "dir"
            if was_item and is_item:
                counts["modified"] += 0 if same_content(before, after) else 1
            elif was_item:
                counts["deleted"] += 1
            elif is_item:
                counts["added"] += 1

    def actions(self) -> tuple[Action, ...]:
        return (*self.renames, *self.removals, *self.creations, *self.links)


def plan_merge(
    base: ObjectId | None,
    local: ObjectId,
    remote: ObjectId | None,
    *,
    load_tree: Callable[[ObjectId], Tree],
    tree_id: Callable[[Tree], ObjectId],
    device: str,
    now: datetime,
    policies: ConflictPolicies = ConflictPolicies(),
    remote_device: str | None = None,
    strict_portable: bool = False,
    merges: Mapping[str, MergeResolution] | None = None,
) -> Plan:
    """Merge ``local`` and ``remote`` against ``base`` (see the module docstring).

    ``device`` names this device in conflicted copies of local versions,
    ``remote_device`` (when known) the device that made the server head; ``now`` is
    the time written into conflict names. ``merges`` holds the engine's content merges
    of earlier ``merge_candidates`` (by path); a file whose policy is merge and that has
    none is kept as a conflicted copy in this plan and listed as a candidate. A tree ``load_tree`` cannot find raises
    :class:`~chunksync.errors.ObjectNotFound`; an unsafe remote path raises
    :class:`~chunksync.errors.UnsafePathError`. Neither leaves anything half done,
    since nothing is done here.
    """
    merger = _Merger(
        load_tree,
        tree_id,
        device=device,
        now=now,
        policies=policies,
        remote_device=remote_device,
        strict_portable=strict_portable,
        merges=merges or {},
    )
    theirs = remote if remote is not None else base  # no head: no remote changes
    merged = run(merger.merge_dir("", base, local, theirs))
    if merged is None:
        merged = merger.build([], (base, local, theirs))
    counts = {"added": 0, "modified": 0, "deleted": 0}
    if merged != remote:
        run(merger.count_changes(remote, merged, counts))
    return Plan(
        merged_root=merged,
        new_trees=merger.new_trees,
        actions=merger.actions(),
        conflicts=tuple(merger.conflicts),
        push_needed=merged != remote,
        summary=counts,
        merge_candidates=tuple(merger.candidates),
        auto_merges=tuple(merger.auto_merges),
    )
