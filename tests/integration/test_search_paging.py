"""Keyset paging: every result exactly once, in order, whatever the page size and filters."""

from __future__ import annotations

import hashlib
import json
import random
from decimal import Decimal
from typing import Any

import pytest

from dukenet.errors import InvalidInput
from dukenet.registry import search as search_module
from dukenet.registry.search import Searcher
from dukenet.registry.search_params import parse_search_query
from dukenet.runtime import Services
from tests.integration.test_search_support import TEXT_SCHEMA

LANGUAGE_SCHEMA = {"type": "object", "required": ["text", "language"]}


def _hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


async def _insert(
    services: Services, name: str, count: int, *, seed: int, accepting: set[int] | None = None
) -> list[dict[str, Any]]:
    """``count`` capabilities named ``name``, two per agent, with many ties in trust and
    price (so capability_id decides), varied latencies and text. With ``accepting``, only
    those indexes take ``{"text": ...}`` alone."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    async with services.db.transaction() as conn:
        for index in range(count):
            if index % 2 == 0:
                agent_id = _hex(f"{name}:agent:{index}")
                trust = rng.choice([Decimal("50.00"), Decimal("60.00"), Decimal("70.00")])
                await conn.execute(
                    "INSERT INTO agents (agent_id, public_key, display_name, trust_score,"
                    " last_heartbeat) VALUES ($1, $2, $3, $4, now())",
                    agent_id,
                    f"pk-{agent_id}",
                    f"{name} agent {index}",
                    trust,
                )
            takes_text = accepting is None or index in accepting
            row = {
                "capability_id": _hex(f"{name}:capability:{index}"),
                "agent_id": agent_id,
                "trust": trust,
                "price": rng.choice([Decimal("0"), Decimal("0.0100"), Decimal("0.0200")]),
                "latency": rng.choice([None, 100, 200, 300]),
                "words": rng.randint(1, 3),
                "schema": TEXT_SCHEMA if takes_text else LANGUAGE_SCHEMA,
            }
            await conn.execute(
                "INSERT INTO agent_capabilities (capability_id, agent_id, name, version,"
                " description, input_schema, output_schema, pricing_model, price,"
                " latency_p99_ms) VALUES ($1, $2, $3, $4, $5, $6, '{}', 'per_call', $7, $8)",
                row["capability_id"],
                agent_id,
                name,
                f"1.0.{index}",
                " ".join(["zebra"] * row["words"]) + " capability",
                row["schema"],
                row["price"],
                row["latency"],
            )
            rows.append(row)
    return rows


def _expected(rows: list[dict[str, Any]], sort: str) -> list[str]:
    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        if sort == "trust":
            return (-row["trust"], row["price"], row["capability_id"])
        if sort == "price":
            return (row["price"], -row["trust"], row["capability_id"])
        latency = 2_147_483_647 if row["latency"] is None else row["latency"]
        return (latency, -row["trust"], row["capability_id"])

    return [row["capability_id"] for row in sorted(rows, key=key)]


async def _walk(services: Services, limit: int, **params: Any) -> tuple[list[str], list[int]]:
    """All capability ids in page order, and the size of each page."""
    searcher = Searcher.of(services)
    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        page = await searcher.search(parse_search_query(**params, limit=limit, cursor=cursor))
        seen += [r.capability.capability_id for r in page.items]
        sizes.append(len(page.items))
        if page.next_cursor is None:
            return seen, sizes
        cursor = page.next_cursor
        assert len(sizes) < 1_000, "paging does not end"


@pytest.fixture
async def probes(services: Services) -> list[dict[str, Any]]:
    """500 capabilities named ``paging.probe`` (inserted by the first test that asks)."""
    async with services.db.acquire() as conn:
        records = await conn.fetch(
            "SELECT c.capability_id, a.trust_score AS trust, c.price, c.latency_p99_ms AS latency"
            " FROM agent_capabilities c JOIN agents a USING (agent_id)"
            " WHERE c.name = 'paging.probe'"
        )
    if records:
        return [dict(r) for r in records]
    return await _insert(services, "paging.probe", 500, seed=7)


@pytest.mark.parametrize("sort", ["trust", "price", "latency"])
async def test_500_results_in_pages_of_7_each_exactly_once_in_order(
    services: Services, probes: list[dict[str, Any]], sort: str
) -> None:
    seen, sizes = await _walk(services, 7, name="paging.probe", sort=sort)
    assert seen == _expected(probes, sort)
    assert len(seen) == len(set(seen)) == 500
    assert sizes == [7] * 71 + [3]


async def test_relevance_pages_follow_rank_then_trust(
    services: Services, probes: list[dict[str, Any]]
) -> None:
    searcher = Searcher.of(services)
    results = []
    cursor = None
    while True:
        page = await searcher.search(
            parse_search_query(
                q="zebra", name="paging.probe", sort="relevance", limit=7, cursor=cursor
            )
        )
        results += page.items
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    keys = [(-(r.rank or 0), -r.agent.trust_score, r.capability.capability_id) for r in results]
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys)) == 500
    assert len({r.rank for r in results}) == 3  # one, two or three mentions of the word


async def test_accepts_filters_pages_without_losing_or_repeating(
    services: Services, probes: list[dict[str, Any]]
) -> None:
    rows = await _insert(
        services, "paging.accepts", 120, seed=11, accepting={i for i in range(120) if i % 3}
    )
    wanted = [row for row in rows if row["schema"] is TEXT_SCHEMA]
    accepts = json.dumps({"text": "hello"})
    seen, sizes = await _walk(services, 7, name="paging.accepts", accepts=accepts)
    assert seen == _expected(wanted, "trust")
    assert len(seen) == 80
    assert sizes[:-1] == [7] * (len(sizes) - 1)  # pages fill up from later candidates


async def test_sparse_accepts_pages_continue_after_the_last_examined_row(
    services: Services, probes: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_module, "MAX_EXAMINED", 150)
    rows = await _insert(services, "paging.sparse", 400, seed=13, accepting=set())
    order = _expected(rows, "trust")
    accepted = [order[3], order[200], order[399]]
    async with services.db.acquire() as conn:
        await conn.execute(
            "UPDATE agent_capabilities SET input_schema = $2 WHERE capability_id = ANY($1)",
            accepted,
            TEXT_SCHEMA,
        )
    accepts = json.dumps({"text": "hello"})
    seen, sizes = await _walk(services, 5, name="paging.sparse", accepts=accepts)
    assert seen == accepted
    # No request looked at more than 150 candidates: short pages that continue after the
    # last candidate examined, rather than one request scanning all 400.
    assert len(sizes) > 1
    assert all(size < 5 for size in sizes)


async def test_cursor_is_tamper_evident_and_bound_to_its_query(
    services: Services, probes: list[dict[str, Any]]
) -> None:
    searcher = Searcher.of(services)
    page = await searcher.search(parse_search_query(name="paging.probe", limit=7))
    cursor = page.next_cursor
    assert cursor is not None
    payload, tag = cursor.split(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + tag
    for bad in (forged, cursor + "x", "garbage", cursor.replace(".", "")):
        with pytest.raises(InvalidInput) as caught:
            await searcher.search(parse_search_query(name="paging.probe", cursor=bad))
        assert caught.value.field == "cursor"
    with pytest.raises(InvalidInput, match="other filters") as caught:
        await searcher.search(parse_search_query(name="paging.probe", sort="price", cursor=cursor))
    assert caught.value.field == "cursor"
    # The page size may change between pages; the filters may not.
    page_two = await searcher.search(
        parse_search_query(name="paging.probe", limit=3, cursor=cursor)
    )
    assert len(page_two.items) == 3
