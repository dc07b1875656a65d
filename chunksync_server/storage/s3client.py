"""An S3 bucket for the synchronous store API: aiobotocore on a private event loop.

The :class:`~chunksync_server.storage.base.ObjectStore` contract is synchronous and
thread-safe (the app calls stores through ``asyncio.to_thread``). :class:`Bucket` runs
one aiobotocore client on an event loop in its own daemon thread; any thread submits
work and waits for it, so a batch of puts or gets goes out as many concurrent
requests over one connection pool, not one request per worker thread.

Location syntax (``--store``): ``s3://BUCKET[/PREFIX]?endpoint=URL&region=NAME``.
Credentials are never part of it: botocore's usual chain supplies them
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, or the ``AWS_SHARED_CREDENTIALS_FILE``
file), so they stay out of command lines and logs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from chunksync.errors import ConfigError

from .base import StorageError

__all__ = ["Bucket", "S3Location", "parse_s3_url"]

T = TypeVar("T")
#: requests in flight at once per bucket (puts or gets of one batch share them)
CONCURRENCY = 32
TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str

    @property
    def name(self) -> str:
        """What the index records as the store: the bucket and prefix, not the endpoint
        (a moved endpoint still holds the same objects)."""
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_url(url: str) -> S3Location:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"invalid S3 store location {url!r}: expected s3://BUCKET[/PREFIX]")
    if parts.username or parts.password:
        raise ConfigError("put S3 credentials in AWS_* variables or a credentials file")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - {"endpoint", "region"})
    if unknown:
        raise ConfigError(f"unknown S3 store option {unknown[0]!r}")
    prefix = parts.path.strip("/")
    return S3Location(
        bucket=parts.netloc,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=query.get("endpoint"),
        region=query.get("region", "us-east-1"),
    )


def _one_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).replace("\n", " ")[:300]


class Bucket:
    """Blocking get/put/delete of whole objects in one bucket, from any thread."""

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self._client, self._exit = self._call(self._open())
            self._call(self._ensure_bucket())
        except BaseException:
            self.close()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(TIMEOUT * 2)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"S3 {self.location.bucket}: {_one_line(exc)}") from exc

    async def _open(self) -> tuple[Any, Any]:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(
            max_pool_connections=CONCURRENCY,
            connect_timeout=10,
            read_timeout=TIMEOUT,
            retries={"max_attempts": 4, "mode": "standard"},
            s3={"addressing_style": "path"},
        )
        ctx = get_session().create_client(
            "s3",
            region_name=self.location.region,
            endpoint_url=self.location.endpoint,
            config=config,
        )
        client = await ctx.__aenter__()
        return client, ctx.__aexit__

    async def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            await self._client.head_bucket(Bucket=self.location.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            await self._client.create_bucket(Bucket=self.location.bucket)

    def key(self, ns: str, oid: bytes) -> str:
        return f"{self.location.prefix}{ns}/{oid.hex()}"

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store (key, body) pairs; every one is durable when this returns."""
        self._call(self._gather([self._put(key, body) for key, body in items]))

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        """Bodies by key; None for a key the bucket does not hold."""
        bodies = self._call(self._gather([self._get(key) for key in keys]))
        return dict(zip(keys, bodies, strict=True))

    def delete_many(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):  # the DeleteObjects limit
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self._call(
                self._client.delete_objects(
                    Bucket=self.location.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            )

    async def _gather(self, coros: list[Coroutine[Any, Any, T]]) -> list[T]:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def limited(coro: Coroutine[Any, Any, T]) -> T:
            async with gate:
                return await coro

        return await asyncio.gather(*(limited(c) for c in coros))

    async def _put(self, key: str, body: bytes) -> None:
        await self._client.put_object(Bucket=self.location.bucket, Key=key, Body=body)

    async def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            response = await self._client.get_object(Bucket=self.location.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        async with response["Body"] as stream:
            return bytes(await stream.read())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if hasattr(self, "_exit"):
            try:
                self._call(self._exit(None, None, None))
            except StorageError:
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
