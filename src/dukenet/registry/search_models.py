"""Search results as returned by ``GET /v1/search/capabilities`` (and parsed by the SDK)."""

from __future__ import annotations

from datetime import datetime

from dukenet.registry.models import AgentStatus, Capability, Resource


class AgentSummary(Resource):
    """The agent behind a result, compactly: who, where, how trusted, how available."""

    agent_id: str
    display_name: str | None
    endpoint_url: str | None
    trust_score: float
    status: AgentStatus
    uptime_30d: float
    tags: list[str]
    last_heartbeat: datetime | None


class SearchResult(Resource):
    """One matching capability with its agent. ``rank`` is the full-text relevance (with ``q``)."""

    capability: Capability
    agent: AgentSummary
    rank: float | None = None


class SearchPage(Resource):
    """One page of results; pass ``next_cursor`` back as ``cursor`` until it is ``null``.

    With ``accepts`` or ``version`` a page may hold fewer than ``limit`` items (even none)
    and still have a ``next_cursor``: each request examines a bounded number of candidates.
    """

    items: list[SearchResult]
    next_cursor: str | None
