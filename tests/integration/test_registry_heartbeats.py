"""Heartbeats: the sweeper turns silent agents INACTIVE, a heartbeat revives them, uptime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.registry.heartbeats import heartbeat_key
from dukenet.runtime import Services
from dukenet.sdk import AsyncClient


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    # A 1 s heartbeat TTL: the app's own sweeper runs every 0.5 s.
    application = create_app(settings.model_copy(update={"heartbeat_ttl": 1}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def sdk(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        "http://dukenet.test",
        key=crypto.generate_private_key(),
        transport=httpx.ASGITransport(app=app),
    ) as client:
        await client.register("Pulse")
        yield client


async def _wait_for_status(sdk: AsyncClient, status: str, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (await sdk.get_agent()).status != status:
        assert asyncio.get_running_loop().time() < deadline, f"agent never became {status}"
        await asyncio.sleep(0.1)


async def test_silence_makes_an_agent_inactive_and_a_heartbeat_revives_it(
    app: FastAPI, sdk: AsyncClient, database_url: str
) -> None:
    assert (await sdk.get_agent()).status == "ACTIVE"  # cached while ACTIVE
    await _wait_for_status(sdk, "INACTIVE")  # the sweeper invalidated the cached record

    beat = await sdk.heartbeat()
    assert beat.status == "ACTIVE"
    assert (beat.fresh_until - beat.last_heartbeat).total_seconds() == 1
    agent = await sdk.get_agent()
    assert agent.status == "ACTIVE" and agent.last_heartbeat == beat.last_heartbeat
    assert agent.uptime_all_time < 100.0  # the silent stretch counts as downtime

    services: Services = app.state.services
    ttl_ms = await services.cache.client.pttl(heartbeat_key(services.cache, sdk.agent_id))
    assert 0 < ttl_ms <= 1000

    conn = await asyncpg.connect(database_url)
    try:
        events = await conn.fetch(
            "SELECT event, actor, new_status FROM agent_status_changes WHERE agent_id = $1"
            " ORDER BY change_id",
            sdk.agent_id,
        )
        stretches = await conn.fetchval(
            "SELECT count(*) FROM agent_uptime_intervals WHERE agent_id = $1", sdk.agent_id
        )
    finally:
        await conn.close()
    assert [tuple(e) for e in events] == [
        ("REGISTERED", "agent", "ACTIVE"),
        ("EXPIRED", "sweeper", "INACTIVE"),
        ("HEARTBEAT", "agent", "ACTIVE"),
    ]
    assert stretches == 2  # registration's stretch, and the one the heartbeat opened


async def test_steady_heartbeats_keep_one_uptime_stretch(
    sdk: AsyncClient, database_url: str
) -> None:
    for _ in range(4):
        assert (await sdk.heartbeat()).status == "ACTIVE"
        await asyncio.sleep(0.3)
    agent = await sdk.get_agent()
    assert agent.status == "ACTIVE"
    assert agent.uptime_30d == agent.uptime_90d == agent.uptime_all_time == 100.0
    conn = await asyncpg.connect(database_url)
    try:
        stretches = await conn.fetchval(
            "SELECT count(*) FROM agent_uptime_intervals WHERE agent_id = $1", sdk.agent_id
        )
    finally:
        await conn.close()
    assert stretches == 1
