"""Discovery in the SDK: ``search`` (one typed page) and ``search_all`` (every result).

::

    page = client.search(name="text.summarize", min_trust=60, max_price="0.10", currency="USD")
    for result in page.items:
        print(result.agent.display_name, result.capability.price)

    async for result in async_client.search_all(q="translate subtitles", tags=["eu"]):
        ...

``search_all`` follows ``next_cursor`` until the last page, so it yields each result once,
in order (a page may be short, or empty, when ``accepts`` or ``version`` filter it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict

from dukenet.sdk.base import ApiRequest, AsyncDriver, BaseClient, Flow, SyncDriver, operation

__all__ = [
    "AgentSummary",
    "AsyncSearch",
    "SearchCapability",
    "SearchFilters",
    "SearchOperations",
    "SearchPage",
    "SearchResult",
    "SyncSearch",
]


class _Resource(BaseModel):
    """Lenient on input: fields a newer server adds are ignored."""

    model_config = ConfigDict(extra="ignore")


class SearchCapability(_Resource):
    """The capability of a result: schemas, pricing and SLO (money is exact)."""

    capability_id: str
    agent_id: str
    name: str
    version: str
    description: str | None
    input_schema: dict[str, Any] | bool
    output_schema: dict[str, Any] | bool
    deprecated: bool
    pricing_model: Literal["per_call", "subscription", "free"]
    price: Decimal
    currency: str
    latency_p99_ms: int | None
    availability_percent: float | None
    created_at: datetime
    updated_at: datetime


class AgentSummary(_Resource):
    """The agent offering a result."""

    agent_id: str
    display_name: str | None
    endpoint_url: str | None
    trust_score: float
    status: Literal["ACTIVE", "INACTIVE", "SUSPENDED"]
    uptime_30d: float
    tags: list[str]
    last_heartbeat: datetime | None


class SearchResult(_Resource):
    """One match: the capability, its agent, and the full-text ``rank`` (with ``q``)."""

    capability: SearchCapability
    agent: AgentSummary
    rank: float | None = None


class SearchPage(_Resource):
    """One page; ``next_cursor`` continues it (``None`` on the last page)."""

    items: list[SearchResult]
    next_cursor: str | None


class SearchFilters(TypedDict, total=False):
    """Keyword arguments of ``search`` and ``search_all`` (see the API for their meaning)."""

    name: str
    q: str
    tags: list[str]
    min_trust: float | Decimal | str
    max_price: float | Decimal | str
    currency: str
    pricing_model: Literal["per_call", "subscription", "free"]
    max_latency_ms: int
    min_availability: float | Decimal | str
    version: str
    include_deprecated: bool
    status: Literal["ACTIVE", "INACTIVE"]
    fresh_heartbeat: bool
    accepts: Any  # any JSON value, sent as JSON (None is JSON null)
    sort: Literal["trust", "price", "latency", "relevance"]
    limit: int
    cursor: str | None


def search_params(filters: SearchFilters) -> list[tuple[str, str]]:
    """Query parameters for ``GET /v1/search/capabilities``."""
    params: list[tuple[str, str]] = []
    for key, value in filters.items():
        if key == "tags":
            params += [("tags", str(tag)) for tag in filters.get("tags") or []]
        elif key == "accepts":
            params.append(("accepts", json.dumps(value, separators=(",", ":"))))
        elif isinstance(value, bool):
            params.append((key, "true" if value else "false"))
        elif value is not None:
            params.append((key, str(value)))
    return params


class SearchOperations(BaseClient):
    """Capability search (mixin of ``Client`` and ``AsyncClient``)."""

    @operation
    def search(self, **filters: Unpack[SearchFilters]) -> Flow[SearchPage]:
        """One page of capabilities matching ``filters`` (see ``SearchFilters``); pass the
        page's ``next_cursor`` as ``cursor`` for the next one."""
        response = yield ApiRequest("GET", "/v1/search/capabilities", params=search_params(filters))
        return SearchPage.model_validate_json(response.content)


class SyncSearch(SearchOperations, SyncDriver):
    """``search_all`` for the blocking client."""

    def search_all(self, **filters: Unpack[SearchFilters]) -> Iterator[SearchResult]:
        """Every result of the search, page after page (``cursor`` is managed here)."""
        while True:
            page = self.search(**filters)
            yield from page.items
            if page.next_cursor is None:
                return
            filters["cursor"] = page.next_cursor


class AsyncSearch(SearchOperations, AsyncDriver):
    """``search_all`` for the async client: ``async for result in client.search_all(...)``."""

    async def search_all(self, **filters: Unpack[SearchFilters]) -> AsyncIterator[SearchResult]:
        """Every result of the search, page after page (``cursor`` is managed here)."""
        while True:
            page = await self.search(**filters)
            for result in page.items:
                yield result
            if page.next_cursor is None:
                return
            filters["cursor"] = page.next_cursor
