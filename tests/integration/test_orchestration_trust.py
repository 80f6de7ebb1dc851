"""Trust and orchestration together: agents below the selection threshold get no work (but
stay searchable), every finished attempt moves the agent's trust right after its commit
(record, score, cached agent; queued in the outcome's transaction, so an attempt whose
process died before recording it is recorded later), and a rating of the finished task
lands in the audit trail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dukenet.orchestration import feedback
from dukenet.orchestration.worker import Worker
from tests.integration.test_orchestration_support import (
    Network,
    add_agent,
    answer,
    network,
    sequence,
    status,
    wait_for,
)

__all__ = ["network"]
pytestmark = pytest.mark.timeout(60)


def single(capability: str = "x.run", **task: Any) -> dict[str, Any]:
    """A task of one subtask."""
    return {"name": "t", **task, "subtasks": [{"name": "only", "capability": capability}]}


async def queued(network: Network) -> int:
    """Finished attempts whose trust is not recorded yet."""
    async with network.services.db.acquire() as conn:
        count: int = await conn.fetchval("SELECT COUNT(*) FROM trust_feedback")
    return count


async def trust_records(network: Network, agent_id: str) -> list[dict[str, Any]]:
    """The agent's trust records, oldest first, once every queued attempt is recorded (the
    queue rows go in the transaction that records them)."""

    async def recorded() -> bool:
        return await queued(network) == 0

    await wait_for(recorded, within=10)
    async with network.services.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM trust_records WHERE agent_id = $1 ORDER BY record_id", agent_id
        )
    return [dict(row) for row in rows]


async def test_an_agent_below_the_threshold_gets_no_work_but_stays_searchable(
    network: Network,
) -> None:
    threshold = float(network.settings.trust_selection_threshold)
    shady = await network.agent()
    shady.on("x.shady", answer("should not be called"))
    shady_id = await add_agent(
        network.services, shady.url, [{"name": "x.shady"}], trust=str(threshold - 1)
    )

    response = await network.submit(single("x.shady"))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "NO_ELIGIBLE_AGENT"

    found = await network.http.get(
        "/v1/search/capabilities", params={"name": "x.shady", "min_trust": 0}
    )
    assert found.status_code == 200, found.text
    assert [hit["agent"]["agent_id"] for hit in found.json()["items"]] == [shady_id]


async def test_with_two_agents_the_low_trust_one_is_skipped(network: Network) -> None:
    threshold = float(network.settings.trust_selection_threshold)
    low, trusted = await network.agent(), await network.agent()
    low.on("x.run", answer("from the low-trust agent"))
    trusted.on("x.run", sequence(status(503), answer("from the trusted agent")))
    await add_agent(network.services, low.url, [{"name": "x.run"}], trust=str(threshold - 5))
    trusted_id = await add_agent(network.services, trusted.url, [{"name": "x.run"}], trust="60")
    network.start_worker()
    response = await network.submit(single(max_retries=2))
    task = await network.wait_done(response.json()["task_id"])

    # The retry would fail over to another eligible agent; the low-trust one is not one.
    assert task["status"] == "COMPLETED"
    assert (await network.subtasks(task["task_id"]))["only"]["assigned_agent_id"] == trusted_id
    assert low.calls == [] and len(trusted.calls) == 2


async def test_a_completed_attempt_adds_a_trust_record_and_its_rating_is_audited(
    network: Network,
) -> None:
    agent = await network.agent()
    agent.on("x.run", answer("done"))
    agent_id = await add_agent(network.services, agent.url, [{"name": "x.run"}])
    network.start_worker()
    response = await network.submit(single())
    task = await network.wait_done(response.json()["task_id"])
    assert task["status"] == "COMPLETED"

    records = await trust_records(network, agent_id)
    assert [r["reason"] for r in records] == ["attempt"]
    assert records[-1]["successful_transactions"] == 1
    assert records[-1]["failed_transactions"] == 0
    assert records[-1]["avg_latency_ms"] is not None  # measured by the invoker
    async with network.services.db.acquire() as conn:
        attempt = await conn.fetchrow(
            "SELECT outcome, latency_ms, declared_p99_ms FROM agent_attempts WHERE agent_id = $1",
            agent_id,
        )
    assert attempt is not None
    assert (attempt["outcome"], attempt["declared_p99_ms"]) == ("success", 500)

    # The creator rates the agent: the rating is an audit record linking the execution.
    rated = await network.http.post(
        f"/v1/agents/{agent_id}/ratings",
        json={"task_id": task["task_id"], "rating": 4.5, "review": "good"},
        headers=network.auth,
    )
    assert rated.status_code == 201, rated.text
    rating = rated.json()
    path = f"/dukenet/agents/{agent_id}/ratings/{rating['rating_id']}"
    resolved = await network.http.get("/v1/audit/resolve", params={"path": path})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["cid"] == rating["audit_cid"]
    record = (await network.http.get(f"/v1/audit/records/{rating['audit_cid']}")).json()
    assert record["type"] == "dukenet/rating"
    assert record["rating"]["rating"] == 4.5
    assert record["rating"]["rater_agent_id"] == network.creator.agent_id
    assert record["rating"]["task_id"] == task["task_id"]
    assert record["task_execution"] == {"/": task["audit_cid"]}


async def test_a_failing_agent_loses_trust_and_its_cached_resource_shows_it(
    network: Network,
) -> None:
    agent = await network.agent()
    agent.on("x.run", status(503))
    agent_id = await add_agent(network.services, agent.url, [{"name": "x.run"}], trust="50")
    before = (await network.http.get(f"/v1/agents/{agent_id}")).json()  # fills agent:{id}
    assert before["trust_score"] == 50.0
    network.start_worker()
    response = await network.submit(single(max_retries=2))
    task = await network.wait_done(response.json()["task_id"])
    assert task["status"] == "FAILED"

    records = await trust_records(network, agent_id)
    # One recomputation per drain: failures queued together are recomputed together.
    assert 1 <= len(records) <= 3 and {r["reason"] for r in records} == {"attempt"}
    assert records[-1]["failed_transactions"] == 3
    assert records[-1]["successful_transactions"] == 0
    score = float(records[-1]["trust_score"])
    assert score < 50.0
    after = (await network.http.get(f"/v1/agents/{agent_id}")).json()
    assert after["trust_score"] == score


async def test_failures_the_agent_did_not_cause_do_not_count_against_it(
    network: Network,
) -> None:
    agent = await network.agent()
    agent.on("x.run", status(400, "not for me"))  # a rejected input: not the agent's fault
    agent_id = await add_agent(network.services, agent.url, [{"name": "x.run"}])
    network.start_worker()
    response = await network.submit(single())
    task = await network.wait_done(response.json()["task_id"])
    assert task["status"] == "FAILED"

    records = await trust_records(network, agent_id)
    assert [r["reason"] for r in records] == ["attempt"]
    assert records[-1]["failed_transactions"] == 0


async def _queue_a_lost_failure(
    network: Network, subtask_id: str, agent_id: str, attempt: int = 2
) -> datetime:
    """Queue a later, failed attempt of ``subtask_id`` as a process that died after its
    commit would have left it (nobody woken to record it); return when it finished."""
    finished_at = datetime.now(UTC) - timedelta(seconds=30)
    async with network.services.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO trust_feedback (subtask_id, attempt, agent_id, capability_id, outcome,"
            " caused_by_agent, latency_ms, finished_at)"
            " VALUES ($1, $2, $3, NULL, 'failure', true, 40, $4)",
            uuid.UUID(subtask_id),
            attempt,
            agent_id,
            finished_at,
        )
    return finished_at


def _failure(subtask_id: str, agent_id: str, attempt: int = 2) -> feedback.FinishedAttempt:
    return feedback.FinishedAttempt(
        agent_id, None, uuid.UUID(subtask_id), attempt, "failure", True, 40
    )


async def _attempts(network: Network, agent_id: str) -> dict[int, datetime]:
    async with network.services.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT attempt, finished_at FROM agent_attempts WHERE agent_id = $1", agent_id
        )
    return {row["attempt"]: row["finished_at"] for row in rows}


async def _one_recorded_attempt(network: Network) -> tuple[Worker, str, str]:
    """A worker, an agent and the subtask of a task it completed, its trust recorded."""
    agent = await network.agent()
    agent.on("x.run", answer("done"))
    agent_id = await add_agent(network.services, agent.url, [{"name": "x.run"}])
    worker = network.start_worker()
    task = await network.wait_done((await network.submit(single())).json()["task_id"])
    assert len(await trust_records(network, agent_id)) == 1
    subtask_id = (await network.subtasks(task["task_id"]))["only"]["subtask_id"]
    return worker, agent_id, subtask_id


async def test_an_attempt_left_queued_by_a_dead_process_is_recorded_by_a_worker(
    network: Network,
) -> None:
    _, agent_id, subtask_id = await _one_recorded_attempt(network)

    finished_at = await _queue_a_lost_failure(network, subtask_id, agent_id)
    records = await trust_records(network, agent_id)  # the feeder's poll takes it

    assert len(records) == 2
    assert records[-1]["failed_transactions"] == 1
    assert records[-1]["successful_transactions"] == 1
    assert (await _attempts(network, agent_id))[2] == finished_at  # weighed by when it ended


async def test_a_process_without_a_worker_records_its_attempts_right_after_its_commit(
    network: Network,
) -> None:
    """With no feeder to wake (an API process), the committing request records its own
    attempts; what another process queued is left for the workers' feeders."""
    worker, agent_id, subtask_id = await _one_recorded_attempt(network)
    await worker.feeder.stop()

    await _queue_a_lost_failure(network, subtask_id, agent_id, attempt=2)  # this request's
    await _queue_a_lost_failure(network, subtask_id, agent_id, attempt=3)  # another's
    await feedback.after_commit(network.services, [_failure(subtask_id, agent_id)])

    assert set(await _attempts(network, agent_id)) == {1, 2}
    assert await queued(network) == 1


async def test_an_unrecordable_attempt_costs_only_its_own_trust(network: Network) -> None:
    """An attempt trust cannot record (its subtask is gone) is skipped alone: the others
    drained with it are recorded, and the queue does not keep retrying it."""
    worker, agent_id, subtask_id = await _one_recorded_attempt(network)
    await worker.feeder.stop()

    gone = str(uuid.uuid4())  # no such subtask
    await _queue_a_lost_failure(network, subtask_id, agent_id)
    await _queue_a_lost_failure(network, gone, agent_id)
    await feedback.after_commit(
        network.services, [_failure(subtask_id, agent_id), _failure(gone, agent_id)]
    )

    assert await queued(network) == 0
    assert set(await _attempts(network, agent_id)) == {1, 2}
    assert (await trust_records(network, agent_id))[-1]["failed_transactions"] == 1
