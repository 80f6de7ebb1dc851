"""Invalidating the caches that show trust scores, after the change committed.

A trust change alters the agent resource (``agent:{agent_id}``) and search results ranked
or filtered by trust. Entries must be dropped *after* the commit (a reader that refilled the
cache between a delete and the commit would cache the old score), so recomputations only
collect the agent ids, and the caller invokes ``after_commit_invalidate`` once it committed.

Trust may not import the registry (same layer), so the process's composition root (the API
app, a worker) installs the registry's invalidation with ``use_invalidator``. Until then the
fallback speaks the same Redis protocol directly: delete ``agent:{id}`` and bump
``registry:version``, which search keys embed. Ids whose invalidation failed while Redis was
down are retried on the next call (entries also expire on their own TTL).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence

from dukenet.errors import CacheUnavailable
from dukenet.store.cache import Cache

log = logging.getLogger(__name__)

Invalidator = Callable[[Cache, Sequence[str]], Awaitable[None]]

_pending: weakref.WeakKeyDictionary[Cache, set[str]] = weakref.WeakKeyDictionary()


async def delete_agent_entries(cache: Cache, agent_ids: Sequence[str]) -> None:
    """Fallback invalidation: drop ``agent:{id}`` entries and bump ``registry:version``."""
    pending = _pending.setdefault(cache, set())
    pending.update(agent_ids)
    if not pending:
        return
    ids = list(pending)
    try:
        async with cache.guard() as client:
            pipe = client.pipeline(transaction=False)
            for start in range(0, len(ids), 1000):
                pipe.delete(
                    *(cache.key("agent", agent_id) for agent_id in ids[start : start + 1000])
                )
            pipe.incr(cache.key("registry", "version"))
            await pipe.execute()
    except CacheUnavailable as exc:
        log.warning("trust cache invalidation of %d agent(s) deferred: %s", len(ids), exc.detail)
        return
    pending.difference_update(ids)


_invalidator: Invalidator = delete_agent_entries


def use_invalidator(invalidator: Invalidator) -> None:
    """Install the process's invalidation (the registry's agent and search caches)."""
    global _invalidator
    _invalidator = invalidator


async def after_commit_invalidate(cache: Cache, agent_ids: Sequence[str]) -> None:
    """Call after committing trust changes of ``agent_ids``; never raises for Redis outages."""
    if not agent_ids:
        return
    try:
        await _invalidator(cache, list(dict.fromkeys(agent_ids)))
    except CacheUnavailable as exc:
        log.warning("trust cache invalidation failed: %s", exc.detail)
