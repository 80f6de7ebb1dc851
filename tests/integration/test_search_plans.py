"""At 100,000 agents and ~300,000 capabilities every main search shape runs on indexes.

The registry is the synthetic one of ``dukenet seed`` (COPY, then VACUUM ANALYZE), so the
planner sees realistic statistics: a few hundred capability names of very uneven
popularity, tags, prices in three currencies, a spread of trust scores and statuses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from dukenet.cli.seed import seed_registry
from dukenet.registry.search import QUERIES, SEARCH_SQL, _parameters
from dukenet.registry.search_params import parse_search_query
from dukenet.store.postgres import Database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

AGENTS = 100_000
TABLES = {"agents", "agent_capabilities", "capability_search", "agent_tags"}


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[str]:
    async def seed() -> None:
        db = await Database.connect(database_url, min_size=1, max_size=2)
        try:
            agents, capabilities = await seed_registry(db, AGENTS, seed=2024)
            assert agents == AGENTS and capabilities > 280_000
            # Steady state: the ACTIVE agents keep sending heartbeats (seeding took a while).
            async with db.acquire() as conn:
                await conn.execute(
                    "UPDATE agents SET last_heartbeat = now() - random() * interval '60 seconds'"
                    " WHERE status = 'ACTIVE'"
                )
                await conn.execute("VACUUM (ANALYZE) agents")
        finally:
            await db.close()

    asyncio.run(seed())
    yield database_url


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(url: str, after: list[Any] | None = None, **params: Any) -> list[dict[str, Any]]:
    query = parse_search_query(**params)
    db = await Database.connect(url, min_size=1, max_size=1)
    try:
        async with db.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute(QUERIES["search_settings"])
            explained = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) " + SEARCH_SQL[query.sort],
                *_parameters(query, 90),
                *(after or [None, None, None]),
                query.limit + 1,
            )
    finally:
        await db.close()
    document = json.loads(explained) if isinstance(explained, str) else explained
    return list(_nodes(document[0]["Plan"]))


SHAPES: list[tuple[str, dict[str, Any], list[Any] | None, set[str]]] = [
    ("no filter", {}, None, {"idx_capability_search_trust"}),
    ("name, popular", {"name": "support.sentiment"}, None, {"idx_capability_search_name_trust"}),
    ("name, rare", {"name": "doc.ocr"}, None, {"idx_capability_search_name_trust"}),
    ("name prefix + min_trust + max_price",
     {"name": "text.*", "min_trust": 60, "max_price": "0.05", "currency": "USD"}, None, set()),
    ("tags", {"tags": ["gpu"]}, None, set()),
    ("two tags", {"tags": ["gpu", "eu"]}, None, set()),
    ("q", {"q": "translate subtitles"}, None, set()),
    ("q, common word", {"q": "fast"}, None, set()),
    ("q, relevance", {"q": "translate subtitles", "sort": "relevance"}, None,
     {"idx_capabilities_search_vector"}),
    ("accepts", {"name": "text.summarize", "accepts": json.dumps({"text": "hi"})}, None,
     {"idx_capability_search_name_trust"}),
    ("deep page", {"name": "support.sentiment"},
     [Decimal("-40.00"), Decimal("0"), "8" * 64], {"idx_capability_search_name_trust"}),
    ("deep page, no filter", {}, [Decimal("-35.00"), Decimal("0.01"), "8" * 64],
     {"idx_capability_search_trust"}),
    ("sort price", {"sort": "price"}, None, {"idx_capability_search_price"}),
    ("sort price, name", {"name": "support.sentiment", "sort": "price"}, None, set()),
    ("sort latency + SLOs", {"sort": "latency", "max_latency_ms": 500, "min_availability": 99},
     None, {"idx_capability_search_latency"}),
    ("version range", {"name": "doc.ocr", "version": ">=1.2,<2"}, None,
     {"idx_capability_search_name_trust"}),
    ("inactive agents", {"status": "INACTIVE", "fresh_heartbeat": False}, None, set()),
]  # fmt: skip


@pytest.mark.parametrize(("params", "after", "indexes"), [s[1:] for s in SHAPES],
                         ids=[s[0] for s in SHAPES])  # fmt: skip
def test_shape_uses_indexes_and_never_scans_a_whole_table(
    seeded: str, params: dict[str, Any], after: list[Any] | None, indexes: set[str]
) -> None:
    nodes = asyncio.run(_plan(seeded, after, **params))
    scanned = [(n["Node Type"], n["Relation Name"]) for n in nodes if "Relation Name" in n]
    assert scanned, nodes
    assert not [s for s in scanned if s[0] == "Seq Scan" and s[1] in TABLES], scanned
    used = {n["Index Name"] for n in nodes if "Index Name" in n}
    assert indexes <= used, (used, scanned)
