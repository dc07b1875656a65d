"""HTTP API v1: routes, limits, JSON bodies and the binary batch framing.

Shared by the client transport and the server so that both sides agree by
construction. Everything the server sees is here: object ids, ciphertext blobs and
their digests, folder names, heads and account data — never a key or a file name.

Batch framing (``application/x-chunksync-batch``), big-endian:

* upload frame:   ``id (32) ‖ digest (32) ‖ length (u32) ‖ blob``
* download frame: ``id (32) ‖ length (u32) ‖ blob``

``digest`` is the unkeyed BLAKE3 of the blob (the ciphertext): the server checks it
before storing, so a truncated or corrupted upload never becomes visible.
See docs/protocol.md for the endpoint reference.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import blake3

from .errors import ProtocolError

API = "/v1"

# --- routes (aiohttp route syntax) ---------------------------------------------------
HEALTHZ = "/healthz"
METRICS = "/metrics"
LOGIN = f"{API}/login"  # POST
LOGOUT = f"{API}/logout"  # POST (revokes the calling token)
TOKEN_ROTATE = f"{API}/token/rotate"  # POST
WHOAMI = f"{API}/whoami"  # GET
TOTP_ENROLL = f"{API}/totp"  # POST (enrol), DELETE (disable)
DEVICES = f"{API}/devices"  # GET: the caller's own devices
DEVICE = f"{API}/devices/{{device}}"  # DELETE: revoke one of the caller's devices
FOLDERS = f"{API}/folders"  # GET list, POST create
FOLDER = f"{API}/folders/{{folder}}"  # GET
KEYSLOTS = f"{API}/folders/{{folder}}/keyslots"  # GET
KEYSLOT = f"{API}/folders/{{folder}}/keyslots/{{slot}}"  # PUT
MISSING = f"{API}/folders/{{folder}}/objects/missing"  # POST {"ids": [...]}
OBJECTS = f"{API}/folders/{{folder}}/objects"  # POST batch upload (framed)
OBJECTS_FETCH = f"{API}/folders/{{folder}}/objects/fetch"  # POST {"ids": [...]} -> framed
OBJECT = f"{API}/folders/{{folder}}/objects/{{oid}}"  # PUT single upload, GET single
HEAD = f"{API}/folders/{{folder}}/head"  # GET, PUT (compare-and-swap)
HEAD_LOG = f"{API}/folders/{{folder}}/log"  # GET ?after=SEQ&limit=N
EVENTS = f"{API}/folders/{{folder}}/events"  # GET -> WebSocket of head moves
# storage lifecycle (docs/protocol.md "Storage lifecycle"): deleting routes need a
# maintenance token from REAUTH (the owner's password, and TOTP when enrolled)
REAUTH = f"{API}/reauth"  # POST {"password", "totp"?} -> short-lived maintenance token
LIFECYCLE = f"{API}/folders/{{folder}}/lifecycle"  # GET policy, protected, forgotten, last prune
RETENTION = f"{API}/folders/{{folder}}/lifecycle/policy"  # PUT {"policy": {...}|null}
FORGET = f"{API}/folders/{{folder}}/forget"  # POST {"snapshots": [...], "reason"?}
FORGET_POLICY = f"{API}/folders/{{folder}}/forget/policy"  # POST: apply the stored policy
PRUNE = f"{API}/folders/{{folder}}/prune"  # POST: start (the mark)
PRUNE_LIVE = f"{API}/folders/{{folder}}/prune/{{prune}}/live"  # POST {"ids": [...]}
PRUNE_SWEEP = f"{API}/folders/{{folder}}/prune/{{prune}}/sweep"  # POST {"head": ...}
PRUNE_ID = re.compile(r"\A[0-9a-f]{32}\Z")

# --- headers and media types -----------------------------------------------------------
AUTHORIZATION = "Authorization"
DIGEST_HEADER = "X-Chunksync-Digest"  # hex BLAKE3 of the blob on single uploads
BATCH_TYPE = "application/x-chunksync-batch"
BLOB_TYPE = "application/octet-stream"

# --- limits ----------------------------------------------------------------------------
MAX_BLOB_SIZE = 8 * 1024 * 1024  # a sealed 4 MiB chunk, padded, fits easily
MAX_BATCH_BYTES = 64 * 1024 * 1024  # one batch upload request body
MAX_BATCH_OBJECTS = 10_000  # frames in one batch upload or fetch
MAX_MISSING_IDS = 100_000  # ids in one "which are missing" query
MAX_JSON_BYTES = 8 * 1024 * 1024  # any JSON request body (100k ids ≈ 6.6 MB)
MAX_KEYSLOT_BYTES = 64 * 1024
MAX_SLOTS = 32

FOLDER_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
USER_NAME = re.compile(r"\A[a-z0-9][a-z0-9._-]{0,63}\Z")
DEVICE_NAME = re.compile(r"\A[^\x00-\x1f/\\]{1,64}\Z")
SLOT_NAME = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
DEVICE_ID = re.compile(r"\A[0-9a-f]{16}\Z")
HEX_ID = re.compile(r"\A[0-9a-f]{64}\Z")
EPOCH = re.compile(r"\A[0-9a-z.]{1,80}\Z")  # the storage epoch token (see HeadState)

ROLES = ("owner", "read-write", "read-only")

#: HTTP status of an upload refused by the owner's storage quota (final, not retried)
QUOTA_STATUS = 507

_UP = struct.Struct(">32s32sI")
_DOWN = struct.Struct(">32sI")


def blob_digest(blob: bytes | memoryview) -> bytes:
    """The ciphertext digest the server verifies on upload (unkeyed BLAKE3)."""
    return blake3.blake3(blob).digest()


@dataclass(frozen=True, slots=True)
class HeadState:
    """A folder's head as the server reports it. ``head`` is None for a new folder.

    ``epoch`` (GET head only) changes whenever the server may have lost objects (it
    restarted, or repaired damaged storage): a client re-checks the server's copy of
    the head when it differs from the one it checked last (chunksync.sync.heal).
    """

    head: str | None
    seq: int
    epoch: str | None = None

    def to_wire(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"head": self.head, "seq": self.seq}
        if self.epoch is not None:
            doc["epoch"] = self.epoch
        return doc

    @classmethod
    def from_wire(cls, doc: Any) -> HeadState:
        if not isinstance(doc, dict):
            raise ProtocolError("head: expected a JSON object")
        head, seq, epoch = doc.get("head"), doc.get("seq"), doc.get("epoch")
        if head is not None and (not isinstance(head, str) or not HEX_ID.match(head)):
            raise ProtocolError("head: malformed id")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ProtocolError("head: malformed sequence number")
        if epoch is not None and (not isinstance(epoch, str) or not EPOCH.match(epoch)):
            raise ProtocolError("head: malformed storage epoch")
        return cls(head, seq, epoch)


@dataclass(frozen=True, slots=True)
class HeadLogEntry:
    """One move of a folder head: the snapshot timeline and the audit trail."""

    seq: int
    head: str
    previous: str | None
    time: float  # server time, seconds since the epoch
    device: str
    user: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "head": self.head,
            "previous": self.previous,
            "time": self.time,
            "device": self.device,
            "user": self.user,
        }

    @classmethod
    def from_wire(cls, doc: Any) -> HeadLogEntry:
        try:
            return cls(
                seq=int(doc["seq"]),
                head=str(doc["head"]),
                previous=doc["previous"],
                time=float(doc["time"]),
                device=str(doc["device"]),
                user=str(doc["user"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # int(inf), float(10**400)
            raise ProtocolError(f"head log: malformed entry ({str(exc)[:100]})") from exc


def encode_upload_frames(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Frame (object id, blob) pairs for a batch upload, computing each digest."""
    parts: list[bytes] = []
    for oid, blob in items:
        parts.append(_UP.pack(oid, blob_digest(blob), len(blob)))
        parts.append(blob)
    return b"".join(parts)


def encode_download_frames(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    parts: list[bytes] = []
    for oid, blob in items:
        parts.append(_DOWN.pack(oid, len(blob)))
        parts.append(blob)
    return b"".join(parts)


def iter_download_frames(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Parse a batch download body into (id, blob), refusing anything malformed."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        if len(view) - pos < _DOWN.size:
            raise ProtocolError("batch download: truncated frame header")
        oid, length = _DOWN.unpack_from(view, pos)
        pos += _DOWN.size
        if length > MAX_BLOB_SIZE or pos + length > len(view):
            raise ProtocolError("batch download: truncated or oversized frame")
        yield oid, bytes(view[pos : pos + length])
        pos += length


UPLOAD_FRAME_HEADER = _UP
DOWNLOAD_FRAME_HEADER = _DOWN


def error_body(message: str) -> dict[str, str]:
    """Every 4xx/5xx answer is JSON ``{"error": "one line"}``."""
    return {"error": message.splitlines()[0] if message else "error"}
