"""Conflicts that resolve themselves: real engines on one in-memory store.

Two (or three) devices edit one text file concurrently. Edits on different lines are
merged into one file on every device, committed as one snapshot with two parents (the
server's head and the local version, kept in history), with no conflicted copy;
anything uncertain stays a conflicted copy. The merge converges whatever the order in
which devices sync, and undoing it brings either side back byte for byte.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from chunksync.conflict import is_conflict_copy
from chunksync.crypto.folder_keys import FolderKeys
from chunksync.objects import id_from_hex
from chunksync.review import recent_merges, undo_merge
from chunksync.sync.objects_io import ObjectReader
from chunksync.transport.memory import MemoryChunkStore
from tests.helpers.devices import Device, tree_of

pytestmark = pytest.mark.scenario

LINES = [f"line {i}: some words of the shared notes\n" for i in range(1000)]


def text(lines: list[str]) -> bytes:
    return "".join(lines).encode()


def edited(lines: list[str], **changes: str) -> list[str]:
    out = list(lines)
    for key, value in changes.items():
        out[int(key.removeprefix("l"))] = value
    return out


def copies(device: Device) -> list[str]:
    return [p for p in tree_of(device.root) if is_conflict_copy(p)]


async def head_commit(device: Device):  # type: ignore[no-untyped-def]
    head = await device.store.get_head()
    assert head.head is not None
    reader = ObjectReader(device.keys, device.index, device.store)
    return await reader.commit(id_from_hex(head.head))


async def settle(*devices: Device) -> None:
    """Sync every device until a whole pass changes nothing (bounded)."""
    for _ in range(6):
        results = [await d.sync() for d in devices]
        if not any(r.changed for r in results):
            return
    raise AssertionError("the devices did not settle")


async def shared_file(a: Device, b: Device, name: str, data: bytes) -> None:
    a.write(name, data)
    await a.sync()
    await b.sync()
    assert b.read(name) == data


async def test_different_lines_of_a_1000_line_file_merge_everywhere(memory_pair) -> None:
    a, b, _ = memory_pair
    await shared_file(a, b, "notes.txt", text(LINES))
    mine = edited(LINES, l10="line 10 changed on a\n")
    theirs = edited(LINES, l900="line 900 changed on b\n")
    a.write("notes.txt", text(mine))
    b.write("notes.txt", text(theirs))
    await a.sync()
    result = await b.sync()
    assert [m.path for m in result.merges] == ["notes.txt"]
    assert result.conflicts == ()
    await a.sync()
    both = text(edited(LINES, l10="line 10 changed on a\n", l900="line 900 changed on b\n"))
    assert a.read("notes.txt") == both and b.read("notes.txt") == both
    assert copies(a) == [] and copies(b) == []
    commit = await head_commit(b)
    assert len(commit.parents) == 2
    assert tree_of(a.root, mtimes=False) == tree_of(b.root, mtimes=False)


async def test_overlapping_edits_keep_a_conflicted_copy(memory_pair) -> None:
    a, b, _ = memory_pair
    await shared_file(a, b, "notes.txt", text(LINES))
    a.write("notes.txt", text(edited(LINES, l10="a's line 10\n")))
    b.write("notes.txt", text(edited(LINES, l10="b's line 10\n", l11="b's line 11\n")))
    await a.sync()
    result = await b.sync()
    assert result.merges == ()
    assert len(result.conflicts) == 1
    assert "could not be merged automatically" in result.conflicts[0].explanation
    await a.sync()
    for device in (a, b):
        found = {device.read(p) for p in tree_of(device.root)}
        assert text(edited(LINES, l10="a's line 10\n")) in found
        assert text(edited(LINES, l10="b's line 10\n", l11="b's line 11\n")) in found
        assert len(copies(device)) == 1


async def test_binary_file_keeps_a_conflicted_copy(memory_pair) -> None:
    a, b, _ = memory_pair
    base = b"\x00\x01header\n" + text(LINES)
    await shared_file(a, b, "data.txt", base)
    a.write("data.txt", base.replace(b"line 5:", b"LINE 5:"))
    b.write("data.txt", base.replace(b"line 500:", b"LINE 500:"))
    await a.sync()
    result = await b.sync()
    assert result.merges == () and len(result.conflicts) == 1
    assert "NUL" in result.conflicts[0].explanation
    assert len(copies(b)) == 1


async def test_file_over_the_limit_keeps_a_conflicted_copy(memory_pair) -> None:
    a, b, _ = memory_pair
    await shared_file(a, b, "notes.txt", text(LINES))
    a.write("notes.txt", text(edited(LINES, l1="one\n")))
    b.write("notes.txt", text(edited(LINES, l999="two\n")))
    await a.sync()
    engine = b.engine()
    engine.merge_limit = 10_000  # the file has about 40 KB
    result = await engine.sync()
    assert result.merges == () and len(result.conflicts) == 1
    assert "limit" in result.conflicts[0].explanation
    assert len(copies(b)) == 1


async def test_line_endings_bom_and_final_newline_survive(memory_pair) -> None:
    a, b, _ = memory_pair
    base = "\ufeffalpha\r\nbeta\r\ngamma\r\ndelta\r\nomega".encode()
    await shared_file(a, b, "win.txt", base)
    a.write("win.txt", base.replace(b"alpha", b"ALPHA"))
    b.write("win.txt", base.replace(b"omega", b"OMEGA"))
    await a.sync()
    await b.sync()
    await a.sync()
    want = "\ufeffALPHA\r\nbeta\r\ngamma\r\ndelta\r\nOMEGA".encode()
    assert a.read("win.txt") == want and b.read("win.txt") == want


async def test_json_settings_merge_key_by_key(memory_pair) -> None:
    a, b, _ = memory_pair
    base = b'{\n  "theme": "dark",\n  "size": 12\n}\n'
    await shared_file(a, b, "settings.json", base)
    a.write("settings.json", b'{\n  "theme": "dark",\n  "size": 12,\n  "font": "mono"\n}\n')
    b.write("settings.json", b'{\n  "theme": "dark",\n  "size": 12,\n  "wrap": true\n}\n')
    await a.sync()
    result = await b.sync()
    assert [m.how for m in result.merges] == ["json-keys"]
    await a.sync()
    want = b'{\n  "theme": "dark",\n  "size": 12,\n  "font": "mono",\n  "wrap": true\n}\n'
    assert a.read("settings.json") == want and b.read("settings.json") == want


async def test_policy_file_keep_both_wins_over_the_text_default(memory_pair) -> None:
    a, b, _ = memory_pair
    await shared_file(a, b, ".chunksyncpolicy", b"*.txt keep-both\n")
    await shared_file(a, b, "notes.txt", text(LINES))
    a.write("notes.txt", text(edited(LINES, l1="one\n")))
    b.write("notes.txt", text(edited(LINES, l999="two\n")))
    await a.sync()
    result = await b.sync()
    assert result.merges == () and len(result.conflicts) == 1
    assert result.conflicts[0].policy == "keep-both"


@pytest.mark.parametrize("order", list(itertools.permutations("abc")))
async def test_three_devices_converge_in_every_sync_order(
    tmp_path: Path, folder_keys: FolderKeys, order: tuple[str, ...]
) -> None:
    store = MemoryChunkStore()
    devices = {n: Device(n, tmp_path / n, store, folder_keys) for n in "abc"}
    try:
        lines = LINES[:60]
        devices["a"].write("notes.md", text(lines))
        await settle(*devices.values())
        changes = {"a": {"l5": "a was here\n"}, "b": {"l30": "b was here\n"}, "c": {"l55": "c\n"}}
        for name, device in devices.items():
            device.write("notes.md", text(edited(lines, **changes[name])))
        for name in order:
            await devices[name].sync()
        await settle(*(devices[n] for n in order))
        want = text(edited(lines, **{k: v for c in changes.values() for k, v in c.items()}))
        for device in devices.values():
            assert device.read("notes.md") == want
            assert copies(device) == []
    finally:
        for device in devices.values():
            device.close()


async def test_two_devices_merging_at_once_converge(tmp_path: Path, folder_keys) -> None:
    store = MemoryChunkStore()
    a, b, c = (Device(n, tmp_path / n, store, folder_keys) for n in "abc")
    try:
        await shared_file(a, b, "notes.txt", text(LINES[:50]))
        await c.sync()
        c.write("notes.txt", text(edited(LINES[:50], l25="c\n")))
        await c.sync()
        a.write("notes.txt", text(edited(LINES[:50], l2="a\n")))
        b.write("notes.txt", text(edited(LINES[:50], l48="b\n")))
        await asyncio.gather(a.sync(), b.sync())  # both merge against c's head at once
        await settle(a, b, c)
        want = text(edited(LINES[:50], l2="a\n", l25="c\n", l48="b\n"))
        assert a.read("notes.txt") == b.read("notes.txt") == c.read("notes.txt") == want
    finally:
        for device in (a, b, c):
            device.close()


async def test_undo_brings_back_each_side_byte_for_byte(memory_pair) -> None:
    a, b, _ = memory_pair
    await shared_file(a, b, "notes.txt", text(LINES[:100]))
    mine = text(edited(LINES[:100], l3="b's edit\n"))
    theirs = text(edited(LINES[:100], l90="a's edit\n"))
    a.write("notes.txt", theirs)
    b.write("notes.txt", mine)
    await a.sync()
    assert (await b.sync()).merges
    await a.sync()
    rows = recent_merges(b.index, b.root)
    assert [r["path"] for r in rows] == ["notes.txt"]
    assert rows[0]["undo"]["mine"].endswith("--undo-merge mine")
    assert "b" in rows[0]["explanation"] and "a" in rows[0]["explanation"]
    seen = recent_merges(a.index, a.root)  # listed on the other device too
    assert [r["snapshot"] for r in seen] == [rows[0]["snapshot"]]

    reader = ObjectReader(b.keys, b.index, b.store)
    await undo_merge(b.root, reader, "notes.txt", "mine")
    assert b.read("notes.txt") == mine
    await b.sync()
    await a.sync()
    assert a.read("notes.txt") == mine

    # the other side, from the other device, after the same merge: a's version
    reader = ObjectReader(a.keys, a.index, a.store)
    with pytest.raises(Exception, match="changed since the automatic merge"):
        await undo_merge(a.root, reader, "notes.txt", "theirs")  # the file is b's now
    a.write("notes.txt", b.read("notes.txt"))
    # undo from a fresh merge: edit again on both and undo "theirs" on a
    a.write("notes.txt", text(edited(LINES[:100], l3="b's edit\n", l95="a again\n")))
    b.write("notes.txt", text(edited(LINES[:100], l1="b again\n", l3="b's edit\n")))
    await b.sync()
    assert (await a.sync()).merges
    server_version = text(edited(LINES[:100], l1="b again\n", l3="b's edit\n"))
    await undo_merge(a.root, ObjectReader(a.keys, a.index, a.store), "notes.txt", "theirs")
    assert a.read("notes.txt") == server_version
