"""Fuzzing the routes whose success needs content a JSON schema cannot describe.

Hypothesis builds well-formed requests — framed batches with correct digests, single
uploads with their BLAKE3, head moves from the current head to a stored object, logins
with the right password, TOTP codes — and then mutates some of them (a flipped digest,
a cut or lengthened frame, a stale head, a wrong password). Each answer is checked
against ``docs/openapi.yaml`` with schemathesis's conformance checks (no 5xx, a
documented status, content type and body) and against the rule the route promises:
exactly which frames are kept, which head wins, who gets a token.
"""

from __future__ import annotations

import itertools

import pyotp
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chunksync import wire
from tests.helpers.server import DEFAULT_PASSWORD

from .api_spec import FOLDER, TIMEOUT, schema
from .live_server import LiveServer

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

blobs = st.binary(max_size=2048)
ids = st.binary(min_size=32, max_size=32)
_serial = itertools.count()


def fresh_id(blob: bytes) -> bytes:
    """An id no earlier example used (put-if-absent would keep the first blob under it)."""
    return wire.blob_digest(next(_serial).to_bytes(8, "big") + blob)


def send(
    server: LiveServer, session: requests.Session, path: str, method: str, **case_fields: object
) -> requests.Response:
    """Send one explicit case and check the answer against the spec."""
    case = schema[path][method].Case(**case_fields)  # type: ignore[arg-type]
    response = case.call(base_url=server.base_url, session=session, timeout=TIMEOUT)
    case.validate_response(response, checks=CHECKS)
    return response


def auth(server: LiveServer, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or server.token}"}


def frame(oid: bytes, blob: bytes) -> bytes:
    return wire.UPLOAD_FRAME_HEADER.pack(oid, wire.blob_digest(blob), len(blob)) + blob


@st.composite
def batches(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A framed body and the index of its first bad frame (None: all good)."""
    frames = draw(st.lists(st.tuples(ids, blobs), max_size=6))
    encoded = [frame(oid, blob) for oid, blob in frames]
    bad = None
    if frames and draw(st.booleans()):
        bad = draw(st.integers(0, len(frames) - 1))
        raw = bytearray(encoded[bad])
        how = draw(st.sampled_from(["digest", "cut", "longer"]))
        if how == "digest":
            raw[32 + draw(st.integers(0, 31))] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            raw = raw[: draw(st.integers(1, len(raw) - 1))]
            encoded = encoded[: bad + 1]  # a cut frame ends the body
        else:
            raw[64:68] = (len(frames[bad][1]) + 1).to_bytes(4, "big")
            encoded = encoded[: bad + 1]  # its blob now reads past the end
        encoded[bad] = bytes(raw)
    return b"".join(encoded), bad


@given(body=batches())
@FUZZ
def test_batch_upload_keeps_exactly_the_frames_before_a_bad_one(
    body: tuple[bytes, int | None], server: LiveServer, session: requests.Session
) -> None:
    data, bad = body
    resp = send(
        server,
        session,
        "/v1/folders/{folder}/objects",
        "POST",
        path_parameters={"folder": FOLDER},
        body=data,
        media_type=wire.BATCH_TYPE,
        headers=auth(server),
    )
    if bad is None:
        assert resp.status_code == 200, resp.text
    else:
        assert resp.status_code == 400, resp.text
        assert resp.json()["accepted"] == bad


@given(blob=blobs, honest=st.booleans(), again=st.booleans())
@FUZZ
def test_single_upload_stores_only_what_its_digest_names(
    blob: bytes, honest: bool, again: bool, server: LiveServer, session: requests.Session
) -> None:
    oid = fresh_id(blob)
    digest = wire.blob_digest(blob if honest else blob + b"!").hex()
    resp = send(
        server,
        session,
        "/v1/folders/{folder}/objects/{oid}",
        "PUT",
        path_parameters={"folder": FOLDER, "oid": oid.hex()},
        body=blob,
        media_type=wire.BLOB_TYPE,
        headers={**auth(server), wire.DIGEST_HEADER: digest},
    )
    assert resp.status_code == (201 if honest else 400), resp.text
    if honest and again:  # idempotent: the same upload again stores nothing new
        resp = send(
            server,
            session,
            "/v1/folders/{folder}/objects/{oid}",
            "PUT",
            path_parameters={"folder": FOLDER, "oid": oid.hex()},
            body=blob,
            media_type=wire.BLOB_TYPE,
            headers={**auth(server), wire.DIGEST_HEADER: digest},
        )
        assert resp.status_code == 200 and resp.json() == {"stored": 0}, resp.text
    got = send(
        server,
        session,
        "/v1/folders/{folder}/objects/{oid}",
        "GET",
        path_parameters={"folder": FOLDER, "oid": oid.hex()},
        headers=auth(server),
    )
    assert got.status_code == (200 if honest else 404)
    if honest:
        assert got.content == blob


@given(blob=blobs, stale=st.booleans(), stored=st.booleans())
@FUZZ
def test_head_moves_only_from_the_current_head_to_a_stored_object(
    blob: bytes, stale: bool, stored: bool, server: LiveServer, session: requests.Session
) -> None:
    folder = {"folder": FOLDER}
    current = send(
        server,
        session,
        "/v1/folders/{folder}/head",
        "GET",
        path_parameters=folder,
        headers=auth(server),
    ).json()
    new = fresh_id(blob)  # any 32 bytes do: the server cannot check ids
    if stored:
        send(
            server,
            session,
            "/v1/folders/{folder}/objects",
            "POST",
            path_parameters=folder,
            body=frame(new, blob),
            media_type=wire.BATCH_TYPE,
            headers=auth(server),
        )
    expected = "00" * 32 if stale else current["head"]
    resp = send(
        server,
        session,
        "/v1/folders/{folder}/head",
        "PUT",
        path_parameters=folder,
        body={"expected": expected, "new": new.hex()},
        media_type="application/json",
        headers=auth(server),
    )
    if not stored:
        assert resp.status_code == 400, resp.text
    elif stale:
        assert resp.status_code == 409 and resp.json()["head"] == current["head"], resp.text
    else:
        assert resp.status_code == 200 and resp.json()["head"] == new.hex(), resp.text


@given(
    user=st.sampled_from(["alice", "nobody"]) | st.text(max_size=20),
    password=st.sampled_from([DEFAULT_PASSWORD]) | st.text(max_size=40),
    device=st.none() | st.text(max_size=70),
)
@settings(FUZZ, max_examples=25)
def test_login_gives_a_token_only_for_the_right_password(
    user: str,
    password: str,
    device: str | None,
    server: LiveServer,
    session: requests.Session,
) -> None:
    body = {"user": user, "password": password}
    if device is not None:
        body["device_name"] = device
    resp = send(server, session, "/v1/login", "POST", body=body, media_type="application/json")
    good_device = device is None or bool(wire.DEVICE_NAME.match(device))
    if not good_device:
        assert resp.status_code == 400, resp.text
    elif user == server.srv.user and password == DEFAULT_PASSWORD:
        assert resp.status_code == 200, resp.text
    else:
        assert resp.status_code == 401, resp.text


@given(right=st.booleans(), code=st.text("0123456789", min_size=0, max_size=8))
@settings(FUZZ, max_examples=10)
def test_totp_disable_needs_a_current_code(
    right: bool, code: str, server: LiveServer, session: requests.Session
) -> None:
    token = server.fresh_token()
    enrolled = send(server, session, "/v1/totp", "POST", headers=auth(server, token))
    assert enrolled.status_code == 200, enrolled.text
    totp = pyotp.TOTP(enrolled.json()["secret"])
    sent = totp.now() if right else code
    resp = send(
        server,
        session,
        "/v1/totp",
        "DELETE",
        body={"totp": sent},
        media_type="application/json",
        headers=auth(server, token),
    )
    if right:
        assert resp.status_code == 204, resp.text
    elif not totp.verify(sent, valid_window=1):
        assert resp.status_code == 403, resp.text


@given(whose=st.sampled_from(["own", "other", "random"]), relogin=st.booleans())
@settings(FUZZ, max_examples=10)
def test_a_device_is_revoked_only_by_its_own_user(
    whose: str, relogin: bool, server: LiveServer, session: requests.Session
) -> None:
    token = server.fresh_token()
    listed = send(server, session, "/v1/devices", "GET", headers=auth(server, token))
    assert listed.status_code == 200, listed.text
    (mine,) = listed.json()["devices"]
    assert mine["current"] and not mine["revoked"]
    if whose == "own":
        target = mine["id"]
    elif whose == "other":
        other = send(server, session, "/v1/devices", "GET", headers=auth(server)).json()
        target = other["devices"][0]["id"]
    else:
        target = fresh_id(b"device").hex()[:16]
    resp = send(
        server,
        session,
        "/v1/devices/{device}",
        "DELETE",
        path_parameters={"device": target},
        headers=auth(server, token),
    )
    assert resp.status_code == (204 if whose == "own" else 404), resp.text
    if whose != "own":  # the other user's device still works
        assert session.get(server.base_url + wire.WHOAMI, headers=auth(server)).status_code == 200
    else:
        gone = session.get(server.base_url + wire.WHOAMI, headers=auth(server, token))
        assert gone.status_code == 401


def test_regression_log_refuses_unknown_query_parameters(
    server: LiveServer, session: requests.Session
) -> None:
    """Found by the fuzzer: ``?after=0&=`` was answered 200 (unknown parameters ignored)."""
    resp = send(
        server,
        session,
        "/v1/folders/{folder}/log",
        "GET",
        path_parameters={"folder": FOLDER},
        query={"after": "0", "afetr": "5"},
        headers=auth(server),
    )
    assert resp.status_code == 400 and "afetr" in resp.json()["error"]


def test_regression_events_without_upgrade_says_why(
    server: LiveServer, session: requests.Session
) -> None:
    """Found by the fuzzer: a plain GET got aiohttp's bare "Bad Request"."""
    resp = send(
        server,
        session,
        "/v1/folders/{folder}/events",
        "GET",
        path_parameters={"folder": FOLDER},
        headers=auth(server),
    )
    assert resp.status_code == 400 and "WebSocket" in resp.json()["error"]
