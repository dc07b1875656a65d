"""``docs/openapi.yaml`` loaded for schemathesis, and the fuzzed server's fixed contents.

Shared by the API fuzz tests: the schema (with the checks' per-route exceptions), the
bearer-token provider that authenticates generated cases, and :func:`populate`, which
gives the server a folder holding an object, a head on it and a key slot.
"""

from __future__ import annotations

from pathlib import Path

import requests
import schemathesis

from chunksync import wire

from .live_server import LiveServer

__all__ = ["BLOB", "FOLDER", "LIVE", "STORED", "TIMEOUT", "populate", "schema"]

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
FOLDER = "fuzzed"
BLOB = b"sealed bytes the server cannot read"
STORED = "ab" * 32  # an id of a stored object (the server cannot check ids)
TIMEOUT = 10.0  # seconds per request: a hang fails the test instead of stalling CI
#: routes whose success revokes or reconfigures the calling account
SELF_CHANGING = {
    (wire.LOGOUT, "POST"),
    (wire.TOKEN_ROTATE, "POST"),
    (wire.TOTP_ENROLL, "POST"),
    (wire.TOTP_ENROLL, "DELETE"),
    (wire.DEVICE, "DELETE"),
}
#: where a schema-valid request is still refused, for a reason the schema cannot express
SEMANTIC_REFUSALS = {
    wire.HEAD: ("400", "the new head must be an object stored in the folder"),
    wire.OBJECT: ("400", "the X-Chunksync-Digest header must be the BLAKE3 of the body"),
    wire.OBJECTS: ("400 413", "the body must be well-formed frames, each under the size cap"),
    wire.EVENTS: ("400", "a plain GET, without a WebSocket upgrade, is refused"),
}
ACCEPTED = ["2xx", "401", "403", "404", "409", "429"]
CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {
                "include-path": path,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": [*ACCEPTED, *statuses.split()]
                    }
                },
            }
            for path, (statuses, _why) in SEMANTIC_REFUSALS.items()
        ],
    }
)
# the batch body is bytes: send what hypothesis generates for "format: binary" as it is
schemathesis.serializer.alias(wire.BATCH_TYPE, "application/octet-stream")
schema = schemathesis.openapi.from_path(str(SPEC), config=CONFIG)
#: the running server, set by the ``server`` fixture (schemathesis builds the provider)
LIVE: dict[str, LiveServer] = {}


@schema.auth(refresh_interval=None)
class BearerToken:
    """The fuzzer's token; schemathesis leaves it off the cases that test a missing one."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        server = LIVE["server"]
        key = (case.operation.path, case.method.upper())
        return server.fresh_token() if key in SELF_CHANGING else server.token

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def populate(server: LiveServer) -> None:
    """A folder with a stored object, a head on it and a key slot."""
    auth = {"Authorization": f"Bearer {server.token}"}
    base = server.base_url
    steps = [
        requests.post(base + wire.FOLDERS, json={"name": FOLDER}, headers=auth, timeout=TIMEOUT),
        requests.put(
            base + wire.OBJECT.format(folder=FOLDER, oid=STORED),
            data=BLOB,
            headers={**auth, wire.DIGEST_HEADER: wire.blob_digest(BLOB).hex()},
            timeout=TIMEOUT,
        ),
        requests.put(
            base + wire.HEAD.format(folder=FOLDER),
            json={"expected": None, "new": STORED},
            headers=auth,
            timeout=TIMEOUT,
        ),
        requests.put(
            base + wire.KEYSLOT.format(folder=FOLDER, slot="device1"),
            json={"blob": "c2xvdA=="},
            headers=auth,
            timeout=TIMEOUT,
        ),
    ]
    for resp in steps:
        assert resp.status_code in (200, 201), (resp.status_code, resp.text)
