"""Explaining a trust score: its components, weights and inputs, flags and history."""

from __future__ import annotations

from datetime import UTC

from dukenet.store.postgres import Database, Record, translate_errors
from dukenet.store.sql import load_queries
from dukenet.trust import agent_scores, fraud, scoring
from dukenet.trust.models import NetworkTrust, TrustBreakdown, TrustHistory, TrustRecord
from dukenet.trust.parameters import TrustParameters

QUERIES = load_queries("dukenet.trust", "queries.sql")


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def record_from_row(row: Record) -> TrustRecord:
    """The API resource of a ``trust_records`` row."""
    return TrustRecord(
        record_id=row["record_id"],
        agent_id=row["agent_id"],
        trust_score=float(row["trust_score"]),
        reputation_score=_float(row["reputation_score"]),
        rating=_float(row["rating"]),
        total_ratings=row["total_ratings"],
        successful_transactions=row["successful_transactions"],
        failed_transactions=row["failed_transactions"],
        uptime_30d=_float(row["uptime_30d"]),
        uptime_90d=_float(row["uptime_90d"]),
        uptime_all_time=_float(row["uptime_all_time"]),
        avg_latency_ms=row["avg_latency_ms"],
        p99_latency_ms=row["p99_latency_ms"],
        success_rate=_float(row["success_rate"]),
        verified_signer=row["verified_signer"],
        rate_limited=row["rate_limited"],
        fraud_flags=row["fraud_flags"],
        last_audit=row["last_audit"],
        updated_at=row["updated_at"],
        reason=row["reason"],
    )


async def trust_history(
    db: Database, agent_id: str, *, before: int | None = None, limit: int = 100
) -> TrustHistory:
    """An agent's trust records, newest first; ``before`` is the previous page's cursor."""
    async with db.read() as conn:
        with translate_errors():
            rows = await conn.fetch(QUERIES["trust_history"], agent_id, before, limit + 1)
    items = [record_from_row(row) for row in rows[:limit]]
    next_cursor = str(items[-1].record_id) if len(rows) > limit else None
    return TrustHistory(items=items, next_cursor=next_cursor)


async def breakdown(
    db: Database,
    agent_id: str,
    params: TrustParameters,
    *,
    history: bool = False,
    before: int | None = None,
    limit: int = 100,
) -> TrustBreakdown:
    """The agent's current score and the evidence behind it (computed now, nothing stored)."""
    async with db.read() as conn:
        evidence = await agent_scores.gather(conn, agent_id, params, lock=False)
        flags = await fraud.agent_flags(conn, agent_id)
        with translate_errors():
            network = await conn.fetchrow(QUERIES["network_score"], agent_id)
    explained = scoring.explain(evidence.inputs, evidence.scores, params)
    return TrustBreakdown(
        agent_id=agent_id,
        trust_score=float(evidence.stored_score),
        computed_score=explained["trust_score"],
        computed_at=evidence.now if evidence.now.tzinfo else evidence.now.replace(tzinfo=UTC),
        formula=explained["formula"],
        base_points=explained["base_points"],
        components=explained["components"],
        penalties=explained["penalties"],
        fraud_flags=flags,
        network=(
            NetworkTrust(
                global_trust=network["global_trust"],
                rater_weight=network["rater_weight"],
                pre_trusted=network["pre_trusted"],
                computed_at=network["computed_at"],
            )
            if network is not None
            else None
        ),
        selection_threshold=float(params.selection_threshold),
        history=(
            await trust_history(db, agent_id, before=before, limit=limit) if history else None
        ),
    )
