"""OpenTelemetry tracing of sync rounds: off unless configured, free when off.

A sync round is one trace: ``sync.round`` with children ``scan``, ``plan``, ``apply``,
``upload`` and ``head CAS``; every HTTP request carries the W3C ``traceparent`` header
(:func:`inject`), so the server's spans (``chunksync_server/tracing.py``) join the
same trace. Spans are exported over OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set and the exporter extra is installed
(``pip install chunksync[otlp]``); ``OTEL_SDK_DISABLED=true`` turns it off again. Tests
install their own provider with :func:`install`.

When off, nothing of OpenTelemetry is imported (the CLI's start-up stays light, see
tests/unit/test_startup_imports.py) and :func:`span` is an empty context manager.

Attributes are counts and kinds only — never a file name, a folder name, a device name,
a key or a token (checked by tests/scenario/test_tracing.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["enabled", "inject", "install", "span"]

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SERVICE = "chunksync"

_tracer: Any = None
_decided = False


def install(provider: Any | None) -> None:
    """Trace with ``provider`` (an SDK TracerProvider); None: off again."""
    global _tracer, _decided
    _tracer = None if provider is None else provider.get_tracer("chunksync")
    _decided = True


def _configured() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(os.environ.get(name) for name in ENDPOINT_VARS)


def _tracer_or_none() -> Any:
    global _decided
    if not _decided:
        _decided = True
        if _configured():
            install(_otlp_provider(SERVICE))
    return _tracer


def _otlp_provider(service: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def enabled() -> bool:
    return _tracer_or_none() is not None


@contextlib.contextmanager
def span(name: str, **attributes: int | float | bool | str) -> Iterator[Any]:
    """A child span of the current one (or a new trace's root), when tracing is on."""
    tracer = _tracer_or_none()
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context (``traceparent``) to request headers, when on."""
    if _tracer_or_none() is not None:
        from opentelemetry.propagate import inject as otel_inject

        otel_inject(headers)
    return headers
