"""Prometheus metrics of a running daemon, served at ``/metrics`` on the dashboard port.

Read from the folders' live status at each scrape (a custom collector, so nothing is
counted twice), plus a histogram of round durations fed by the daemon after each round.
Labels are the folder's name and the state: never a file name. The registry is private
to the dashboard (several daemons in one test process never share one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ..daemon import FolderDaemon

__all__ = ["CONTENT_TYPE", "STATES", "ClientMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
STATES = ("idle", "waiting", "scanning", "syncing", "offline", "paused", "error", "revoked")


class _Folders(Collector):
    def __init__(self, daemons: Sequence[FolderDaemon], status: Callable[[Any], dict[str, Any]]):
        self.daemons, self.status = daemons, status

    def collect(self) -> Iterator[Any]:
        state = GaugeMetricFamily(
            "chunksync_client_state", "1 for the folder's current state", labels=["folder", "state"]
        )
        pending = GaugeMetricFamily(
            "chunksync_client_pending_changes", "Changes not yet synced", labels=["folder"]
        )
        conflicts = GaugeMetricFamily(
            "chunksync_client_conflicts", "Unresolved conflicts", labels=["folder"]
        )
        failed = GaugeMetricFamily(
            "chunksync_client_failed_items", "Paths that cannot be synced", labels=["folder"]
        )
        up = CounterMetricFamily(
            "chunksync_client_bytes_up", "Bytes uploaded since start", labels=["folder"]
        )
        down = CounterMetricFamily(
            "chunksync_client_bytes_down", "Bytes downloaded since start", labels=["folder"]
        )
        for daemon in self.daemons:
            doc = self.status(daemon)
            name = str(doc["folder"])
            for s in STATES:
                state.add_metric([name, s], 1.0 if doc["state"] == s else 0.0)
            pending.add_metric([name], doc["pending_changes"])
            conflicts.add_metric([name], doc["conflicts"])
            failed.add_metric([name], doc.get("failed_items", 0))
            up.add_metric([name], doc["bytes_up"])
            down.add_metric([name], doc["bytes_down"])
        yield from (state, pending, conflicts, failed, up, down)


class ClientMetrics:
    def __init__(
        self, daemons: Sequence[FolderDaemon], status: Callable[[Any], dict[str, Any]]
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Folders(daemons, status))
        self.rounds = Histogram(
            "chunksync_client_round_seconds",
            "Duration of completed sync rounds",
            ["folder"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )

    def observe_round(self, folder: str, seconds: float) -> None:
        self.rounds.labels(folder).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
