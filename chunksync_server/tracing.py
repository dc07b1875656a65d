"""OpenTelemetry spans for the server's requests, joined to the client's sync trace.

Off unless configured, as on the client (``chunksync/tracing.py``): spans are exported
over OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_TRACES_ENDPOINT``) is set
and the exporter extra is installed; tests :func:`install` a provider. When on, each
request becomes a server span named ``METHOD /route/{template}``, a child of the
``traceparent`` the client sent, so a sync round is one trace across both sides. Its
attributes are the method, the route template and the status: never a folder or user
name, an object id or a token. When off, OpenTelemetry is never imported.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

__all__ = ["install", "middleware"]

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_tracer: Any = None
_decided = False


def install(provider: Any | None) -> None:
    global _tracer, _decided
    _tracer = None if provider is None else provider.get_tracer("chunksync_server")
    _decided = True


def _tracer_or_none() -> Any:
    global _decided
    if not _decided:
        _decided = True
        disabled = os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true"
        if not disabled and any(os.environ.get(v) for v in ENDPOINT_VARS):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider = TracerProvider(
                resource=Resource.create({"service.name": "chunksync-server"})
            )
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            install(provider)
    return _tracer


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    tracer = _tracer_or_none()
    if tracer is None:
        return await handler(request)
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    route = _route(request)
    attributes = {"http.request.method": request.method, "http.route": route}
    with tracer.start_as_current_span(
        f"{request.method} {route}",
        context=extract(dict(request.headers)),
        kind=SpanKind.SERVER,
        attributes=attributes,
    ) as span:
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        return response
