"""Chunk server configuration: one frozen value built once by the CLI or a test.

Everything the server needs to know before it starts lives in :class:`ServerConfig`:
where the data directory is, where to listen, TLS material, token lifetime, the login
rate limits, the password-check pool, the denied-request audit window, the Argon2id
cost for new password hashes and the request size caps.
Defaults are the production values; tests shrink the caps and the KDF cost so that
the whole suite stays fast. The object is immutable so that a running app can hand it
to worker threads without copies or locks.

TLS: :func:`ssl_context` builds a server context that refuses anything older than
TLS 1.2. Plain HTTP is meant for loopback only (the CLI binds 127.0.0.1 by default).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path

from chunksync import wire
from chunksync.errors import ConfigError

__all__ = [
    "DATA_ENV",
    "DB_ENV",
    "STORE_ENV",
    "Argon2Params",
    "ServerConfig",
    "db_location",
    "ensure_data_dir",
    "ssl_context",
    "store_location",
]

DATA_ENV = "CHUNKSYNC_SERVER_DATA"
#: the metadata database: a ``postgresql://`` URL (password from PGPASSWORD/PGPASSFILE)
DB_ENV = "CHUNKSYNC_SERVER_DB"
#: the object store: ``s3://BUCKET[/PREFIX]?endpoint=…`` (keys from AWS_* variables)
STORE_ENV = "CHUNKSYNC_SERVER_STORE"
DEFAULT_PORT = 8400
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Cost of new password hashes: RFC 9106's second recommendation (t=3, 64 MiB)
    with one lane.

    One lane keeps the derivation off OpenSSL's internal thread pool, which stops
    making progress when several multi-lane derivations run at once (see
    :mod:`chunksync_server.passwords`); memory hardness is the same. The encoded hash records
    its own parameters, so changing these never breaks verification of existing
    passwords (multi-lane ones are verified one at a time).
    """

    iterations: int = 3
    lanes: int = 1
    memory_kib: int = 64 * 1024

    @classmethod
    def fast(cls) -> Argon2Params:
        """A cheap setting for tests only."""
        return cls(iterations=1, lanes=1, memory_kib=8)

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.lanes < 1 or self.memory_kib < 8 * self.lanes:
            raise ConfigError("argon2: invalid cost parameters")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Immutable server settings; see the module docstring."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: object store location for ``chunksync_server.storage.open_store``; None = the data dir
    store_url: str | None = None
    #: metadata database: a ``postgresql://`` URL; None = ``DATA/meta.db`` (SQLite)
    db_url: str | None = None
    #: named stores a folder can be pinned to (data residency): name -> location
    named_stores: tuple[tuple[str, str], ...] = ()
    token_ttl: float = 90 * DAY
    #: login attempts per client address per window (429 past it)
    login_max_failures: int = 5
    login_window: float = 60.0
    #: login attempts per user name, from all addresses together (429 past it)
    login_user_max_failures: int = 100
    login_user_window: float = 900.0
    #: Argon2id checks running at once, admitted beyond those (503 past it), wait cap
    password_workers: int = 2
    password_queue: int = 32
    password_timeout: float = 15.0
    #: one audit row per denied (401/403) caller and route per this many seconds
    denied_audit_window: float = 600.0
    argon2: Argon2Params = field(default_factory=Argon2Params)
    max_blob_size: int = wire.MAX_BLOB_SIZE
    max_batch_bytes: int = wire.MAX_BATCH_BYTES
    max_batch_objects: int = wire.MAX_BATCH_OBJECTS
    max_json_bytes: int = wire.MAX_JSON_BYTES
    #: how often the server looks for revocations made by the admin CLI (seconds)
    revocation_poll: float = 0.25
    #: /metrics without a token (labels never carry user or folder names)
    metrics_public: bool = True

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key must be given together")
        if self.token_ttl <= 0:
            raise ConfigError("token lifetime must be positive")
        if self.password_workers < 1 or self.password_queue < 0:
            raise ConfigError("password workers must be >= 1 and the queue >= 0")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"invalid port {self.port}")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "meta.db"

    @property
    def store_location(self) -> str:
        return self.store_url if self.store_url is not None else str(self.data_dir)

    @property
    def db_location(self) -> Path | str:
        return self.db_url if self.db_url is not None else self.db_path

    def with_changes(self, **changes: object) -> ServerConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory (0700) if needed and return it resolved."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create data directory {path}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK):
        raise ConfigError(f"data directory {path} is not writable")
    return path.resolve()


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    """A TLS >= 1.2 server context, or None when no certificate is configured."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate/key: {exc}") from exc
    return ctx


def db_location(data_dir: Path) -> Path | str:
    """Where admin commands find the metadata: ``$CHUNKSYNC_SERVER_DB`` or ``DATA/meta.db``."""
    return os.environ.get(DB_ENV) or data_dir / "meta.db"


def store_location(data_dir: Path, store_url: str | None = None) -> str:
    """Where admin commands find the objects: the argument, ``$CHUNKSYNC_SERVER_STORE``,
    or the data directory's pack store."""
    return store_url or os.environ.get(STORE_ENV) or str(data_dir)
