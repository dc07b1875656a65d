"""Engine bugs the simulator (tests/sim) found, each pinned by a direct test."""

from __future__ import annotations

import os
import unicodedata

import pytest

from chunksync.errors import NetworkError
from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.devices import Device
from tests.sim.faults import FaultyLink


async def test_a_symlink_whose_only_change_is_its_mtime_syncs(memory_pair) -> None:  # type: ignore[no-untyped-def]
    """The plan emits set_meta for a link that differs only in mtime; the applier
    asserted it was a file (every sync of the receiving device failed)."""
    a, b, _ = memory_pair
    os.symlink("target", a.root / "link")
    os.utime(a.root / "link", ns=(10**18, 10**18), follow_symlinks=False)
    await a.sync()
    await b.sync()
    os.utime(a.root / "link", ns=(2 * 10**18, 2 * 10**18), follow_symlinks=False)
    assert (await a.sync()).pushed
    await b.sync()
    assert os.readlink(b.root / "link") == "target"
    assert os.lstat(b.root / "link").st_mtime_ns == 2 * 10**18
    assert not (await b.sync()).changed


async def test_a_downloaded_file_is_not_read_again_by_the_next_scan(memory_pair) -> None:  # type: ignore[no-untyped-def]
    """The stat row of an applied file was taken before its rename, which moves the
    ctime: every downloaded file was read again (and its chunks asked for) next scan."""
    a, b, store = memory_pair
    for i in range(3):
        a.write(f"f{i}.txt", f"content {i}")
    await a.sync()
    assert (await b.sync()).applied == 3
    scan = b.engine().scan_local()
    assert scan.files_read == 0
    calls = store.calls["missing"]
    assert not (await b.sync()).changed
    assert store.calls["missing"] == calls


async def test_nfc_and_nfd_twins_do_not_stop_a_sync(memory_pair) -> None:  # type: ignore[no-untyped-def]
    """A folder holding a name twice (NFC and NFD spellings) syncs the NFC one. The
    scanner used to keep whichever sorted first (the NFD one) while the applier
    resolved the name to the NFC file, so any remote change to that path failed the
    re-check on every round: "the folder kept changing while syncing", forever."""
    a, b, _ = memory_pair
    nfc = unicodedata.normalize("NFC", "\u00e9t\u00e9.txt")
    nfd = unicodedata.normalize("NFD", nfc)
    a.write(nfc, "synced")
    await a.sync()
    await b.sync()
    a.write(nfd, "a twin, local only")
    scan = a.engine().scan_local()
    assert scan.entries[nfc].size == len("synced")
    b.write(nfc, "changed on b")
    await b.sync()
    result = await a.sync()
    assert result.applied == 1
    assert a.read(nfc) == b"changed on b"
    assert a.read(nfd) == b"a twin, local only"


async def test_an_exec_bit_change_reaches_a_file_spelled_nfd_here(memory_pair) -> None:  # type: ignore[no-untyped-def]
    """set_meta opened the tree's (NFC) name directly; a file spelled NFD on this disk
    made the applier raise FileNotFoundError (an internal error) on every sync."""
    a, b, _ = memory_pair
    nfd = unicodedata.normalize("NFD", "\u00e9t\u00e9.sh")
    a.write(nfd, "echo hi")
    await a.sync()
    await b.sync()
    nfc = unicodedata.normalize("NFC", nfd)
    (b.root / nfc).chmod(0o755)
    await b.sync()
    await a.sync()
    assert os.stat(a.root / nfd).st_mode & 0o100
    assert not (await a.sync()).changed


async def test_a_push_whose_answer_was_lost_does_not_undo_a_later_deletion(
    tmp_path, folder_keys
) -> None:  # type: ignore[no-untyped-def]
    """The head moved but the answer was lost, so a's base stayed the one before its
    push; b then deleted a file of that push, and a's next sync saw the file as a new
    local one and put it back (tools/simulate.py --seeds 45:46, before the fix)."""
    store = MemoryChunkStore()
    link = FaultyLink(store)
    a = Device("a", tmp_path / "a", link, folder_keys)  # type: ignore[arg-type]
    b = Device("b", tmp_path / "b", store, folder_keys)
    try:
        a.write("keep.txt", "kept")
        await a.sync()
        await b.sync()
        a.write("p.txt", "pushed, answer lost")
        link.arm({"cas_head": "drop_answer"})
        with pytest.raises(NetworkError):
            await a.sync()
        link.disarm()
        await b.sync()
        (b.root / "p.txt").unlink()
        assert (await b.sync()).pushed
        result = await a.sync()
        assert not (a.root / "p.txt").exists() and result.deleted == 1
        await b.sync()
        assert not (b.root / "p.txt").exists()
    finally:
        a.close()
        b.close()
