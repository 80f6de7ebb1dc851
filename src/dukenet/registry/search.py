"""Capability search: filters, full-text, schema matching, ranking and keyset pages, cached.

``Searcher.search_json`` answers ``GET /v1/search/capabilities`` with the response body;
``Searcher.search`` returns the typed page. Both read the result cache first
(``dukenet.registry.search_cache``) and fall back to PostgreSQL, which is always right.

Paging is keyset: a page continues strictly after the sort key of the last row the
previous page examined, so walking an unchanged registry returns each result exactly once,
in order. Filters PostgreSQL cannot evaluate (``accepts``: the capability's
``input_schema`` must validate the document; the exact ``version`` range) run here on the
rows SQL returns, fetching more until the page is full or ``MAX_EXAMINED`` candidates were
looked at; the cursor then continues after the last one examined.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from jsonschema import Draft202012Validator

from dukenet.errors import InvalidInput
from dukenet.registry.agents import uptime_percent
from dukenet.registry.capabilities import capability_from_row
from dukenet.registry.search_cache import SearchCache, invalidate_search_cache
from dukenet.registry.search_cursor import cursor_key, decode_cursor, encode_cursor
from dukenet.registry.search_models import AgentSummary, SearchPage, SearchResult
from dukenet.registry.search_params import SORTS, SearchQuery
from dukenet.runtime import Services
from dukenet.store.cache import Cache
from dukenet.store.postgres import Connection, Database, Record
from dukenet.store.sql import load_queries

# ``invalidate_search_cache`` lives with the cache; it is part of this module's API too.
__all__ = ["MAX_EXAMINED", "Searcher", "invalidate_search_cache"]

QUERIES = load_queries("dukenet.registry", "search_queries.sql")
SEARCH_SQL = {
    sort: "\n".join((QUERIES["search_head"], QUERIES["search_filters"], QUERIES[f"search_{sort}"]))
    for sort in SORTS
}
# Candidates one request looks at when rows are also filtered here (accepts, version).
MAX_EXAMINED = 1_000
_MAX_BATCH = 200
_DAY = 86_400.0

Position = tuple[Any, Any, str]


class _Validators:
    """Compiled ``input_schema`` validators, by capability and its last change."""

    def __init__(self, size: int = 4_096) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[str, datetime], Draft202012Validator] = OrderedDict()

    def accepts(self, row: Record, document: Any) -> bool:
        key = (row["capability_id"], row["updated_at"])
        validator = self.entries.get(key)
        if validator is None:
            validator = Draft202012Validator(row["input_schema"])
            self.entries[key] = validator
            if len(self.entries) > self.size:
                self.entries.popitem(last=False)
        else:
            self.entries.move_to_end(key)
        try:
            return bool(validator.is_valid(document))
        except (
            Exception
        ):  # a schema that cannot be evaluated (e.g. unresolvable $ref) accepts nothing
            return False


_VALIDATORS = _Validators()


def _position(sort: str, row: Record) -> Position:
    """The row's sort key, as the query compares it (see search_queries.sql)."""
    negated_trust: Decimal = -row["agent_trust"]
    if sort == "trust":
        return (negated_trust, row["price"], row["capability_id"])
    if sort == "price":
        return (row["price"], negated_trust, row["capability_id"])
    if sort == "latency":
        return (row["latency_key"], negated_trust, row["capability_id"])
    return (-row["rank"], negated_trust, row["capability_id"])


def _encode_position(position: Position) -> list[Any]:
    return [str(v) if isinstance(v, Decimal) else v for v in position]


def _decode_position(sort: str, raw: list[Any]) -> Position:
    """Typed position from a cursor (already authenticated, so shapes are ours)."""
    try:
        first, second, last = raw
        if sort in ("trust", "price"):
            return (Decimal(first), Decimal(second), str(last))
        if sort == "latency":
            return (int(first), Decimal(second), str(last))
        return (float(first), Decimal(second), str(last))
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise InvalidInput("cursor is not one this search returned", field="cursor") from exc


def _parameters(query: SearchQuery, heartbeat_ttl: int) -> list[Any]:
    """$1..$16 of the search queries."""
    low, high = query.version.core_bounds() if query.version else (None, None)
    return [
        query.status,
        query.fresh_heartbeat,
        float(heartbeat_ttl),
        query.name,
        query.name_prefix,
        query.q,
        list(query.tags) or None,
        query.min_trust,
        query.max_price,
        query.currency,
        query.pricing_model,
        query.max_latency_ms,
        query.min_availability,
        list(low) if low else None,
        list(high) if high else None,
        query.include_deprecated,
    ]


def _result(row: Record, with_rank: bool) -> SearchResult:
    measured: datetime = row["measured_at"]
    lifetime = max(0.0, (measured - row["agent_created_at"]).total_seconds())
    return SearchResult(
        capability=capability_from_row(row),
        agent=AgentSummary(
            agent_id=row["agent_id"],
            display_name=row["display_name"],
            endpoint_url=row["endpoint_url"],
            trust_score=float(row["trust_score"]),
            status=row["status"],
            uptime_30d=uptime_percent(row["up_30d"], min(lifetime, 30 * _DAY)),
            tags=list(row["agent_tags"]),
            last_heartbeat=row["last_heartbeat"],
        ),
        rank=float(row["rank"]) if with_rank else None,
    )


@dataclass(frozen=True)
class Searcher:
    """Runs searches against one database and result cache."""

    db: Database
    cache: Cache
    cursor_key: bytes
    heartbeat_ttl: int
    cache_ttl: int

    @classmethod
    def of(cls, services: Services) -> Searcher:
        """A searcher for the process's services and settings."""
        return cls(
            services.db,
            services.cache,
            cursor_key(services.network_key),
            services.settings.heartbeat_ttl,
            services.settings.search_cache_ttl,
        )

    async def search(self, query: SearchQuery) -> SearchPage:
        """One page of results."""
        return SearchPage.model_validate_json(await self.search_json(query))

    async def search_json(self, query: SearchQuery) -> bytes:
        """One page of results as the JSON body of the API response (cached)."""
        after = self._after(query)
        cache = SearchCache.of(self.cache)
        generation = await cache.generation() if self.cache_ttl > 0 else None
        if generation is not None:
            cached = await cache.get(generation, query.digest)
            if cached is not None:
                return cached
        started = time.monotonic()
        page, valid_ms = await self._query(query, after)
        body = page.model_dump_json().encode()
        if generation is not None:
            elapsed_ms = int((time.monotonic() - started) * 1000) + 1
            await cache.put(generation, query.digest, body, valid_ms - elapsed_ms)
        return body

    def _after(self, query: SearchQuery) -> Position | None:
        if query.cursor is None:
            return None
        raw = decode_cursor(self.cursor_key, query.fingerprint, query.cursor)
        return _decode_position(query.sort, raw)

    async def _query(self, query: SearchQuery, after: Position | None) -> tuple[SearchPage, int]:
        """The page from PostgreSQL, and for how many milliseconds it stays right."""
        async with self.db.read() as conn, conn.transaction(readonly=True):
            await conn.execute(QUERIES["search_settings"])
            rows, last = await self._collect(conn, query, after)
        items = [_result(row, query.q is not None) for row in rows]
        next_cursor = (
            encode_cursor(self.cursor_key, query.fingerprint, _encode_position(last))
            if last is not None
            else None
        )
        valid_ms = self.cache_ttl * 1000
        if query.fresh_heartbeat and rows:
            # The page changes when the first of its agents' heartbeats expires.
            first_expiry = min(row["fresh_until"] for row in rows)
            remaining = (first_expiry - rows[0]["measured_at"]).total_seconds()
            valid_ms = min(valid_ms, int(remaining * 1000))
        return SearchPage(items=items, next_cursor=next_cursor), valid_ms

    async def _collect(
        self, conn: Connection, query: SearchQuery, after: Position | None
    ) -> tuple[list[Record], Position | None]:
        """The page's rows and the position a next page continues after (None: no more)."""
        sql = SEARCH_SQL[query.sort]
        parameters = _parameters(query, self.heartbeat_ttl)
        if not query.post_filtered:
            rows = await conn.fetch(sql, *parameters, *(after or (None,) * 3), query.limit + 1)
            page = rows[: query.limit]
            more = len(rows) > query.limit
            return page, _position(query.sort, page[-1]) if more else None
        # Start near the page size (most candidates usually pass) and grow when they do not.
        batch = min(2 * query.limit, _MAX_BATCH)
        kept: list[Record] = []
        examined = 0
        while True:
            size = min(batch, MAX_EXAMINED - examined)
            rows = await conn.fetch(sql, *parameters, *(after or (None,) * 3), size + 1)
            candidates = rows[:size]
            for index, row in enumerate(candidates):
                examined += 1
                after = _position(query.sort, row)
                if self._keeps(query, row):
                    kept.append(row)
                    if len(kept) == query.limit:
                        more = len(rows) > size or index + 1 < len(candidates)
                        return kept, after if more else None
            if len(rows) <= size:
                return kept, None
            if examined >= MAX_EXAMINED:
                return kept, after
            batch = min(2 * batch, _MAX_BATCH)

    @staticmethod
    def _keeps(query: SearchQuery, row: Record) -> bool:
        if query.version is not None and not query.version.matches(row["version"]):
            return False
        return query.accepts_json is None or _VALIDATORS.accepts(row, query.accepts)
