"""Scan a folder into a Merkle tree of content-addressed objects.

:func:`scan` walks the folder with ``os.scandir`` and builds one :class:`Tree` per
directory bottom-up, so the root id summarizes the whole folder. Guarantees:

* **Unchanged files are not read.** A file whose (size, mtime_ns, ctime_ns, inode, mode)
  equals its stat-cache row reuses the cached manifest id. A file modified within
  :data:`RACY_NS` of the scan is recorded as *racy* (git's racy-clean rule: a second
  write in the same mtime tick would be invisible) and read again next time.
* **Never half-recorded.** A file is re-stat'ed after reading; if it changed it is read
  again, and after :data:`READ_ATTEMPTS` it is listed in ``requeued`` and its previous
  state kept (a new file is left out until a later scan). Unreadable files (EACCES) keep
  their previous state too, with a warning.
* **Deterministic ids.** Names are NFC; directory entries carry no directory mtime, so
  the same content gives the same root id on every device with the same folder key.
* Symlinks are recorded as links and never followed; empty directories are entries;
  the exec bit is recorded; ``.chunksync/`` and ignored paths are skipped; fifos,
  sockets and devices are skipped with a warning; names that Windows or macOS cannot
  hold are kept but flagged in ``warnings``.
* **Incremental.** With ``dirty`` (directories the watcher saw change) only those are
  listed again; every other directory is taken from its cached tree (``dirtree``): an
  ancestor of a dirty directory is listed from its tree, and a directory with nothing
  dirty below it is taken whole by id without reading anything below it, so the work is
  the dirty directories and their ancestors whatever the folder's size (``entries`` looks
  up paths below those on demand, :mod:`chunksync.scanentries`: read it while the index
  is open). A change of the ignore rules forces a full walk.
* Manifests, trees, stat rows and dirtrees go to the index in a few batched write
  transactions (objects, then stat rows, then dirtrees last), never one per file.

``on_chunk(oid, view)`` sees every chunk of every file read (possibly from worker
threads, possibly for an attempt that is later discarded); ``view`` is only valid during
the call. Reading, chunking and hashing (:mod:`chunksync.scan_read`) run on a small
thread pool: pyfastcdc's cut loop and BLAKE3 release the GIL.
"""

from __future__ import annotations

import itertools
import operator
import os
import stat as st_mod
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chunker import Chunker
from .crypto.folder_keys import FolderKeys
from .errors import ConfigError
from .failed import FailedItem
from .ignore import IgnoreRules
from .objects import (
    ObjectId,
    ObjectKind,
    Tree,
    TreeEntry,
    normalize_name,
)
from .paths import portability_problem as portability_warning
from .scan_read import RACY_NS, READ_ATTEMPTS, OnChunk, _FileJob, _Read, _Reader, _Stat
from .scanentries import ScanEntries
from .scanjobs import normalize_dirty as _normalize_dirty
from .scanjobs import read_all as _read_all
from .scanstates import ScanStates
from .storage.index import FileState, Index, IndexWriter
from .trampoline import Walk
from .trampoline import run as run_walk
from .treecache import TREES
from .treeparts import StoredTree, encode_tree

__all__ = ["RACY_NS", "READ_ATTEMPTS", "ScanResult", "scan"]

_BATCH_OPS = 5000
_META_IGNORE = "scan.ignore_digest"
_META_ROOT = "scan.root"

#: ``hold(rel, stat)``: True keeps a changed file's previous state this time (still being
#: written, see :mod:`chunksync.settle`)
Hold = Callable[[str, os.stat_result], bool]


@dataclass
class ScanResult:
    root_id: ObjectId
    files_read: int
    bytes_read: int
    requeued: tuple[str, ...]
    warnings: tuple[str, ...]  # one line per failed item
    #: relative POSIX NFC path -> entry (not the root); below clean directories it is
    #: looked up through their cached trees on demand (chunksync.scanentries)
    entries: Mapping[str, TreeEntry]
    #: manifests of the files read by this scan: every chunk of them went to ``on_chunk``
    read_manifests: frozenset[ObjectId] = frozenset()
    failed: tuple[FailedItem, ...] = ()  # paths not synced, and why (chunksync.failed)
    listed: frozenset[str] = frozenset()  # directories listed from disk (not from cache)
    settling: tuple[str, ...] = ()  # changed files held back by ``hold``

    @property
    def files(self) -> int:
        """Files in the folder (walks the clean trees: for reports, not for a round)."""
        return sum(1 for e in self.entries.values() if e.kind == "file")

    @property
    def dirs(self) -> int:
        return sum(1 for e in self.entries.values() if e.kind == "dir")


def _matches(state: FileState, st: os.stat_result) -> bool:
    return not state.racy and (
        state.size,
        state.mtime_ns,
        state.ctime_ns,
        state.inode,
        state.mode,
    ) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def _file_entry(name: str, state: FileState) -> TreeEntry:
    return TreeEntry(
        name, "file", state.manifest_id, state.size, state.mtime_ns, bool(state.mode & 0o111)
    )


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class _Scan:
    """State of one scan: walk (phase 1), read (phase 2), build trees (phase 3)."""

    def __init__(
        self,
        root: Path,
        keys: FolderKeys,
        index: Index,
        ignore: IgnoreRules,
        dirty: set[str] | None,
        hold: Hold | None = None,
    ) -> None:
        self.root, self.keys, self.index, self.ignore, self.dirty = root, keys, index, ignore, dirty
        self.states = ScanStates(index, dirty)  # rows read as far as the scan reaches
        self.failed: list[FailedItem] = []
        self.hold, self.settling, self.listed = hold, list[str](), set[str]()
        self.requeued: list[str] = []
        self.order: list[str] = []  # directories in pre-order
        self.listing: dict[str, list[tuple[str, str, object]]] = {}
        self.jobs: list[_FileJob] = []
        self.reused: dict[str, TreeEntry] = {}  # entries of listings taken from cache
        self.clean: dict[str, ObjectId] = {}  # directories taken whole from cache
        self.tree_ids: dict[str, ObjectId] = {}  # listed and clean directories
        self.new_objects: list[tuple[ObjectId, ObjectKind, bytes]] = []  # manifests
        self.new_trees: list[tuple[str, StoredTree]] = []

    # -- phase 1: walk -------------------------------------------------------------

    def walk(self, rel: str, disk: str) -> Walk[bool]:
        """List one directory (or reuse its cached tree); False if it vanished.

        A walk step (see :mod:`chunksync.trampoline`): subdirectories are yielded, not
        called, so a folder of any depth is scanned without RecursionError."""
        if self.dirty is not None and rel not in self.dirty and (yield self._try_reuse(rel, disk)):
            return True
        try:
            with os.scandir(disk) as it:
                items = sorted(it, key=_listing_order)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except PermissionError as exc:
            self._fail("unreadable", rel or ".", f"cannot list directory ({exc.strerror})")
            items = []
        self.order.append(rel)
        self.listed.add(rel)
        pending: list[tuple[str, str, object]] = []
        self.listing[rel] = pending
        seen: set[str] = set()
        for item in items:
            sub = self._visit(rel, item, pending, seen)
            if sub is not None and (yield self.walk(sub[1], item.path)):
                pending.append((sub[0], "dir", sub[1]))
        return True

    def _visit(
        self, parent: str, item: os.DirEntry[str], pending: list[Any], seen: set[str]
    ) -> tuple[str, str] | None:
        """Record one directory entry; a subdirectory is returned as (name, rel) for
        the caller to walk."""
        try:
            name = normalize_name(item.name)
            name.encode("utf-8")
        except UnicodeError:
            self._fail("not-utf8", _join(parent, item.name), "name is not UTF-8, skipped")
            return None
        rel = _join(parent, name)
        try:
            st = item.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None
        is_dir = st_mod.S_ISDIR(st.st_mode)
        if self.ignore.is_ignored(rel, is_dir):
            return None
        if name in seen:
            self._fail(
                "nfc-twin",
                _join(parent, item.name),
                "two names normalize to the same NFC name, one skipped",
            )
            return None
        seen.add(name)
        problem = portability_warning(name)
        if problem:
            self._fail("unportable", rel, problem)
        if is_dir:
            return name, rel
        if st_mod.S_ISREG(st.st_mode):
            prev = self.states.get(rel)
            if prev is not None and _matches(prev, st):
                pending.append((name, "entry", _file_entry(name, prev)))
            elif self.hold is not None and self.hold(rel, st):
                self.settling.append(rel)  # still being written: the previous state, if any
                pending.extend([(name, "entry", _file_entry(name, prev))] if prev else [])
            else:
                self.jobs.append(_FileJob(rel, item.path, _Stat.of(st), prev))
                pending.append((name, "job", rel))
        elif st_mod.S_ISLNK(st.st_mode):
            self._symlink(rel, name, item.path, st, pending)
        else:
            self._fail("special", rel, "special file (fifo, socket or device) skipped")
        return None

    def _symlink(
        self, rel: str, name: str, disk: str, st: os.stat_result, pending: list[Any]
    ) -> None:
        try:
            target = os.readlink(disk)
            target.encode("utf-8")
        except (OSError, UnicodeError):
            self._fail("unreadable", rel, "unreadable symlink skipped")
            return
        pending.append(
            (name, "entry", TreeEntry(name, "symlink", None, 0, st.st_mtime_ns, target=target))
        )

    def _fail(self, kind: str, rel: str, reason: str) -> None:
        self.failed.append(FailedItem.of(kind, rel, reason))

    def _try_reuse(self, rel: str, disk: str) -> Walk[bool]:
        """Take a non-dirty directory from its cached tree; descend toward dirty dirs.

        A directory with nothing dirty below it is taken whole, by id, without reading
        its tree or anything below (the work of a scan is the dirty directories and
        their ancestors, whatever the folder's size); its entries are looked up only
        on demand (:class:`~chunksync.scanentries.ScanEntries`)."""
        tree_id = self.index.get_dirtree(rel)
        if tree_id is None:
            return False
        prefix = rel + "/" if rel else ""
        assert self.dirty is not None  # nosec B101  # invariant for the type checker
        if not any(d == rel or d.startswith(prefix) for d in self.dirty):
            if self.index.get_object(tree_id) is None:
                return False  # the cached tree is gone: list the directory again
            self.tree_ids[rel] = self.clean[rel] = tree_id
            return True
        tree = self._load_tree(tree_id)
        if tree is None:
            return False
        self.order.append(rel)
        pending: list[tuple[str, str, object]] = []
        self.listing[rel] = pending
        for entry in tree.entries:
            child = _join(rel, entry.name)
            if entry.kind != "dir":
                self.reused[child] = entry
                pending.append((entry.name, "entry", entry))
            elif (yield self.walk(child, os.path.join(disk, entry.name))):
                pending.append((entry.name, "dir", child))
        return True

    def _load_tree(self, tree_id: ObjectId) -> Tree | None:
        return TREES.load(tree_id, self.index.get_object)  # decoded once per process

    def load_cached(self, oid: ObjectId) -> Tree:
        """A tree from the index, for looking below clean directories."""
        found = self._load_tree(oid)
        if found is None:
            raise KeyError(oid)
        return found

    # -- phase 3: build trees bottom-up ----------------------------------------------

    def build(self, results: dict[str, _Read], entries: dict[str, TreeEntry]) -> ObjectId:
        """Build the listed directories' trees bottom-up; ``entries`` gets their entries."""
        entries.update(self.reused)
        for rel in reversed(self.order):
            built: list[TreeEntry] = []
            for name, kind, ref in self.listing[rel]:
                entry = self._resolve(name, kind, ref, results)
                if entry is not None:
                    built.append(entry)
                    entries[_join(rel, name)] = entry
            stored = encode_tree(Tree.of(built), self.keys.meta_id)  # large ones in parts
            self.tree_ids[rel] = stored.id
            self.new_trees.append((rel, stored))
        return self.tree_ids[""]

    def _resolve(
        self, name: str, kind: str, ref: object, results: dict[str, _Read]
    ) -> TreeEntry | None:
        if kind == "entry":
            return ref  # type: ignore[return-value]
        if kind == "dir":
            return TreeEntry(name, "dir", self.tree_ids[ref])  # type: ignore[index]
        rel = ref  # a file job
        read = results[rel]  # type: ignore[index]
        if read.state is not None:
            self.new_objects.append((read.state.manifest_id, ObjectKind.FILE, read.manifest))
            return _file_entry(name, read.state)
        if read.problem == "vanished":  # deleted between listing and reading
            self._fail("vanished", rel, "vanished while being read")  # type: ignore[arg-type]
            return None
        if read.problem == "changed":
            self.requeued.append(rel)  # type: ignore[arg-type]
        else:
            self._fail("unreadable", rel, read.problem)  # type: ignore[arg-type]
        prev = self.states.get(rel)  # type: ignore[arg-type]
        return None if prev is None else _file_entry(name, prev)


def _listing_order(item: os.DirEntry[str]) -> tuple[str, bool]:
    """NFC order; of two names equal once normalized, the NFC spelling first: it is the
    one synced, and the one fsops resolves the name to (``fsops._entry``)."""
    name = item.name
    if name.isascii():
        return name, False
    nfc = normalize_name(name)
    return nfc, nfc != name


def _walk(
    root: Path,
    keys: FolderKeys,
    index: Index,
    ignore: IgnoreRules,
    dirty: set[str] | None,
    hold: Hold | None,
) -> _Scan:
    run = _Scan(root, keys, index, ignore, dirty, hold)
    found = run_walk(run.walk("", os.fspath(root)))
    if not found:
        raise ConfigError(f"folder {root} does not exist or is not a directory")
    return run


def _old_dirtrees(index: Index, run: _Scan) -> dict[str, ObjectId]:
    """The dirtree rows this scan may replace or delete: after a full walk all of them;
    after an incremental one, those of the directories it reached (listed or taken from
    cache) and of every directory below one that is gone, and no others."""
    if run.dirty is None:
        return dict(index.iter_dirtrees())
    old: dict[str, ObjectId] = {}
    for rel in run.tree_ids:
        tree_id = index.get_dirtree(rel)
        if tree_id is not None:
            old[rel] = tree_id
    for rel in run.order:  # the directories built: did a subdirectory go?
        tree = None if rel not in old else TREES.load(old[rel], index.get_object)
        for entry in tree.entries if tree is not None else ():
            child = _join(rel, entry.name)
            if entry.kind == "dir" and child not in run.tree_ids:
                gone = index.get_dirtree(child)
                old.update({child: gone} if gone is not None else {})
                old.update(index.iter_dirtrees(child + "/"))
    return old


def _ops(
    run: _Scan,
    results: dict[str, _Read],
    entries: Mapping[str, TreeEntry],
    changed: set[str],
    old_dirtrees: dict[str, ObjectId],
) -> Iterator[Callable[[IndexWriter], None]]:
    """The scan's index writes, in order: objects, then stat rows (made lazily, so only
    one transaction's worth exists at a time)."""
    written: set[ObjectId] = set()
    for oid, kind, data in run.new_objects:
        if oid not in written:
            written.add(oid)
            yield operator.methodcaller("put_object", oid, kind, data)
    for rel, stored in run.new_trees:
        if rel not in changed:
            continue
        for oid, data in stored.objects:  # the parts of a split listing before its index
            if oid not in written:
                written.add(oid)
                yield operator.methodcaller("put_object", oid, ObjectKind.TREE, data)
    for read in results.values():
        if read.state is not None:
            yield operator.methodcaller("put_state", read.state)
    for path in run.states.candidates(run.listed, old_dirtrees, entries):
        entry = entries.get(path)
        if entry is None or entry.kind != "file":
            yield operator.methodcaller("delete_state", path)


def _persist(
    index: Index,
    run: _Scan,
    results: dict[str, _Read],
    entries: Mapping[str, TreeEntry],
    old_dirtrees: dict[str, ObjectId],
    ignore: IgnoreRules,
) -> None:
    """Write objects, then stat rows, then dirtrees, in batches of a few thousand ops."""
    changed = {rel for rel, tid in run.tree_ids.items() if old_dirtrees.get(rel) != tid}
    ops = _ops(run, results, entries, changed, old_dirtrees)
    while batch := list(itertools.islice(ops, _BATCH_OPS)):
        with index.write() as writer:
            for op in batch:
                op(writer)
    with index.write() as writer:
        for rel in changed:
            writer.put_dirtree(rel, run.tree_ids[rel])
        for rel in old_dirtrees.keys() - run.tree_ids.keys():
            writer.delete_dirtree(rel)
        writer.set_meta(_META_IGNORE, ignore.digest)
        writer.set_meta(_META_ROOT, run.tree_ids[""])


def scan(
    root: Path,
    keys: FolderKeys,
    index: Index,
    *,
    chunker: Chunker | None = None,
    ignore: IgnoreRules | None = None,
    on_chunk: OnChunk | None = None,
    dirty: Collection[str] | None = None,
    workers: int = 2,
    hold: Hold | None = None,
) -> ScanResult:
    """Scan ``root`` into trees and manifests stored in ``index``; see the module doc."""
    root = Path(root)
    chunker = chunker or Chunker(seed=keys.chunker_seed)
    ignore = ignore or IgnoreRules.load(root)
    now = time.time_ns()
    dirty_set = None if dirty is None else _normalize_dirty(dirty)
    if dirty_set is not None and index.get_meta(_META_IGNORE) != ignore.digest:
        dirty_set = None  # the rules changed: every directory may list differently
    run = _walk(root, keys, index, ignore, dirty_set, hold)
    old_dirtrees = _old_dirtrees(index, run)
    results = _read_all(_Reader(keys, chunker, on_chunk, now), run.jobs, workers)
    run.jobs = []  # read: their stats are not needed any more
    built: dict[str, TreeEntry] = {}
    root_id = run.build(results, built)
    entries = ScanEntries(built, run.clean, run.load_cached)
    _persist(index, run, results, entries, old_dirtrees, ignore)
    return ScanResult(
        root_id=root_id,
        files_read=len(results),
        bytes_read=sum(r.bytes_read for r in results.values()),
        requeued=tuple(run.requeued),
        warnings=tuple(f.describe() for f in run.failed),
        entries=entries,
        read_manifests=frozenset(r.state.manifest_id for r in results.values() if r.state),
        failed=tuple(run.failed),
        listed=frozenset(run.listed),
        settling=tuple(run.settling),
    )
