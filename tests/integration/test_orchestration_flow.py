"""A task graph runs end to end on real agents: references are resolved from upstream
outputs, fan-out runs in parallel, fan-in waits for every parent, the output is assembled,
payments settle, and the execution log, live status and audit record tell the story."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest

from dukenet.orchestration import status as live_status
from tests.integration.test_orchestration_support import (
    ANY_OBJECT,
    Network,
    add_agent,
    answer,
    balances,
    network,
)

__all__ = ["network"]
pytestmark = pytest.mark.timeout(60)


async def test_fan_out_fan_in_resolves_references_and_assembles_output(network: Network) -> None:
    agent = await network.agent()
    agent.on("web.fetch", answer(lambda i: {"body": f"page at {i['url']}", "size": 11}))
    agent.on("text.summarize", answer(lambda i: {"summary": i["text"][:7]}, delay=0.2))
    agent.on("text.keywords", answer(lambda i: {"keywords": i["text"].split()[:2]}, delay=0.2))
    agent.on("text.join", answer(lambda i: {"brief": f"{i['summary']} | {i['keywords']}"}))
    seller = await add_agent(
        network.services,
        agent.url,
        [
            {"name": "web.fetch", "price": "0.0100"},
            {"name": "text.summarize", "price": "0.0200"},
            {"name": "text.keywords"},
            {"name": "text.join"},
        ],
    )
    network.start_worker()
    spec: dict[str, Any] = {
        "name": "brief",
        "priority": "HIGH",
        "cost_limit": "1.00",
        "tags": ["NLP"],
        "input_schema": {"type": "object", "required": ["url"]},
        "output_schema": {
            "type": "object",
            "required": ["brief", "size"],
            "properties": {"brief": {"type": "string"}, "size": {"type": "integer"}},
        },
        "input": {"url": "https://example.org"},
        "subtasks": [
            {
                "name": "fetch",
                "capability": "web.fetch",
                "input": {"url": {"$ref": "task#/url"}},
                "output_mapping": {"/size": "/size"},
            },
            {
                "name": "summarize",
                "capability": "text.summarize",
                "depends_on": ["fetch"],
                "input": {"text": {"$ref": "fetch#/body"}},
            },
            {
                "name": "keywords",
                "capability": "text.keywords",
                "depends_on": ["fetch"],
                "input": {"text": {"$ref": "fetch#/body"}},
            },
            {
                "name": "join",
                "capability": "text.join",
                "depends_on": ["summarize", "keywords"],
                "input": {
                    "summary": {"$ref": "summarize#/summary"},
                    "keywords": {"$ref": "keywords#/keywords/1"},
                },
                "output_mapping": {"/brief": "/brief"},
            },
        ],
    }
    response = await network.submit(spec)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["estimated_cost"] == "0.0300"
    assert created["status"] == "EXECUTING"
    task = await network.wait_done(created["task_id"])

    assert task["status"] == "COMPLETED", task
    assert task["actual_output"] == {"brief": "page at | at", "size": 11}
    assert task["actual_cost"] == "0.0300"
    assert task["audit_cid"].startswith("bafy")
    assert task["tags"] == ["nlp"]

    # References were resolved from the upstream outputs.
    inputs = {c.capability: c.input for c in agent.calls}
    assert inputs["web.fetch"] == {"url": "https://example.org"}
    assert inputs["text.summarize"] == {"text": "page at https://example.org"}
    assert inputs["text.join"] == {"summary": "page at", "keywords": "at"}
    # Fan-out ran in parallel; fan-in started only after both parents answered.
    summarize, keywords = agent.calls_of("text.summarize")[0], agent.calls_of("text.keywords")[0]
    join = agent.calls_of("text.join")[0]
    assert abs(summarize.at - keywords.at) < 0.15
    assert join.at >= max(summarize.at, keywords.at) + 0.19

    # Money: the creator paid 0.03, the seller got it minus the 2.5 % fee.
    assert await balances(network.services, network.creator.agent_id) == (
        Decimal("99.9700"),
        Decimal("0.0000"),
    )
    assert (await balances(network.services, seller))[0] == Decimal("0.0300") - Decimal(
        "0.0002"
    ) - Decimal("0.0005")

    # Log: every transition, in order, ending with the task's completion.
    events = await network.events(created["task_id"])
    kinds = [(e["event_type"], e["message"]) for e in events if e["subtask_id"] is None]
    assert [k for k, _ in kinds] == ["SUBMITTED", "STARTED", "COMPLETED"]
    per_subtask: dict[str, list[str]] = {}
    subtasks = await network.subtasks(created["task_id"])
    names = {s["subtask_id"]: name for name, s in subtasks.items()}
    for event in events:
        if event["subtask_id"]:
            per_subtask.setdefault(names[event["subtask_id"]], []).append(event["event_type"])
    for name in ("fetch", "summarize", "keywords", "join"):
        assert per_subtask[name] == ["READY", "ASSIGNED", "STARTED", "COMPLETED"], name
    assert [e["log_id"] for e in events] == sorted(e["log_id"] for e in events)

    # Live status: Redis, and rebuilt from PostgreSQL after the key is lost.
    response = await network.http.get(
        f"/v1/tasks/{created['task_id']}/status", headers=network.auth
    )
    cached = response.json()
    assert cached["status"] == "COMPLETED"
    assert cached["subtasks"]["completed"] == 4 and cached["progress"] == 1.0
    assert cached["actual_cost"] == "0.0300"
    await network.services.cache.delete(
        live_status.status_key(network.services.cache, created["task_id"])
    )
    rebuilt = (
        await network.http.get(f"/v1/tasks/{created['task_id']}/status", headers=network.auth)
    ).json()
    assert rebuilt == cached


async def test_many_independent_tasks_complete_exactly_once(network: Network) -> None:
    agent = await network.agent()
    agent.on("echo", answer(lambda i: i, delay=0.01))
    await add_agent(network.services, agent.url, [{"name": "echo", "input_schema": ANY_OBJECT}])
    network.start_worker(concurrency=16)
    network.start_worker(concurrency=16)
    responses = await asyncio.gather(
        *(
            network.submit(
                {
                    "name": f"t{i}",
                    "input": {"n": i},
                    "subtasks": [
                        {
                            "name": "e",
                            "capability": "echo",
                            "input": {"n": {"$ref": "task#/n"}},
                            "output_mapping": {"": ""},
                        }
                    ],
                }
            )
            for i in range(60)
        )
    )
    ids = [r.json()["task_id"] for r in responses]
    for i, task_id in enumerate(ids):
        task = await network.wait_done(task_id)
        assert task["status"] == "COMPLETED"
        assert task["actual_output"] == {"n": i}
    assert sorted(c.input["n"] for c in agent.calls) == list(range(60))


def _chain(i: int) -> dict[str, Any]:
    return {
        "name": f"chain {i}",
        "input": {"n": i},
        "subtasks": [
            {"name": "a", "capability": "echo", "input": {"$ref": "task#"}},
            {"name": "b", "capability": "echo", "depends_on": ["a"], "input": {"$ref": "a#"}},
            {
                "name": "c",
                "capability": "echo",
                "depends_on": ["b"],
                "input": {"$ref": "b#"},
                "output_mapping": {"": ""},
            },
        ],
    }


async def _transactions(network: Network, task_id: str) -> dict[tuple[str, str], int]:
    """(subtask name, event) -> the id of the transaction that wrote the log row."""
    async with network.services.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT s.name, l.event_type, l.xmin::text::bigint AS xid FROM task_execution_log l"
            " JOIN subtasks s ON s.subtask_id = l.subtask_id WHERE l.task_id = $1",
            uuid.UUID(task_id),
        )
    return {(r["name"], r["event_type"]): r["xid"] for r in rows}


async def test_a_dependent_is_claimed_by_the_commit_that_completed_its_parent(
    network: Network,
) -> None:
    """The recorder claims the subtask it made READY in that same transaction: the child's
    call needs no NOTIFY and no claim of its own, and runs once."""
    agent = await network.agent()
    agent.on("echo", answer(lambda i: i))
    await add_agent(network.services, agent.url, [{"name": "echo", "input_schema": ANY_OBJECT}])
    worker = network.start_worker(concurrency=4)
    ids = [(await network.submit(_chain(i))).json()["task_id"] for i in range(3)]
    for i, task_id in enumerate(ids):
        task = await network.wait_done(task_id)
        assert task["status"] == "COMPLETED", task
        assert task["actual_output"] == {"n": i}
        written = await _transactions(network, task_id)
        assert written[("b", "ASSIGNED")] == written[("a", "COMPLETED")]
        assert written[("c", "ASSIGNED")] == written[("b", "COMPLETED")]
    assert sorted(c.input["n"] for c in agent.calls) == sorted([0, 1, 2] * 3)
    assert worker._reserved == 0


async def test_without_free_slots_the_dependents_go_to_the_queue(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorder whose worker has no slot to spare leaves the dependents READY for any
    worker (NOTIFY): they are claimed by a claim of their own and still run once."""
    agent = await network.agent()
    agent.on("echo", answer(lambda i: i))
    await add_agent(network.services, agent.url, [{"name": "echo", "input_schema": ANY_OBJECT}])
    worker = network.start_worker(concurrency=4)
    monkeypatch.setattr(worker, "reserve", lambda wanted: 0)
    task_id = (await network.submit(_chain(7))).json()["task_id"]
    task = await network.wait_done(task_id)
    assert task["status"] == "COMPLETED", task
    assert task["actual_output"] == {"n": 7}
    written = await _transactions(network, task_id)
    assert written[("b", "ASSIGNED")] != written[("a", "COMPLETED")]
    assert [c.input["n"] for c in agent.calls] == [7, 7, 7]


async def test_what_a_recorder_claims_as_its_worker_stops_goes_back_to_ready(
    network: Network,
) -> None:
    """Dependents claimed in a transaction that commits after SIGTERM are not called by the
    stopping worker: they go back to READY (not counted as a failure), the reserved slots
    are freed, and another worker runs them once."""
    from dukenet.orchestration.claims import claim
    from dukenet.orchestration.engine import Context, transact
    from dukenet.orchestration.progress import Changes
    from dukenet.orchestration.worker import Worker
    from dukenet.store.postgres import Connection

    agent = await network.agent()
    agent.on("echo", answer(lambda i: i))
    await add_agent(network.services, agent.url, [{"name": "echo", "input_schema": ANY_OBJECT}])
    task_id = (
        await network.submit(
            {
                "name": "t",
                "input": {"n": 5},
                "subtasks": [
                    {
                        "name": "e",
                        "capability": "echo",
                        "input": {"$ref": "task#"},
                        "output_mapping": {"": ""},
                    }
                ],
            }
        )
    ).json()["task_id"]
    subtask_id = uuid.UUID((await network.subtasks(task_id))["e"]["subtask_id"])
    stopping = Worker(network.services, concurrency=2)
    assert stopping.reserve(5) == 2  # never more than the free slots
    context = Context.from_services(network.services)

    async def work(conn: Connection, changes: Changes) -> Any:
        return await claim(
            conn,
            context,
            changes,
            worker_id=stopping.worker_id,
            limit=2,
            lease_seconds=30,
            only=[subtask_id],
        )

    claimed = await transact(network.services, work)
    assert [a.subtask_id for a in claimed.assignments] == [subtask_id]
    stopping.stop()  # SIGTERM arrives before the recorder hands the claim over
    stopping.dispatched(claimed, 2)
    await asyncio.gather(*stopping._background)

    assert stopping._reserved == 0 and not stopping._running
    released = (await network.subtasks(task_id))["e"]
    assert released["status"] == "READY" and released["failures"] == 0
    assert agent.calls == []
    network.start_worker()
    task = await network.wait_done(task_id)
    assert task["status"] == "COMPLETED" and task["actual_output"] == {"n": 5}
    assert [c.input for c in agent.calls] == [{"n": 5}]


async def test_the_status_cache_keeps_the_newest_version_and_works_without_redis(
    network: Network,
) -> None:
    from uuid import UUID

    from dukenet.orchestration.progress import Snapshot
    from dukenet.store.cache import Cache

    agent = await network.agent()
    agent.on("echo", answer({"ok": True}))
    await add_agent(network.services, agent.url, [{"name": "echo"}])
    network.start_worker()
    task_id = (
        await network.submit({"name": "t", "subtasks": [{"name": "e", "capability": "echo"}]})
    ).json()["task_id"]
    done = await network.wait_done(task_id)
    assert done["status"] == "COMPLETED"
    cache = network.services.cache
    # Written to Redis right after the commit the API already shows: allow for that moment.
    for _ in range(100):
        current = await live_status.cached_status(cache, UUID(task_id))
        if current is not None and current["status"] == "COMPLETED":
            break
        await asyncio.sleep(0.01)
    assert current is not None and current["status"] == "COMPLETED"
    # A late write of an older version (a slower transaction) does not roll it back.
    stale = Snapshot(UUID(task_id), current["version"] - 1, {**current, "status": "EXECUTING"})
    await live_status.publish(cache, [stale])
    assert (await live_status.cached_status(cache, UUID(task_id)))["status"] == "COMPLETED"
    # Redis unreachable: writes are skipped, reads come from PostgreSQL.
    down = Cache.connect("redis://127.0.0.1:1/0", cache.prefix)
    try:
        await live_status.publish(down, [stale])
        rebuilt = await live_status.read_status(network.services.db, down, UUID(task_id))
    finally:
        await down.close()
    assert rebuilt["status"] == "COMPLETED" and rebuilt["subtasks"]["completed"] == 1
