"""The search result cache: ``search:capability:{generation}:{sha256 of the normalized query}``.

Correctness rules (a cached search never shows what the registry no longer says):

* **Generation.** Every registry change that can alter a result (capabilities added,
  changed, deprecated or removed; an agent's status, trust, tags, profile, or a heartbeat
  that makes it fresh again) increments the registry version in Redis *after* its commit
  (``AgentCache.invalidate`` does it for the registry; ``invalidate_search_cache`` for
  anyone else). The version is part of every key. A search reads it *before* it queries
  PostgreSQL, so an entry computed from data older than a change is stored under the old
  version, which no later search reads.
* **Time.** Heartbeat freshness changes without any write: a returned agent drops out
  when its heartbeat expires. An entry therefore lives no longer than until the earliest
  heartbeat expiry among its results (and at most the configured TTL). Time alone never
  brings an agent *in*: only a heartbeat does, and that is a registry change above.
* **Redis down.** Searches bypass the cache and answer from PostgreSQL. An invalidation
  that could not reach Redis is remembered in this process, which bypasses the cache until
  it has delivered it; other processes' entries expire within the TTL.
"""

from __future__ import annotations

import logging
import time
import weakref

from dukenet.errors import CacheUnavailable
from dukenet.registry.cache import AgentCache
from dukenet.store.cache import Cache

log = logging.getLogger(__name__)

# Entries shorter-lived than this are not worth a round trip.
MIN_ENTRY_MS = 100
# After Redis failed, skip it for this long rather than wait on it for every search.
BACKOFF_SECONDS = 2.0


class SearchCache:
    """The result cache of one process; use ``SearchCache.of(cache)`` to share it."""

    _instances: weakref.WeakKeyDictionary[Cache, SearchCache] = weakref.WeakKeyDictionary()

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.agent_cache = AgentCache.of(cache)
        self.pending = False
        self._skip_until = 0.0

    @classmethod
    def of(cls, cache: Cache) -> SearchCache:
        """The process-wide ``SearchCache`` for ``cache``."""
        found = cls._instances.get(cache)
        if found is None:
            found = cls._instances[cache] = cls(cache)
        return found

    def generation_key(self) -> str:
        """The registry version that keys embed (shared with the registry's invalidations)."""
        return self.agent_cache.version_key()

    def entry_key(self, generation: int, digest: str) -> str:
        """``search:capability:{generation}:{digest}``."""
        return self.cache.key("search", "capability", str(generation), digest)

    def _failed(self, exc: CacheUnavailable) -> None:
        self._skip_until = time.monotonic() + BACKOFF_SECONDS
        log.warning("search cache bypassed for %.0f s: %s", BACKOFF_SECONDS, exc.detail)

    async def generation(self) -> int | None:
        """The generation to read and write under, or ``None`` to bypass the cache (Redis is
        unreachable, or an invalidation from this process has not reached it yet)."""
        if time.monotonic() < self._skip_until:
            return None
        if self.agent_cache.pending:
            await self.agent_cache.flush_pending()
        if self.pending:
            await self.invalidate()
        if self.pending or self.agent_cache.pending:
            return None
        try:
            raw = await self.cache.get(self.generation_key())
        except CacheUnavailable as exc:
            self._failed(exc)
            return None
        return int(raw) if raw else 0

    async def get(self, generation: int, digest: str) -> bytes | None:
        """A cached response body, if any."""
        try:
            return await self.cache.get(self.entry_key(generation, digest))
        except CacheUnavailable as exc:
            self._failed(exc)
            return None

    async def put(self, generation: int, digest: str, body: bytes, ttl_ms: int) -> None:
        """Store a response body for ``ttl_ms`` milliseconds (skipped when too short)."""
        if ttl_ms < MIN_ENTRY_MS:
            return
        try:
            async with self.cache.guard() as client:
                await client.set(self.entry_key(generation, digest), body, px=ttl_ms)
        except CacheUnavailable as exc:
            self._failed(exc)

    async def invalidate(self) -> None:
        """Make every cached search miss from now on (after a registry change committed)."""
        try:
            async with self.cache.guard() as client:
                await client.incr(self.generation_key())
        except CacheUnavailable as exc:
            self.pending = True
            log.warning("search cache invalidation deferred: %s", exc.detail)
            return
        self.pending = False


async def invalidate_search_cache(cache: Cache) -> None:
    """After a committed registry change: later searches miss every cached result.

    Never raises for Redis trouble: the change is remembered and delivered later, and this
    process bypasses the cache meanwhile.
    """
    await SearchCache.of(cache).invalidate()
