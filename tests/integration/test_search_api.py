"""The search API's contract: 422 problems naming the parameter, the SDK's typed pages and
iterators, and the ``dukenet search`` command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.registry.search import Searcher
from dukenet.registry.search_cursor import cursor_key, encode_cursor
from dukenet.registry.search_params import parse_search_query
from dukenet.runtime import open_services
from dukenet.sdk import AsyncClient, Client
from dukenet.sdk.search import SearchCapability, SearchResult
from tests.conftest import server_env
from tests.integration.test_search_support import capability

SEARCH = "/v1/search/capabilities"


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "popularity"}, "sort"),
        ({"sort": "relevance"}, "sort"),  # relevance needs q
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJ2IjoxfQ.AAAAAAAAAAAAAAAAAAAAAA"}, "cursor"),
        ({"version": ">=1.2,<<2"}, "version"),
        ({"version": "banana"}, "version"),
        ({"version": "~"}, "version"),
        ({"accepts": "{not json"}, "accepts"),
        ({"accepts": "NaN"}, "accepts"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "SUSPENDED"}, "status"),
        ({"max_price": "0.10"}, "currency"),  # a price needs its currency
        ({"max_price": "-1", "currency": "USD"}, "max_price"),
        ({"min_trust": "101"}, "min_trust"),
        ({"currency": "dollars!"}, "currency"),
        ({"name": "Not A Name"}, "name"),
        ({"name": "*"}, "name"),
        ({"pricing_model": "barter"}, "pricing_model"),
        ({"tags": "x" * 101}, "tags"),
        ({"max_latency_ms": "0"}, "max_latency_ms"),
    ],
)
async def test_bad_input_is_a_422_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await client.get(SEARCH, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert problem["field"] == field
    assert problem["status"] == 422


async def test_a_cursor_from_another_search_or_key_is_refused(app: FastAPI) -> None:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    key = cursor_key(app.state.services.network_key)
    query = parse_search_query(name="a.b")
    cursor = encode_cursor(key, query.fingerprint, ["-50", "0", "ab"])
    ok = await client.get(SEARCH, params={"name": "a.b", "cursor": cursor})
    assert ok.status_code == 200
    other = await client.get(SEARCH, params={"name": "a.c", "cursor": cursor})
    assert other.status_code == 422
    assert other.json()["field"] == "cursor"
    forged = encode_cursor(b"\0" * 32, query.fingerprint, ["-50", "0", "ab"])
    assert (await client.get(SEARCH, params={"name": "a.b", "cursor": forged})).status_code == 422
    await client.aclose()


async def _publish(app: FastAPI, count: int) -> None:
    for index in range(count):
        async with AsyncClient(
            "http://dukenet.test",
            key=crypto.generate_private_key(),
            transport=httpx.ASGITransport(app=app),
        ) as agent:
            await agent.register(
                f"SDK Agent {index:02d}",
                tags=["sdk"],
                capabilities=[
                    capability("sdk.probe", "1.0.0", pricing_model="per_call",
                               price=f"0.{index:02d}")
                ],
            )  # fmt: skip


async def test_sdk_pages_are_typed_and_search_all_walks_every_page(app: FastAPI) -> None:
    await _publish(app, 12)
    async with AsyncClient("http://dukenet.test", transport=httpx.ASGITransport(app=app)) as sdk:
        page = await sdk.search(name="sdk.probe", sort="price", limit=5)
        assert isinstance(page.items[0], SearchResult)
        assert isinstance(page.items[0].capability, SearchCapability)
        assert [str(r.capability.price) for r in page.items] == [
            "0.0000", "0.0100", "0.0200", "0.0300", "0.0400",
        ]  # fmt: skip
        assert page.next_cursor is not None
        every = [r async for r in sdk.search_all(name="sdk.probe", sort="price", limit=5)]
        assert [r.agent.display_name for r in every] == [f"SDK Agent {i:02d}" for i in range(12)]
        none = [r async for r in sdk.search_all(name="sdk.probe", tags=["sdk", "other"])]
        assert none == []
        accepting = await sdk.search(name="sdk.probe", accepts={"text": "hi"}, max_price="0.015",
                                     currency="USD")  # fmt: skip
        assert [r.agent.display_name for r in accepting.items] == ["SDK Agent 00", "SDK Agent 01"]


def test_blocking_client_and_command_line_against_a_real_server(
    live_server: str, settings: Settings
) -> None:
    with Client(live_server) as sdk:
        assert sdk.search(name="cli.probe").items == []

    async def publish() -> None:
        async with AsyncClient(live_server, key=crypto.generate_private_key()) as agent:
            await agent.register(
                "Command Line Agent",
                tags=["cli"],
                capabilities=[capability("cli.probe", "1.2.3", pricing_model="per_call",
                                         price="0.25", latency_p99_ms=1200)],
            )  # fmt: skip

    asyncio.run(publish())
    with Client(live_server) as sdk:
        assert [r.capability.version for r in sdk.search_all(name="cli.*")] == ["1.2.3"]
    env = server_env(settings, DUKENET_SERVER_URL=live_server, COLUMNS="200")
    run = [sys.executable, "-m", "dukenet", "search", "--name", "cli.probe", "--tag", "cli"]
    table = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "cli.probe" in table.stdout
    assert "Command Line Agent" in table.stdout
    assert "0.2500 USD" in table.stdout
    assert "1,200 ms" in table.stdout
    as_json = subprocess.run(
        [*run, "--json"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    body = json.loads(as_json.stdout)
    assert [i["capability"]["name"] for i in body["items"]] == ["cli.probe"]
    assert body["next_cursor"] is None
    bad = subprocess.run(
        [*run, "--version", "nope"], env=env, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1
    assert "VALIDATION_FAILED" in bad.stderr and "version" in bad.stderr


def test_seed_command_fills_a_searchable_registry(settings: Settings) -> None:
    env = server_env(settings, COLUMNS="200")
    run = [sys.executable, "-m", "dukenet", "seed", "--agents", "300", "--seed", "3"]
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "seeded 300 agents with" in done.stdout

    async def count() -> tuple[int, int, int]:
        async with open_services(settings) as services, services.db.acquire() as conn:
            agents = await conn.fetchval(
                "SELECT count(*) FROM agents WHERE display_name LIKE '% %'"
            )
            indexed = await conn.fetchval("SELECT count(*) FROM capability_search")
            page = await Searcher.of(services).search(parse_search_query(limit=100))
            return agents, indexed, len(page.items)

    agents, indexed, found = asyncio.run(count())
    assert agents >= 300 and indexed >= 300
    assert found == 100  # ACTIVE seeded agents are fresh right after seeding
