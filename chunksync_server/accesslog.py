"""The server's access log and error log: one structured line per request, through
the shared logging setup (:mod:`chunksync.logsetup`).

An access line (logger ``chunksync_server.access``, event ``request``) carries the time,
method, the **route pattern** (``/v1/folders/{folder}/objects/{oid}``, never the path:
a path holds the folder's name and object ids), the status, the user and device ids of
an authenticated caller, the bytes received and sent, the duration in milliseconds and
the client address. It never carries a header, a token, a query string or a body.

An unexpected exception in a handler (a bug: every expected failure is an answer)
writes one error line (logger ``chunksync_server.error``, event ``request.failed``) with
the route pattern, the exception's type and its traceback, and the request gets
aiohttp's plain 500 as before. Logging never changes an answer: a failure to log is
swallowed by the logging module itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from .handlers.common import PRINCIPAL

__all__ = ["access_log", "route_pattern"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

access = logging.getLogger("chunksync_server.access")
errors = logging.getLogger("chunksync_server.error")


def route_pattern(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _sent(response: web.StreamResponse | None) -> int:
    if response is None:
        return 0
    length = response.content_length
    if length is None and isinstance(response, web.Response) and response.body is not None:
        body = response.body
        length = len(body) if isinstance(body, bytes | bytearray) else None
    return int(length or 0)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: time the request and log one line when it is answered."""
    start = time.monotonic()
    status = 500
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception as exc:
        errors.error(
            "request.failed",
            exc_info=True,
            extra={"route": route_pattern(request), "error": type(exc).__name__},
        )
        raise
    finally:
        who = request.get(PRINCIPAL)
        if access.isEnabledFor(logging.INFO):
            access.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route_pattern(request),
                    "status": status,
                    "user_id": who.user_id if who is not None else None,
                    "device_id": who.device_id if who is not None else None,
                    "bytes_in": request.content_length or 0,
                    "bytes_out": _sent(response),
                    "duration_ms": round((time.monotonic() - start) * 1000, 1),
                    "address": request.remote,
                },
            )
