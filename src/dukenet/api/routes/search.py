"""Discovery: ``GET /v1/search/capabilities`` (SPEC 3)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from dukenet.api.auth import rate_limit
from dukenet.api.deps import ServicesDep
from dukenet.api.routes.agents import JSON, problem_responses
from dukenet.registry.search import Searcher
from dukenet.registry.search_models import SearchPage
from dukenet.registry.search_params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PricingModel,
    SearchStatus,
    Sort,
    parse_search_query,
)

router = APIRouter(prefix="/v1", tags=["search"])


@router.get(
    "/search/capabilities",
    response_model=SearchPage,
    dependencies=[Depends(rate_limit("read"))],
    responses=problem_responses(422, 429),
)
async def search_capabilities(
    services: ServicesDep,
    name: Annotated[
        str | None,
        Query(max_length=260, description="Exact capability name, or a prefix such as `text.*`"),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=256,
            description="Full text over capability and agent names and descriptions "
            '(web search syntax: words, "phrases", or, -not)',
        ),
    ] = None,
    tags: Annotated[
        list[str] | None,
        Query(description="Agent has all of these (repeat the parameter or separate by commas)"),
    ] = None,
    min_trust: Annotated[Decimal | None, Query(ge=0, le=100)] = None,
    max_price: Annotated[
        Decimal | None, Query(ge=0, description="Highest price, in `currency` (required with it)")
    ] = None,
    currency: Annotated[str | None, Query(max_length=10)] = None,
    pricing_model: PricingModel | None = None,
    max_latency_ms: Annotated[
        int | None, Query(ge=1, description="Highest declared p99 latency")
    ] = None,
    min_availability: Annotated[Decimal | None, Query(ge=0, le=100)] = None,
    version: Annotated[
        str | None, Query(max_length=200, description="Semantic version range, e.g. `>=1.2,<2`")
    ] = None,
    include_deprecated: bool = False,
    status: Annotated[
        SearchStatus, Query(description="Agent status (SUSPENDED agents are never returned)")
    ] = "ACTIVE",
    fresh_heartbeat: Annotated[
        bool, Query(description="Only agents whose heartbeat has not expired")
    ] = True,
    accepts: Annotated[
        str | None,
        Query(description="A JSON document: only capabilities whose input_schema validates it"),
    ] = None,
    sort: Annotated[
        Sort,
        Query(
            description="`trust` (trust desc, price asc), `price` (price asc, trust desc), "
            "`latency` (declared p99 asc, trust desc) or `relevance` (with `q`); "
            "ties by capability_id"
        ),
    ] = "trust",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="`next_cursor` of the previous page")
    ] = None,
) -> Response:
    """Find capabilities. Filters combine; results are keyset-paginated (pass
    ``next_cursor`` back as ``cursor`` until it is null) and served from a cache that every
    registry change invalidates. Bad input is 422 ``VALIDATION_FAILED`` naming the parameter.
    """
    query = parse_search_query(
        name=name,
        q=q,
        tags=tags,
        min_trust=min_trust,
        max_price=max_price,
        currency=currency,
        pricing_model=pricing_model,
        max_latency_ms=max_latency_ms,
        min_availability=min_availability,
        version=version,
        include_deprecated=include_deprecated,
        status=status,
        fresh_heartbeat=fresh_heartbeat,
        accepts=accepts,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    return Response(await Searcher.of(services).search_json(query), media_type=JSON)
