"""The ``agent:{agent_id}`` lookup cache, and the registry version that search keys embed.

Consistency protocol (read-after-write never sees old data):

* Writers commit in PostgreSQL first, then delete ``agent:{id}`` and bump ``registry:version``.
* A reader that misses takes a *fill lease*: ``SET agent:{id} lease:<nonce> NX``, reads
  PostgreSQL, and stores the result only if the key still holds its own lease (an atomic
  compare-and-set script). A writer's delete after commit removes the lease, so a reader
  that read the row before the commit can no longer overwrite the fresh state with the old
  one; a reader that takes its lease after the delete reads the committed row.
* If Redis is unreachable when a writer invalidates, the agent id stays in this process's
  *pending* set: lookups of that agent bypass Redis, and the delete is retried on the next
  cache operation and by the sweeper loop. Entries also carry a TTL, which bounds staleness
  even if the process dies before it can retry.

Every key is single-slot, so the protocol works on a clustered Redis too.
"""

from __future__ import annotations

import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable

from redis.commands.core import AsyncScript

from dukenet.errors import CacheUnavailable
from dukenet.store.cache import Cache

log = logging.getLogger(__name__)

AGENT_TTL_SECONDS = 120
LEASE_TTL_MS = 5_000
_LEASE_PREFIX = b"lease:"

# Store ``value`` only if the key still holds the caller's lease.
_FILL_IF_LEASED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""


class AgentCache:
    """The lookup cache of one process; use ``AgentCache.of(cache)`` to share it."""

    _instances: weakref.WeakKeyDictionary[Cache, AgentCache] = weakref.WeakKeyDictionary()

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.pending: set[str] = set()
        self._fill: AsyncScript = cache.client.register_script(_FILL_IF_LEASED)

    @classmethod
    def of(cls, cache: Cache) -> AgentCache:
        """The process-wide ``AgentCache`` for ``cache`` (pending invalidations are per process)."""
        found = cls._instances.get(cache)
        if found is None:
            found = cls._instances[cache] = cls(cache)
        return found

    def key(self, agent_id: str) -> str:
        """``agent:{agent_id}``."""
        return self.cache.key("agent", agent_id)

    def version_key(self) -> str:
        """``registry:version``: bumped on every change that search results depend on."""
        return self.cache.key("registry", "version")

    async def read(
        self,
        agent_id: str,
        load: Callable[[], Awaitable[bytes | None]],
        *,
        prefetched: bytes | None = None,
    ) -> bytes | None:
        """The cached JSON of an agent, else ``load()`` from PostgreSQL (filling the cache).

        ``prefetched`` is the raw value of ``key(agent_id)`` that the caller already read
        in another round trip (``RateLimiter.hit_and_get``); a hit is returned as it is.
        """
        if self.pending:
            await self.flush_pending()
        if agent_id in self.pending:
            return await load()
        hit = self.cached(prefetched)
        if hit is not None:
            return hit
        key = self.key(agent_id)
        lease = _LEASE_PREFIX + secrets.token_hex(8).encode()
        try:
            async with self.cache.guard() as client:
                cached = await client.get(key)
                if isinstance(cached, bytes) and not cached.startswith(_LEASE_PREFIX):
                    return cached
                leased = cached is None and bool(
                    await client.set(key, lease, nx=True, px=LEASE_TTL_MS)
                )
        except CacheUnavailable:
            return await load()
        value = await load()
        if leased and value is not None:
            try:
                async with self.cache.guard():
                    await self._fill(keys=[key], args=[lease, value, AGENT_TTL_SECONDS])
            except CacheUnavailable:
                pass
        return value

    def cached(self, raw: bytes | None) -> bytes | None:
        """A raw value fetched by someone else (e.g. in a pipeline), unless it is a lease."""
        if raw is None or raw.startswith(_LEASE_PREFIX):
            return None
        return raw

    async def invalidate(self, *agent_ids: str, registry_changed: bool = True) -> None:
        """After a commit: drop the agents' entries and bump the registry version.

        Each call deletes its own agents' entries (and retries the deferred ones), not the
        entries other requests are invalidating at the same moment."""
        bump = registry_changed or bool(self.pending.difference(agent_ids))
        await self._flush({*agent_ids, *self.pending}, bump=bump)

    async def flush_pending(self) -> None:
        """Retry invalidations that failed while Redis was unreachable."""
        if self.pending:
            await self._flush(set(self.pending), bump=True)

    async def _flush(self, ids: set[str], *, bump: bool) -> None:
        try:
            async with self.cache.guard() as client:
                keys = [self.key(agent_id) for agent_id in ids]
                if bump and keys:
                    pipe = client.pipeline(transaction=False)
                    pipe.delete(*keys)
                    pipe.incr(self.version_key())
                    await pipe.execute()
                elif bump:
                    await client.incr(self.version_key())
                elif keys:
                    await client.delete(*keys)
        except CacheUnavailable as exc:
            self.pending.update(ids)
            log.warning("cache invalidation of %d agent(s) deferred: %s", len(ids), exc.detail)
            return
        self.pending.difference_update(ids)

    async def registry_version(self) -> int:
        """The current registry version (0 if never bumped); raises ``CacheUnavailable``."""
        raw = await self.cache.get(self.version_key())
        return int(raw) if raw else 0
