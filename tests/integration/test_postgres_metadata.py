"""The server's metadata tests again, with the metadata in PostgreSQL instead of SQLite.

The same test functions as the SQLite modules listed in :data:`MODULES` are collected
here a second time (accounts, tokens and rotation, TOTP replay, folders, members,
heads and the head log, quotas, the audit chain); an autouse fixture points the server
and the admin functions at a fresh PostgreSQL database (``$CHUNKSYNC_SERVER_DB``, read
by ``fast_config`` and ``admin``). Tests that inspect the SQLite file itself stay
SQLite-only (:data:`SQLITE_ONLY`). Why re-collect instead of parametrizing each module:
one list here, and the SQLite modules stay as they are for the other branches editing
them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from chunksync_server.config import DB_ENV

MODULES = (
    "tests.integration.test_server_flow",
    "tests.integration.test_server_auth",
    "tests.integration.test_quota",
    "tests.integration.test_token_rotation_grace",
    "tests.integration.test_server_append_only",
    "tests.integration.test_server_totp_replay",
    "tests.integration.test_token_sharing",
)
#: tests about the SQLite file on disk (its mode bits, its bytes)
SQLITE_ONLY = frozenset({"test_no_secret_at_rest"})

for _module in MODULES:
    for _name, _value in vars(importlib.import_module(_module)).items():
        if _name.startswith("_") or _name in ("pytestmark", "annotations") or _name in SQLITE_ONLY:
            continue
        globals().setdefault(_name, _value)

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _metadata_in_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(DB_ENV, pg_url)
    yield
