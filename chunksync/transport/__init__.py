"""Client transport: the ChunkStore protocol and its memory and HTTP implementations.

Import the HTTP pieces from :mod:`chunksync.transport.http` only where a real server is
meant; the sync engine depends on :class:`ChunkStore` alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import ChunkStore, HeadLogEntry, HeadState, ServerError
from .retry import RetryPolicy, call_with_retry

if TYPE_CHECKING:
    from .http import HttpChunkStore, HttpClient, LoginResult
    from .memory import MemoryChunkStore

# aiohttp takes a large part of the CLI's start-up: load the implementations on first use
_LAZY = {
    "HttpChunkStore": "http",
    "HttpClient": "http",
    "LoginResult": "http",
    "MemoryChunkStore": "memory",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
