"""Agent selection: which agents may take a subtask, and which of them is chosen.

An agent is eligible when it is ACTIVE with a fresh heartbeat, its trust is at least the
selection threshold (``DUKENET_TRUST_SELECTION_THRESHOLD``; below it the agent stays
searchable but gets no work) and it offers a non-deprecated capability of the subtask's
name (the SQL side, ``eligible_capabilities``),
and when, here, the capability meets the subtask's constraints (``min_trust``,
``max_price``, ``max_latency_ms``), is the pinned agent if one is pinned, is priced in the
task's currency (unless free), costs no more than the remaining budget and accepts the
input (its ``input_schema`` validates it, once the input is known). Eligible agents are
ranked by trust (highest first), then price, then declared p99 latency. A retry avoids the
agent whose attempt just failed when another eligible agent exists (failover).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dukenet.orchestration import schemas
from dukenet.store.postgres import Connection, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.orchestration", "queries.sql")
ZERO = Decimal("0.0000")
UNKNOWN = object()  # an input that still holds unresolved references


@dataclass(frozen=True)
class Candidate:
    """An agent's capability that could take a subtask."""

    capability_id: str
    agent_id: str
    name: str
    price: Decimal
    currency: str
    latency_p99_ms: int | None
    trust_score: Decimal
    endpoint_url: str
    input_schema: Any

    @classmethod
    def from_record(cls, row: Record) -> Candidate:
        """Build from an ``eligible_capabilities`` row (subscription and free cost 0 a call)."""
        per_call = row["pricing_model"] == "per_call"
        return cls(
            capability_id=row["capability_id"],
            agent_id=row["agent_id"],
            name=row["name"],
            price=(row["price"] or ZERO) if per_call else ZERO,
            currency=row["currency"],
            latency_p99_ms=row["latency_p99_ms"],
            trust_score=row["trust_score"],
            endpoint_url=row["endpoint_url"],
            input_schema=row["input_schema"],
        )

    def charge_for(self, buyer_agent_id: str) -> Decimal:
        """What ``buyer_agent_id`` pays for one call (an agent does not pay itself)."""
        return ZERO if self.agent_id == buyer_agent_id else self.price

    def rank(self) -> tuple[Decimal, Decimal, int, str]:
        """Sort key: trust descending, then price, then latency (unknown last)."""
        latency = self.latency_p99_ms if self.latency_p99_ms is not None else 2**31
        return (-self.trust_score, self.price, latency, self.agent_id)


@dataclass(frozen=True)
class Requirements:
    """What one subtask asks of its agent."""

    capability: str
    buyer_agent_id: str
    currency: str
    constraints: dict[str, Any] | None = None
    pinned_agent_id: str | None = None
    input: Any = UNKNOWN
    budget: Decimal | None = None  # what is left of cost_limit (None: no limit)
    avoid_agent_id: str | None = None  # the agent whose attempt just failed


async def fetch_candidates(
    conn: Connection, names: list[str], heartbeat_ttl: int, min_trust: Decimal
) -> dict[str, list[Candidate]]:
    """Live capabilities of the given names of agents trusted at least ``min_trust``,
    ranked, keyed by capability name."""
    rows = await conn.fetch(
        QUERIES["eligible_capabilities"], names, float(heartbeat_ttl), min_trust
    )
    found: dict[str, list[Candidate]] = {name: [] for name in names}
    for row in rows:
        found[row["name"]].append(Candidate.from_record(row))
    for candidates in found.values():
        candidates.sort(key=Candidate.rank)
    return found


class CandidateCache:
    """``fetch_candidates`` results reused for ``ttl`` seconds by one worker.

    A worker claims many times a second; agents change far less often. Within the TTL a
    newly stale or suspended agent may still be chosen, and a failed call then fails over.
    """

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, list[Candidate]]] = {}

    async def get(
        self, conn: Connection, names: list[str], heartbeat_ttl: int, min_trust: Decimal
    ) -> dict[str, list[Candidate]]:
        """Candidates by name, reading only the names whose entry expired."""
        now = time.monotonic()
        missing = [n for n in names if self._entries.get(n, (0.0, []))[0] <= now]
        if missing:
            fresh = await fetch_candidates(conn, missing, heartbeat_ttl, min_trust)
            for name, found in fresh.items():
                self._entries[name] = (now + self.ttl, found)
        return {name: self._entries[name][1] for name in names}


def _meets_constraints(candidate: Candidate, constraints: dict[str, Any] | None) -> bool:
    if not constraints:
        return True
    min_trust = constraints.get("min_trust")
    if min_trust is not None and candidate.trust_score < Decimal(str(min_trust)):
        return False
    max_price = constraints.get("max_price")
    if max_price is not None and candidate.price > Decimal(str(max_price)):
        return False
    max_latency = constraints.get("max_latency_ms")
    return max_latency is None or (
        candidate.latency_p99_ms is not None and candidate.latency_p99_ms <= int(max_latency)
    )


def eligible(candidates: list[Candidate], requirements: Requirements) -> list[Candidate]:
    """The candidates that may take the subtask, best first (failover applied)."""
    chosen: list[Candidate] = []
    for candidate in candidates:
        if candidate.name != requirements.capability:
            continue
        if requirements.pinned_agent_id and candidate.agent_id != requirements.pinned_agent_id:
            continue
        charge = candidate.charge_for(requirements.buyer_agent_id)
        if charge > 0 and candidate.currency != requirements.currency:
            continue
        if requirements.budget is not None and charge > requirements.budget:
            continue
        if not _meets_constraints(candidate, requirements.constraints):
            continue
        if requirements.input is not UNKNOWN and not schemas.is_valid(
            candidate.input_schema, requirements.input
        ):
            continue
        chosen.append(candidate)
    if requirements.avoid_agent_id:
        others = [c for c in chosen if c.agent_id != requirements.avoid_agent_id]
        if others:
            return others
    return chosen


def cheapest_charge(candidates: list[Candidate], buyer_agent_id: str) -> Decimal:
    """The lowest price among eligible candidates (the estimate for one subtask)."""
    return min(candidate.charge_for(buyer_agent_id) for candidate in candidates)
