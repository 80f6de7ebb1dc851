"""The Redis client with a key prefix, and redis errors translated at this boundary.

Redis holds only rebuildable data (caches, sessions, heartbeats, rate limits): callers
that can serve without it catch ``CacheUnavailable`` and fall back to PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from dukenet.errors import CacheUnavailable, DukenetError


@contextmanager
def translate_errors() -> Iterator[None]:
    """Convert redis exceptions raised inside the block into DukeNET errors."""
    try:
        yield
    except DukenetError:
        raise
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise CacheUnavailable(f"Redis unavailable: {exc}") from exc
    except redis_errors.RedisError as exc:
        raise CacheUnavailable(f"Redis error: {exc}") from exc


class Cache:
    """A redis.asyncio client whose keys all start with ``prefix``."""

    def __init__(self, client: aioredis.Redis, prefix: str = "", *, url: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.url = url

    @classmethod
    def connect(cls, url: str, prefix: str = "") -> Cache:
        """A client for ``url`` with short timeouts so an outage is noticed quickly."""
        client = aioredis.Redis.from_url(
            url,
            decode_responses=False,
            # Fail fast: callers fall back to PostgreSQL rather than wait out an outage.
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
            socket_timeout=2,
            socket_connect_timeout=2,
            health_check_interval=15,
        )
        return cls(client, prefix, url=url)

    def key(self, *parts: str) -> str:
        """``prefix`` + the parts joined by ``:`` (e.g. ``key("agent", id)``)."""
        return self.prefix + ":".join(parts)

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[aioredis.Redis]:
        """The raw client, with redis errors translated to ``CacheUnavailable``."""
        with translate_errors():
            yield self.client

    async def get(self, key: str) -> bytes | None:
        """GET a prefixed key."""
        with translate_errors():
            value = await self.client.get(key)
            return value if value is None or isinstance(value, bytes) else value.encode()

    async def set(self, key: str, value: bytes | str, ttl: int | None = None) -> None:
        """SET a prefixed key with an optional TTL in seconds."""
        with translate_errors():
            await self.client.set(key, value, ex=ttl)

    async def delete(self, *keys: str) -> None:
        """DEL prefixed keys."""
        if keys:
            with translate_errors():
                await self.client.delete(*keys)

    async def ping(self) -> None:
        """Raise ``CacheUnavailable`` unless Redis answers."""
        with translate_errors():
            await self.client.ping()

    async def close(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()
