"""Property-based fuzzing of the chunk server against ``docs/openapi.yaml`` (schemathesis).

Every operation of the spec is driven with generated requests — valid ones and, in
schemathesis's negative mode, invalid ones — against a real server on 127.0.0.1,
authenticated as a member of a folder that holds objects, a key slot and a head, so
the routes behind auth are exercised, not only their 401. Each answer must be no 5xx,
arrive in time, and match the spec: a documented status code, its content type and
its body schema (the JSON error body included).

Half the generated cases are pointed at the real folder and a stored object id, so the
success paths are fuzzed too. Routes that change their caller (logout, token rotation,
TOTP) get a throwaway user's token each time, so they cannot revoke the fuzzer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from chunksync import wire

from .live_server import LiveServer, live_server

pytestmark = pytest.mark.integration

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
FOLDER = "fuzzed"
BLOB = b"sealed bytes the server cannot read"
STORED = "ab" * 32   # an id of a stored object (the server cannot check ids)
#: routes whose success revokes or reconfigures the calling account
SELF_CHANGING = {(wire.LOGOUT, "POST"), (wire.TOKEN_ROTATE, "POST"), (wire.TOTP_ENROLL, "POST"),
                 (wire.TOTP_ENROLL, "DELETE")}
#: per operation; ~20 operations x this, kept so the whole file runs in about a minute
EXAMPLES = int(os.environ.get("CHUNKSYNC_API_FUZZ_EXAMPLES", "30"))
TIMEOUT = 10.0   # seconds per request: a hang fails the test instead of stalling CI

#: where a schema-valid request is still refused, for a reason the schema cannot express
SEMANTIC_REFUSALS = {
    wire.HEAD: ("400", "the new head must be an object stored in the folder"),
    wire.OBJECT: ("400", "the X-Chunksync-Digest header must be the BLAKE3 of the body"),
    wire.OBJECTS: ("400 413", "the body must be well-formed frames, each under the size cap"),
    wire.EVENTS: ("400", "a plain GET, without a WebSocket upgrade, is refused"),
}
ACCEPTED = ["2xx", "401", "403", "404", "409", "429"]
CONFIG = schemathesis.Config.from_dict({
    "operations": [
        {"include-path": path, "checks": {"positive_data_acceptance": {
            "expected-statuses": [*ACCEPTED, *statuses.split()]}}}
        for path, (statuses, _why) in SEMANTIC_REFUSALS.items()
    ],
})
# the batch body is bytes: send what hypothesis generates for "format: binary" as it is
schemathesis.serializer.alias(wire.BATCH_TYPE, "application/octet-stream")
schema = schemathesis.openapi.from_path(str(SPEC), config=CONFIG)


def _populate(server: LiveServer) -> None:
    """A folder with a stored object, a head on it and a key slot."""
    auth = {"Authorization": f"Bearer {server.token}"}
    base = server.base_url
    steps = [
        requests.post(base + wire.FOLDERS, json={"name": FOLDER}, headers=auth, timeout=TIMEOUT),
        requests.put(base + wire.OBJECT.format(folder=FOLDER, oid=STORED), data=BLOB,
                     headers={**auth, wire.DIGEST_HEADER: wire.blob_digest(BLOB).hex()},
                     timeout=TIMEOUT),
        requests.put(base + wire.HEAD.format(folder=FOLDER), json={"expected": None, "new": STORED},
                     headers=auth, timeout=TIMEOUT),
        requests.put(base + wire.KEYSLOT.format(folder=FOLDER, slot="device1"),
                     json={"blob": "c2xvdA=="}, headers=auth, timeout=TIMEOUT),
    ]
    for resp in steps:
        assert resp.status_code in (200, 201), (resp.status_code, resp.text)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("fuzz-server")) as srv:
        _populate(srv)
        yield srv


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@schema.parametrize()
@schema.given(aim=st.sampled_from(["as generated", "real folder", "real folder and object"]))
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_matches_spec(case: schemathesis.Case, aim: str, server: LiveServer,
                          session: requests.Session) -> None:
    params = case.path_parameters or {}
    if aim != "as generated" and "folder" in params:
        params["folder"] = FOLDER
        if aim == "real folder and object" and "oid" in params:
            params["oid"] = STORED
    key = (case.operation.path, case.method.upper())
    token = server.fresh_token() if key in SELF_CHANGING else server.token
    case.call_and_validate(base_url=server.base_url, session=session,
                           headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
