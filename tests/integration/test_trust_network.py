"""The full recomputation: the Sybil scenario, agreement with per-event recomputation,
rebuilding the attempt aggregates, and the periodic job."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.runtime import Services, open_services
from dukenet.trust import events, ratings, recompute
from dukenet.trust.parameters import TrustParameters
from tests.integration.test_trust_support import (
    ADMIN,
    TrustNetwork,
    attempt,
    insert_agent,
    insert_task,
    network,
    quiet_settings,
    trust_of,
    wait_for,
)

__all__ = ["network"]
PARAMS = TrustParameters()


async def _trade(
    services: Services, buyer: str, seller: str, *, cost: str, rating: str, latency: int
) -> None:
    """``buyer`` pays ``seller`` for a completed subtask, which succeeds, and rates it."""
    async with services.db.acquire() as conn:
        task_id, subtask_id = await insert_task(conn, buyer, seller, cost=cost)
    await attempt(services, seller, subtask_id, latency_ms=latency, declared_p99_ms=500)
    await ratings.submit_rating(
        services.db,
        services.cache,
        services.network_key,
        agent_id=seller,
        rater_id=buyer,
        task_id=task_id,
        rating=Decimal(rating),
        review=None,
        params=PARAMS,
    )


async def _open_flags(services: Services, agent_id: str) -> list[str]:
    async with services.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT kind FROM trust_fraud_flags WHERE agent_id = $1 AND cleared_at IS NULL",
            agent_id,
        )
    return [row["kind"] for row in rows]


@pytest.mark.timeout(240)
async def test_sybil_ring_ends_well_below_an_honest_agent_and_is_flagged(
    network: TrustNetwork,
) -> None:
    services = network.services
    async with services.db.acquire() as conn:
        honest = await insert_agent(conn, age_days=60, name="honest")
        raters = [await insert_agent(conn, age_days=45, name="customer") for _ in range(20)]
        sybils = [await insert_agent(conn, name="sybil") for _ in range(50)]
    # 20 real completions (2.00 each) rated 4.0 by independent customers
    for rater in raters:
        await _trade(services, rater, honest, cost="2.0000", rating="4.0", latency=120)
    # 50 fresh agents buy tiny tasks from each other and rate each other 5.0
    for i, buyer in enumerate(sybils):
        for step in range(1, 7):
            seller = sybils[(i + step) % len(sybils)]
            await _trade(services, buyer, seller, cost="0.0100", rating="5.0", latency=50)

    report = await recompute.recompute_all(services.db, services.cache, PARAMS)
    assert report is not None
    assert report.agents == 71
    assert report.ratings == 20 + 300
    assert report.flags_raised >= 50

    honest_score = await trust_of(services, honest)
    sybil_scores = [await trust_of(services, s) for s in sybils]
    assert honest_score >= 65.0
    assert max(sybil_scores) <= honest_score - 20.0, (honest_score, max(sybil_scores))
    for sybil in sybils:
        assert await _open_flags(services, sybil) == ["RATING_RING"]
    assert await _open_flags(services, honest) == []
    assert all([await _open_flags(services, r) == [] for r in raters])

    # the operator's list names every ring member and why
    listed = (
        await network.http.get("/v1/admin/fraud", params={"limit": 200}, headers=ADMIN)
    ).json()
    flagged = {item["agent_id"]: item["flags"][0]["reason"] for item in listed["items"]}
    assert set(flagged) == set(sybils)
    assert all("rating ring" in reason for reason in flagged.values())

    # the ring's ratings carry no weight any more, and the network gives its members none
    breakdown = (await network.http.get(f"/v1/agents/{sybils[0]}/trust")).json()
    assert breakdown["components"]["reputation"]["inputs"]["effective_weight"] == 0.0
    assert breakdown["network"]["rater_weight"] == 0.0
    assert breakdown["trust_score"] == breakdown["computed_score"]
    honest_view = (await network.http.get(f"/v1/agents/{honest}/trust")).json()
    assert honest_view["components"]["reputation"]["inputs"]["rating"] > 3.5

    # a per-event recomputation of the same evidence gives the same scores
    for agent in (honest, sybils[0], raters[0]):
        stored = await trust_of(services, agent)
        again = await events.recompute_and_publish(
            services.db, services.cache, agent, reason="check"
        )
        assert float(again) == stored

    # nothing changed since: a second run appends no records and raises no flags
    second = await recompute.recompute_all(services.db, services.cache, PARAMS)
    assert second is not None
    assert (second.records_appended, second.flags_raised) == (0, 0)


async def test_rebuilding_aggregates_from_raw_attempts_matches_incremental_updates(
    network: TrustNetwork,
) -> None:
    services = network.services
    async with services.db.acquire() as conn:
        worker = await insert_agent(conn, age_days=10)
    for number, (outcome, caused, latency) in enumerate(
        [
            ("success", False, 80),
            ("failure", True, 3_000),
            ("failure", False, None),
            ("cancelled", False, None),
            ("success", False, 700),
            ("success", False, 90),
        ]
    ):
        async with services.db.acquire() as conn:
            buyer = await insert_agent(conn)
            _, subtask = await insert_task(conn, buyer, worker, cost=str(0.25 * (number + 1)))
        await attempt(
            services,
            worker,
            subtask,
            outcome=outcome,
            caused_by_agent=caused,
            latency_ms=latency,
            declared_p99_ms=500,
        )
    query = "SELECT * FROM trust_agent_stats WHERE agent_id = $1"
    async with services.db.acquire() as conn:
        incremental = dict(await conn.fetchrow(query, worker))
        assert not await recompute.stats_need_rebuild(conn, PARAMS)
        assert await recompute.stats_need_rebuild(conn, PARAMS.with_changes(half_life_days=90.0))
        await recompute.rebuild_attempt_stats(conn, PARAMS)
        rebuilt = dict(await conn.fetchrow(query, worker))
    for name in ("successful", "failed", "measured"):
        assert rebuilt[name] == incremental[name], name
    for name in (
        "success_weight",
        "failure_weight",
        "declared_weight",
        "within_weight",
        "measured_weight",
        "latency_weighted",
    ):
        assert rebuilt[name] == pytest.approx(incremental[name], rel=1e-9), name
    assert rebuilt["latency_histogram"] == pytest.approx(incremental["latency_histogram"])
    assert rebuilt["last_attempt_at"] == incremental["last_attempt_at"]
    assert (incremental["successful"], incremental["failed"], incremental["measured"]) == (3, 1, 4)


async def test_a_changed_half_life_rebuilds_and_rescores(network: TrustNetwork) -> None:
    services = network.services
    async with services.db.acquire() as conn:
        worker = await insert_agent(conn, age_days=400)
        buyer = await insert_agent(conn)
        _, subtask = await insert_task(conn, buyer, worker)
    await attempt(services, worker, subtask)
    async with services.db.acquire() as conn:  # the success happened a year ago
        await conn.execute(
            "UPDATE agent_attempts SET finished_at = NOW() - INTERVAL '365 days'"
            " WHERE agent_id = $1",
            worker,
        )
    first = await recompute.recompute_all(services.db, services.cache, PARAMS, rebuild=True)
    assert first is not None and first.rebuilt_stats
    slow_decay = await trust_of(services, worker)
    faster = PARAMS.with_changes(half_life_days=30.0)
    second = await recompute.recompute_all(services.db, services.cache, faster)
    assert second is not None and second.rebuilt_stats
    assert await trust_of(services, worker) < slow_decay


async def test_only_one_process_recomputes_at_a_time(network: TrustNetwork) -> None:
    services = network.services
    async with services.db.acquire() as conn:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", recompute.RECOMPUTE_LOCK_KEY)
        try:
            assert await recompute.recompute_all(services.db, services.cache, PARAMS) is None
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", recompute.RECOMPUTE_LOCK_KEY)


async def test_periodic_job_runs_the_recomputation(settings: Settings) -> None:
    periodic = quiet_settings(settings, trust_recompute_interval=1)
    app = create_app(periodic)
    async with app.router.lifespan_context(app), open_services(periodic) as services:

        async def ran() -> bool:
            async with services.db.acquire() as conn:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM trust_recompute_runs WHERE finished_at IS NOT NULL"
                    )
                )

        await wait_for(ran, within=20.0)
        await asyncio.sleep(0)
