"""Accounts and credentials: users, devices, bearer tokens, TOTP, login rate limits.

Guarantees:

* Passwords are hashed with Argon2id (``cryptography``) under a random 16-byte salt and
  stored as a PHC string that records the cost parameters; they are never logged.
* A token is ``secrets.token_urlsafe(32)`` (256 random bits), handed out once; the
  database keeps only its SHA-256. Lookup is by that hash and the stored hash is
  compared again with :func:`hmac.compare_digest`.
* A token is valid only while it is unexpired and unrevoked, its device unrevoked and
  its user enabled; each of those is re-checked on every request, so a revocation made
  by the admin CLI takes effect on the next request.
* Login attempts are counted per remote address and per user before the password
  is checked (:class:`chunksync_server.limits.LoginLimiter`); past a budget, logins are refused
  (429) without checking it. Password hashing runs on its own bounded pool
  (:class:`chunksync_server.passwords.PasswordGate`), never on the database's threads.
* A TOTP code is accepted once (RFC 6238 §5.2): the time step of the last accepted
  code is kept per user, and only a later step is accepted after it.
* Rotation never locks a device out: the answer carrying the new token can be lost
  (the server rotated, the client never heard), so the old token stays valid until the
  new one is first used (:func:`confirm_rotation`); from then on it is refused, so a
  stolen old token is useless. Rotating again with the old token revokes the
  successor nobody ever used; logging out with it revokes that successor too.

All functions taking a connection are blocking; the server runs them on a worker
thread through :class:`chunksync_server.db.MetaDB`. Functions that write expect a transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
from dataclasses import dataclass, field

import pyotp
from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from .config import Argon2Params
from .limits import LoginLimiter

__all__ = [
    "SCOPE_DEVICE",
    "SCOPE_MAINTENANCE",
    "Credentials",
    "LoginLimiter",
    "Principal",
    "UserRow",
    "claim_totp_step",
    "confirm_rotation",
    "hash_password",
    "hash_token",
    "issue_token",
    "lookup_token",
    "rotate_token",
    "totp_step",
    "verify_password",
]

SCOPE_DEVICE = "device"
#: a short-lived token issued after the owner re-authenticated (password, and TOTP when
#: enrolled): the only scope allowed to delete (forget, prune, purge; handlers/lifecycle.py)
SCOPE_MAINTENANCE = "maintenance"
SCOPES = (SCOPE_DEVICE, SCOPE_MAINTENANCE)


def hash_password(password: str, params: Argon2Params) -> str:
    kdf = Argon2id(
        salt=os.urandom(16),
        length=32,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    return kdf.derive_phc_encoded(password.encode())


def verify_password(password: str, encoded: str) -> bool:
    try:
        Argon2id.verify_phc_encoded(password.encode(), encoded)
    except (InvalidKey, ValueError):
        return False
    return True


# A valid hash to burn the same time for unknown users (no user enumeration by timing).
_DUMMY_HASH_CACHE: dict[Argon2Params, str] = {}


def dummy_verify(params: Argon2Params) -> None:
    encoded = _DUMMY_HASH_CACHE.get(params)
    if encoded is None:
        encoded = _DUMMY_HASH_CACHE[params] = hash_password("dummy", params)
    verify_password("not the password", encoded)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# --- users -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    pw_hash: str = field(repr=False)
    admin: bool
    disabled: bool
    totp_secret: str | None = field(repr=False)
    created: float


_USER_COLUMNS = "id, name, pw_hash, admin, disabled, totp_secret, created"


def user_by_name(conn: sqlite3.Connection, name: str) -> UserRow | None:
    query = f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?"  # nosec B608  # constant SQL
    row = conn.execute(query, (name,)).fetchone()
    return _user(row) if row else None


def all_users(conn: sqlite3.Connection) -> list[UserRow]:
    query = f"SELECT {_USER_COLUMNS} FROM users ORDER BY name"  # nosec B608  # constant SQL
    return [_user(r) for r in conn.execute(query)]


def _user(row: tuple) -> UserRow:  # type: ignore[type-arg]
    return UserRow(row[0], row[1], row[2], bool(row[3]), bool(row[4]), row[5], row[6])


def add_user(
    conn: sqlite3.Connection, name: str, pw_hash: str, *, admin: bool, now: float
) -> int | None:
    """Insert a user; None if the name is taken."""
    try:
        cur = conn.execute(
            "INSERT INTO users (name, pw_hash, admin, created) VALUES (?, ?, ?, ?)",
            (name, pw_hash, int(admin), now),
        )
    except sqlite3.IntegrityError:
        return None
    return int(cur.lastrowid or 0)


def replace_password_hash(conn: sqlite3.Connection, user_id: int, old: str, new: str) -> bool:
    """Swap the stored hash if it is still ``old`` (a rehash racing a password change)."""
    cur = conn.execute(
        "UPDATE users SET pw_hash = ? WHERE id = ? AND pw_hash = ?", (new, user_id, old)
    )
    return cur.rowcount == 1


def set_user_disabled(conn: sqlite3.Connection, name: str, disabled: bool) -> bool:
    cur = conn.execute("UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name))
    return cur.rowcount == 1


def set_totp(conn: sqlite3.Connection, user_id: int, secret: str | None) -> None:
    conn.execute(
        "UPDATE users SET totp_secret = ?, totp_last_step = NULL WHERE id = ?", (secret, user_id)
    )


def totp_step(secret: str, code: str | None, now: float) -> int | None:
    """The time step whose code ``code`` is (this one or a neighbour), or None (pure).

    One step either side absorbs clock skew; the caller must still
    :func:`claim_totp_step` it so that the same code cannot be used twice.
    """
    if not code or not code.isdigit() or len(code) > 10:
        return None
    totp = pyotp.TOTP(secret)
    current = int(now) // totp.interval
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(code.encode(), totp.generate_otp(step).encode()):
            return step
    return None


def claim_totp_step(conn: sqlite3.Connection, user_id: int, step: int) -> bool:
    """Mark ``step`` used if it is later than the last accepted one; False: replay.

    One conditional UPDATE, so two requests with the same code cannot both win.
    """
    cur = conn.execute(
        "UPDATE users SET totp_last_step = ? "
        "WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
        (step, user_id, step),
    )
    return cur.rowcount == 1


# --- devices and tokens ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a successful login or rotation returns to the client (once)."""

    token: str = field(repr=False)
    device_id: str
    expires_at: float

    def to_wire(self) -> dict[str, object]:
        return {"token": self.token, "device_id": self.device_id, "expires_at": self.expires_at}


def add_device(conn: sqlite3.Connection, user_id: int, name: str, now: float) -> str:
    device_id = secrets.token_hex(8)
    conn.execute(
        "INSERT INTO devices (id, user_id, name, created, last_seen) VALUES (?, ?, ?, ?, ?)",
        (device_id, user_id, name, now, now),
    )
    return device_id


def issue_token(
    conn: sqlite3.Connection,
    device_id: str,
    user_id: int,
    *,
    ttl: float,
    now: float,
    successor_of: bytes | None = None,
    scope: str = SCOPE_DEVICE,
) -> Credentials:
    token = secrets.token_urlsafe(32)
    expires = now + ttl
    conn.execute(
        "INSERT INTO tokens (hash, device_id, user_id, scope, created, expires, successor_of) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (hash_token(token), device_id, user_id, scope, now, expires, successor_of),
    )
    return Credentials(token, device_id, expires)


def revoke_token(conn: sqlite3.Connection, token_hash: bytes) -> None:
    """Revoke a token and any successor of it not used yet (logout)."""
    conn.execute(
        "UPDATE tokens SET revoked = 1 WHERE hash = ? OR successor_of = ?",
        (token_hash, token_hash),
    )


def rotate_token(
    conn: sqlite3.Connection, who: Principal, *, ttl: float, now: float
) -> Credentials:
    """A new token for the caller's device; the calling one stays valid until it is used.

    A successor issued earlier and never used (its answer was lost) is revoked: only the
    newest answer can be the one the client holds.
    """
    conn.execute("UPDATE tokens SET revoked = 1 WHERE successor_of = ?", (who.token_hash,))
    return issue_token(
        conn, who.device_id, who.user_id, ttl=ttl, now=now, successor_of=who.token_hash
    )


def confirm_rotation(conn: sqlite3.Connection, token_hash: bytes, predecessor: bytes) -> bool:
    """The first use of a rotated token: revoke the one it replaced (and any sibling
    successor). Returns whether this call did it (concurrent first uses race harmlessly).
    """
    cur = conn.execute(
        "UPDATE tokens SET successor_of = NULL WHERE hash = ? AND successor_of = ?",
        (token_hash, predecessor),
    )
    if cur.rowcount != 1:
        return False
    conn.execute("UPDATE tokens SET revoked = 1 WHERE hash = ?", (predecessor,))
    conn.execute(
        "UPDATE tokens SET revoked = 1 WHERE successor_of = ? AND hash != ?",
        (predecessor, token_hash),
    )
    return True


def revoke_device(conn: sqlite3.Connection, device_id: str) -> bool:
    cur = conn.execute("UPDATE devices SET revoked = 1 WHERE id = ?", (device_id,))
    conn.execute("UPDATE tokens SET revoked = 1 WHERE device_id = ?", (device_id,))
    return cur.rowcount == 1


def touch_device(conn: sqlite3.Connection, device_id: str, now: float) -> None:
    conn.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (now, device_id))


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: int
    user: str
    admin: bool
    device_id: str
    device: str
    token_hash: bytes = field(repr=False)
    expires_at: float
    totp: bool
    #: the token this one replaced, while this one has not been used before
    replaces: bytes | None = field(default=None, repr=False)
    scope: str = SCOPE_DEVICE


def lookup_token(conn: sqlite3.Connection, token: str, now: float) -> Principal | str:
    """The principal for a bearer token, or a short reason why it is refused."""
    digest = hash_token(token)
    row = conn.execute(
        "SELECT t.hash, t.expires, t.revoked, t.scope, d.id, d.name, d.revoked, "
        "u.id, u.name, u.admin, u.disabled, u.totp_secret IS NOT NULL, t.successor_of "
        "FROM tokens t JOIN devices d ON d.id = t.device_id JOIN users u ON u.id = t.user_id "
        "WHERE t.hash = ?",
        (digest,),
    ).fetchone()
    if row is None or not hmac.compare_digest(bytes(row[0]), digest):
        return "unknown token"
    _stored, expires, revoked, scope, dev_id, dev_name, dev_revoked = row[:7]
    user_id, user_name, admin, disabled, totp, replaces = row[7:]
    if revoked or dev_revoked:
        return "revoked token"
    if expires <= now:
        return "expired token"
    if disabled:
        return "disabled user"
    if scope not in SCOPES:
        return "token scope not allowed"
    return Principal(
        user_id,
        user_name,
        bool(admin),
        dev_id,
        dev_name,
        digest,
        expires,
        bool(totp),
        bytes(replaces) if replaces is not None else None,
        scope,
    )


def invalid_tokens(conn: sqlite3.Connection, hashes: list[bytes], now: float) -> set[bytes]:
    """Of the given token hashes, those no longer valid (for closing WebSockets)."""
    bad: set[bytes] = set()
    for digest in hashes:
        row = conn.execute(
            "SELECT t.revoked OR d.revoked OR u.disabled OR t.expires <= ? "
            "FROM tokens t JOIN devices d ON d.id = t.device_id JOIN users u ON u.id = t.user_id "
            "WHERE t.hash = ?",
            (now, digest),
        ).fetchone()
        if row is None or row[0]:
            bad.add(digest)
    return bad
