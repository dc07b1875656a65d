"""Head events across server processes: PostgreSQL LISTEN/NOTIFY into the local hub.

Each server keeps the WebSockets of the devices connected to IT. When any server moves a
head it queues a NOTIFY in the same transaction (:func:`chunksync_server.db.announce_head`);
PostgreSQL delivers it at commit to every server listening on
:data:`~chunksync_server.pgdb.HEAD_CHANNEL`, and each one publishes it to its own
subscribers. The hub drops a seq it already sent, so the mover's own direct publish
and the echo of its NOTIFY reach a device once.

Events are advisory (a client that misses one reads the head), so a lost listener
connection is not fatal: :func:`listen_heads` reconnects with a capped backoff, and
publishes nothing it cannot parse.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

from .events import EventHub
from .pgdb import HEAD_CHANNEL

__all__ = ["announce_head", "listen_heads"]

log = logging.getLogger(__name__)
MAX_BACKOFF = 5.0


def announce_head(conn: sqlite3.Connection, folder: str, head: str | None, seq: int) -> None:
    """Tell every other server process of a head move, at commit (PostgreSQL NOTIFY).

    A no-op on SQLite, where one process serves. Call inside the writing transaction:
    a rolled-back move is never announced.
    """
    notify = getattr(conn, "notify", None)
    if notify is not None:
        notify(HEAD_CHANNEL, json.dumps([folder, head, seq]))


def _parse(payload: str) -> tuple[str, str | None, int] | None:
    try:
        folder, head, seq = json.loads(payload)
    except (ValueError, TypeError):
        return None
    ok = isinstance(folder, str) and isinstance(seq, int) and isinstance(head, str | None)
    return (folder, head, seq) if ok else None


async def listen_heads(url: str, hub: EventHub, ready: asyncio.Event | None = None) -> None:
    """Forever: publish every head move announced by any server to ``hub``."""
    import psycopg

    backoff = 0.1
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"LISTEN {HEAD_CHANNEL}")
                backoff = 0.1
                if ready is not None:
                    ready.set()
                async for note in conn.notifies():
                    event = _parse(note.payload)
                    if event is not None:
                        await hub.publish(*event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away: events are advisory, retry
            log.warning(
                "head fan-out: %s; reconnecting", str(exc).splitlines()[0] if str(exc) else exc
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
