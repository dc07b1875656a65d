"""The batched download path (chunksync.sync.download): few requests for many files,
grouped durability barriers in the safe order, a stat cache that survives the rename,
strict verification of every fetched chunk, and progress on join and restore."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chunksync import fsinstall, fsops
from chunksync.errors import IntegrityError
from chunksync.history import find_snapshot, list_snapshots, restore
from chunksync.objects import ObjectKind
from chunksync.sync import download, durable
from chunksync.sync.objects_io import ObjectReader
from tests.helpers.devices import tree_of


def _fill(device, files: int, dirs: int = 5) -> None:
    for i in range(files):
        device.write(f"d{i % dirs}/f{i:04d}.txt", f"file {i} " * (i % 7 + 1))
    device.write("big.bin", os.urandom(3 * download.STREAM_BYTES // 2))  # streamed in windows


class _Recorder:
    def __init__(self) -> None:
        self.expected = 0
        self.done = 0

    def phase(self, name) -> None: ...
    def transferred(self, direction, nbytes) -> None: ...
    def expect(self, direction, total) -> None: ...

    def expect_files(self, total: int) -> None:
        self.expected = total

    def files_done(self, count: int) -> None:
        self.done += count


async def test_many_files_come_in_few_requests_and_the_next_sync_reads_nothing(
    memory_pair, monkeypatch
):
    a, b, store = memory_pair
    _fill(a, 300)
    await a.sync()
    calls: list[int] = []
    real = type(store).get_many

    async def counting(self, ids):
        calls.append(len(ids))
        return await real(self, ids)

    monkeypatch.setattr(type(store), "get_many", counting)
    result = await b.sync()  # b joins: an empty folder receives everything
    assert result.applied == 301
    assert tree_of(a.root, mtimes=True) == tree_of(b.root, mtimes=True)
    # one fetch for the metadata levels, a few for the content: never one per file
    assert len(calls) < 15, calls
    again = await b.sync()
    assert (again.scan.files_read, again.scan.bytes_read) == (0, 0)  # stat cache matched
    assert not again.changed


@pytest.mark.parametrize("grouped", [True, False])
async def test_barriers_come_before_renames_and_before_files_are_reported(
    memory_pair, monkeypatch, grouped
):
    """Batches overlap (the next one is written while one is installed), but each file's
    order holds: written (fsynced, unless grouped) < its batch's file barrier < its rename
    < its batch's directory barrier < reported as written."""
    a, b, _ = memory_pair
    _fill(a, 40, dirs=3)
    await a.sync()
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(download, "BATCH_FILES", 16)  # several batches, pipelined
    monkeypatch.setattr(download, "FETCH_FILES", 4)  # several fetches per batch
    real_init, real_files, real_dirs = (
        durable.Barrier.__init__,
        durable.Barrier.files,
        durable.Barrier.dirs,
    )
    real_write, real_install = fsinstall.write_temp, fsinstall.install_temps

    def init(self, *args, **kw):
        real_init(self, *args, **kw, use_syncfs=grouped)

    def files(self, names):
        events.append(("F", ""))
        real_files(self, names)

    def dirs(self, reldirs):
        events.append(("D", ""))
        real_dirs(self, reldirs)

    def write_temp(*args, durable, **kw):
        assert durable is not grouped  # per-file fsync exactly when there is no syncfs
        name, st = real_write(*args, durable=durable, **kw)
        events.append(("w", name))
        return name, st

    def install_temps(root, tmpdir, parent, items):
        events.extend(("r", item.tmpname) for item in items)
        return real_install(root, tmpdir, parent, items)

    class Reported(_Recorder):
        def files_done(self, count: int) -> None:
            events.extend([("reported", "")] * count)

    monkeypatch.setattr(durable.Barrier, "__init__", init)
    monkeypatch.setattr(durable.Barrier, "files", files)
    monkeypatch.setattr(durable.Barrier, "dirs", dirs)
    monkeypatch.setattr(fsinstall, "write_temp", write_temp)
    monkeypatch.setattr(fsinstall, "install_temps", install_temps)
    engine = b.engine()
    engine.progress = Reported()
    await engine.sync()
    assert tree_of(a.root) == tree_of(b.root)
    written_at = {name: i for i, (kind, name) in enumerate(events) if kind == "w"}
    batches = "".join(
        {"F": "F", "r": "r", "D": "D", "reported": "p"}[k] for k, _ in events if k != "w"
    )
    import re

    # the applier's own sequence: per batch one barrier, the renames, one barrier, reports
    assert re.fullmatch(r"(Fr+Dp+)+", batches), batches
    assert batches.count("F") >= 3
    last_files_barrier = -1
    for i, (kind, name) in enumerate(events):
        if kind == "F":
            last_files_barrier = i
        elif kind == "r":
            assert written_at[name] < last_files_barrier < i, (name, events)


async def test_a_tampered_chunk_stops_the_batch_and_leaves_nothing_behind(memory_pair):
    a, b, store = memory_pair
    _fill(a, 30)
    await a.sync()
    victim = next(oid for oid, kind in _chunks(a) if kind == ObjectKind.CHUNK)
    blob = bytearray(store.peek(victim))
    blob[-1] ^= 1
    store.poke(victim, bytes(blob))
    with pytest.raises(IntegrityError):
        await b.sync()
    assert not [p for p in b.root.rglob("*") if p.is_file() and ".chunksync" not in p.parts]
    assert list((b.root / ".chunksync" / "tmp").iterdir()) == []


def _chunks(device):
    """Every chunk id the device's files are made of."""
    for path, state in ((p, device.index.get_state(p)) for p in ("d0/f0000.txt", "d1/f0001.txt")):
        manifest = ObjectReader(device.keys, device.index, device.store).load_manifest(
            state.manifest_id
        )
        for ref in manifest.chunks:
            yield ref.id, ObjectKind.CHUNK


async def test_restore_goes_through_the_same_path_with_progress(memory_pair, tmp_path: Path):
    a, _, store = memory_pair
    _fill(a, 50)
    await a.sync()
    progress = _Recorder()
    reader = ObjectReader(a.keys, a.index, store, progress)
    snaps = await list_snapshots(reader)
    snap = await find_snapshot(reader, snaps, snaps[-1].id, None)
    out = tmp_path / "restored"
    assert await restore(reader, snap, (), out) == 51
    assert (progress.expected, progress.done) == (51, 51)
    assert tree_of(out) == tree_of(a.root)
    assert (out / "d0" / "f0000.txt").read_bytes() == a.read("d0/f0000.txt")
    assert (out / "big.bin").read_bytes() == a.read("big.bin")


async def test_restore_checks_for_files_in_the_way_only_when_the_target_is_not_empty(
    memory_pair, tmp_path: Path, monkeypatch
):
    from chunksync.errors import UserError

    a, _, store = memory_pair
    _fill(a, 20)
    await a.sync()
    reader = ObjectReader(a.keys, a.index, store)
    snaps = await list_snapshots(reader)
    snap = await find_snapshot(reader, snaps, snaps[-1].id, None)
    walks: list[str] = []
    real_lstat = fsops.lstat_at

    def counting(root, relpath):
        walks.append(relpath)
        return real_lstat(root, relpath)

    monkeypatch.setattr(fsops, "lstat_at", counting)
    assert await restore(reader, snap, (), tmp_path / "new") == 21
    # a new directory: nothing can be in the way, no file is looked up (its mkdirs still are)
    assert set(walks) <= {f"d{i}" for i in range(5)}, walks
    busy = tmp_path / "busy"
    (busy / "d0").mkdir(parents=True)
    (busy / "d0" / "f0000.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        await restore(reader, snap, (), busy)
    assert (busy / "d0" / "f0000.txt").read_text() == "mine"
