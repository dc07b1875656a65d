"""Without a session (or the token) every page and API of the dashboard and of the admin
page answers 401/403; a cross-site POST is refused even with a session; the login link
works once; answers carry the strict headers; /metrics takes the bearer token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from chunksync.ui.app import make_ui_app
from chunksync.ui.login import LINK_LIFETIME, LinkChecker, UiAddress, login_url
from chunksync.webguard import CSP
from tests.helpers.server import DEFAULT_PASSWORD, create_user, serve_in_process

pytestmark = pytest.mark.integration

TOKEN = "t0ken-for-tests"
PAGES = ["/", "/f/0", "/f/0/history", "/devices", "/events", "/api/folders", "/metrics"]
POSTS = ["/f/0/control", "/f/0/resolve", "/f/0/restore"]
ADMIN_PAGES = ["/admin/", "/admin/users", "/admin/devices", "/admin/folders", "/admin/audit"]


@pytest.fixture
async def ui() -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(make_ui_app([], TOKEN, 0)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _log_in(ui: TestClient) -> str:
    """Follow a login link; returns the session's CSRF token (read from a page)."""
    base = str(ui.make_url("")).rstrip("/")
    link = login_url(UiAddress(base, TOKEN, 0))
    resp = await ui.get(link.removeprefix(base), allow_redirects=False)
    assert resp.status == 303 and "chunksync_ui" in resp.cookies
    cookie = resp.cookies["chunksync_ui"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    page = await (await ui.get("/")).text()
    return page.split('<meta name="csrf-token" content="')[1].split('"')[0]


async def test_every_page_and_api_needs_a_session_or_the_token(ui: TestClient) -> None:
    for path in PAGES:
        resp = await ui.get(path)
        assert resp.status == 401, path
        assert resp.headers["Content-Security-Policy"] == CSP
    for path in POSTS:
        assert (await ui.post(path, data={"command": "pause"})).status == 401, path
    bad = {"Authorization": "Bearer wrong"}
    assert (await ui.get("/api/folders", headers=bad)).status == 401
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert (await ui.get("/api/folders", headers=good)).status == 200
    metrics = await ui.get("/metrics", headers=good)
    assert metrics.status == 200 and "chunksync_client_round_seconds" in await metrics.text()
    assert (await ui.get("/static/app.js")).status == 200  # the package's own code, no secret


async def test_the_login_link_works_once_and_a_forged_one_never(ui: TestClient) -> None:
    base = str(ui.make_url("")).rstrip("/")
    link = login_url(UiAddress(base, TOKEN, 0)).removeprefix(base)
    assert (await ui.get(link, allow_redirects=False)).status == 303
    assert (await ui.get(link, allow_redirects=False)).status == 403
    forged = login_url(UiAddress(base, "another token", 0)).removeprefix(base)
    assert (await ui.get(forged, allow_redirects=False)).status == 403
    checker = LinkChecker(TOKEN)
    old = login_url(UiAddress(base, TOKEN, 0), now=1000.0).split("?")[1]
    fields = dict(p.split("=") for p in old.split("&"))
    assert not checker.accept(fields["n"], fields["t"], fields["m"], now=1000.0 + LINK_LIFETIME + 1)
    assert checker.accept(fields["n"], fields["t"], fields["m"], now=1000.0 + 1)


async def test_a_cross_site_post_is_refused_even_with_a_session(ui: TestClient) -> None:
    csrf = await _log_in(ui)
    assert csrf
    form = {"command": "pause", "csrf": csrf}
    evil = await ui.post("/f/0/control", data=form, headers={"Origin": "http://evil.example"})
    assert evil.status == 403
    sneaky = await ui.post("/f/0/control", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert sneaky.status == 403
    no_token = await ui.post("/f/0/control", data={"command": "pause"})
    assert no_token.status == 403
    wrong = await ui.post("/f/0/control", data={"command": "pause", "csrf": "x"})
    assert wrong.status == 403
    same = await ui.post(
        "/f/0/control", data=form, headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False
    )
    assert same.status == 404  # past the guard: this test app serves no folder


async def test_a_foreign_host_name_is_not_served() -> None:
    client = TestClient(TestServer(make_ui_app([], TOKEN, 8999)))
    await client.start_server()
    try:
        assert (await client.get("/", headers={"Host": "evil.example:8999"})).status == 421
    finally:
        await client.close()


async def test_admin_pages_need_an_admin_session(tmp_path: Path) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies from 127.0.0.1
    async with serve_in_process(tmp_path) as srv, aiohttp.ClientSession(cookie_jar=jar) as http:
        create_user(srv.data_dir, "root", admin_user=True)
        base = srv.base_url
        for path in ADMIN_PAGES:
            resp = await http.get(base + path)
            assert resp.status == 401, path
            assert resp.headers["Content-Security-Policy"] == CSP
        assert (await http.post(base + "/admin/devices/revoke", data={"device": "x"})).status == 401
        cross = await http.post(
            base + "/admin/login",
            data={"user": "root", "password": DEFAULT_PASSWORD},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
        )
        assert cross.status == 403
        ok = await http.post(
            base + "/admin/login",
            data={"user": "root", "password": DEFAULT_PASSWORD},
            allow_redirects=False,
        )
        assert ok.status == 303
        assert (await http.get(base + "/admin/users")).status == 200
        forged = await http.post(base + "/admin/devices/revoke", data={"device": "x"})
        assert forged.status == 403  # a session, but no CSRF token
        assert (await http.get(base + "/v1/folders")).status == 401  # the API still wants a token
