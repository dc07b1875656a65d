"""A read-only member's device is receive-only: changes arrive, local edits stay local."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest_asyncio

from chunksync.transport.http import HttpClient
from chunksync_server import admin
from tests.helpers.devices import Device
from tests.helpers.server import DEFAULT_PASSWORD, create_user, login, serve_in_process


@pytest_asyncio.fixture
async def owner_and_reader(
    tmp_path: Path, folder_keys
) -> AsyncIterator[tuple[Device, Device, Path]]:
    async with serve_in_process(tmp_path / "server") as srv:
        create_user(srv.data_dir, "bob")
        async with aiohttp.ClientSession() as session:
            await session.post(srv.url("/v1/folders"), json={"name": "docs"}, headers=srv.headers())
            alice = await login(session, srv.base_url, "alice", device_name="alice-laptop")
            bob = await login(session, srv.base_url, "bob", DEFAULT_PASSWORD, device_name="bob-pc")
        admin.add_member(srv.data_dir, "docs", "bob", "read-only")
        clients = [HttpClient(srv.base_url, alice["token"]), HttpClient(srv.base_url, bob["token"])]
        owner = Device("alice", tmp_path / "alice", clients[0].folder("docs"), folder_keys)
        reader = Device("bob", tmp_path / "bob", clients[1].folder("docs"), folder_keys)
        try:
            yield owner, reader, srv.data_dir
        finally:
            owner.close()
            reader.close()
            for client in clients:
                await client.aclose()


async def test_read_only_member_receives_changes_instead_of_failing_with_403(
    owner_and_reader,
) -> None:
    owner, reader, _ = owner_and_reader
    owner.write("report.txt", "v1")
    owner.write("notes/a.txt", "a")
    await owner.sync()
    first = await reader.sync()
    assert first.receive_only and reader.read("report.txt") == b"v1"
    owner.write("report.txt", "v2")
    await owner.sync()
    await reader.sync()
    assert reader.read("report.txt") == b"v2"


async def test_read_only_local_edits_are_kept_reported_and_never_pushed(owner_and_reader) -> None:
    owner, reader, _ = owner_and_reader
    owner.write("shared.txt", "from alice")
    owner.write("other.txt", "untouched")
    head = (await owner.sync()).head
    await reader.sync()
    reader.write("mine.txt", "bob's own file")
    reader.write("shared.txt", "bob's edit")
    (reader.root / "other.txt").unlink()
    result = await reader.sync()
    assert result.local_only == 3 and not result.pushed and result.head == head
    again = await reader.sync()  # stays put: no re-upload attempts, no error
    assert again.local_only == 3 and not again.changed
    await owner.sync()
    assert not (owner.root / "mine.txt").exists() and owner.read("shared.txt") == b"from alice"
    assert (owner.root / "other.txt").exists()
    # alice edits the file bob edited too: bob keeps his version beside hers
    owner.write("shared.txt", "alice again")
    await owner.sync()
    await reader.sync()
    versions = {p.read_text() for p in reader.root.glob("shared*.txt")}
    assert versions == {"alice again", "bob's edit"}
    assert reader.read("mine.txt") == b"bob's own file"


async def test_promoted_member_pushes_its_kept_edits(owner_and_reader) -> None:
    owner, reader, data_dir = owner_and_reader
    owner.write("a.txt", "a")
    await owner.sync()
    await reader.sync()
    reader.write("b.txt", "written while read-only")
    await reader.sync()
    admin.add_member(data_dir, "docs", "bob", "read-write")
    result = await reader.sync()
    assert result.pushed and not result.receive_only
    await owner.sync()
    assert owner.read("b.txt") == b"written while read-only"


async def test_demoted_member_turns_receive_only_without_an_error(owner_and_reader) -> None:
    owner, reader, data_dir = owner_and_reader
    admin.add_member(data_dir, "docs", "bob", "read-write")
    owner.write("a.txt", "a")
    await owner.sync()
    await reader.sync()  # caches the read-write role
    admin.add_member(data_dir, "docs", "bob", "read-only")
    reader.write("b.txt", "after the demotion")
    result = await reader.sync()  # the refused upload makes it ask the role again
    assert result.receive_only and result.local_only == 1
    await owner.sync()
    assert not (owner.root / "b.txt").exists()
