"""Fuzzing the HTTP client's parsing of every answer: only project errors, ever.

A loopback server answers each call of :class:`~chunksync.transport.http.HttpClient`
and :class:`~chunksync.transport.http.HttpChunkStore` with a generated status, body and
content type: JSON of any shape, near-valid documents with wrong types or values, raw
bytes, and near-misses of valid download frames. Each call must return or raise a
ChunksyncError — never a KeyError, TypeError, RecursionError or an aiohttp exception.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chunksync import wire
from chunksync.objects import ObjectId
from chunksync.transport.http import HttpChunkStore, HttpClient
from chunksync.transport.retry import RetryPolicy

from .hostile_server import Answer, hostile_server
from .strategies import FUZZ, json_values, mutations, only_project_errors, wild_json

pytestmark = pytest.mark.integration

ID = ObjectId(bytes(range(32)))
HEAD = "ab" * 32
Call = Callable[[HttpClient, HttpChunkStore], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "login": lambda c, s: c.login("alice", "pw", "laptop"),
    "whoami": lambda c, s: c.whoami(),
    "list_folders": lambda c, s: c.list_folders(),
    "create_folder": lambda c, s: c.create_folder("docs"),
    "missing": lambda c, s: s.missing([ID]),
    "get_many": lambda c, s: s.get_many([ID]),
    "put_many": lambda c, s: s.put_many([(ID, b"blob")]),
    "get_head": lambda c, s: s.get_head(),
    "cas_head": lambda c, s: s.cas_head(None, HEAD),
    "head_log": lambda c, s: s.head_log(0, 5),
    "role": lambda c, s: s.role(),
    "get_keyslots": lambda c, s: s.get_keyslots(),
    "put_keyslot": lambda c, s: s.put_keyslot("device1", b"slot"),
}
KEYS = [
    "token",
    "device_id",
    "expires_at",
    "folders",
    "name",
    "missing",
    "head",
    "seq",
    "epoch",
    "entries",
    "role",
    "slots",
    "error",
    "code",
    "current",
    "retry_after",
]
values = (
    json_values
    | st.sampled_from([HEAD, ID.hex(), "owner", [ID.hex()], {"device1": "c2xvdA=="}])
    | st.lists(
        st.fixed_dictionaries(
            {},
            optional=dict.fromkeys(
                ("seq", "head", "previous", "time", "device", "user", "name"), json_values
            ),
        ),
        max_size=3,
    )
)
documents = st.fixed_dictionaries({}, optional=dict.fromkeys(KEYS, values)).map(
    lambda d: json.dumps(d, allow_nan=True).encode("utf-8", "surrogatepass")
)
FRAMES = wire.encode_download_frames([(ID, b"one")])
bodies = documents | wild_json | mutations(FRAMES)
statuses = st.sampled_from([200, 201, 204, 400, 401, 403, 404, 409, 413, 429, 500, 503, 507])
types = st.sampled_from(["application/json", wire.BATCH_TYPE, "text/html"])


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[str, Answer]]:
    with hostile_server() as server:
        yield server


async def _call(base: str, name: str) -> Any:
    client = HttpClient(base, "token", retry=RetryPolicy(attempts=1), timeout=10)
    try:
        return await CALLS[name](client, client.folder("docs"))
    finally:
        await client.aclose()


@given(name=st.sampled_from(sorted(CALLS)), status=statuses, body=bodies, ctype=types)
@settings(FUZZ, max_examples=int(os.environ.get("CHUNKSYNC_CLIENT_FUZZ_EXAMPLES", "150")))
def test_client_turns_any_answer_into_a_result_or_a_project_error(
    name: str, status: int, body: bytes, ctype: str, hostile: tuple[str, Answer]
) -> None:
    base, answer = hostile
    answer.status, answer.body, answer.content_type = status, body, ctype
    if status == 204:
        answer.body = b""
    only_project_errors(asyncio.run, _call(base, name))
