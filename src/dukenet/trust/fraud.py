"""Fraud signals: rating rings, self-dealing and failure bursts, raised as flags.

* Rating rings (network scan): in the graph of high ratings (a rater's mean rating of an
  agent >= 4.0 over the last 90 days), a strongly connected group of 2 to 100 agents whose
  members each receive at least 3 of those ratings from the group, 80 % or more of their
  ratings from inside it, and make 80 % or more of their trades inside it.
* Self-dealing: a completed subtask or transaction whose buyer is another agent with the
  seller's ``owner_address`` (checked when the attempt is recorded, when a rating arrives,
  and by the network scan); the seller is flagged.
* Failure bursts: at least 10 failures the agent caused within a 10-minute sliding window,
  making up half or more of its attempts there (checked as attempts are recorded); one open
  burst flag at a time.

A flag takes trust points (see ``dukenet.trust.scoring``), zeroes the weight of the agent's
own ratings and keeps it out of EigenTrust's pre-trusted set. Each flag names its evidence
with a fingerprint, so an operator's clearing sticks: the same evidence is never re-raised.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from dukenet.store.postgres import Connection, Database, Record, translate_errors
from dukenet.store.sql import load_queries
from dukenet.trust import scoring
from dukenet.trust.errors import FlagAlreadyCleared, FlagNotFound
from dukenet.trust.models import FlaggedAgent, FlaggedAgentPage, FraudFlag
from dukenet.trust.parameters import DAY_SECONDS, TrustParameters

QUERIES = load_queries("dukenet.trust", "queries.sql")

RATING_RING = "RATING_RING"
SELF_DEALING = "SELF_DEALING"
FAILURE_BURST = "FAILURE_BURST"


def flag_from_row(row: Record | dict[str, Any]) -> FraudFlag:
    """The API resource of a ``trust_fraud_flags`` row."""
    evidence = row["evidence"]
    if isinstance(evidence, str):
        evidence = json.loads(evidence)
    return FraudFlag(
        flag_id=row["flag_id"],
        agent_id=row["agent_id"],
        kind=row["kind"],
        reason=row["reason"],
        evidence=evidence or {},
        created_at=row["created_at"],
        cleared_at=row["cleared_at"],
        cleared_reason=row["cleared_reason"],
    )


async def raise_flag(
    conn: Connection,
    agent_id: str,
    kind: str,
    fingerprint: str,
    reason: str,
    evidence: dict[str, Any],
    *,
    one_open_per_kind: bool = False,
) -> int | None:
    """Raise a flag unless its evidence was flagged before; return its id if new."""
    with translate_errors():
        flag_id: int | None = await conn.fetchval(
            QUERIES["raise_flag"],
            agent_id,
            kind,
            fingerprint,
            reason[:2000],
            evidence,
            one_open_per_kind,
        )
    return flag_id


def same_owner(first: str | None, second: str | None) -> bool:
    """Whether two owner addresses are the same (Ethereum addresses ignore case)."""
    return first is not None and second is not None and first.lower() == second.lower()


async def flag_self_dealing(
    conn: Connection, seller: str, buyer: str, owner: str, trades: int = 1
) -> int | None:
    """Flag ``seller`` for work bought by ``buyer``, an agent with the same owner address."""
    return await raise_flag(
        conn,
        seller,
        SELF_DEALING,
        f"self-dealing:{buyer}",
        f"self-dealing: {trades} trade(s) bought by agent {buyer}, which has the same "
        f"owner address {owner.lower()}",
        {"buyer_agent_id": buyer, "owner_address": owner.lower(), "trades": trades},
    )


@dataclass(frozen=True)
class BurstCounts:
    """Caused failures and attempts in the current and the previous burst window."""

    window: int
    failures: int
    attempts: int
    previous_failures: int
    previous_attempts: int


def burst_estimate(counts: BurstCounts, at: float, params: TrustParameters) -> tuple[float, float]:
    """Failures and attempts in the sliding window ending at ``at`` (the previous window
    weighted by how much of it the sliding window still covers)."""
    size = params.burst_window_seconds
    elapsed = (at - counts.window * size) / size
    carry = max(0.0, 1.0 - elapsed)
    return (
        counts.failures + carry * counts.previous_failures,
        counts.attempts + carry * counts.previous_attempts,
    )


def is_burst(failures: float, attempts: float, params: TrustParameters) -> bool:
    """Whether failures in the window are abnormal (many, and a large share of attempts)."""
    return (
        failures >= params.burst_min_failures
        and attempts > 0
        and failures / attempts >= params.burst_failure_share
    )


async def flag_failure_burst(
    conn: Connection, agent_id: str, counts: BurstCounts, failures: float, attempts: float
) -> int | None:
    """Flag an abnormal failure burst (one open burst flag per agent at a time)."""
    return await raise_flag(
        conn,
        agent_id,
        FAILURE_BURST,
        f"failure-burst:{counts.window}",
        f"failure burst: {failures:.0f} of {attempts:.0f} recent attempts failed "
        "by the agent's fault within 10 minutes",
        {"failures": round(failures), "attempts": round(attempts), "window": counts.window},
        one_open_per_kind=True,
    )


# ------------------------------------------------------------------------- rating rings


@dataclass(frozen=True)
class RingCandidate:
    """A strongly connected group of the high-rating graph, with per-member rating counts."""

    members: list[int]  # agent indices
    internal_ratings: dict[int, int]  # member -> high ratings received from the group
    received_ratings: dict[int, int]  # member -> ratings received in the lookback


def ring_candidates(
    count: int,
    rater: scoring.Ints,
    agent: scoring.Ints,
    rating: scoring.Floats,
    at: scoring.Floats,
    now: float,
    params: TrustParameters,
) -> list[RingCandidate]:
    """Groups of agents that rate each other highly and mostly receive ratings from inside.

    Agents are indices ``0..count-1``; each array element is one rating (rater -> agent).
    """
    recent = at >= now - params.ring_lookback_days * DAY_SECONDS
    rater, agent, rating = rater[recent], agent[recent], rating[recent]
    if rater.size == 0:
        return []
    received = np.bincount(agent, minlength=count)
    pair = rater.astype(np.int64) * count + agent
    pairs, inverse = np.unique(pair, return_inverse=True)
    mean = np.bincount(inverse, weights=rating) / np.bincount(inverse)
    high = pairs[mean >= params.ring_min_rating]
    high_rater, high_agent = high // count, high % count
    keep = high_rater != high_agent
    high_rater, high_agent = high_rater[keep], high_agent[keep]
    if high_rater.size == 0:
        return []
    from scipy.sparse import csr_matrix  # heavy imports: only for the full recomputation
    from scipy.sparse.csgraph import connected_components

    graph = csr_matrix((np.ones(high_rater.size), (high_rater, high_agent)), shape=(count, count))
    _, labels = connected_components(graph, directed=True, connection="strong")
    sizes = np.bincount(labels, minlength=labels.max() + 1)
    small = (sizes >= 2) & (sizes <= params.ring_max_size)
    if not small.any():
        return []
    # High ratings inside one group, counted per rated member (every rating, not pairs).
    rating_high = np.isin(pair, high)
    inside = rating_high & (labels[rater] == labels[agent]) & small[labels[agent]]
    internal = np.bincount(agent[inside], minlength=count)
    candidates = []
    for label in np.flatnonzero(small).tolist():
        members = np.flatnonzero(labels == label)
        candidates.append(
            RingCandidate(
                members=members.tolist(),
                internal_ratings={int(m): int(internal[m]) for m in members},
                received_ratings={int(m): int(received[m]) for m in members},
            )
        )
    return candidates


def ring_fingerprint(member_ids: list[str]) -> str:
    """Names a ring by its members, so a changed ring is new evidence."""
    digest = hashlib.sha256("\n".join(sorted(member_ids)).encode()).hexdigest()[:24]
    return f"rating-ring:{digest}"


async def flag_rings(
    conn: Connection,
    candidates: list[RingCandidate],
    agent_ids: list[str],
    params: TrustParameters,
) -> list[str]:
    """Flag the members of candidate groups that also trade mostly inside the group."""
    members = sorted({agent_ids[m] for c in candidates for m in c.members})
    if not members:
        return []
    with translate_errors():
        rows = await conn.fetch(
            QUERIES["trades_of"], members, max(1, round(params.ring_lookback_days))
        )
    trades: dict[str, dict[str, int]] = {}
    for row in rows:
        trades.setdefault(row["agent_id"], {})[row["counterparty"]] = row["trades"]
    flagged: list[str] = []
    for candidate in candidates:
        group = {agent_ids[m] for m in candidate.members}
        fingerprint = ring_fingerprint(sorted(group))
        for member in candidate.members:
            member_id = agent_ids[member]
            internal = candidate.internal_ratings[member]
            received = max(candidate.received_ratings[member], 1)
            partners = trades.get(member_id, {})
            total_trades = sum(partners.values())
            inside_trades = sum(n for other, n in partners.items() if other in group)
            trade_share = inside_trades / total_trades if total_trades else 1.0
            rating_share = internal / received
            if (
                internal < params.ring_min_internal_ratings
                or rating_share < params.ring_internal_share
                or trade_share < params.ring_internal_share
            ):
                continue
            flag_id = await raise_flag(
                conn,
                member_id,
                RATING_RING,
                fingerprint,
                f"rating ring: rates and is rated highly within a group of {len(group)} "
                f"agents that trade mostly among themselves ({trade_share:.0%} of its trades, "
                f"{rating_share:.0%} of its ratings inside the group)",
                {
                    "group_size": len(group),
                    "members": sorted(group)[:20],
                    "trade_share": round(trade_share, 4),
                    "rating_share": round(rating_share, 4),
                    "internal_ratings": internal,
                },
                one_open_per_kind=True,
            )
            if flag_id is not None:
                flagged.append(member_id)
    return flagged


async def scan_self_dealing(conn: Connection, sellers: list[str] | None = None) -> list[str]:
    """Flag sellers whose completed work was bought by an agent with their owner address."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["self_dealing_pairs"], sellers)
    flagged = []
    for row in rows:
        if await flag_self_dealing(conn, row["seller"], row["buyer"], row["owner"], row["trades"]):
            flagged.append(row["seller"])
    return flagged


# ------------------------------------------------------------------------ operator view


def _decode_cursor(cursor: str | None) -> str | None:
    return cursor or None


async def list_flagged(
    db: Database, *, include_cleared: bool = False, cursor: str | None = None, limit: int = 50
) -> FlaggedAgentPage:
    """Agents with open fraud flags (or any flags), with the flags' reasons."""
    async with db.read() as conn:
        rows = await conn.fetch(
            QUERIES["flagged_agents"], include_cleared, _decode_cursor(cursor), limit + 1
        )
    items = [
        FlaggedAgent(
            agent_id=row["agent_id"],
            display_name=row["display_name"],
            status=row["status"],
            trust_score=float(row["trust_score"]),
            owner_address=row["owner_address"],
            flags=[
                flag_from_row({**flag, "agent_id": row["agent_id"], "fingerprint": ""})
                for flag in row["flags"]
            ],
        )
        for row in rows[:limit]
    ]
    next_cursor = items[-1].agent_id if len(rows) > limit else None
    return FlaggedAgentPage(items=items, next_cursor=next_cursor)


async def agent_flags(
    conn: Connection, agent_id: str, *, include_cleared: bool = False
) -> list[FraudFlag]:
    """One agent's flags, newest first."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["agent_flags"], agent_id, include_cleared)
    return [flag_from_row(row) for row in rows]


async def clear_flag_row(conn: Connection, flag_id: int, reason: str) -> FraudFlag:
    """Clear an open flag inside the caller's transaction."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["lock_flag"], flag_id)
        if row is None:
            raise FlagNotFound(f"no fraud flag {flag_id}")
        if row["cleared_at"] is not None:
            raise FlagAlreadyCleared(f"fraud flag {flag_id} was cleared at {row['cleared_at']}")
        cleared = await conn.fetchrow(QUERIES["clear_flag"], flag_id, reason)
    assert cleared is not None
    return flag_from_row(cleared)
