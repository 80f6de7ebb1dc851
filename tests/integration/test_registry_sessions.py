"""Challenge-response login, bearer sessions and rate limits on real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.sdk import AsyncClient, errors
from tests.conftest import http_and_sdk


async def _app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@asynccontextmanager
async def _clients_with_limits(
    settings: Settings, rate_limits: str
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncClient]]:
    """An app with these rate limits, with an HTTP client and an SDK client on it."""
    async for application in _app(settings.model_copy(update={"rate_limits": rate_limits})):
        async with http_and_sdk(application) as clients:
            yield clients


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    # Sessions live 2 s here (the setting's floor of 60 s is bypassed on purpose).
    async for application in _app(settings.model_copy(update={"session_ttl": 2})):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dukenet.test") as client:
        yield client


@pytest.fixture
async def sdk(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        "http://dukenet.test",
        key=crypto.generate_private_key(),
        transport=httpx.ASGITransport(app=app),
    ) as client:
        await client.register("Session holder")
        yield client


async def _challenge(http: httpx.AsyncClient, agent_id: str) -> str:
    response = await http.post("/v1/auth/challenge", json={"agent_id": agent_id})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"challenge", "expires_at"}
    challenge: str = response.json()["challenge"]
    return challenge


async def test_login_issues_a_working_token_and_logout_revokes_it(
    http: httpx.AsyncClient, sdk: AsyncClient
) -> None:
    assert sdk.key is not None
    challenge = await _challenge(http, sdk.agent_id)
    body = crypto.sign_payload(sdk.key, {"agent_id": sdk.agent_id, "challenge": challenge})
    response = await http.post("/v1/auth/session", json=body)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"token", "expires_at"}
    auth = {"authorization": f"Bearer {response.json()['token']}"}

    beat = await http.post(f"/v1/agents/{sdk.agent_id}/heartbeat", headers=auth)
    assert beat.status_code == 200
    assert (await http.delete("/v1/auth/session", headers=auth)).status_code == 204
    after = await http.post(f"/v1/agents/{sdk.agent_id}/heartbeat", headers=auth)
    assert (after.status_code, after.json()["code"]) == (401, "UNAUTHORIZED")


async def test_challenge_is_single_use(http: httpx.AsyncClient, sdk: AsyncClient) -> None:
    assert sdk.key is not None
    challenge = await _challenge(http, sdk.agent_id)
    body = crypto.sign_payload(sdk.key, {"agent_id": sdk.agent_id, "challenge": challenge})
    assert (await http.post("/v1/auth/session", json=body)).status_code == 200
    reused = await http.post("/v1/auth/session", json=body)
    assert (reused.status_code, reused.json()["code"]) == (401, "INVALID_CHALLENGE")


async def test_login_with_the_wrong_key_or_someone_elses_challenge(
    http: httpx.AsyncClient, sdk: AsyncClient
) -> None:
    challenge = await _challenge(http, sdk.agent_id)
    impostor = crypto.generate_private_key()
    body = crypto.sign_payload(impostor, {"agent_id": sdk.agent_id, "challenge": challenge})
    response = await http.post("/v1/auth/session", json=body)
    assert (response.status_code, response.json()["code"]) == (401, "INVALID_SIGNATURE")
    # the failed attempt used the challenge up
    assert sdk.key is not None
    good = crypto.sign_payload(sdk.key, {"agent_id": sdk.agent_id, "challenge": challenge})
    assert (await http.post("/v1/auth/session", json=good)).json()["code"] == "INVALID_CHALLENGE"

    unknown = await http.post("/v1/auth/challenge", json={"agent_id": "f" * 64})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "AGENT_NOT_FOUND")
    malformed = await http.post("/v1/auth/challenge", json={"agent_id": "nope"})
    assert (malformed.status_code, malformed.json()["field"]) == (422, "/agent_id")


async def test_expired_session_is_refused_and_the_sdk_logs_in_again(
    http: httpx.AsyncClient, sdk: AsyncClient
) -> None:
    session = await sdk.login()
    auth = {"authorization": f"Bearer {session.token}"}
    await asyncio.sleep(2.5)
    expired = await http.post(f"/v1/agents/{sdk.agent_id}/heartbeat", headers=auth)
    assert (expired.status_code, expired.json()["code"]) == (401, "UNAUTHORIZED")
    # the SDK notices the stale token (or its near expiry) and renews it transparently
    assert (await sdk.heartbeat()).status == "ACTIVE"
    assert sdk.session is not None and sdk.session.token != session.token


async def test_garbage_tokens_are_unauthorized(http: httpx.AsyncClient, sdk: AsyncClient) -> None:
    for header in ("Bearer nonsense", f"Bearer {sdk.agent_id}.forged", "Basic abc"):
        response = await http.put(
            f"/v1/agents/{sdk.agent_id}/tags", json={"tags": []}, headers={"authorization": header}
        )
        assert (response.status_code, response.json()["code"]) == (401, "UNAUTHORIZED"), header


async def test_rate_limit_returns_429_then_recovers(settings: Settings) -> None:
    async with _clients_with_limits(settings, "read=5/second,heartbeat=2/second") as (http, sdk):
        await sdk.register("Busy")
        path = f"/v1/agents/{sdk.agent_id}"
        statuses = [(await http.get(path)).status_code for _ in range(8)]
        assert statuses.count(200) <= 5 and statuses[-1] == 429
        refused = await http.get(path)
        assert refused.json()["code"] == "RATE_LIMITED"
        assert 1 <= int(refused.headers["retry-after"]) <= 1
        # heartbeats are counted per agent, separately from reads
        await sdk.heartbeat()
        await sdk.heartbeat()
        with pytest.raises(errors.RateLimited) as too_many:
            await sdk.heartbeat()
        assert too_many.value.retry_after >= 1
        await asyncio.sleep(1.1)
        assert (await http.get(path)).status_code == 200
        assert (await sdk.heartbeat()).status == "ACTIVE"


async def test_a_forged_token_cannot_spend_another_agents_rate_limit(settings: Settings) -> None:
    async with _clients_with_limits(settings, "heartbeat=2/minute") as (http, sdk):
        await sdk.register("Victim")
        forged = {"Authorization": f"Bearer {sdk.agent_id}.not-the-secret"}
        for _ in range(5):
            refused = await http.post(f"/v1/agents/{sdk.agent_id}/heartbeat", headers=forged)
            assert (refused.status_code, refused.json()["code"]) == (401, "UNAUTHORIZED")
        # The agent's own two heartbeats in this minute are still allowed, the third not.
        assert (await sdk.heartbeat()).status == "ACTIVE"
        assert (await sdk.heartbeat()).status == "ACTIVE"
        with pytest.raises(errors.RateLimited):
            await sdk.heartbeat()
