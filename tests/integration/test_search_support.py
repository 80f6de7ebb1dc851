"""Helpers for the search tests: agents registered through the real registry, and shortcuts
for the states other domains produce (trust scores, stale heartbeats, inactive agents)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet import crypto
from dukenet.config import Settings
from dukenet.registry import agents
from dukenet.registry.search import Searcher
from dukenet.registry.search_cache import invalidate_search_cache
from dukenet.registry.search_models import SearchPage
from dukenet.registry.search_params import parse_search_query
from dukenet.runtime import Services
from dukenet.sdk import build_registration
from tests.conftest import REDIS_URL

TEXT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
OUTPUT_SCHEMA = {"type": "object", "properties": {"result": {}}}


def capability(name: str, version: str, **fields: Any) -> dict[str, Any]:
    """A capability spec as an agent publishes it (free, text input, unless overridden)."""
    spec: dict[str, Any] = {
        "name": name,
        "version": version,
        "input_schema": TEXT_SCHEMA,
        "output_schema": OUTPUT_SCHEMA,
    }
    spec.update(fields)
    return spec


async def register(
    services: Services,
    display_name: str,
    *,
    capabilities: list[dict[str, Any]],
    tags: list[str] | None = None,
    description: str | None = None,
    trust: str | None = None,
    key: Ed25519PrivateKey | None = None,
) -> str:
    """Register an agent with the registry's own code path; optionally set its trust score
    the way the trust domain does (an UPDATE, then the cache invalidation)."""
    payload = build_registration(
        key or crypto.generate_private_key(),
        display_name,
        description=description,
        endpoint_url=f"https://{display_name.lower().replace(' ', '-')}.example.net/invoke",
        tags=tags,
        capabilities=capabilities,
    )
    agent = await agents.register(
        services.db,
        services.cache,
        payload,
        network_key=services.network_key,
        heartbeat_ttl=services.settings.heartbeat_ttl,
    )
    if trust is not None:
        await set_trust(services, agent.agent_id, trust)
    return agent.agent_id


async def set_trust(services: Services, agent_id: str, trust: str) -> None:
    """What a trust recomputation does: store the score, then invalidate after the commit."""
    async with services.db.transaction() as conn:
        await conn.execute(
            "UPDATE agents SET trust_score = $2 WHERE agent_id = $1", agent_id, Decimal(trust)
        )
    await invalidate_search_cache(services.cache)


async def age_heartbeat(services: Services, agent_id: str, seconds: float) -> None:
    """Pretend the agent's last heartbeat was ``seconds`` ago (no sweeper has run yet)."""
    async with services.db.acquire() as conn:
        await conn.execute(
            "UPDATE agents SET last_heartbeat = now() - make_interval(secs => $2) "
            "WHERE agent_id = $1",
            agent_id,
            float(seconds),
        )


async def make_inactive(services: Services, agent_id: str) -> None:
    """What the heartbeat sweeper leaves behind: an old heartbeat and status INACTIVE."""
    await age_heartbeat(services, agent_id, 3_600)
    async with services.db.acquire() as conn:
        await conn.execute("UPDATE agents SET status = 'INACTIVE' WHERE agent_id = $1", agent_id)
    await invalidate_search_cache(services.cache)


async def search(services: Services, **params: Any) -> SearchPage:
    """One page from the domain search (through the cache, as the API does)."""
    return await Searcher.of(services).search(parse_search_query(**params))


async def search_all(services: Services, **params: Any) -> list[Any]:
    """Every result, following cursors, as (agent display name, name, version) triples."""
    found: list[Any] = []
    cursor = None
    while True:
        page = await search(services, **params, cursor=cursor)
        found += [
            (r.agent.display_name, r.capability.name, r.capability.version) for r in page.items
        ]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def module_settings(database_url: str, redis_prefix: str, network_key: str, tmp: str) -> Settings:
    """Settings for module-scoped fixtures (the ``settings`` fixture is per test)."""
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        data_dir=tmp,
        network_key=network_key,
        pool_min_size=1,
        pool_max_size=4,
    )
