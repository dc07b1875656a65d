"""Property-based fuzzing of the chunk server against ``docs/openapi.yaml`` (schemathesis).

Every operation of the spec is driven with generated requests — valid ones and, in
schemathesis's negative mode, invalid ones — against a real server on 127.0.0.1,
authenticated as a member of a folder that holds objects, a key slot and a head, so
the routes behind auth are exercised, not only their 401. Each answer must be no 5xx,
arrive in time, and match the spec: a documented status code, its content type and
its body schema (the JSON error body included).

Two thirds of the positive cases are pointed at the real folder (and half of those at
a stored object id), so the success paths are fuzzed too; the module checks at the end
that every route answered a 2xx at least once. Routes whose success needs content the
schema cannot describe (framed batches, digests, a stored head, a valid password or
TOTP code, one of the caller's device ids) are driven by ``test_api_deep_fuzz.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation

from chunksync import wire

from .api_spec import FOLDER, STORED, TIMEOUT, schema
from .live_server import LiveServer

pytestmark = pytest.mark.integration

#: per operation; ~20 operations x this, kept so the whole file runs in well under a minute
EXAMPLES = int(os.environ.get("CHUNKSYNC_API_FUZZ_EXAMPLES", "60"))
#: statuses seen per operation, checked at the end: the fuzzer must get past auth
SEEN: dict[str, set[int]] = {}
#: operations whose success random schema-valid data cannot reach (see the module doc)
DEEP = {
    f"GET {wire.EVENTS}",
    f"POST {wire.LOGIN}",
    f"DELETE {wire.TOTP_ENROLL}",
    f"DELETE {wire.DEVICE}",
    f"POST {wire.OBJECTS}",
    f"PUT {wire.OBJECT}",
    f"PUT {wire.HEAD}",
    # deleting routes: a device token always gets 403 (maintenance token: POST reauth)
    f"POST {wire.REAUTH}",
    f"PUT {wire.RETENTION}",
    f"POST {wire.FORGET}",
    f"POST {wire.FORGET_POLICY}",
    f"POST {wire.PRUNE}",
    f"POST {wire.PRUNE_LIVE}",
    f"POST {wire.PRUNE_SWEEP}",
}


@pytest.fixture(scope="module", autouse=True)
def every_route_succeeded() -> Iterator[None]:
    yield
    never = sorted(
        op
        for op, statuses in SEEN.items()
        if op not in DEEP and not any(200 <= s < 300 for s in statuses)
    )
    assert not never, f"fuzzing never got a 2xx from {never}: statuses seen {SEEN}"


@schema.parametrize()
@schema.given(aim=st.sampled_from(["as generated", "real folder", "real folder and object"]))
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
def test_api_matches_spec(
    case: schemathesis.Case, aim: str, server: LiveServer, session: requests.Session
) -> None:
    params = case.path_parameters or {}
    negative_path = case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH)
    if aim != "as generated" and "folder" in params and not negative_path:
        params["folder"] = FOLDER
        if aim == "real folder and object" and "oid" in params:
            params["oid"] = STORED
    response = case.call_and_validate(base_url=server.base_url, session=session, timeout=TIMEOUT)
    SEEN.setdefault(f"{case.method.upper()} {case.operation.path}", set()).add(response.status_code)
