"""Logins at the same moment: the password work never pins the threads the database and
the object store use, the attempt budget is spent before the password is checked, and a
stranger cannot lock the real user out — against a real server on loopback."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from chunksync import wire
from chunksync_server import admin, auth
from chunksync_server.config import Argon2Params
from chunksync_server.handlers.common import CONFIG
from tests.helpers.server import (
    DEFAULT_PASSWORD,
    ServerProcess,
    create_user,
    serve_in_process,
)

F = "photos"


async def post_login(
    base: str, user: str, password: str, *, source: str = "127.0.0.1", timeout: float = 30.0
) -> int:
    """One login from loopback address ``source`` (all of 127/8 reaches the server)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as s:
        async with s.post(base + wire.LOGIN, json={"user": user, "password": password}) as r:
            await r.read()
            return r.status


async def upload_batches(s: aiohttp.ClientSession, url: str, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        blobs = [os.urandom(2048) for _ in range(4)]
        body = wire.encode_upload_frames([(wire.blob_digest(b), b) for b in blobs])
        async with s.post(url, data=body, headers={"Content-Type": wire.BATCH_TYPE}) as r:
            statuses.append(r.status)
    return statuses


async def test_simultaneous_logins_do_not_pin_the_database_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password check that never returns (as Argon2id in the installed OpenSSL did with
    several multi-lane derivations at once) holds only the password pool: the database
    and store keep answering, and logins past the pool's bound get 503 at once."""
    async with serve_in_process(tmp_path / "srv", login_max_failures=100) as srv:
        release = threading.Event()
        real_verify = auth.verify_password

        def wedged_verify(password: str, encoded: str) -> bool:
            release.wait(60)
            return real_verify(password, encoded)

        monkeypatch.setattr(auth, "verify_password", wedged_verify)
        cfg = srv.app[CONFIG]
        admitted = cfg.password_workers + cfg.password_queue
        logins = [
            asyncio.create_task(post_login(srv.base_url, srv.user, srv.password))
            for _ in range(admitted + 2)
        ]
        try:
            async with aiohttp.ClientSession(
                headers=srv.headers(), timeout=aiohttp.ClientTimeout(total=15)
            ) as s:
                for _ in range(3):  # more DB round trips than idle threads would allow
                    async with s.get(srv.url(wire.WHOAMI)) as r:
                        assert r.status == 200
                async with s.post(srv.url(wire.FOLDERS), json={"name": F}) as r:
                    assert r.status == 201
                assert await upload_batches(s, srv.url(wire.OBJECTS, folder=F), 3) == [200] * 3
            done, _ = await asyncio.wait(logins, timeout=15, return_when=asyncio.FIRST_COMPLETED)
            assert {t.result() for t in done} == {503}
        finally:
            release.set()
        statuses = Counter(await asyncio.gather(*logins))
        assert statuses == {200: admitted, 503: 2}


async def test_simultaneous_wrong_passwords_spend_the_budget_before_checking(
    tmp_path: Path,
) -> None:
    async with serve_in_process(tmp_path / "srv") as srv:
        create_user(srv.data_dir, "bob")
        statuses = Counter(
            await asyncio.gather(
                *(post_login(srv.base_url, "bob", "wrong-guess") for _ in range(50))
            )
        )
    limit = srv.app[CONFIG].login_max_failures
    assert statuses == {401: limit, 429: 50 - limit}


async def test_a_stranger_cannot_lock_the_user_out(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv") as srv:
        stranger = [
            await post_login(srv.base_url, srv.user, "guess-guess", source="127.0.0.2")
            for _ in range(8)
        ]
        assert stranger == [401] * 5 + [429] * 3
        assert await post_login(srv.base_url, srv.user, srv.password, source="127.0.0.3") == 200
        # the stranger's address stays refused, even with the right password
        assert await post_login(srv.base_url, srv.user, srv.password, source="127.0.0.2") == 429


async def test_guesses_spread_over_addresses_meet_the_per_user_budget(tmp_path: Path) -> None:
    async with serve_in_process(tmp_path / "srv", login_user_max_failures=8) as srv:
        statuses = [
            await post_login(srv.base_url, srv.user, "guess-guess", source=f"127.0.0.{10 + i % 4}")
            for i in range(12)
        ]
    assert statuses == [401] * 8 + [429] * 4


LEGACY = Argon2Params(iterations=1, lanes=4, memory_kib=8 * 1024)  # old default had 4 lanes


def test_twenty_concurrent_logins_answer_during_uploads_and_sigterm_stops(
    tmp_path: Path,
) -> None:
    """The acceptance check, on a real ``python -m chunksync_server serve`` process."""
    data = tmp_path / "srv"
    users = ["alice", "bob", "carol", "dave"]
    for name in users:  # hashes as the old default made them (4 lanes): still verify
        admin.add_user(data, name, DEFAULT_PASSWORD, params=LEGACY)
    with ServerProcess(data) as proc:
        base = proc.base_url

        async def scenario() -> tuple[list[tuple[int, int]], list[int], float]:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
                async with s.post(
                    base + wire.LOGIN, json={"user": "alice", "password": DEFAULT_PASSWORD}
                ) as r:
                    token = (await r.json())["token"]
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=30)
            ) as s:
                async with s.post(base + wire.FOLDERS, json={"name": F}) as r:
                    assert r.status == 201
                cases = [(users[i % 4], i % 3 == 0) for i in range(20)]  # (user, wrong?)
                start = time.monotonic()
                logins = asyncio.gather(
                    *(
                        post_login(
                            base,
                            name,
                            "not-the-password" if wrong else DEFAULT_PASSWORD,
                            source=f"127.0.0.{20 + i}",
                        )
                        for i, (name, wrong) in enumerate(cases)
                    )
                )
                uploads = upload_batches(s, base + wire.OBJECTS.format(folder=F), 10)
                login_statuses, upload_statuses = await asyncio.gather(logins, uploads)
                elapsed = time.monotonic() - start
            expected = [401 if wrong else 200 for _, wrong in cases]
            return list(zip(login_statuses, expected)), upload_statuses, elapsed

        pairs, uploads, elapsed = asyncio.run(scenario())
        assert all(got == want for got, want in pairs), pairs
        assert uploads == [200] * 10
        assert elapsed < 20, elapsed  # generous: a few seconds on a loaded machine
        assert proc.proc is not None
        stop_start = time.monotonic()
        proc.proc.terminate()
        code = proc.proc.wait(timeout=15)
        assert time.monotonic() - stop_start < 10 and code is not None
        proc.stop()


def test_sigterm_stops_the_server_even_with_a_stuck_worker_thread(tmp_path: Path) -> None:
    """The forced exit armed on SIGTERM: a non-daemon thread stuck forever (a wedged
    library call) cannot keep the process alive past the grace period."""
    script = (
        "import threading, chunksync_server.__main__ as m\n"
        "threading.Thread(target=threading.Event().wait).start()\n"
        "m._arm_forced_exit(0.5)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, timeout=30, capture_output=True, text=True
    )
    assert proc.returncode == 1 and "graceful stop timed out" in proc.stderr


async def test_a_multi_lane_hash_is_rehashed_with_one_lane_on_login(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    admin.add_user(data, "erin", DEFAULT_PASSWORD, params=LEGACY)
    async with serve_in_process(data) as srv:
        assert await post_login(srv.base_url, "erin", DEFAULT_PASSWORD) == 200
        assert await post_login(srv.base_url, "erin", DEFAULT_PASSWORD) == 200
    conn = sqlite3.connect(data / "meta.db")
    try:
        (encoded,) = conn.execute("SELECT pw_hash FROM users WHERE name = 'erin'").fetchone()
    finally:
        conn.close()
    assert ",p=1$" in encoded and auth.verify_password(DEFAULT_PASSWORD, encoded)
