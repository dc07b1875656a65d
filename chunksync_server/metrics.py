"""Prometheus metrics of one server instance (``GET /metrics``, text format).

Each app gets its own :class:`prometheus_client.CollectorRegistry`, so several servers
in one test process never share counters. Labels are route templates (``/v1/folders/
{folder}/head``), methods and status codes only — never user, device or folder names,
which is why ``/metrics`` may be served without a token (see ``ServerConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(slots=True)
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    requests: Counter = field(init=False)
    bytes_in: Counter = field(init=False)
    bytes_out: Counter = field(init=False)
    objects_stored: Counter = field(init=False)
    head_moves: Counter = field(init=False)
    login_failures: Counter = field(init=False)
    denied: Counter = field(init=False)
    damaged_objects: Counter = field(init=False)

    def __post_init__(self) -> None:
        reg = self.registry
        self.requests = Counter(
            "chunksync_requests", "HTTP requests", ["route", "method", "status"], registry=reg
        )
        self.bytes_in = Counter("chunksync_bytes_in", "Object bytes received", registry=reg)
        self.bytes_out = Counter("chunksync_bytes_out", "Object bytes sent", registry=reg)
        self.objects_stored = Counter(
            "chunksync_objects_stored", "New objects stored", registry=reg
        )
        self.head_moves = Counter("chunksync_head_moves", "Successful head moves", registry=reg)
        self.login_failures = Counter(
            "chunksync_login_failures", "Failed or rate-limited logins", registry=reg
        )
        self.denied = Counter("chunksync_denied", "Requests refused with 401/403", registry=reg)
        self.damaged_objects = Counter(
            "chunksync_storage_damaged_objects",
            "Stored objects found damaged and quarantined (never served)",
            registry=reg,
        )

    def observe(self, route: str, method: str, status: int) -> None:
        self.requests.labels(route, method, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
