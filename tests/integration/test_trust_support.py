"""Shared pieces of the trust tests (this module holds no tests itself).

Agents, tasks and subtasks are written as rows where a test needs exact control (ages,
owners, costs, completion times); ratings go through the HTTP API with real sessions.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.runtime import Services, open_services
from dukenet.sdk import AsyncClient
from dukenet.store.postgres import Connection
from dukenet.trust import events
from tests.conftest import ADMIN_TOKEN

BASE_URL = "http://dukenet.test"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def quiet_settings(settings: Settings, **overrides: Any) -> Settings:
    """Settings with no embedded worker or periodic recomputation, and no rate limits."""
    values: dict[str, Any] = {
        "embedded_worker": False,
        "trust_recompute_interval": 0,
        "rate_limits": "write=none,read=none,auth=none,register=none,heartbeat=none",
    }
    values.update(overrides)
    return settings.model_copy(update=values)


async def insert_agent(
    conn: Connection,
    *,
    age_days: float = 0.0,
    owner: str | None = None,
    status: str = "ACTIVE",
    verified: bool = True,
    name: str = "agent",
) -> str:
    """An agent row created ``age_days`` ago (with a stored registration when ``verified``)."""
    agent_id = secrets.token_hex(32)
    await conn.execute(
        "INSERT INTO agents (agent_id, public_key, display_name, status, owner_address,"
        " created_at, last_heartbeat)"
        " VALUES ($1, $2, $3, $4, $5, NOW() - make_interval(secs => $6),"
        " NOW() - make_interval(secs => $6))",
        agent_id,
        secrets.token_urlsafe(32),
        f"{name} {agent_id[:6]}",
        status,
        owner,
        age_days * 86_400.0,
    )
    if verified:
        await conn.execute(
            "INSERT INTO agent_registrations (agent_id, payload)"
            """ VALUES ($1, '{"signature": "verified at registration"}'::jsonb)""",
            agent_id,
        )
    return agent_id


async def insert_task(
    conn: Connection,
    creator: str,
    worker: str | None,
    *,
    cost: str = "2.0000",
    status: str = "COMPLETED",
    subtask_status: str = "COMPLETED",
    completed_days_ago: float = 0.0,
) -> tuple[uuid.UUID, uuid.UUID]:
    """A task of ``creator`` with one subtask assigned to ``worker``; (task_id, subtask_id)."""
    task_id, subtask_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO tasks (task_id, name, created_by, status, input_schema, output_schema,"
        " completed_at)"
        " VALUES ($1, 'work', $2, $3::varchar, '{}'::jsonb, '{}'::jsonb,"
        " CASE WHEN $3::varchar = 'COMPLETED' THEN NOW() - make_interval(secs => $4) END)",
        task_id,
        creator,
        status,
        completed_days_ago * 86_400.0,
    )
    await conn.execute(
        "INSERT INTO subtasks (subtask_id, parent_task_id, name, assigned_agent_id, status,"
        " input, capability_name, cost, quoted_price, completed_at)"
        " VALUES ($1, $2, 'step', $3, $4::varchar, '{}'::jsonb, 'text.summarize', $5::numeric,"
        " $5::numeric, CASE WHEN $4::varchar = 'COMPLETED'"
        " THEN NOW() - make_interval(secs => $6) END)",
        subtask_id,
        task_id,
        worker,
        subtask_status,
        cost,
        completed_days_ago * 86_400.0,
    )
    return task_id, subtask_id


async def insert_rating(
    conn: Connection,
    agent_id: str,
    rater: str,
    task_id: uuid.UUID,
    rating: float,
    *,
    age_days: float = 0.0,
    task_value: str | None = None,
) -> None:
    """A rating row (for scenarios too large to post one by one)."""
    await conn.execute(
        "INSERT INTO agent_ratings (agent_id, rater_agent_id, task_id, rating, created_at,"
        " task_value) VALUES ($1, $2, $3, $4, NOW() - make_interval(secs => $5), $6::numeric)",
        agent_id,
        rater,
        task_id,
        rating,
        age_days * 86_400.0,
        task_value,
    )


async def attempt(
    services: Services,
    agent_id: str,
    subtask_id: uuid.UUID,
    *,
    number: int = 1,
    outcome: str = "success",
    caused_by_agent: bool = False,
    latency_ms: int | None = 100,
    declared_p99_ms: int | None = 500,
    recompute: bool = True,
) -> None:
    """Record a finished attempt (and recompute) the way the orchestration engine does."""
    async with services.db.transaction() as conn:
        await events.record_attempt(
            conn,
            agent_id=agent_id,
            capability_id=None,
            subtask_id=subtask_id,
            attempt=number,
            outcome=outcome,
            caused_by_agent=caused_by_agent,
            latency_ms=latency_ms,
            declared_p99_ms=declared_p99_ms,
        )
        if recompute:
            await events.recompute_trust(conn, services.cache, agent_id, reason="attempt")
    if recompute:
        await events.after_commit_invalidate(services.cache, [agent_id])


async def trust_of(services: Services, agent_id: str) -> float:
    """``agents.trust_score``."""
    async with services.db.acquire() as conn:
        return float(
            await conn.fetchval("SELECT trust_score FROM agents WHERE agent_id = $1", agent_id)
        )


async def records_of(services: Services, agent_id: str) -> list[dict[str, Any]]:
    """The agent's trust records, oldest first."""
    async with services.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM trust_records WHERE agent_id = $1 ORDER BY record_id", agent_id
        )
    return [dict(row) for row in rows]


async def wait_for(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll ``check`` until it holds (or fail after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


class TrustNetwork:
    """The app in-process with its services, and helpers to act as agents over HTTP."""

    def __init__(self, app: FastAPI, services: Services) -> None:
        self.app = app
        self.services = services
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
        self._clients: list[AsyncClient] = []

    async def register(self, name: str = "Agent", **profile: Any) -> tuple[str, dict[str, str]]:
        """Register an agent through the API and log it in; (agent_id, auth headers)."""
        sdk = AsyncClient(
            BASE_URL, key=crypto.generate_private_key(), transport=self.http._transport
        )
        self._clients.append(sdk)
        await sdk.register(name, **profile)
        session = await sdk.login()
        return sdk.agent_id, {"authorization": f"Bearer {session.token}"}

    async def close(self) -> None:
        """Close the HTTP clients."""
        for sdk in self._clients:
            await sdk.aclose()
        await self.http.aclose()


@pytest.fixture
async def network(settings: Settings) -> AsyncIterator[TrustNetwork]:
    """The API with its lifespan (jobs included, periodic recomputation off)."""
    quiet = quiet_settings(settings)
    app = create_app(quiet)
    async with app.router.lifespan_context(app), open_services(quiet) as services:
        net = TrustNetwork(app, services)
        try:
            yield net
        finally:
            await net.close()
