"""The full trust recomputation: fraud scan, EigenTrust and every agent's score.

It runs periodically (``trust_recomputation_job``, one process at a time under an advisory
lock) and scores with the same ``dukenet.trust.scoring`` functions as the per-event path:

1. number the registered agents and read all evidence as numpy arrays (binary COPY);
2. raise rating-ring and self-dealing flags from the rating and trade graphs;
3. run EigenTrust over the rating graph (flagged raters and same-owner ratings excluded) and
   store each agent's global trust and rater weight;
4. score every agent, and for those whose score changed set ``agents.trust_score`` and
   append a ``periodic`` trust record, in slices of a few thousand agents per transaction;
   an agent recomputed by an event after the run's snapshot keeps its fresher score.

The per-agent attempt aggregates are maintained by every recorded attempt; the run rebuilds
them from ``agent_attempts`` only when the half-life or value weighting changed (or when
asked to), since that is the only way they can disagree with the raw attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from dukenet.errors import DukenetError
from dukenet.runtime import Services
from dukenet.store.cache import Cache
from dukenet.store.postgres import Connection, Database, translate_errors
from dukenet.store.sql import load_queries
from dukenet.trust import bulk, fraud, scoring
from dukenet.trust.agent_scores import RatingEvidence, add_ratings, base_rating_weights
from dukenet.trust.cache import after_commit_invalidate
from dukenet.trust.eigentrust import eigentrust, rater_weights
from dukenet.trust.parameters import (
    DAY_SECONDS,
    LATENCY_BUCKETS,
    LATENCY_GROWTH,
    TrustParameters,
)

QUERIES = load_queries("dukenet.trust", "recompute.sql")
RECOMPUTE_LOCK_KEY = 0x7472757374  # "trust"
APPLY_SLICE = 5_000
log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What one full recomputation did and how long each phase took (seconds)."""

    run_id: int
    agents: int = 0
    ratings: int = 0
    records_appended: int = 0
    flags_raised: int = 0
    rebuilt_stats: bool = False
    eigentrust_iterations: int = 0
    eigentrust_residual: float = 0.0
    eigentrust_edges: int = 0
    pre_trusted: int = 0
    phases: dict[str, float] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        """The run's figures for ``trust_recompute_runs.details``."""
        return {
            "ratings": self.ratings,
            "eigentrust_iterations": self.eigentrust_iterations,
            "eigentrust_residual": self.eigentrust_residual,
            "eigentrust_edges": self.eigentrust_edges,
            "pre_trusted": self.pre_trusted,
            "phases": {k: round(v, 4) for k, v in self.phases.items()},
        }


class _Timer:
    def __init__(self, report: RunReport) -> None:
        self.report = report
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.report.phases[phase] = self.report.phases.get(phase, 0.0) + now - self.last
        self.last = now


# ------------------------------------------------------------------------ stats rebuild


async def stats_need_rebuild(conn: Connection, params: TrustParameters) -> bool:
    """Whether the attempt aggregates were built with other decay or value parameters."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["stats_parameters"])
    assert row is not None
    return bool(
        abs(row["half_life_days"] - params.half_life_days) > 1e-9
        or abs(row["value_reference"] - params.value_reference) > 1e-9
        or abs(row["value_floor"] - params.value_floor) > 1e-9
    )


async def rebuild_attempt_stats(conn: Connection, params: TrustParameters) -> int:
    """Rebuild every agent's attempt aggregates from ``agent_attempts`` (one transaction;
    attempts recorded meanwhile wait for it). Returns the number of agents."""
    async with conn.transaction():
        with translate_errors():
            await conn.execute(QUERIES["lock_attempts_for_rebuild"])
            epoch = await conn.fetchval(
                "SELECT EXTRACT(EPOCH FROM epoch)::float8 FROM trust_stats_state"
            )
            rows = await conn.fetch(
                QUERIES["rebuild_sums"],
                epoch,
                params.half_life_days,
                params.value_reference,
                params.value_floor,
                LATENCY_BUCKETS,
                LATENCY_GROWTH,
            )
            records = []
            for row in rows:
                histogram = [0.0] * LATENCY_BUCKETS
                for bucket, weight in zip(row["buckets"] or [], row["weights"] or [], strict=True):
                    histogram[bucket - 1] = weight
                records.append(
                    (
                        row["agent_id"],
                        row["successful"],
                        row["failed"],
                        row["success_weight"],
                        row["failure_weight"],
                        row["declared_weight"],
                        row["within_weight"],
                        row["measured"],
                        row["measured_weight"],
                        row["latency_weighted"],
                        histogram,
                        row["last_attempt_at"],
                    )
                )
            await conn.execute(QUERIES["clear_stats"])
            await conn.copy_records_to_table(
                "trust_agent_stats",
                records=records,
                columns=[
                    "agent_id",
                    "successful",
                    "failed",
                    "success_weight",
                    "failure_weight",
                    "declared_weight",
                    "within_weight",
                    "measured",
                    "measured_weight",
                    "latency_weighted",
                    "latency_histogram",
                    "last_attempt_at",
                ],
            )
            await conn.execute(
                QUERIES["set_stats_parameters"],
                params.half_life_days,
                params.value_reference,
                params.value_floor,
            )
    return len(records)


# ----------------------------------------------------------------------------- evidence


@dataclass
class NetworkEvidence:
    """All agents' evidence for one run."""

    agent_ids: list[str]
    now: float
    max_record_id: int
    inputs: scoring.AgentInputs
    current_score: scoring.Floats
    long_clean_record: scoring.Bools
    ratings: RatingEvidence
    same_owner: scoring.Bools


async def _read_evidence(conn: Connection, params: TrustParameters) -> NetworkEvidence:
    with translate_errors():
        snapshot = await conn.fetchrow(QUERIES["run_snapshot"])
        assert snapshot is not None
        agent_ids = [row["agent_id"] for row in await conn.fetch(QUERIES["run_agent_ids"])]
    count = len(agent_ids)
    now = float(snapshot["now"])
    factor = scoring.decay_factor(now, snapshot["epoch"], snapshot["half_life_days"])
    agents = await bulk.fetch_columns(
        conn,
        QUERIES["run_agent_evidence"],
        [
            ("idx", "int4"),
            ("created_at", "float8"),
            ("inactive", "bool"),
            ("suspended", "bool"),
            ("owner_given", "bool"),
            ("owner_proven", "bool"),
            ("registration_verified", "bool"),
            ("open_flags", "int4"),
            ("rate_limited", "bool"),
            ("long_clean_record", "bool"),
            ("current_score", "float8"),
            ("successful", "int4"),
            ("failed", "int4"),
            ("success_weight", "float8"),
            ("failure_weight", "float8"),
            ("declared_weight", "float8"),
            ("within_weight", "float8"),
            ("measured", "int4"),
            ("measured_weight", "float8"),
            ("latency_weighted", "float8"),
        ],
        params.rate_limited_window_hours,
        round(params.pretrust_min_age_days),
        params.pretrust_min_successes,
        params.pretrust_min_score,
        round(params.ring_lookback_days),
    )
    inputs = scoring.AgentInputs.empty(count)
    inputs.successful = agents["successful"].astype(np.int64)
    inputs.failed = agents["failed"].astype(np.int64)
    for name in (
        "success_weight",
        "failure_weight",
        "declared_weight",
        "within_weight",
        "measured_weight",
        "latency_weighted",
    ):
        setattr(inputs, name, agents[name] * factor)
    inputs.measured = agents["measured"].astype(np.int64)
    inputs.registration_verified = agents["registration_verified"]
    inputs.owner_given = agents["owner_given"]
    inputs.owner_proven = agents["owner_proven"]
    inputs.open_flags = agents["open_flags"].astype(np.int64)
    inputs.rate_limited = agents["rate_limited"]
    inputs.inactive = agents["inactive"]
    inputs.suspended = agents["suspended"]
    lifetime = np.maximum(0.0, now - agents["created_at"])
    inputs.observed_30d = np.minimum(lifetime, 30 * DAY_SECONDS)
    inputs.observed_90d = np.minimum(lifetime, 90 * DAY_SECONDS)
    inputs.observed_all = lifetime

    uptime = await bulk.fetch_columns(
        conn,
        QUERIES["run_uptime"],
        [("idx", "int4"), ("up_30d", "float8"), ("up_90d", "float8"), ("up_all", "float8")],
    )
    for name in ("up_30d", "up_90d", "up_all"):
        column = np.zeros(count)
        column[uptime["idx"]] = uptime[name]
        setattr(inputs, name, column)

    histograms = await bulk.fetch_columns(
        conn,
        QUERIES["run_histograms"],
        [("idx", "int4"), ("bucket", "int4"), ("weight", "float8")],
    )
    np.add.at(
        inputs.histogram,
        (histograms["idx"], np.minimum(histograms["bucket"], LATENCY_BUCKETS) - 1),
        histograms["weight"] * factor,
    )

    ratings = await bulk.fetch_columns(
        conn,
        QUERIES["run_ratings"],
        [
            ("agent", "int4"),
            ("rater", "int4"),
            ("rating", "float8"),
            ("at", "float8"),
            ("value", "float8"),
            ("same_owner", "bool"),
        ],
    )
    return NetworkEvidence(
        agent_ids=agent_ids,
        now=now,
        max_record_id=int(snapshot["max_record_id"]),
        inputs=inputs,
        current_score=agents["current_score"],
        long_clean_record=agents["long_clean_record"],
        ratings=RatingEvidence(
            agent=ratings["agent"].astype(np.int64),
            rater=ratings["rater"].astype(np.int64),
            rating=ratings["rating"],
            at=ratings["at"],
            value=ratings["value"],
            rater_weight=np.ones(len(ratings["agent"])),
        ),
        same_owner=ratings["same_owner"],
    )


# ------------------------------------------------------------------------------- phases


async def _scan_fraud(
    conn: Connection, evidence: NetworkEvidence, params: TrustParameters
) -> list[str]:
    count = len(evidence.agent_ids)
    candidates = fraud.ring_candidates(
        count,
        evidence.ratings.rater,
        evidence.ratings.agent,
        evidence.ratings.rating,
        evidence.ratings.at,
        evidence.now,
        params,
    )
    async with conn.transaction():
        flagged = await fraud.flag_rings(conn, candidates, evidence.agent_ids, params)
        flagged += await fraud.scan_self_dealing(conn)
    if flagged:
        with translate_errors():
            rows = await conn.fetch(QUERIES["open_flag_counts"])
        open_flags = np.zeros(count, dtype=np.int64)
        for row in rows:
            open_flags[row["idx"]] = row["open_flags"]
        evidence.inputs.open_flags = open_flags
    return flagged


def _network_trust(
    evidence: NetworkEvidence, base_weights: scoring.Floats, params: TrustParameters
) -> tuple[Any, scoring.Floats, scoring.Bools]:
    ratings = evidence.ratings
    flagged = evidence.inputs.open_flags > 0
    ignored = flagged[ratings.rater] | evidence.same_owner
    edge_weight = np.where(ignored, 0.0, base_weights * scoring.satisfaction(ratings.rating))
    verified = evidence.inputs.registration_verified & (
        ~evidence.inputs.owner_given | evidence.inputs.owner_proven
    )
    pre_trusted = evidence.long_clean_record & verified & ~flagged
    result = eigentrust(
        len(evidence.agent_ids),
        ratings.rater,
        ratings.agent,
        edge_weight,
        pre_trusted,
        pretrust_weight=params.pretrust_weight,
        tolerance=params.eigentrust_tolerance,
        max_iterations=params.eigentrust_max_iterations,
    )
    weights = np.where(flagged, 0.0, rater_weights(result.trust, params.new_rater_weight))
    return result, weights, pre_trusted


async def _store_network(
    conn: Connection,
    run_id: int,
    evidence: NetworkEvidence,
    trust: scoring.Floats,
    weights: scoring.Floats,
    pre_trusted: scoring.Bools,
) -> None:
    records = list(
        zip(
            evidence.agent_ids,
            trust.tolist(),
            weights.tolist(),
            pre_trusted.tolist(),
            strict=True,
        )
    )
    async with conn.transaction():
        with translate_errors():
            await conn.execute("TRUNCATE trust_run_network")
            await conn.copy_records_to_table("trust_run_network", records=records)
            await conn.execute(QUERIES["replace_network_scores"], run_id)


async def _store_scores(
    conn: Connection,
    evidence: NetworkEvidence,
    scores: scoring.Scores,
    run_started: datetime,
) -> list[str]:
    inputs = evidence.inputs
    changed = np.flatnonzero(np.abs(scores.trust - evidence.current_score) >= 0.005)
    if changed.size == 0:
        return []
    columns = [
        changed.tolist(),
        [evidence.agent_ids[i] for i in changed.tolist()],
        scores.trust[changed].tolist(),
        (100.0 * scores.reputation[changed]).tolist(),
        scores.rating[changed].tolist(),
        inputs.total_ratings[changed].tolist(),
        inputs.successful[changed].tolist(),
        inputs.failed[changed].tolist(),
        scores.uptime_30d[changed].tolist(),
        scores.uptime_90d[changed].tolist(),
        scores.uptime_all_time[changed].tolist(),
        scores.avg_latency_ms[changed].astype(np.int64).tolist(),
        scores.p99_latency_ms[changed].astype(np.int64).tolist(),
        (100.0 * scores.delivery[changed]).tolist(),
        scores.verified_signer[changed].tolist(),
        inputs.rate_limited[changed].tolist(),
        inputs.open_flags[changed].tolist(),
    ]
    with translate_errors():
        await conn.execute("TRUNCATE trust_run_scores")
        await conn.copy_records_to_table(
            "trust_run_scores", records=list(zip(*columns, strict=True))
        )
    stored: list[str] = []
    last = len(evidence.agent_ids)
    for low in range(0, last, APPLY_SLICE):
        async with conn.transaction():
            with translate_errors():
                rows = await conn.fetch(
                    QUERIES["apply_scores"],
                    low,
                    low + APPLY_SLICE,
                    evidence.max_record_id,
                    run_started,
                )
        stored.extend(row["agent_id"] for row in rows)
    return stored


# ---------------------------------------------------------------------------------- run


async def recompute_all(
    db: Database,
    cache: Cache,
    params: TrustParameters,
    *,
    rebuild: bool | None = None,
) -> RunReport | None:
    """One full recomputation; ``None`` if another process is running one right now.

    ``rebuild``: rebuild the attempt aggregates from raw attempts (default: only when the
    decay or value parameters changed).
    """
    async with db.session() as conn:  # a session lock and temporary tables
        with translate_errors():
            locked = await conn.fetchval(QUERIES["try_lock"], RECOMPUTE_LOCK_KEY)
        if not locked:
            return None
        try:
            return await _run(conn, cache, params, rebuild)
        finally:
            with translate_errors():
                await conn.execute(QUERIES["drop_run_tables"])
                await conn.fetchval(QUERIES["unlock"], RECOMPUTE_LOCK_KEY)


async def _run(
    conn: Connection, cache: Cache, params: TrustParameters, rebuild: bool | None
) -> RunReport:
    with translate_errors():
        run = await conn.fetchrow(QUERIES["start_run"])
    assert run is not None
    report = RunReport(run_id=run["run_id"])
    timer = _Timer(report)
    if rebuild or (rebuild is None and await stats_need_rebuild(conn, params)):
        await rebuild_attempt_stats(conn, params)
        report.rebuilt_stats = True
        timer.lap("rebuild_stats")
    with translate_errors():
        await conn.execute(QUERIES["create_run_tables"])
    async with conn.transaction(isolation="repeatable_read"):
        with translate_errors():
            await conn.execute(QUERIES["fill_run_agents"])
            await conn.execute(QUERIES["analyze_run_agents"])
        evidence = await _read_evidence(conn, params)
    report.agents = len(evidence.agent_ids)
    report.ratings = len(evidence.ratings.agent)
    timer.lap("read_evidence")

    flagged = await _scan_fraud(conn, evidence, params)
    report.flags_raised = len(flagged)
    timer.lap("fraud_scan")

    base_weights = base_rating_weights(evidence.ratings, evidence.now, params)
    result, weights, pre_trusted = _network_trust(evidence, base_weights, params)
    report.eigentrust_iterations = result.iterations
    report.eigentrust_residual = result.residual
    report.eigentrust_edges = result.edges
    report.pre_trusted = result.pre_trusted
    timer.lap("eigentrust")
    await _store_network(conn, report.run_id, evidence, result.trust, weights, pre_trusted)
    timer.lap("store_network")

    evidence.ratings.rater_weight = np.where(
        evidence.same_owner, 0.0, weights[evidence.ratings.rater]
    )
    add_ratings(evidence.inputs, evidence.ratings, base_weights)
    scores = scoring.compute_scores(evidence.inputs, params)
    timer.lap("score")
    stored = await _store_scores(conn, evidence, scores, run["started_at"])
    report.records_appended = len(stored)
    timer.lap("store_scores")
    await after_commit_invalidate(cache, stored)
    timer.lap("invalidate")
    with translate_errors():
        await conn.execute(
            QUERIES["finish_run"],
            report.run_id,
            report.agents,
            report.records_appended,
            report.flags_raised,
            report.rebuilt_stats,
            report.details(),
        )
    return report


async def trust_recomputation_job(services: Services) -> None:
    """Background job: a full recomputation every ``trust_recompute_interval`` seconds
    (0 disables it). Several processes may host it; the advisory lock and the runs table
    make one of them do each run."""
    params = TrustParameters.from_settings(services.settings)
    interval = params.recompute_interval
    if interval <= 0:
        return
    delay = min(interval, params.recompute_initial_delay)
    while True:
        await asyncio.sleep(delay)
        try:
            async with services.db.acquire() as conn:
                age = await conn.fetchval(QUERIES["last_finished_run"])
            if age is not None and age < interval:
                delay = interval - age
                continue
            started = datetime.now(UTC)
            report = await recompute_all(services.db, services.cache, params)
            if report is not None:
                log.info(
                    "trust recomputed for %d agents in %.1f s (%d records, %d flags)",
                    report.agents,
                    (datetime.now(UTC) - started).total_seconds(),
                    report.records_appended,
                    report.flags_raised,
                )
            delay = interval
        except DukenetError as exc:
            log.warning("trust recomputation failed, retrying: %s", exc.detail)
            delay = min(interval, 60.0)
