"""When things go wrong: retries with backoff, failover, refusals, bad outputs, deadlines,
budgets, cancellation, missing agents and long jobs answered with 202."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from dukenet import crypto
from tests.integration.test_orchestration_support import (
    Network,
    add_agent,
    answer,
    balances,
    network,
    sequence,
    status,
    wait_for,
)

__all__ = ["network"]
pytestmark = pytest.mark.timeout(60)


def single(capability: str = "x.run", **task: Any) -> dict[str, Any]:
    return {"name": "t", "subtasks": [{"name": "only", "capability": capability}], **task}


async def test_retries_with_backoff_then_succeeds(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.run", sequence(status(503), status(500), answer({"ok": True})))
    await add_agent(network.services, agent.url, [{"name": "x.run"}])
    network.start_worker()
    response = await network.submit(single(max_retries=3, backoff_strategy="exponential"))
    task = await network.wait_done(response.json()["task_id"])

    assert task["status"] == "COMPLETED"
    assert task["current_retries"] == 2
    calls = agent.calls_of("x.run")
    assert [c.attempt for c in calls] == [1, 2, 3]
    # exponential from 0.05 s: about 0.05 then 0.1 (±20 %) between the attempts
    assert calls[1].at - calls[0].at >= 0.04
    assert calls[2].at - calls[1].at >= 0.08
    subtask = (await network.subtasks(task["task_id"]))["only"]
    assert (subtask["status"], subtask["attempt"], subtask["failures"]) == ("COMPLETED", 3, 2)
    retries = [e for e in await network.events(task["task_id"]) if e["event_type"] == "RETRYING"]
    assert [e["error_code"] for e in retries] == ["AGENT_ERROR", "AGENT_ERROR"]
    assert [e["metadata"]["attempt"] for e in retries] == [1, 2]


async def test_a_retry_fails_over_to_another_agent(network: Network) -> None:
    flaky, steady = await network.agent(), await network.agent()
    flaky.on("x.run", status(503))
    steady.on("x.run", answer("done"))
    flaky_id = await add_agent(network.services, flaky.url, [{"name": "x.run"}], trust="95")
    steady_id = await add_agent(network.services, steady.url, [{"name": "x.run"}], trust="60")
    network.start_worker()
    response = await network.submit(single(max_retries=2))
    task = await network.wait_done(response.json()["task_id"])

    assert task["status"] == "COMPLETED"
    assert len(flaky.calls) == 1 and len(steady.calls) == 1
    assert (await network.subtasks(task["task_id"]))["only"]["assigned_agent_id"] == steady_id
    assigned = [
        e["metadata"]["agent_id"]
        for e in await network.events(task["task_id"])
        if e["event_type"] == "ASSIGNED"
    ]
    assert assigned == [flaky_id, steady_id]


async def test_a_client_error_is_not_retried_and_fails_the_task(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.bad", status(400, "your input makes no sense"))
    agent.on("x.slow", answer("late", delay=5))
    await add_agent(network.services, agent.url, [{"name": "x.bad"}, {"name": "x.slow"}])
    network.start_worker()
    spec = {
        "name": "t",
        "max_retries": 5,
        "subtasks": [
            {"name": "bad", "capability": "x.bad"},
            {"name": "slow", "capability": "x.slow"},
            {"name": "after", "capability": "x.slow", "depends_on": ["bad"]},
        ],
    }
    response = await network.submit(spec)
    task = await network.wait_done(response.json()["task_id"])

    assert (task["status"], task["error_code"]) == ("FAILED", "SUBTASK_FAILED")
    assert "your input makes no sense" in task["error"]
    assert len(agent.calls_of("x.bad")) == 1
    subtasks = await network.subtasks(task["task_id"])
    assert (subtasks["bad"]["status"], subtasks["bad"]["error_code"]) == (
        "FAILED",
        "AGENT_REJECTED",
    )
    assert subtasks["slow"]["status"] == "CANCELLED"
    assert subtasks["after"]["status"] == "CANCELLED"
    assert task["subtask_counts"]["cancelled"] == 2


async def test_output_breaking_the_capability_schema_is_a_failed_attempt(
    network: Network,
) -> None:
    agent = await network.agent()
    agent.on("x.run", answer({"wrong": 1}))
    await add_agent(
        network.services,
        agent.url,
        [
            {
                "name": "x.run",
                "price": "0.5000",
                "output_schema": {"type": "object", "required": ["summary"]},
            }
        ],
    )
    network.start_worker()
    response = await network.submit(single(max_retries=1))
    task = await network.wait_done(response.json()["task_id"])

    assert (task["status"], task["error_code"]) == ("FAILED", "SUBTASK_FAILED")
    subtask = (await network.subtasks(task["task_id"]))["only"]
    assert subtask["error_code"] == "OUTPUT_SCHEMA_VIOLATION"
    assert "summary" in subtask["error"]
    assert len(agent.calls) == 2  # retried once, then out of retries
    # Nothing was paid: both holds went back.
    assert await balances(network.services, network.creator.agent_id) == (
        Decimal("100.0000"),
        Decimal("0.0000"),
    )
    assert task["actual_cost"] == "0.0000"


async def test_a_task_output_breaking_its_schema_fails_the_task(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.run", answer({"n": "three"}))
    await add_agent(network.services, agent.url, [{"name": "x.run"}])
    network.start_worker()
    spec = single(output_schema={"type": "object", "properties": {"n": {"type": "integer"}}})
    spec["subtasks"][0]["output_mapping"] = {"/n": "/n"}
    task = await network.wait_done((await network.submit(spec)).json()["task_id"])
    assert (task["status"], task["error_code"]) == ("FAILED", "OUTPUT_SCHEMA_VIOLATION")
    assert task["actual_output"] == {"n": "three"}
    assert task["audit_cid"]


async def test_the_deadline_fails_the_task_and_cancels_the_rest(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.slow", answer("never in time", delay=10))
    await add_agent(network.services, agent.url, [{"name": "x.slow", "price": "0.2500"}])
    network.start_worker()
    deadline = (await network.services.db.primary.fetchval("SELECT NOW()")).timestamp() + 1.5
    from datetime import UTC, datetime

    spec = {
        "name": "t",
        "deadline": datetime.fromtimestamp(deadline, UTC).isoformat(),
        "subtasks": [
            {"name": "first", "capability": "x.slow"},
            {"name": "second", "capability": "x.slow", "depends_on": ["first"]},
        ],
    }
    response = await network.submit(spec)
    assert response.status_code == 201, response.text
    task = await network.wait_done(response.json()["task_id"], within=10)

    assert (task["status"], task["error_code"]) == ("FAILED", "DEADLINE_EXCEEDED")
    subtasks = await network.subtasks(task["task_id"])
    assert subtasks["first"]["status"] in ("FAILED", "CANCELLED")
    assert subtasks["second"]["status"] == "CANCELLED"
    assert datetime.fromisoformat(task["completed_at"]).timestamp() < deadline + 1.5
    # The hold of the attempt that ran out of time went back to the creator.
    assert (await balances(network.services, network.creator.agent_id))[1] == 0


async def test_runtime_selection_never_commits_beyond_the_cost_limit(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.run", answer("ok", delay=0.3))
    premium = await add_agent(
        network.services, agent.url, [{"name": "x.run", "price": "0.6000"}], trust="95"
    )
    budget = await add_agent(
        network.services, agent.url, [{"name": "x.run", "price": "0.4000"}], trust="50"
    )
    network.start_worker()
    spec = {
        "name": "t",
        "cost_limit": "1.0000",
        "subtasks": [{"name": "a", "capability": "x.run"}, {"name": "b", "capability": "x.run"}],
    }
    response = await network.submit(spec)
    assert response.json()["estimated_cost"] == "0.8000"
    task = await network.wait_done(response.json()["task_id"])

    assert task["status"] == "COMPLETED"
    assert task["actual_cost"] == "1.0000"
    chosen = sorted(
        s["assigned_agent_id"] for s in (await network.subtasks(task["task_id"])).values()
    )
    assert chosen == sorted([premium, budget])

    refused = await network.submit({**spec, "cost_limit": "0.7999"})
    assert refused.status_code == 422
    problem = refused.json()
    assert (problem["code"], problem["field"]) == ("COST_LIMIT_EXCEEDED", "/cost_limit")
    assert problem["estimated_cost"] == "0.8000"


async def test_cancelling_mid_run_stops_everything_and_returns_the_holds(
    network: Network,
) -> None:
    agent = await network.agent()
    agent.on("x.slow", answer("late", delay=3))
    await add_agent(network.services, agent.url, [{"name": "x.slow", "price": "1.0000"}])
    network.start_worker()
    spec = {
        "name": "t",
        "subtasks": [
            {"name": "a", "capability": "x.slow"},
            {"name": "b", "capability": "x.slow"},
            {"name": "c", "capability": "x.slow", "depends_on": ["a", "b"]},
        ],
    }
    task_id = (await network.submit(spec)).json()["task_id"]

    async def running() -> bool:
        return len(agent.calls) == 2

    await wait_for(running)
    assert (await balances(network.services, network.creator.agent_id))[1] == Decimal("2.0000")
    response = await network.http.post(f"/v1/tasks/{task_id}/cancel", headers=network.auth)
    assert response.status_code == 200, response.text
    task = response.json()
    assert (task["status"], task["error_code"]) == ("CANCELLED", "CANCELLED")
    assert {s["status"] for s in (await network.subtasks(task_id)).values()} == {"CANCELLED"}
    assert await balances(network.services, network.creator.agent_id) == (
        Decimal("100.0000"),
        Decimal("0.0000"),
    )
    again = await network.http.post(f"/v1/tasks/{task_id}/cancel", headers=network.auth)
    assert (again.status_code, again.json()["code"]) == (409, "TASK_FINISHED")
    await asyncio.sleep(3.5)  # the agents' late answers change nothing
    assert len(agent.calls) == 2
    assert (await network.task(task_id))["status"] == "CANCELLED"
    assert (await balances(network.services, network.creator.agent_id))[0] == Decimal("100.0000")


async def test_no_eligible_agent_at_run_time_is_retried_until_one_appears(
    network: Network,
) -> None:
    agent = await network.agent()
    agent.on("x.run", answer("finally"))
    agent_id = await add_agent(network.services, agent.url, [{"name": "x.run"}])
    response = await network.submit(single(deadline="2099-01-01T00:00:00Z", max_retries=0))
    task_id = response.json()["task_id"]
    async with network.services.db.acquire() as conn:  # the agent goes quiet
        await conn.execute(
            "UPDATE agents SET last_heartbeat = NOW() - interval '1 hour' WHERE agent_id = $1",
            agent_id,
        )
    network.start_worker()

    async def deferred_twice() -> bool:
        events = await network.events(task_id)
        return sum(e["error_code"] == "NO_ELIGIBLE_AGENT" for e in events) >= 2

    await wait_for(deferred_twice)
    assert agent.calls == []
    async with network.services.db.acquire() as conn:  # it heartbeats again
        await conn.execute("UPDATE agents SET last_heartbeat = NOW() WHERE agent_id = $1", agent_id)
    task = await network.wait_done(task_id)
    assert task["status"] == "COMPLETED"  # max_retries 0: waiting for an agent is not a retry


async def test_no_eligible_agent_without_deadline_uses_up_the_retries(network: Network) -> None:
    agent = await network.agent()
    agent_id = await add_agent(network.services, agent.url, [{"name": "x.run"}])
    task_id = (await network.submit(single(max_retries=1))).json()["task_id"]
    async with network.services.db.acquire() as conn:
        await conn.execute("UPDATE agents SET status = 'SUSPENDED' WHERE agent_id = $1", agent_id)
    network.start_worker()
    task = await network.wait_done(task_id)
    assert (task["status"], task["error_code"]) == ("FAILED", "SUBTASK_FAILED")
    subtask = (await network.subtasks(task_id))["only"]
    assert subtask["error_code"] == "NO_ELIGIBLE_AGENT"


async def test_long_jobs_answer_202_and_post_their_result(network: Network) -> None:
    key = crypto.generate_private_key()
    agent = await network.agent()

    async def accepted(payload: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"accepted": True}, status=202)

    agent.on("x.long", accepted)
    await add_agent(
        network.services,
        agent.url,
        [
            {
                "name": "x.long",
                "price": "0.1000",
                "latency_p99_ms": 20_000,
                "output_schema": {"type": "object", "required": ["report"]},
            }
        ],
        key=key,
    )
    network.start_worker()
    task_id = (await network.submit(single("x.long", max_retries=1))).json()["task_id"]

    async def called() -> bool:
        return len(agent.calls) == 1

    await wait_for(called)
    call = agent.calls[0]
    await asyncio.sleep(0.2)  # the worker records the acceptance
    me = network.client_for(key)
    outsider = network.client_for(crypto.generate_private_key())
    await outsider.register("Outsider")
    with pytest.raises(Exception) as forbidden:
        await outsider.post_subtask_result(call.subtask_id, attempt=1, output={"report": "x"})
    assert getattr(forbidden.value, "status", None) == 403
    with pytest.raises(Exception) as stale:
        await me.post_subtask_result(call.subtask_id, attempt=7, output={"report": "x"})
    assert getattr(stale.value, "status", None) == 409
    result = await me.post_subtask_result(
        call.subtask_id, attempt=1, output={"report": "done"}, cost="0.0400"
    )
    assert result["outcome"] == "COMPLETED"
    task = await network.wait_done(task_id)
    assert (task["status"], task["actual_cost"]) == ("COMPLETED", "0.0400")
    ignored = [e for e in await network.events(task_id) if e["event_type"] == "IGNORED"]
    assert len(ignored) == 1 and ignored[0]["metadata"]["attempt"] == 7
    assert (await balances(network.services, network.creator.agent_id))[0] == Decimal("99.9600")


async def test_a_long_job_without_a_result_times_out_and_is_retried(network: Network) -> None:
    agent = await network.agent()

    async def accepted(payload: dict[str, Any]) -> web.StreamResponse:
        return web.json_response({"accepted": True}, status=202)

    agent.on("x.long", sequence(accepted, answer({"report": "second time lucky"})))
    await add_agent(network.services, agent.url, [{"name": "x.long", "latency_p99_ms": 100}])
    network.start_worker()
    task_id = (await network.submit(single("x.long", max_retries=2))).json()["task_id"]
    task = await network.wait_done(task_id)
    assert task["status"] == "COMPLETED"
    assert [c.attempt for c in agent.calls] == [1, 2]
    timeouts = [e for e in await network.events(task_id) if e["event_type"] == "TIMEOUT"]
    assert [e["error_code"] for e in timeouts] == ["ATTEMPT_TIMEOUT"]
    assert "posted no result" in timeouts[0]["message"]
