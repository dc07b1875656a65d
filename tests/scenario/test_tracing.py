"""A sync round is one OpenTelemetry trace across client and server, and no span says a
file name, a folder name or a secret. Uses the SDK's in-memory exporter; the real
engine, HTTP client and in-process server on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import chunksync_server.tracing as server_tracing
from chunksync import tracing
from chunksync.transport.http import HttpClient
from tests.helpers.devices import Device
from tests.helpers.server import login, serve_in_process

pytestmark = pytest.mark.scenario

SECRET_NAME = "salary-review-2026.txt"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    server_tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
        server_tracing.install(None)
        provider.shutdown()


async def test_a_sync_round_is_one_trace_across_client_and_server(
    spans: InMemorySpanExporter, tmp_path: Path, folder_keys
) -> None:
    async with serve_in_process(tmp_path / "server") as srv:
        async with aiohttp.ClientSession() as session:
            await session.post(srv.url("/v1/folders"), json={"name": "docs"}, headers=srv.headers())
            creds = await login(session, srv.base_url, srv.user, device_name="laptop")
        client = HttpClient(srv.base_url, creds["token"])
        device = Device("laptop", tmp_path / "laptop", client.folder("docs"), folder_keys)
        try:
            device.write(f"private/{SECRET_NAME}", "numbers")
            spans.clear()
            await device.sync()
        finally:
            device.close()
            await client.aclose()
    finished = spans.get_finished_spans()
    rounds = [s for s in finished if s.name == "sync.round"]
    assert len(rounds) == 1
    trace_id = rounds[0].context.trace_id
    names = {s.name for s in finished if s.context.trace_id == trace_id}
    assert {"scan", "plan", "apply", "upload", "head CAS"} <= names
    server_spans = [s for s in finished if s.kind.name == "SERVER"]
    assert server_spans, "the server made no span"
    others = [s.name for s in server_spans if s.context.trace_id != trace_id]
    assert not others, others  # one trace
    assert any(s.name.endswith("/v1/folders/{folder}/head") for s in server_spans)
    secrets = [SECRET_NAME, "private", "docs", "laptop", creds["token"], srv.password, srv.user]
    for s in finished:
        shown = f"{s.name} {dict(s.attributes or {})}"
        for secret in secrets:
            assert secret not in shown, f"span {s.name} shows {secret!r}"


def test_tracing_is_off_by_default_and_imports_nothing() -> None:
    code = (
        "import sys, chunksync.cli, chunksync.tracing as t\n"
        "with t.span('x') as s: assert s is None\n"
        "assert t.inject({}) == {}\n"
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
    )
    assert out.stdout.strip() == "False"
