"""docs/grafana-dashboard.json is valid JSON and charts only metrics that exist (the
client's from the dashboard's registry, the server's from its registry)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from chunksync.ui.metrics import ClientMetrics
from chunksync_server.metrics import Metrics

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def _exposed() -> set[str]:
    client = ClientMetrics([], lambda d: {})
    client.observe_round("f", 0.1)
    server = Metrics()
    server.observe("/x", "GET", 200)
    for counter in (server.bytes_in, server.bytes_out, server.objects_stored, server.head_moves):
        counter.inc()
    text = (generate_latest(client.registry) + generate_latest(server.registry)).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    families = {m.group(1) for m in re.finditer(r"^# TYPE (\S+)", text, re.M)}
    return names | {f + "_total" for f in families} | families


def test_every_charted_metric_exists() -> None:
    doc = json.loads(DOC.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    assert exprs
    used = {m for e in exprs for m in re.findall(r"\bchunksync_[a-z_]+", e)}
    missing = used - _exposed() - {"chunksync_client_state"}  # filled per folder at scrape
    assert not missing, missing
    assert any(m.startswith("chunksync_client_") for m in used)
    assert any(not m.startswith("chunksync_client_") for m in used)
