"""The mass-delete guard holds deletions only, with true counts and the exact command."""

from __future__ import annotations

import os

import pytest

from chunksync.errors import HeldError
from tests.helpers.devices import Device


@pytest.fixture
def pair(memory_pair):
    a, b, _ = memory_pair
    return a, b


async def _twenty_files(a: Device, b: Device) -> None:
    for i in range(20):
        a.write(f"f{i:02}.txt", f"file {i}")
    await a.sync()
    await b.sync()


async def test_edits_are_not_held_as_mass_delete(pair) -> None:
    """Failure 2: editing 15 of 20 files was 'would delete 15 of 20 files'."""
    a, b = pair
    await _twenty_files(a, b)
    for i in range(15):
        a.write(f"f{i:02}.txt", f"file {i}, edited")
    await a.sync()
    await b.sync()  # and the other side applies the edits without being held either
    assert b.read("f03.txt") == b"file 3, edited"


async def test_renames_and_moves_are_not_held_as_mass_delete(pair) -> None:
    a, b = pair
    await _twenty_files(a, b)
    (a.root / "moved").mkdir()
    for i in range(18):
        os.rename(a.root / f"f{i:02}.txt", a.root / "moved" / f"renamed-{i}.txt")
    await a.sync()
    await b.sync()
    assert len(list((b.root / "moved").iterdir())) == 18


async def test_held_message_counts_each_side_out_of_its_own_files(pair) -> None:
    """The server side is counted out of the server's files, never '30000 of 20000'."""
    a, b = pair
    await _twenty_files(a, b)
    for i in range(4, 20):
        (a.root / f"f{i:02}.txt").unlink()
    with pytest.raises(HeldError) as held:
        await a.sync()
    message = str(held.value)
    assert "delete 16 of 20 files on the server" in message
    assert f"'chunksync sync {a.root} --allow-mass-delete'" in message
    await a.sync(allow_mass_delete=True)
    with pytest.raises(HeldError, match="delete 16 of 20 files on this device"):
        await b.sync()
    assert len(list(b.root.glob("f*.txt"))) == 20


async def test_an_edit_while_others_are_deleted_counts_only_the_deletions(pair) -> None:
    a, b = pair
    await _twenty_files(a, b)
    for i in range(9):
        (a.root / f"f{i:02}.txt").unlink()
    for i in range(9, 20):
        a.write(f"f{i:02}.txt", "edited")
    await a.sync()  # 9 deletions of 20 are below half: not held
    await b.sync()
    assert len(list(b.root.glob("f*.txt"))) == 11
