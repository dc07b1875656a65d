"""Fixtures of the fuzz tests: one real server per module, populated (see api_spec)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from .api_spec import LIVE, populate
from .live_server import LiveServer, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("fuzz-server")) as srv:
        populate(srv)
        LIVE["server"] = srv
        try:
            yield srv
        finally:
            LIVE.clear()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
