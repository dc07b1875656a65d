"""The whole chunksync exception tree, in one place.

Every error a user can see derives from :class:`ChunksyncError`, carries a one-line
message and the process exit code the CLI uses for it::

    ChunksyncError (exit 1)
    ├── IntegrityError (exit 3)     MAC, id or type mismatch: tampered or swapped data; never retried
    ├── ObjectNotFound (exit 4)     an object id the store does not hold
    ├── RefConflict (exit 5)        a lost compare-and-swap on a head; the engine re-plans
    ├── RollbackError (exit 3)      the server offers a head older than one already accepted
    ├── TransportError (exit 6)     talking to the server failed
    │   ├── TransportTimeout        no answer in time (retryable)
    │   ├── NetworkError            connection refused, reset, DNS (retryable)
    │   │   └── ServerUnreachable       the first connection to a server was refused:
    │   │                               not running, or a wrong URL (said at once)
    │   ├── ProtocolError           the server said something malformed or unexpected
    │   ├── ServerStorageFull       507: the server's own disk is full or failing (retry later)
    │   └── AuthError (exit 7)      401/403: bad, expired or revoked credentials
    │       └── DeviceRevoked (exit 11) the device token is refused for good (revoked,
    │                                   expired, unknown): log in again; never retried
    ├── ConfigError (exit 2)        missing or invalid configuration or state
    │   └── IndexDamaged            a local index record that cannot be read: rebuilt next sync
    ├── UserError (exit 2)          the command line asked for something impossible
    │   └── WrongPassphrase         the passphrase does not open any key slot
    ├── UnsafePathError (exit 3)    a path from the server that must not touch the disk
    ├── QuotaExceeded (exit 10)     the server refused an upload: the owner's quota is full
    └── HeldError (exit 8)          a sync held for the user's confirmation (mass delete)

Exit status 12 (:data:`EXIT_SKIPPED`) is not an error: the sync completed, but some
paths could not be synced ("failed items", :mod:`chunksync.failed`; ``chunksync status``
lists each with the reason and what to do).

Foreign exceptions (aiohttp, lmdb, OSError from the network) are converted where they
enter the project, so callers only ever catch these.
"""

from __future__ import annotations

__all__ = [
    "EXIT_SKIPPED",
    "AuthError",
    "ChunksyncError",
    "ConfigError",
    "DeviceRevoked",
    "HeldError",
    "IndexDamaged",
    "IntegrityError",
    "NetworkError",
    "ObjectNotFound",
    "ProtocolError",
    "QuotaExceeded",
    "RefConflict",
    "RollbackError",
    "ServerStorageFull",
    "ServerUnreachable",
    "TransportError",
    "TransportTimeout",
    "UnsafePathError",
    "UserError",
    "WrongPassphrase",
]

#: the process exit status of a sync that completed with failed items (paths skipped)
EXIT_SKIPPED = 12


class ChunksyncError(Exception):
    """Root of every chunksync error; ``str(err)`` is a one-line reason."""

    exit_code: int = 1
    #: whether retrying the same operation later may succeed
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class IntegrityError(ChunksyncError):
    """Data failed authentication or did not match its id: fatal, never retried."""

    exit_code = 3


class ObjectNotFound(ChunksyncError):
    exit_code = 4


class RefConflict(ChunksyncError):
    """A compare-and-swap lost; ``current`` is the head the server holds now."""

    exit_code = 5

    def __init__(self, message: str, current: str | None = None, seq: int = 0) -> None:
        super().__init__(message)
        self.current = current
        self.seq = seq


class RollbackError(ChunksyncError):
    exit_code = 3


class TransportError(ChunksyncError):
    exit_code = 6


class TransportTimeout(TransportError):
    retryable = True


class NetworkError(TransportError):
    retryable = True


class ServerUnreachable(NetworkError):
    """The very first connection to the server was refused: it is not running there (or
    the URL is wrong). Not worth the quick retries, which would only delay the message
    by seconds; the daemon still goes offline and tries again with its back-off."""

    retryable = False


class ProtocolError(TransportError):
    pass


class ServerStorageFull(TransportError):
    """The server could not store the upload: its disk is full (or failing).

    Not retried by the transport's quick retries (``retryable`` is False): space does
    not come back in seconds. As a TransportError it makes the daemon go offline and
    try again with its own, much longer back-off; a one-shot command fails in one line.
    """


class AuthError(TransportError):
    exit_code = 7


class DeviceRevoked(AuthError):
    """The server refuses this device's token (401) even after re-reading the
    credentials file: the device was revoked, logged out or its token expired.
    Retrying cannot help; ``chunksync login`` again."""

    exit_code = 11


class ConfigError(ChunksyncError):
    exit_code = 2


class IndexDamaged(ConfigError):
    """The local index (a cache) opened but a read or write of it failed: a garbled
    record, an LMDB error mid-transaction. The index is marked; the engine rebuilds it
    and runs the round again, and any other command leaves it to the next sync."""


class UserError(ChunksyncError):
    exit_code = 2


class WrongPassphrase(UserError):
    pass


class UnsafePathError(ChunksyncError):
    exit_code = 3


class QuotaExceeded(ChunksyncError):
    """Final until an admin raises the quota or files are removed; never retried."""

    exit_code = 10


class HeldError(ChunksyncError):
    exit_code = 8
