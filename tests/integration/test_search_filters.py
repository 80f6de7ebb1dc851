"""Every search filter and sort, alone and combined, against a known registry: exact results."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dukenet.registry import agents
from dukenet.runtime import Services, open_services
from tests.integration.test_search_support import (
    TEXT_SCHEMA,
    age_heartbeat,
    capability,
    make_inactive,
    module_settings,
    register,
    search,
    search_all,
)

LANGUAGE_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "language": {"enum": ["en", "fr"]}},
    "required": ["text", "language"],
}
STRICT_TEXT_SCHEMA = {**TEXT_SCHEMA, "additionalProperties": False}
DOCUMENT_SCHEMA = {"type": "object", "required": ["document"]}
URL_SCHEMA = {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}


async def _build(services: Services) -> dict[str, str]:
    ids: dict[str, str] = {}
    ids["A"] = await register(
        services, "Alpha Summarizer", tags=["nlp", "fast", "eu"], trust="90",
        capabilities=[
            capability("text.summarize", "1.0.0", pricing_model="per_call", price="0.05",
                       latency_p99_ms=800, availability_percent="99.5",
                       description="Summarize long documents into short abstracts"),
            capability("text.translate", "2.1.0", pricing_model="per_call", price="0.2",
                       currency="EUR", latency_p99_ms=1500, availability_percent="99.0",
                       input_schema=LANGUAGE_SCHEMA),
        ],
    )  # fmt: skip
    ids["B"] = await register(
        services, "Beta Vision", tags=["vision", "gpu"], trust="75",
        capabilities=[
            capability("image.classify", "1.2.0", pricing_model="per_call", price="0.01",
                       latency_p99_ms=300, availability_percent="99.9", input_schema=URL_SCHEMA),
            capability("image.caption", "0.9.0", input_schema=URL_SCHEMA),
        ],
    )  # fmt: skip
    ids["C"] = await register(
        services, "Gamma Writer", tags=["nlp"], trust="60",
        capabilities=[
            capability("text.summarize", "1.3.0", pricing_model="subscription", price="5",
                       latency_p99_ms=2000, availability_percent="98",
                       input_schema=STRICT_TEXT_SCHEMA),
            capability("text.summarize", "2.0.0-rc.1", input_schema=DOCUMENT_SCHEMA),
        ],
    )  # fmt: skip
    ids["D"] = await register(
        services, "Delta Legacy", tags=["nlp", "eu"], trust="90",
        capabilities=[
            capability("text.summarize", "0.9.0", pricing_model="per_call", price="0.01",
                       deprecated=True),
            capability("text.keywords", "1.0.0"),
        ],
    )  # fmt: skip
    ids["E"] = await register(
        services, "Epsilon Suspended", tags=["nlp"], trust="95",
        capabilities=[capability("text.summarize", "1.0.0")],
    )  # fmt: skip
    await agents.suspend(services.db, services.cache, ids["E"], "fraud investigation")
    ids["F"] = await register(
        services, "Zeta Stale", tags=["nlp"], trust="80",
        capabilities=[capability("text.summarize", "1.1.0", pricing_model="per_call",
                                 price="0.02")],
    )  # fmt: skip
    await age_heartbeat(services, ids["F"], 600)
    ids["G"] = await register(
        services, "Eta Inactive", tags=["nlp"], trust="70",
        capabilities=[capability("text.summarize", "1.0.1", pricing_model="per_call",
                                 price="0.03")],
    )  # fmt: skip
    await make_inactive(services, ids["G"])
    ids["H"] = await register(
        services, "Theta Deregistered", tags=["nlp"], trust="99",
        capabilities=[capability("text.summarize", "1.0.0")],
    )  # fmt: skip
    await agents.deregister(services.db, services.cache, ids["H"])
    ids["I"] = await register(
        services, "Iota Translator", tags=["eu", "multilingual"], trust="50",
        description="Translates subtitles and documents between forty languages",
        capabilities=[
            capability("translate.subtitles", "3.0.0", pricing_model="per_call", price="0.08",
                       currency="GBP", latency_p99_ms=5000, availability_percent="97.5"),
        ],
    )  # fmt: skip
    return ids


@pytest.fixture(scope="module")
def registry(
    database_url: str, redis_prefix: str, network_key_b64: str, tmp_path_factory: Any
) -> Iterator[dict[str, str]]:
    """The known registry, built once for the module through the registry's own code."""
    settings = module_settings(
        database_url, redis_prefix, network_key_b64, str(tmp_path_factory.mktemp("data"))
    )

    async def build() -> dict[str, str]:
        async with open_services(settings) as services:
            return await _build(services)

    yield asyncio.run(build())


# Default search: ACTIVE agents with a fresh heartbeat, deprecated capabilities left out,
# sorted by trust desc, then price asc, then capability_id.
DEFAULT_ORDER = [
    ("Delta Legacy", "text.keywords", "1.0.0"),  # trust 90, free
    ("Alpha Summarizer", "text.summarize", "1.0.0"),  # trust 90, 0.05
    ("Alpha Summarizer", "text.translate", "2.1.0"),  # trust 90, 0.20
    ("Beta Vision", "image.caption", "0.9.0"),  # trust 75, free
    ("Beta Vision", "image.classify", "1.2.0"),  # trust 75, 0.01
    ("Gamma Writer", "text.summarize", "2.0.0-rc.1"),  # trust 60, free
    ("Gamma Writer", "text.summarize", "1.3.0"),  # trust 60, 5.00
    ("Iota Translator", "translate.subtitles", "3.0.0"),  # trust 50
]


def _only(*wanted: tuple[str, str, str]) -> list[tuple[str, str, str]]:
    """The default order restricted to ``wanted`` (asserts they are all in it)."""
    assert set(wanted) <= set(DEFAULT_ORDER)
    return [row for row in DEFAULT_ORDER if row in wanted]


A_SUM = ("Alpha Summarizer", "text.summarize", "1.0.0")
A_TRANSLATE = ("Alpha Summarizer", "text.translate", "2.1.0")
B_CAPTION = ("Beta Vision", "image.caption", "0.9.0")
B_CLASSIFY = ("Beta Vision", "image.classify", "1.2.0")
C_RC = ("Gamma Writer", "text.summarize", "2.0.0-rc.1")
C_SUM = ("Gamma Writer", "text.summarize", "1.3.0")
D_KEYWORDS = ("Delta Legacy", "text.keywords", "1.0.0")
D_DEPRECATED = ("Delta Legacy", "text.summarize", "0.9.0")
F_SUM = ("Zeta Stale", "text.summarize", "1.1.0")
G_SUM = ("Eta Inactive", "text.summarize", "1.0.1")
I_SUBTITLES = ("Iota Translator", "translate.subtitles", "3.0.0")

CASES: list[tuple[dict[str, Any], list[tuple[str, str, str]]]] = [
    ({}, DEFAULT_ORDER),
    # name: exact, and prefix
    ({"name": "text.summarize"}, [A_SUM, C_RC, C_SUM]),
    ({"name": "Text.Summarize"}, [A_SUM, C_RC, C_SUM]),
    ({"name": "text.*"}, [D_KEYWORDS, A_SUM, A_TRANSLATE, C_RC, C_SUM]),
    ({"name": "image.*"}, [B_CAPTION, B_CLASSIFY]),
    ({"name": "text.sum"}, []),
    # full text over capability name and description and agent name and description
    ({"q": "abstracts"}, [A_SUM]),
    ({"q": "subtitles"}, [I_SUBTITLES]),
    ({"q": "translating"}, [A_TRANSLATE, I_SUBTITLES]),
    ({"q": "gamma"}, [C_RC, C_SUM]),
    ({"q": "forty languages"}, [I_SUBTITLES]),
    ({"q": "translate -subtitles"}, [A_TRANSLATE]),
    ({"q": "vision or keywords"}, [D_KEYWORDS, B_CAPTION, B_CLASSIFY]),
    # tags: all of them
    ({"tags": ["nlp"]}, [D_KEYWORDS, A_SUM, A_TRANSLATE, C_RC, C_SUM]),
    ({"tags": ["nlp", "eu"]}, [D_KEYWORDS, A_SUM, A_TRANSLATE]),
    ({"tags": ["EU ,nlp"]}, [D_KEYWORDS, A_SUM, A_TRANSLATE]),
    ({"tags": ["gpu", "eu"]}, []),
    # trust, price, pricing model, SLOs
    ({"min_trust": 75}, [D_KEYWORDS, A_SUM, A_TRANSLATE, B_CAPTION, B_CLASSIFY]),
    ({"min_trust": "90.00"}, [D_KEYWORDS, A_SUM, A_TRANSLATE]),
    ({"max_price": "0.05", "currency": "usd"}, [D_KEYWORDS, A_SUM, B_CAPTION, B_CLASSIFY, C_RC]),
    ({"currency": "EUR"}, [A_TRANSLATE]),
    ({"pricing_model": "free"}, [D_KEYWORDS, B_CAPTION, C_RC]),
    ({"pricing_model": "subscription"}, [C_SUM]),
    ({"max_latency_ms": 800}, [A_SUM, B_CLASSIFY]),
    ({"min_availability": "99.5"}, [A_SUM, B_CLASSIFY]),
    # semantic version ranges (prereleases only when the range names one)
    ({"version": ">=1.0,<2"}, [D_KEYWORDS, A_SUM, B_CLASSIFY, C_SUM]),
    ({"version": "^1.2"}, [B_CLASSIFY, C_SUM]),
    ({"version": ">=2.0.0-rc.0"}, [A_TRANSLATE, C_RC, I_SUBTITLES]),
    ({"version": "0.9.x"}, [B_CAPTION]),
    # deprecated, status, heartbeat freshness
    ({"name": "text.summarize", "include_deprecated": True}, [D_DEPRECATED, A_SUM, C_RC, C_SUM]),
    ({"name": "text.summarize", "fresh_heartbeat": False}, [A_SUM, F_SUM, C_RC, C_SUM]),
    ({"status": "INACTIVE", "fresh_heartbeat": False}, [G_SUM]),
    ({"status": "INACTIVE"}, []),
    # accepts: the capability's input_schema must validate the document
    ({"name": "text.*", "accepts": json.dumps({"text": "hi"})}, [D_KEYWORDS, A_SUM, C_SUM]),
    (
        {"accepts": json.dumps({"text": "hi", "language": "fr"})},
        [D_KEYWORDS, A_SUM, A_TRANSLATE, I_SUBTITLES],
    ),
    ({"accepts": json.dumps({"url": "https://x"})}, [B_CAPTION, B_CLASSIFY]),
    ({"accepts": "null"}, []),
    # combined
    ({"name": "text.*", "tags": ["eu"], "max_price": ".1", "currency": "USD"}, [D_KEYWORDS, A_SUM]),
    ({"q": "summarize", "min_trust": 61, "version": "<2"}, [A_SUM]),
    (
        {"tags": ["nlp"], "pricing_model": "per_call", "max_latency_ms": 2000,
         "min_availability": 98, "accepts": json.dumps({"text": "x", "language": "en"})},
        [A_SUM, A_TRANSLATE],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("params", "expected"), CASES, ids=[json.dumps(c[0]) for c in CASES])
async def test_filter(
    registry: dict[str, str],
    services: Services,
    params: dict[str, Any],
    expected: list[tuple[str, str, str]],
) -> None:
    assert await search_all(services, **params) == expected


async def test_sort_by_price_then_trust(registry: dict[str, str], services: Services) -> None:
    assert await search_all(services, sort="price") == [
        D_KEYWORDS, B_CAPTION, C_RC,  # free, by trust
        B_CLASSIFY, A_SUM, I_SUBTITLES, A_TRANSLATE, C_SUM,
    ]  # fmt: skip


async def test_sort_by_declared_latency_undeclared_last(
    registry: dict[str, str], services: Services
) -> None:
    assert await search_all(services, sort="latency") == [
        B_CLASSIFY, A_SUM, A_TRANSLATE, C_SUM, I_SUBTITLES,  # 300, 800, 1500, 2000, 5000 ms
        D_KEYWORDS, B_CAPTION, C_RC,  # no declared latency, by trust
    ]  # fmt: skip


async def test_sort_by_relevance_ranks_better_matches_first(
    registry: dict[str, str], services: Services
) -> None:
    page = await search(services, q="translate subtitles", sort="relevance")
    ranked = [(r.capability.name, r.rank) for r in page.items]
    assert [name for name, _ in ranked] == ["translate.subtitles"]
    page = await search(services, q="translate or summarize", sort="relevance")
    ranks = [r.rank for r in page.items]
    assert ranks == sorted(ranks, reverse=True)
    assert all(rank is not None and rank > 0 for rank in ranks)
    assert {r.capability.name for r in page.items} == {
        "text.summarize", "text.translate", "translate.subtitles",
    }  # fmt: skip


async def test_result_carries_capability_and_agent_summary(
    registry: dict[str, str], services: Services
) -> None:
    page = await search(services, name="text.summarize", limit=1)
    [result] = page.items
    assert result.rank is None
    capability = result.capability
    assert capability.agent_id == registry["A"]
    assert (capability.name, capability.version) == ("text.summarize", "1.0.0")
    assert capability.description == "Summarize long documents into short abstracts"
    assert capability.input_schema == TEXT_SCHEMA
    assert capability.output_schema == {"type": "object", "properties": {"result": {}}}
    assert (capability.pricing_model, str(capability.price), capability.currency) == (
        "per_call", "0.0500", "USD",
    )  # fmt: skip
    assert (capability.latency_p99_ms, capability.availability_percent) == (800, 99.5)
    assert not capability.deprecated
    agent = result.agent
    assert agent.agent_id == registry["A"]
    assert agent.display_name == "Alpha Summarizer"
    assert agent.endpoint_url == "https://alpha-summarizer.example.net/invoke"
    assert (agent.trust_score, agent.status) == (90.0, "ACTIVE")
    assert agent.tags == ["eu", "fast", "nlp"]
    assert agent.uptime_30d == 100.0
    assert agent.last_heartbeat is not None
    assert page.next_cursor is not None


async def test_http_answers_the_same_as_the_domain(
    registry: dict[str, str], client: httpx.AsyncClient, services: Services
) -> None:
    response = await client.get(
        "/v1/search/capabilities",
        params=[("name", "text.*"), ("tags", "nlp"), ("tags", "eu"), ("limit", "2")],
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert [(i["agent"]["display_name"], i["capability"]["version"]) for i in body["items"]] == [
        ("Delta Legacy", "1.0.0"),
        ("Alpha Summarizer", "1.0.0"),
    ]
    assert body["items"][1]["capability"]["price"] == "0.0500"
    second = await client.get(
        "/v1/search/capabilities",
        params=[("name", "text.*"), ("tags", "nlp,eu"), ("cursor", body["next_cursor"])],
    )
    assert [i["capability"]["name"] for i in second.json()["items"]] == ["text.translate"]
    assert second.json()["next_cursor"] is None
    domain = await search(services, name="text.*", tags=["eu", "nlp"], limit=2)
    assert body == json.loads(domain.model_dump_json())
