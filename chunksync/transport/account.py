"""Account calls of the HTTP API beyond login: logout, one's own devices, TOTP.

Functions over an :class:`~.http.HttpClient` rather than more methods on it (http.py
is the aiohttp boundary and already large); every answer is checked before use, as
everything from the server is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import wire
from ..errors import ProtocolError, UserError
from .base import field_of
from .http import HttpClient

__all__ = ["Device", "list_devices", "logout", "revoke_device", "totp_disable", "totp_enable"]


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    name: str
    created: float
    last_seen: float | None
    revoked: bool
    current: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created": self.created,
            "last_seen": self.last_seen,
            "revoked": self.revoked,
            "current": self.current,
        }


def _device(doc: Any) -> Device:
    if not isinstance(doc, dict):
        raise ProtocolError("devices: malformed entry")
    did, name = doc.get("id"), doc.get("name")
    created, seen = doc.get("created"), doc.get("last_seen")
    if not isinstance(did, str) or not wire.DEVICE_ID.match(did) or not isinstance(name, str):
        raise ProtocolError("devices: malformed entry")
    if not isinstance(created, int | float) or not (seen is None or isinstance(seen, int | float)):
        raise ProtocolError("devices: malformed times")
    return Device(
        did, name, float(created), seen, bool(doc.get("revoked")), doc.get("current") is True
    )


async def logout(client: HttpClient) -> None:
    """Revoke the calling token on the server."""
    async with client.exchange("POST", wire.LOGOUT, ok=(204,), renew=False):
        pass


async def list_devices(client: HttpClient) -> list[Device]:
    return [
        _device(d)
        for d in field_of(await client.request_json("GET", wire.DEVICES), "devices", list)
    ]


async def revoke_device(client: HttpClient, device_id: str) -> None:
    if not wire.DEVICE_ID.match(device_id):
        raise UserError(f"{device_id!r} is not a device id ('chunksync devices' lists them)")
    try:
        async with client.exchange("DELETE", wire.DEVICE.format(device=device_id), ok=(204,)):
            pass
    except ProtocolError as exc:
        if "(HTTP 404)" in exc.message:
            raise UserError(f"no device {device_id} of yours on the server") from exc
        raise


async def totp_enable(client: HttpClient) -> tuple[str, str]:
    """Enrol TOTP: the secret and its otpauth:// URI (shown once)."""
    doc = await client.request_json("POST", wire.TOTP_ENROLL)
    secret, uri = field_of(doc, "secret", str), field_of(doc, "uri", str)
    if not secret.isalnum() or not uri.startswith("otpauth://"):
        raise ProtocolError("totp: malformed answer")
    return secret, uri


async def totp_disable(client: HttpClient, code: str) -> None:
    async with client.exchange("DELETE", wire.TOTP_ENROLL, ok=(204,), json={"totp": code}):
        pass
