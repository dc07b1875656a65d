"""The caller's own devices: ``GET /v1/devices`` lists them, ``DELETE
/v1/devices/{device}`` revokes one (its tokens stop working at once and its event
sockets are closed). A device of another user answers 404, as an unknown one does,
so ids cannot be probed.
"""

from __future__ import annotations

import sqlite3

from aiohttp import web

from chunksync import wire

from .. import audit
from ..devices import devices_of, revoke_own_device, token_hashes_of
from .common import DB, HUB, ApiError, now, principal, remote

__all__ = ["list_devices", "revoke_device"]


async def list_devices(request: web.Request) -> web.Response:
    who = principal(request)
    rows = await request.app[DB].read(lambda c: devices_of(c, who.user_id))
    return web.json_response({"devices": [row.to_wire(who.device_id) for row in rows]})


async def revoke_device(request: web.Request) -> web.Response:
    who = principal(request)
    device_id = request.match_info["device"]
    if not wire.DEVICE_ID.match(device_id):
        raise ApiError(400, "malformed device id")
    t, address = now(), remote(request)

    def revoke(conn: sqlite3.Connection) -> list[bytes] | None:
        if not revoke_own_device(conn, who.user_id, device_id):
            return None
        audit.append(
            conn,
            action="device.revoke",
            time=t,
            user=who.user,
            device=who.device_id,
            address=address,
            detail={"revoked_device": device_id},
        )
        return token_hashes_of(conn, device_id)

    hashes = await request.app[DB].write(revoke)
    if hashes is None:
        raise ApiError(404, "no such device")
    await request.app[HUB].close_tokens(hashes)
    return web.Response(status=204)
