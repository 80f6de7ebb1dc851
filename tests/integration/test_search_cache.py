"""The search cache is fast and never wrong: hits equal misses, every registry change shows
in the next search, heartbeat expiry ends entries on time, and Redis trouble only costs speed."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest

from dukenet.errors import CacheUnavailable
from dukenet.registry import agents, capabilities, heartbeats
from dukenet.registry.inputs import AgentUpdate, CapabilitySpec, CapabilityUpdate
from dukenet.registry.search import Searcher
from dukenet.registry.search_cache import SearchCache, invalidate_search_cache
from dukenet.registry.search_params import parse_search_query
from dukenet.runtime import Services
from dukenet.store.cache import Cache
from tests.conftest import free_port
from tests.integration.test_search_support import (
    age_heartbeat,
    capability,
    register,
    search,
    set_trust,
)


def _names(page: Any) -> list[str]:
    return [r.agent.display_name for r in page.items]


async def _cached_keys(services: Services) -> list[bytes]:
    pattern = services.cache.key("search", "capability", "*")
    return [key async for key in services.cache.client.scan_iter(match=pattern)]


async def test_a_hit_returns_exactly_what_the_miss_computed(services: Services) -> None:
    await register(
        services, "Hit Agent", trust="70", capabilities=[capability("hit.probe", "1.0.0")]
    )
    searcher = Searcher.of(services)
    query = parse_search_query(name="hit.probe", tags=[], limit=5)
    miss = await searcher.search_json(query)
    generation = await SearchCache.of(services.cache).generation()
    key = SearchCache.of(services.cache).entry_key(generation or 0, query.digest)
    assert key.startswith(services.cache.prefix + "search:capability:")
    assert await services.cache.get(key) == miss
    # A change nobody announced is not seen: proof the next answer comes from Redis ...
    async with services.db.acquire() as conn:
        await conn.execute("UPDATE agents SET display_name = 'Renamed' WHERE display_name = $1",
                           "Hit Agent")  # fmt: skip
    assert await searcher.search_json(query) == miss
    # ... and an equal query written differently shares the entry.
    same = parse_search_query(name=" HIT.probe ", limit=5, min_trust=None)
    assert same.digest == query.digest
    assert await searcher.search_json(same) == miss
    # Once announced, the change is served.
    await invalidate_search_cache(services.cache)
    assert _names(await searcher.search(query)) == ["Renamed"]


Change = Callable[[Services, dict[str, str]], Awaitable[None]]


async def _add_capability(services: Services, ids: dict[str, str]) -> None:
    spec = CapabilitySpec.model_validate(capability("change.probe", "2.0.0"))
    await capabilities.add_capability(services.db, services.cache, ids["low"], spec)


async def _reprice(services: Services, ids: dict[str, str]) -> None:
    update = CapabilityUpdate(pricing_model="per_call", price=Decimal("9"))
    await capabilities.update_capability(
        services.db, services.cache, ids["high_capability"], ids["high"], update
    )


async def _deprecate(services: Services, ids: dict[str, str]) -> None:
    update = CapabilityUpdate(deprecated=True)
    await capabilities.update_capability(
        services.db, services.cache, ids["high_capability"], ids["high"], update
    )


async def _delete_capability(services: Services, ids: dict[str, str]) -> None:
    await capabilities.delete_capability(
        services.db, services.cache, ids["high_capability"], ids["high"]
    )


async def _suspend(services: Services, ids: dict[str, str]) -> None:
    await agents.suspend(services.db, services.cache, ids["high"], "operator check")


async def _deregister(services: Services, ids: dict[str, str]) -> None:
    await agents.deregister(services.db, services.cache, ids["high"])


async def _lower_trust(services: Services, ids: dict[str, str]) -> None:
    await set_trust(services, ids["high"], "10")


async def _retag(services: Services, ids: dict[str, str]) -> None:
    await agents.set_tags(services.db, services.cache, ids["high"], ["other"])


async def _rename(services: Services, ids: dict[str, str]) -> None:
    update = AgentUpdate(display_name="Renamed High")
    await agents.update_agent(services.db, services.cache, ids["high"], update)


async def _sweep_expired(services: Services, ids: dict[str, str]) -> None:
    await age_heartbeat(services, ids["high"], 3_600)
    ttl = services.settings.heartbeat_ttl
    assert ids["high"] in await heartbeats.expire_heartbeats(services.db, services.cache, ttl=ttl)


async def _register_more_trusted(services: Services, ids: dict[str, str]) -> None:
    await register(
        services, "Newcomer", tags=["probe"], trust="99",
        capabilities=[capability("change.probe", "1.0.0", pricing_model="per_call", price="0.01")],
    )  # fmt: skip


# (change, expected names after it). Before every change the search returns High, then Low.
CHANGES: list[tuple[Change, list[str]]] = [
    (_add_capability, ["High", "Low", "Low"]),
    (_reprice, ["Low"]),  # now above max_price
    (_deprecate, ["Low"]),
    (_delete_capability, ["Low"]),
    (_suspend, ["Low"]),
    (_deregister, ["Low"]),
    (_lower_trust, ["Low", "High"]),  # order follows trust
    (_retag, ["Low"]),  # no longer tagged "probe"
    (_rename, ["Renamed High", "Low"]),
    (_sweep_expired, ["Low"]),
    (_register_more_trusted, ["Newcomer", "High", "Low"]),
]


@pytest.mark.parametrize(("change", "expected"), CHANGES, ids=[c.__name__ for c, _ in CHANGES])
async def test_every_registry_change_shows_in_the_next_search(
    services: Services, change: Change, expected: list[str]
) -> None:
    # A fresh name per case: the module's database is shared by the cases.
    await services.db.primary.execute("DELETE FROM agent_capabilities WHERE name = 'change.probe'")
    await invalidate_search_cache(services.cache)
    ids: dict[str, str] = {}
    ids["high"] = await register(
        services, "High", tags=["probe"], trust="80",
        capabilities=[capability("change.probe", "1.0.0", pricing_model="per_call", price="0.02")],
    )  # fmt: skip
    ids["low"] = await register(
        services, "Low", tags=["probe"], trust="40",
        capabilities=[capability("change.probe", "1.0.0", pricing_model="per_call", price="0.03")],
    )  # fmt: skip
    async with services.db.acquire() as conn:
        ids["high_capability"] = await conn.fetchval(
            "SELECT capability_id FROM agent_capabilities WHERE agent_id = $1", ids["high"]
        )
    params = {"name": "change.probe", "tags": ["probe"], "max_price": "1", "currency": "USD"}
    if change is _rename:
        params = {"q": "high", "name": "change.probe"}
        expected = ["Renamed High"]
        assert _names(await search(services, **params)) == ["High"]
    else:
        assert _names(await search(services, **params)) == ["High", "Low"]
    # The answer above is cached now; the change must not be hidden by it.
    assert await _cached_keys(services)
    await change(services, ids)
    assert _names(await search(services, **params)) == expected


async def test_heartbeat_expiry_ends_a_cached_entry_without_any_write(services: Services) -> None:
    await register(services, "Short Lived", capabilities=[capability("expiry.probe", "1.0.0")])
    searcher = dataclasses.replace(Searcher.of(services), heartbeat_ttl=2)
    query = parse_search_query(name="expiry.probe")
    assert _names(await searcher.search(query)) == ["Short Lived"]
    key = SearchCache.of(services.cache).entry_key(
        await SearchCache.of(services.cache).generation() or 0, query.digest
    )
    ttl_ms = await services.cache.client.pttl(key)
    assert 0 < ttl_ms <= 2_000  # capped by the heartbeat expiry, not the 30 s TTL
    await asyncio.sleep(2.2)
    assert _names(await searcher.search(query)) == []


async def test_a_heartbeat_that_makes_an_agent_fresh_again_shows_immediately(
    services: Services,
) -> None:
    agent_id = await register(
        services, "Comeback", capabilities=[capability("comeback.probe", "1.0.0")]
    )
    await age_heartbeat(services, agent_id, 3_600)  # expired, not yet swept: still ACTIVE
    await invalidate_search_cache(services.cache)
    assert _names(await search(services, name="comeback.probe")) == []
    ttl = services.settings.heartbeat_ttl
    await heartbeats.record_heartbeat(services.db, services.cache, agent_id, ttl=ttl)
    assert _names(await search(services, name="comeback.probe")) == ["Comeback"]


async def test_an_entry_computed_before_a_change_is_stored_where_nobody_reads(
    services: Services,
) -> None:
    agent_id = await register(services, "Racer", capabilities=[capability("race.probe", "1.0.0")])
    searcher = Searcher.of(services)
    query = parse_search_query(name="race.probe")
    cache = SearchCache.of(services.cache)
    # A slow search reads the generation and PostgreSQL before the change ...
    generation = await cache.generation()
    assert generation is not None
    stale = await searcher.search_json(query)
    # ... the agent is suspended (commit, then invalidation) ...
    await agents.suspend(services.db, services.cache, agent_id, "race")
    # ... and only then the slow search stores what it read.
    await cache.put(generation, query.digest, stale, 30_000)
    assert _names(await searcher.search(query)) == []


async def test_search_answers_from_postgres_while_redis_is_down(services: Services) -> None:
    await register(
        services, "Still Found", trust="55", capabilities=[capability("down.probe", "1.0.0")]
    )
    dead = Cache.connect(f"redis://127.0.0.1:{free_port()}/0", services.cache.prefix)
    try:
        searcher = dataclasses.replace(Searcher.of(services), cache=dead)
        page = await searcher.search(parse_search_query(name="down.probe"))
        assert _names(page) == ["Still Found"]
        await invalidate_search_cache(dead)  # does not raise
        assert SearchCache.of(dead).pending
        assert _names(await searcher.search(parse_search_query(name="down.probe"))) == [
            "Still Found"
        ]
    finally:
        await dead.close()


async def test_an_invalidation_lost_to_a_redis_outage_is_delivered_before_the_cache_is_used(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent_id = await register(
        services, "Outage", capabilities=[capability("outage.probe", "1.0.0")]
    )
    query = parse_search_query(name="outage.probe")
    searcher = Searcher.of(services)
    assert _names(await searcher.search(query)) == ["Outage"]  # cached
    cache = SearchCache.of(services.cache)
    generation = await cache.generation()

    @asynccontextmanager
    async def unreachable(self: Cache) -> Any:
        raise CacheUnavailable("Redis unavailable: test outage")
        yield self.client  # pragma: no cover

    # Redis is unreachable exactly when the registry announces a suspension.
    with monkeypatch.context() as patched:
        patched.setattr(Cache, "guard", unreachable)
        await agents.suspend(services.db, services.cache, agent_id, "outage")
    assert await services.cache.get(cache.generation_key()) == str(generation).encode()
    # Redis is back, still holding the stale entry under the current generation: the next
    # search delivers the pending invalidation first, so it never reads that entry.
    assert _names(await searcher.search(query)) == []
    assert await cache.generation() == (generation or 0) + 1
    assert not cache.pending and not cache.agent_cache.pending


async def test_cache_ttl_zero_disables_the_cache(services: Services) -> None:
    await register(services, "Uncached", capabilities=[capability("nocache.probe", "1.0.0")])
    searcher = dataclasses.replace(Searcher.of(services), cache_ttl=0)
    before = set(await _cached_keys(services))
    await searcher.search(parse_search_query(name="nocache.probe"))
    # Nothing new was stored (entries of earlier searches may expire meanwhile).
    assert set(await _cached_keys(services)) <= before
