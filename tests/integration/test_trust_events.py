"""Every event that changes trust recomputes it: the score moves, a trust record is
appended with the event's reason, and the cached agent and its breakdown show it at once."""

from __future__ import annotations

import uuid

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.errors import InvalidInput
from dukenet.registry import heartbeats
from dukenet.runtime import open_services
from dukenet.trust import events
from tests.integration.test_trust_support import (
    ADMIN,
    TrustNetwork,
    attempt,
    insert_agent,
    insert_task,
    network,
    quiet_settings,
    records_of,
    trust_of,
    wait_for,
)

__all__ = ["network"]


async def _cached_score(net: TrustNetwork, agent_id: str) -> float:
    response = await net.http.get(f"/v1/agents/{agent_id}")
    assert response.status_code == 200, response.text
    score: float = response.json()["trust_score"]
    return score


async def _work(net: TrustNetwork, seller: str, buyer: str | None = None) -> uuid.UUID:
    async with net.services.db.acquire() as conn:
        buyer = buyer or await insert_agent(conn)
        _, subtask_id = await insert_task(conn, buyer, seller)
    return subtask_id


async def test_attempts_move_the_score_and_append_records(network: TrustNetwork) -> None:
    agent, _ = await network.register("Worker")
    assert await _cached_score(network, agent) == 50.0  # cached now

    await attempt(network.services, agent, await _work(network, agent), outcome="success")
    after_success = await trust_of(network.services, agent)
    assert after_success > 50.0
    assert await _cached_score(network, agent) == after_success

    await attempt(
        network.services,
        agent,
        await _work(network, agent),
        outcome="failure",
        caused_by_agent=True,
        latency_ms=9_000,
    )
    after_failure = await trust_of(network.services, agent)
    assert after_failure < after_success
    assert await _cached_score(network, agent) == after_failure

    records = await records_of(network.services, agent)
    assert [r["reason"] for r in records] == ["attempt", "attempt"]
    assert [float(r["trust_score"]) for r in records] == [after_success, after_failure]
    last = records[-1]
    assert (last["successful_transactions"], last["failed_transactions"]) == (1, 1)
    # every column of the record is filled
    assert all(value is not None for value in last.values()), last
    assert last["verified_signer"] is True
    assert last["p99_latency_ms"] >= 7_000


async def test_cached_search_results_show_a_new_score_at_once(network: TrustNetwork) -> None:
    spec = {"name": "x.trusted", "version": "1.0.0", "input_schema": {}, "output_schema": {}}
    agent, _ = await network.register("Searchable", capabilities=[spec])
    query = {"name": "x.trusted", "min_trust": 50.5}

    async def found() -> list[str]:
        response = await network.http.get("/v1/search/capabilities", params=query)
        assert response.status_code == 200, response.text
        return [hit["agent"]["agent_id"] for hit in response.json()["items"]]

    assert await found() == []  # 50.0: below the filter, and now cached
    assert await found() == []
    await attempt(network.services, agent, await _work(network, agent), outcome="success")
    assert await trust_of(network.services, agent) > 50.5
    assert await found() == [agent]


async def test_failures_the_agent_did_not_cause_and_cancellations_do_not_count(
    network: TrustNetwork,
) -> None:
    agent, _ = await network.register("Worker")
    await attempt(network.services, agent, await _work(network, agent), outcome="success")
    baseline = await trust_of(network.services, agent)
    await attempt(
        network.services,
        agent,
        await _work(network, agent),
        outcome="failure",
        caused_by_agent=False,
        latency_ms=None,
    )
    await attempt(
        network.services, agent, await _work(network, agent), outcome="cancelled", latency_ms=None
    )
    assert await trust_of(network.services, agent) == baseline
    breakdown = (await network.http.get(f"/v1/agents/{agent}/trust")).json()
    delivery = breakdown["components"]["delivery"]["inputs"]
    assert (delivery["successful_attempts"], delivery["failed_attempts"]) == (1, 0)


async def test_recording_an_attempt_twice_counts_it_once(network: TrustNetwork) -> None:
    agent, _ = await network.register("Worker")
    subtask = await _work(network, agent)
    await attempt(network.services, agent, subtask, outcome="success")
    await attempt(network.services, agent, subtask, outcome="success")
    breakdown = (await network.http.get(f"/v1/agents/{agent}/trust")).json()
    assert breakdown["components"]["delivery"]["inputs"]["successful_attempts"] == 1


async def test_recording_stays_cheap_to_plan_on_a_new_database(network: TrustNetwork) -> None:
    # Behind PgBouncer JIT can stay on; a plan costed above jit_above_cost (100,000) would
    # be compiled at every finished attempt. The new database has no statistics yet.
    agent, _ = await network.register("Worker")
    subtask = await _work(network, agent)
    args = (
        *([subtask], [1], [agent], [None], ["success"], [False], [120], [500]),
        *(600, 48, 1.3, [None]),
    )
    async with network.services.db.transaction() as conn:
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) " + events.QUERIES["record_attempts"], *args
        )
    assert plan[0]["Plan"]["Total Cost"] < 10_000


STATS_COLUMNS = (
    "successful, failed, success_weight, failure_weight, declared_weight, within_weight,"
    " measured, measured_weight, latency_weighted, latency_histogram, burst_window,"
    " burst_failures, burst_attempts, prev_failures, prev_attempts, last_attempt_at"
)


async def test_a_batch_of_attempts_counts_as_the_same_attempts_one_by_one(
    network: TrustNetwork,
) -> None:
    # A worker records a whole batch of answers in one statement; the agent's aggregates
    # must be exactly what recording them one at a time (in the same transaction) gives.
    one_by_one, _ = await network.register("Single")
    batched, _ = await network.register("Batched")
    pattern = [
        ("success", False, 80, 500),
        ("success", False, 82, 500),  # the same latency bucket as the one before
        ("success", False, 900, 500),
        ("failure", True, 3000, 500),
        ("failure", False, 40, None),
        ("cancelled", False, None, 500),
        ("success", False, None, None),
    ]
    singles = [await _work(network, one_by_one) for _ in pattern]
    batch = [await _work(network, batched) for _ in pattern]
    async with network.services.db.transaction() as conn:
        for subtask, (outcome, caused, latency, declared) in zip(singles, pattern, strict=True):
            await events.record_attempt(
                conn,
                agent_id=one_by_one,
                capability_id=None,
                subtask_id=subtask,
                attempt=1,
                outcome=outcome,
                caused_by_agent=caused,
                latency_ms=latency,
                declared_p99_ms=declared,
            )
        await events.record_attempts(
            conn,
            [
                events.Attempt(batched, None, subtask, 1, outcome, caused, latency, declared)
                for subtask, (outcome, caused, latency, declared) in zip(
                    batch, pattern, strict=True
                )
            ],
        )
        # a repeat, in a later batch or twice in one, changes nothing
        repeat = events.Attempt(batched, None, batch[0], 1, "failure", True, 10, 500)
        await events.record_attempts(conn, [repeat, repeat])
        query = f"SELECT {STATS_COLUMNS} FROM trust_agent_stats WHERE agent_id = $1"
        expected = dict(await conn.fetchrow(query, one_by_one))
        got = dict(await conn.fetchrow(query, batched))
    assert expected["successful"] == 4 and expected["failed"] == 1
    assert got.keys() == expected.keys()
    for column, value in expected.items():
        if isinstance(value, float | list):
            # float sums may differ in the last bit with the order they were added in
            assert got[column] == pytest.approx(value, rel=1e-12), column
        else:
            assert got[column] == value, column


async def test_a_batch_with_an_unknown_subtask_is_refused(network: TrustNetwork) -> None:
    agent, _ = await network.register("Worker")
    known = await _work(network, agent)
    with pytest.raises(InvalidInput) as refused:
        async with network.services.db.transaction() as conn:
            await events.record_attempts(
                conn,
                [
                    events.Attempt(agent, None, known, 1, "success", False, 10, None),
                    events.Attempt(agent, None, uuid.uuid4(), 1, "success", False, 10, None),
                ],
            )
    assert refused.value.field == "/subtask_id"
    breakdown = (await network.http.get(f"/v1/agents/{agent}/trust")).json()
    assert breakdown["components"]["delivery"]["inputs"]["successful_attempts"] == 0


async def test_a_burst_within_one_batch_is_flagged(network: TrustNetwork) -> None:
    agent, _ = await network.register("Flaky")
    work = [await _work(network, agent) for _ in range(12)]
    async with network.services.db.transaction() as conn:
        await events.record_attempts(
            conn,
            [
                events.Attempt(agent, None, subtask, 1, outcome, outcome == "failure", 50, 500)
                for subtask, outcome in zip(work, ["success"] * 2 + ["failure"] * 10, strict=True)
            ],
        )
        await events.recompute_trust(conn, network.services.cache, agent, reason="attempt")
    await events.after_commit_invalidate(network.services.cache, [agent])
    flags = (await network.http.get(f"/v1/agents/{agent}/trust")).json()["fraud_flags"]
    assert [f["kind"] for f in flags] == ["FAILURE_BURST"]
    assert "10 of 12" in flags[0]["reason"]


async def test_heartbeat_expiry_and_revival_recompute(network: TrustNetwork) -> None:
    agent, auth = await network.register("Sleepy")
    assert await _cached_score(network, agent) == 50.0
    async with network.services.db.acquire() as conn:
        await conn.execute(
            "UPDATE agents SET last_heartbeat = NOW() - INTERVAL '10 minutes' WHERE agent_id = $1",
            agent,
        )
    expired = await heartbeats.expire_heartbeats(
        network.services.db, network.services.cache, ttl=90
    )
    assert agent in expired

    async def recomputed(reason: str) -> bool:
        return reason in [r["reason"] for r in await records_of(network.services, agent)]

    await wait_for(lambda: recomputed("heartbeat_expired"))
    inactive_score = await trust_of(network.services, agent)
    assert inactive_score < 50.0
    assert await _cached_score(network, agent) == inactive_score

    beat = await network.http.post(f"/v1/agents/{agent}/heartbeat", headers=auth)
    assert beat.status_code == 200
    await wait_for(lambda: recomputed("heartbeat_revived"))
    revived_score = await trust_of(network.services, agent)
    assert revived_score > inactive_score
    assert await _cached_score(network, agent) == revived_score


async def test_suspension_and_reinstatement_recompute(network: TrustNetwork) -> None:
    agent, _ = await network.register("Suspect")
    assert await _cached_score(network, agent) == 50.0
    response = await network.http.post(
        f"/v1/admin/agents/{agent}/suspend", json={"reason": "abuse report"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text

    async def reasons() -> list[str]:
        return [r["reason"] for r in await records_of(network.services, agent)]

    async def has(reason: str) -> bool:
        return reason in await reasons()

    await wait_for(lambda: has("suspended"))
    assert await trust_of(network.services, agent) == 25.0
    assert await _cached_score(network, agent) == 25.0

    response = await network.http.post(
        f"/v1/admin/agents/{agent}/reinstate", json={"reason": "cleared"}, headers=ADMIN
    )
    assert response.status_code == 200
    await wait_for(lambda: has("reinstated"))
    assert await trust_of(network.services, agent) == 50.0
    assert await _cached_score(network, agent) == 50.0


async def test_failure_burst_flags_and_clearing_restores(network: TrustNetwork) -> None:
    agent, _ = await network.register("Flaky")
    for _ in range(3):
        await attempt(network.services, agent, await _work(network, agent), outcome="success")
    for _ in range(10):
        await attempt(
            network.services,
            agent,
            await _work(network, agent),
            outcome="failure",
            caused_by_agent=True,
        )
    breakdown = (await network.http.get(f"/v1/agents/{agent}/trust")).json()
    flags = breakdown["fraud_flags"]
    assert [f["kind"] for f in flags] == ["FAILURE_BURST"]
    assert "10 of 13" in flags[0]["reason"]
    flagged_score = await trust_of(network.services, agent)
    assert breakdown["penalties"]["fraud_flags"]["points"] == 15.0
    assert await _cached_score(network, agent) == flagged_score

    # the operator sees it, with its reason, and clears it
    assert (await network.http.get("/v1/admin/fraud")).status_code == 401
    wrong = await network.http.get("/v1/admin/fraud", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 403
    listed = (await network.http.get("/v1/admin/fraud", headers=ADMIN)).json()
    entry = next(item for item in listed["items"] if item["agent_id"] == agent)
    assert entry["flags"][0]["reason"] == flags[0]["reason"]
    flag_id = flags[0]["flag_id"]
    cleared = await network.http.post(
        f"/v1/admin/fraud/{flag_id}/clear", json={"reason": "provider outage"}, headers=ADMIN
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["cleared_reason"] == "provider outage"
    restored = await trust_of(network.services, agent)
    assert restored == flagged_score + 15.0
    assert await _cached_score(network, agent) == restored
    assert (await records_of(network.services, agent))[-1]["reason"] == "flag_cleared"

    again = await network.http.post(
        f"/v1/admin/fraud/{flag_id}/clear", json={"reason": "twice"}, headers=ADMIN
    )
    assert again.status_code == 409
    assert again.json()["code"] == "FRAUD_FLAG_CLEARED"
    missing = await network.http.post(
        "/v1/admin/fraud/999999/clear", json={"reason": "?"}, headers=ADMIN
    )
    assert missing.status_code == 404
    assert missing.json()["code"] == "FRAUD_FLAG_NOT_FOUND"
    remaining = (await network.http.get("/v1/admin/fraud", headers=ADMIN)).json()
    assert agent not in [item["agent_id"] for item in remaining["items"]]
    everything = (
        await network.http.get("/v1/admin/fraud", params={"include_cleared": True}, headers=ADMIN)
    ).json()
    assert agent in [item["agent_id"] for item in everything["items"]]


async def test_self_dealing_work_is_flagged(network: TrustNetwork) -> None:
    owner = "0x52908400098527886E0F7030069857D2E4169EE7"
    seller, _ = await network.register("Seller", owner_address=owner)
    async with network.services.db.acquire() as conn:
        buyer = await insert_agent(conn, owner=owner)
    await attempt(network.services, seller, await _work(network, seller, buyer), outcome="success")
    breakdown = (await network.http.get(f"/v1/agents/{seller}/trust")).json()
    assert [f["kind"] for f in breakdown["fraud_flags"]] == ["SELF_DEALING"]
    assert breakdown["fraud_flags"][0]["evidence"]["buyer_agent_id"] == buyer
    assert breakdown["trust_score"] < 50.0


async def test_owner_proof_with_eip191_signature(network: TrustNetwork) -> None:
    owner = Account.create()
    agent, auth = await network.register("Owned", owner_address=owner.address)
    _, other_auth = await network.register("Other")
    challenge = (await network.http.get(f"/v1/agents/{agent}/owner-proof")).json()
    assert challenge["proof"] is None
    message = challenge["message"]
    assert agent in message and owner.address in message

    impostor = Account.create()
    forged = Account.sign_message(encode_defunct(text=message), impostor.key).signature.hex()
    refused = await network.http.put(
        f"/v1/agents/{agent}/owner-proof", json={"signature": forged}, headers=auth
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "OWNER_PROOF_INVALID"
    garbage = await network.http.put(
        f"/v1/agents/{agent}/owner-proof", json={"signature": "0x1234"}, headers=auth
    )
    assert garbage.status_code == 422
    assert garbage.json()["field"] == "/signature"

    signature = Account.sign_message(encode_defunct(text=message), owner.key).signature.hex()
    not_mine = await network.http.put(
        f"/v1/agents/{agent}/owner-proof", json={"signature": signature}, headers=other_auth
    )
    assert not_mine.status_code == 403
    proven = await network.http.put(
        f"/v1/agents/{agent}/owner-proof", json={"signature": signature}, headers=auth
    )
    assert proven.status_code == 200, proven.text
    assert proven.json()["current"] is True
    assert await trust_of(network.services, agent) == 55.0
    assert await _cached_score(network, agent) == 55.0
    records = await records_of(network.services, agent)
    assert records[-1]["reason"] == "owner_proof"
    assert records[-1]["verified_signer"] is True
    signer = (await network.http.get(f"/v1/agents/{agent}/trust")).json()["components"]["signer"]
    assert signer["inputs"]["owner_address_proven"] is True

    no_owner, no_owner_auth = await network.register("Anonymous")
    missing = await network.http.put(
        f"/v1/agents/{no_owner}/owner-proof", json={"signature": signature}, headers=no_owner_auth
    )
    assert missing.status_code == 409
    assert missing.json()["code"] == "OWNER_ADDRESS_MISSING"


async def test_breakdown_and_history(network: TrustNetwork) -> None:
    agent, _ = await network.register("Worker")
    for _ in range(3):
        await attempt(network.services, agent, await _work(network, agent), outcome="success")
    breakdown = (await network.http.get(f"/v1/agents/{agent}/trust")).json()
    assert breakdown["trust_score"] == breakdown["computed_score"]
    assert set(breakdown["components"]) == {"reputation", "delivery", "uptime", "latency", "signer"}
    assert sum(c["weight"] for c in breakdown["components"].values()) == pytest.approx(1.0)
    assert breakdown["history"] is None
    assert breakdown["selection_threshold"] == 25.0

    history = (
        await network.http.get(f"/v1/agents/{agent}/trust", params={"history": 1, "limit": 2})
    ).json()["history"]
    assert len(history["items"]) == 2
    assert history["items"][0]["record_id"] > history["items"][1]["record_id"]
    rest = (
        await network.http.get(
            f"/v1/agents/{agent}/trust",
            params={"history": 1, "limit": 2, "cursor": history["next_cursor"]},
        )
    ).json()["history"]
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert (await network.http.get(f"/v1/agents/{'cd' * 32}/trust")).status_code == 404


async def test_rate_limited_agents_lose_points_for_a_day(network: TrustNetwork) -> None:
    agent, _ = await network.register("Noisy")
    services = network.services
    await events.note_rate_limited(services.db, services.cache, agent)
    await events.note_rate_limited(services.db, services.cache, agent)  # deduplicated
    score = await events.recompute_and_publish(services.db, services.cache, agent, reason="check")
    assert float(score) == 45.0
    assert (await records_of(services, agent))[-1]["rate_limited"] is True
    async with services.db.acquire() as conn:
        times = await conn.fetchval(
            "SELECT times_limited FROM trust_rate_limits WHERE agent_id = $1", agent
        )
        assert times == 1
        await conn.execute(
            "UPDATE trust_rate_limits SET last_limited_at = NOW() - INTERVAL '25 hours'"
        )
    again = await events.recompute_and_publish(services.db, services.cache, agent, reason="check")
    assert float(again) == 50.0


async def test_an_agent_refused_with_429_is_noted_as_rate_limited(settings: Settings) -> None:
    limited = quiet_settings(
        settings, rate_limits="write=none,read=2/minute,auth=none,register=none,heartbeat=none"
    )
    app = create_app(limited)
    async with app.router.lifespan_context(app), open_services(limited) as services:
        net = TrustNetwork(app, services)
        try:
            agent, auth = await net.register("Noisy")
            codes = [
                (await net.http.get(f"/v1/agents/{agent}", headers=auth)).status_code
                for _ in range(3)
            ]
            assert codes == [200, 200, 429]
            trust = await net.http.get(f"/v1/agents/{agent}/trust")  # anonymous: its own limit
            assert trust.status_code == 200, trust.text
            penalty = trust.json()["penalties"]["rate_limited"]
            assert penalty["rate_limited"] is True and penalty["points"] > 0
        finally:
            await net.close()
