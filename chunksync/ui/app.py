"""The local dashboard: an aiohttp app inside the daemon process, on 127.0.0.1 only.

:func:`serve_dashboard` starts it for the daemon's folders (an async context manager
used by :func:`chunksync.daemon_process.serve`): a fresh random token, written with the
address to the 0600 ``ui.json`` files (:mod:`chunksync.ui.login`), removed at exit.
Pages are rendered on the server (jinja2 templates in ``templates/``); the browser gets
only the package's own ``static/`` files — htmx (vendored, 0BSD), a small script that
listens to ``/events`` (server-sent events) and a style sheet. Protection:
:mod:`chunksync.webguard`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ..errors import UserError
from ..webguard import Guard, security_headers
from . import routes
from .actions import UiProgress
from .login import LinkChecker, UiAddress, remove_address, write_address
from .metrics import ClientMetrics

if TYPE_CHECKING:
    from ..daemon import FolderDaemon

__all__ = ["make_ui_app", "serve_dashboard"]

HERE = Path(__file__).parent
COOKIE = "chunksync_ui"


def make_ui_app(daemons: Sequence[FolderDaemon], token: str, port: int) -> web.Application:
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    guard = Guard(COOKIE, frozenset({"/login"}), bearer=token, hosts=hosts if port else ())
    app = web.Application(middlewares=[guard.middleware])
    app.on_response_prepare.append(security_headers)
    app[routes.GUARD] = guard
    app[routes.DAEMONS] = list(daemons)
    app[routes.LINKS] = LinkChecker(token)
    app[routes.METRICS] = ClientMetrics(daemons, routes.status_of)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        filters={"when": _when},
    )
    routes.add_routes(app, HERE / "static")
    return app


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@contextlib.asynccontextmanager
async def serve_dashboard(daemons: Sequence[FolderDaemon], port: int) -> AsyncIterator[UiAddress]:
    """Serve the dashboard on 127.0.0.1:``port`` (0: any free port) while in the block."""
    token = secrets.token_urlsafe(32)
    for daemon in daemons:
        daemon.engine.progress = UiProgress()
    app = make_ui_app(daemons, token, port)
    # open event streams must not hold up the daemon's stop (its grace is 1 s)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(
            f"cannot serve the dashboard on 127.0.0.1:{port}: {exc.strerror or exc}; "
            "choose another --ui-port, or --no-ui"
        ) from exc
    bound = runner.addresses[0][1]
    if not port:  # now that the port is known, pin the Host check to it
        app[routes.GUARD].hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}"}
    metrics = app[routes.METRICS]
    for daemon in daemons:
        daemon.on_round = metrics.observe_round
    address = UiAddress(f"http://127.0.0.1:{bound}", token, os.getpid())
    files = write_address(address, [d.folder.paths for d in daemons])
    try:
        yield address
    finally:
        remove_address(files, address)
        await runner.cleanup()
