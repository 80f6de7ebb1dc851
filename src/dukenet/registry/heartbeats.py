"""Heartbeats, the sweeper that expires them, and uptime.

A heartbeat persists ``last_heartbeat``, extends the agent's current uptime stretch (one
row per unbroken stretch of liveness, see migration 0005), brings an INACTIVE agent back
to ACTIVE, and sets Redis ``agent:heartbeat:{id}`` with the heartbeat TTL for fast
freshness checks. The sweeper works from PostgreSQL, so it is right even after Redis lost
its keys: ACTIVE agents whose last heartbeat is older than the TTL become INACTIVE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from dukenet.errors import CacheUnavailable, DukenetError
from dukenet.registry import agents
from dukenet.registry.cache import AgentCache
from dukenet.registry.errors import AgentNotFound, AgentSuspended
from dukenet.registry.models import Heartbeat
from dukenet.runtime import Services
from dukenet.store.cache import Cache
from dukenet.store.postgres import Database
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.registry", "queries.sql")
SWEEP_BATCH = 500
log = logging.getLogger(__name__)


def heartbeat_key(cache: Cache, agent_id: str) -> str:
    """``agent:heartbeat:{agent_id}``."""
    return cache.key("agent", "heartbeat", agent_id)


async def record_heartbeat(db: Database, cache: Cache, agent_id: str, *, ttl: int) -> Heartbeat:
    """Persist a heartbeat; an INACTIVE agent becomes ACTIVE again."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(QUERIES["heartbeat"], agent_id)
        if row is None:
            raise AgentNotFound(f"no registered agent {agent_id}")
        if row["old_status"] == "SUSPENDED":
            raise AgentSuspended("a suspended agent's heartbeats are not accepted")
        await conn.execute(QUERIES["extend_uptime"], agent_id, float(ttl))
        revived = row["old_status"] != row["new_status"]
        if revived:
            await conn.execute(
                QUERIES["record_status_change"],
                agent_id,
                row["old_status"],
                row["new_status"],
                "agent",
                "HEARTBEAT",
                None,
            )
    beat = row["last_heartbeat"]
    # Without Redis, freshness falls back to last_heartbeat in PostgreSQL.
    with contextlib.suppress(CacheUnavailable):
        await cache.set(heartbeat_key(cache, agent_id), beat.isoformat(), ttl=ttl)
    # A heartbeat after the previous one expired makes the agent fresh again even before the
    # sweeper marked it INACTIVE: search results change, so the registry version moves too.
    previous = row["previous_heartbeat"]
    refreshed = previous is None or previous <= beat - timedelta(seconds=ttl)
    await AgentCache.of(cache).invalidate(agent_id, registry_changed=revived or refreshed)
    return Heartbeat(
        agent_id=agent_id,
        status=row["new_status"],
        last_heartbeat=beat,
        fresh_until=beat + timedelta(seconds=ttl),
    )


async def is_fresh(cache: Cache, agent_id: str) -> bool:
    """Whether the agent's heartbeat key is alive (raises ``CacheUnavailable`` without Redis)."""
    async with cache.guard() as client:
        return bool(await client.exists(heartbeat_key(cache, agent_id)))


async def expire_heartbeats(db: Database, cache: Cache, *, ttl: int) -> list[str]:
    """Mark ACTIVE agents with an expired heartbeat INACTIVE; return their ids."""
    expired: list[str] = []
    while True:
        async with db.transaction() as conn:
            rows = await conn.fetch(QUERIES["expire_heartbeats"], float(ttl), SWEEP_BATCH)
        batch = [row["agent_id"] for row in rows]
        if batch:
            await AgentCache.of(cache).invalidate(*batch)
        expired.extend(batch)
        if len(batch) < SWEEP_BATCH:
            return expired


def sweep_interval(ttl: int) -> float:
    """How often the sweeper runs: a sixth of the TTL, between 0.5 s and 10 s."""
    return min(10.0, max(0.5, ttl / 6))


async def heartbeat_sweeper(services: Services) -> None:
    """Background job (API processes, workers): expire heartbeats until cancelled."""
    ttl = services.settings.heartbeat_ttl
    agent_cache = AgentCache.of(services.cache)
    while True:
        try:
            await agent_cache.flush_pending()
            expired = await expire_heartbeats(services.db, services.cache, ttl=ttl)
            if expired:
                log.info("%d agent(s) inactive after missing heartbeats", len(expired))
        except DukenetError as exc:
            log.warning("heartbeat sweep failed, retrying: %s", exc.detail)
        await asyncio.sleep(sweep_interval(ttl))


async def uptime(db: Database, agent_id: str) -> tuple[float, float, float]:
    """Uptime percent over 30 days, 90 days and all time (for trust scoring)."""
    async with db.acquire() as conn:
        row = await conn.fetchrow(QUERIES["get_agent"], agent_id)
    if row is None:
        raise AgentNotFound(f"no registered agent {agent_id}")
    agent = agents.agent_from_row(row)
    return agent.uptime_30d, agent.uptime_90d, agent.uptime_all_time
