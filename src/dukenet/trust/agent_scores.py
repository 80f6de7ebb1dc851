"""One agent's trust: gather its evidence, score it, store the score and explain it.

Used by every per-event recomputation (``dukenet.trust.events``) and by
``GET /v1/agents/{id}/trust``; the full recomputation gathers the same evidence for all
agents at once and scores it with the same ``dukenet.trust.scoring`` functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from dukenet.store.postgres import Connection, Record, translate_errors
from dukenet.store.sql import load_queries
from dukenet.trust import scoring
from dukenet.trust.errors import AgentNotFound
from dukenet.trust.parameters import DAY_SECONDS, LATENCY_BUCKETS, TrustParameters

QUERIES = load_queries("dukenet.trust", "queries.sql")
# The same evidence without locking the agent's row, for read-only explanations.
READ_EVIDENCE = QUERIES["lock_agent_evidence"].replace("FOR NO KEY UPDATE OF a", "")
CENT = Decimal("0.01")


@dataclass
class RatingEvidence:
    """The ratings of one or many agents, one array element per rating."""

    agent: scoring.Ints  # index of the rated agent
    rater: scoring.Ints  # any integer identity of the rater
    rating: scoring.Floats
    at: scoring.Floats  # epoch seconds
    value: scoring.Floats
    rater_weight: scoring.Floats  # 0 for ignored raters


def base_rating_weights(
    evidence: RatingEvidence, now: float, params: TrustParameters
) -> scoring.Floats:
    """Each rating's weight before the rater's weight: task value, decay and the pair rule."""
    return (
        scoring.value_weight(evidence.value, params)
        * scoring.decay(now - evidence.at, params)
        * scoring.repeat_factors(evidence.agent, evidence.rater, evidence.at, params)
    )


def add_ratings(
    inputs: scoring.AgentInputs,
    evidence: RatingEvidence,
    base_weights: scoring.Floats,
) -> None:
    """Fill the rating sums of ``inputs`` from the ratings and their base weights."""
    count = len(inputs.total_ratings)
    weights = base_weights * evidence.rater_weight
    inputs.rating_weight = np.bincount(evidence.agent, weights=weights, minlength=count).astype(
        np.float64
    )
    inputs.rating_weighted_sum = np.bincount(
        evidence.agent, weights=weights * evidence.rating, minlength=count
    ).astype(np.float64)
    inputs.total_ratings = np.bincount(evidence.agent, minlength=count).astype(np.int64)


def observed_windows(created_at: float, now: float) -> tuple[float, float, float]:
    """Seconds of the 30-day, 90-day and all-time windows the agent has existed for."""
    lifetime = max(0.0, now - created_at)
    return min(lifetime, 30 * DAY_SECONDS), min(lifetime, 90 * DAY_SECONDS), lifetime


@dataclass
class AgentEvidence:
    """One agent's evidence, scores and the context needed to store or explain them."""

    agent_id: str
    status: str
    owner_address: str | None
    stored_score: Decimal
    now: datetime
    inputs: scoring.AgentInputs
    scores: scoring.Scores
    last_audit: datetime | None

    @property
    def trust_score(self) -> Decimal:
        """The score as stored (two decimals)."""
        return Decimal(repr(float(self.scores.trust[0]))).quantize(CENT)


def _inputs_from_row(row: Record, params: TrustParameters) -> scoring.AgentInputs:
    inputs = scoring.AgentInputs.empty(1)
    now = float(row["now"])
    factor = scoring.decay_factor(now, row["epoch"], row["half_life_days"])
    inputs.successful[0] = row["successful"]
    inputs.failed[0] = row["failed"]
    inputs.success_weight[0] = row["success_weight"] * factor
    inputs.failure_weight[0] = row["failure_weight"] * factor
    inputs.declared_weight[0] = row["declared_weight"] * factor
    inputs.within_weight[0] = row["within_weight"] * factor
    inputs.measured[0] = row["measured"]
    inputs.measured_weight[0] = row["measured_weight"] * factor
    inputs.latency_weighted[0] = row["latency_weighted"] * factor
    histogram = row["latency_histogram"]
    if histogram:
        values = np.asarray([v or 0.0 for v in histogram[:LATENCY_BUCKETS]], dtype=np.float64)
        inputs.histogram[0, : len(values)] = values * factor
    obs_30, obs_90, obs_all = observed_windows(row["created_at"], now)
    inputs.up_30d[0], inputs.observed_30d[0] = row["up_30d"], obs_30
    inputs.up_90d[0], inputs.observed_90d[0] = row["up_90d"], obs_90
    inputs.up_all[0], inputs.observed_all[0] = row["up_all"], obs_all
    inputs.registration_verified[0] = row["registration_verified"]
    inputs.owner_given[0] = row["owner_address"] is not None
    inputs.owner_proven[0] = row["owner_proven"]
    inputs.open_flags[0] = row["open_flags"]
    inputs.rate_limited[0] = row["rate_limited"]
    inputs.inactive[0] = row["status"] == "INACTIVE"
    inputs.suspended[0] = row["status"] == "SUSPENDED"
    return inputs


async def gather(
    conn: Connection, agent_id: str, params: TrustParameters, *, lock: bool = True
) -> AgentEvidence:
    """Read the agent's evidence and score it (nothing is written). With ``lock`` the
    agent's row stays locked until the caller's transaction ends."""
    query = QUERIES["lock_agent_evidence"] if lock else READ_EVIDENCE
    with translate_errors():
        row = await conn.fetchrow(
            query, agent_id, params.rate_limited_window_hours, params.new_rater_weight
        )
    if row is None:
        raise AgentNotFound(f"no registered agent {agent_id}")
    inputs = _inputs_from_row(row, params)
    raters = row["raters"]
    if raters:
        _, rater_codes = np.unique(np.asarray(raters), return_inverse=True)
        evidence = RatingEvidence(
            agent=np.zeros(len(raters), dtype=np.int64),
            rater=rater_codes.astype(np.int64),
            rating=np.asarray(row["ratings"], dtype=np.float64),
            at=np.asarray(row["rated_at"], dtype=np.float64),
            value=np.asarray(row["rating_values"], dtype=np.float64),
            rater_weight=np.asarray(row["rater_weights"], dtype=np.float64),
        )
        add_ratings(inputs, evidence, base_rating_weights(evidence, float(row["now"]), params))
    return AgentEvidence(
        agent_id=agent_id,
        status=row["status"],
        owner_address=row["owner_address"],
        stored_score=row["stored_score"],
        now=datetime.fromtimestamp(float(row["now"]), UTC),
        inputs=inputs,
        scores=scoring.compute_scores(inputs, params),
        last_audit=row["last_audit"],
    )


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(CENT)


def record_values(scores: scoring.Scores, inputs: scoring.AgentInputs, i: int) -> tuple[Any, ...]:
    """The trust_records columns (after agent_id) for agent ``i``, in ``store_score`` order."""
    return (
        _decimal(scores.trust[i]),
        _decimal(100.0 * scores.reputation[i]),
        _decimal(scores.rating[i]),
        int(inputs.total_ratings[i]),
        int(inputs.successful[i]),
        int(inputs.failed[i]),
        _decimal(scores.uptime_30d[i]),
        _decimal(scores.uptime_90d[i]),
        _decimal(scores.uptime_all_time[i]),
        int(scores.avg_latency_ms[i]),
        int(scores.p99_latency_ms[i]),
        _decimal(100.0 * scores.delivery[i]),
        bool(scores.verified_signer[i]),
        bool(inputs.rate_limited[i]),
        int(inputs.open_flags[i]),
    )


async def store(conn: Connection, evidence: AgentEvidence, reason: str) -> int:
    """Set ``agents.trust_score`` and append a trust record; return the record's id."""
    with translate_errors():
        row = await conn.fetchrow(
            QUERIES["store_score"],
            evidence.agent_id,
            *record_values(evidence.scores, evidence.inputs, 0),
            evidence.last_audit,
            reason[:40],
        )
    if row is None:
        raise AgentNotFound(f"no registered agent {evidence.agent_id}")
    record_id: int = row["record_id"]
    return record_id
