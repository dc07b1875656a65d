"""Client transport: the ChunkStore protocol and its memory and HTTP implementations.

Import the HTTP pieces from :mod:`chunksync.transport.http` only where a real server is
meant; the sync engine depends on :class:`ChunkStore` alone.
"""

from __future__ import annotations

from .base import ChunkStore, HeadLogEntry, HeadState, ServerError
from .http import HttpChunkStore, HttpClient, LoginResult
from .memory import MemoryChunkStore
from .retry import RetryPolicy, call_with_retry

__all__ = [
    "ChunkStore",
    "HeadLogEntry",
    "HeadState",
    "HttpChunkStore",
    "HttpClient",
    "LoginResult",
    "MemoryChunkStore",
    "RetryPolicy",
    "ServerError",
    "call_with_retry",
]
