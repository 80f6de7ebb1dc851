"""The task API: submission checks that need the database (agents, money, dependencies),
Idempotency-Key, ownership, listing, task dependencies and the live event stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import uvicorn

from dukenet.orchestration import claims
from tests.conftest import free_port
from tests.integration.test_orchestration_support import (
    Network,
    add_agent,
    answer,
    network,
    status,
    wait_for,
)

__all__ = ["network"]
pytestmark = pytest.mark.timeout(60)


def single(capability: str = "x.run", **task: Any) -> dict[str, Any]:
    return {"name": "t", "subtasks": [{"name": "only", "capability": capability}], **task}


async def problem(network: Network, spec: dict[str, Any]) -> dict[str, Any]:
    response = await network.submit(spec)
    assert response.status_code in (402, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    document: dict[str, Any] = response.json()
    document["status_code"] = response.status_code
    return document


async def test_submission_refuses_what_cannot_run_naming_the_field(network: Network) -> None:
    agent = await network.agent()
    await add_agent(
        network.services,
        agent.url,
        [
            {"name": "x.run", "input_schema": {"type": "object", "required": ["text"]}},
            {"name": "x.paid", "price": "500.0000"},
            {"name": "x.old", "deprecated": True},
        ],
        trust="70",
    )
    await add_agent(network.services, agent.url, [{"name": "x.stale"}], heartbeat_age=3600)
    await add_agent(network.services, agent.url, [{"name": "x.banned"}], status="SUSPENDED")

    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            single(input_schema={"type": "object", "required": ["url"]}, input={"u": 1}),
            "SCHEMA_INVALID",
            "/input",
        ),
        (single(input_schema={"type": "nonsense"}), "SCHEMA_INVALID", "/input_schema"),
        (single(deadline="2001-01-01T00:00:00Z"), "DEADLINE_PASSED", "/deadline"),
        (single("x.nobody"), "NO_ELIGIBLE_AGENT", "/subtasks/0/capability"),
        (single("x.old"), "NO_ELIGIBLE_AGENT", "/subtasks/0/capability"),
        (single("x.stale"), "NO_ELIGIBLE_AGENT", "/subtasks/0/capability"),
        (single("x.banned"), "NO_ELIGIBLE_AGENT", "/subtasks/0/capability"),
        (
            {"name": "t", "subtasks": [{"name": "a", "capability": "x.run", "input": {"t": 1}}]},
            "NO_ELIGIBLE_AGENT",
            "/subtasks/0/capability",
        ),
        (
            {
                "name": "t",
                "subtasks": [
                    {"name": "a", "capability": "x.run", "constraints": {"min_trust": 80}}
                ],
            },
            "NO_ELIGIBLE_AGENT",
            "/subtasks/0/capability",
        ),
        (
            {"name": "t", "subtasks": [{"name": "a", "capability": "x.run", "agent_id": "0" * 64}]},
            "NO_ELIGIBLE_AGENT",
            "/subtasks/0/agent_id",
        ),
        (single(dependencies=[str(uuid.uuid4())]), "DEPENDENCY_NOT_FOUND", "/dependencies/0"),
        (
            {
                "name": "t",
                "subtasks": [
                    {"name": "a", "capability": "x.run", "input": {"text": "x"}},
                    {"name": "b", "capability": "x.run", "depends_on": ["a", "zzz"]},
                ],
            },
            "INVALID_GRAPH",
            "/subtasks/1/depends_on/1",
        ),
        (
            {
                "name": "t",
                "subtasks": [
                    {"name": "a", "capability": "x.run", "input": {"text": "x"}},
                    {"name": "b", "capability": "x.run", "input": {"text": {"$ref": "a#/t"}}},
                ],
            },
            "INVALID_REFERENCE",
            "/subtasks/1/input/text/$ref",
        ),
        ({"name": "t", "subtasks": [{"name": "a"}]}, "VALIDATION_FAILED", "/subtasks/0/capability"),
    ]
    for spec, code, field in cases:
        found = await problem(network, spec)
        assert (found["code"], found["field"]) == (code, field), (spec, found)
    paid = await problem(network, single("x.paid"))
    assert (paid["status_code"], paid["code"]) == (402, "INSUFFICIENT_FUNDS")


async def test_idempotency_key_returns_the_first_task(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.run", answer("ok"))
    await add_agent(network.services, agent.url, [{"name": "x.run"}])
    spec = single(input={"n": 1})
    first = await network.submit(spec, **{"Idempotency-Key": "order-1"})
    again = await network.submit(spec, **{"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["task_id"] == again.json()["task_id"]
    assert again.headers["idempotent-replayed"] == "true"
    racing = await asyncio.gather(
        *(network.submit(spec, **{"Idempotency-Key": "order-2"}) for _ in range(5))
    )
    assert len({r.json()["task_id"] for r in racing}) == 1
    other = await network.submit(single(input={"n": 2}), **{"Idempotency-Key": "order-1"})
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    listed = await network.http.get("/v1/tasks", params={"limit": 100}, headers=network.auth)
    assert len(listed.json()["items"]) == 2


async def test_tasks_belong_to_their_creator(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.run", answer("ok"))
    await add_agent(network.services, agent.url, [{"name": "x.run"}])
    task_id = (await network.submit(single(tags=["Alpha", "beta"]))).json()["task_id"]
    from dukenet import crypto

    stranger = network.client_for(crypto.generate_private_key())
    await stranger.register("Stranger")
    token = await stranger.session_token()
    theirs = {"authorization": f"Bearer {token}"}
    for method, path in (
        ("GET", f"/v1/tasks/{task_id}"),
        ("GET", f"/v1/tasks/{task_id}/status"),
        ("GET", f"/v1/tasks/{task_id}/subtasks"),
        ("GET", f"/v1/tasks/{task_id}/events"),
        ("POST", f"/v1/tasks/{task_id}/cancel"),
    ):
        response = await network.http.request(method, path, headers=theirs)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "FORBIDDEN"
    missing = await network.http.get(f"/v1/tasks/{uuid.uuid4()}", headers=network.auth)
    assert (missing.status_code, missing.json()["code"]) == (404, "TASK_NOT_FOUND")
    anonymous = await network.http.get(f"/v1/tasks/{task_id}")
    assert anonymous.status_code == 401
    mine = await network.http.get("/v1/tasks", params={"tag": "alpha"}, headers=network.auth)
    assert [t["task_id"] for t in mine.json()["items"]] == [task_id]
    none = await network.http.get("/v1/tasks", params={"tag": "gamma"}, headers=network.auth)
    assert none.json()["items"] == []
    assert (await network.http.get("/v1/tasks", headers=theirs)).json()["items"] == []


async def test_list_pages_and_status_filter(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.run", answer("ok"))
    await add_agent(network.services, agent.url, [{"name": "x.run"}])
    ids = [(await network.submit(single(name=f"t{i}"))).json()["task_id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "status": "EXECUTING"}
        if cursor:
            params["cursor"] = cursor
        page = (await network.http.get("/v1/tasks", params=params, headers=network.auth)).json()
        seen += [t["task_id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    bad = await network.http.get("/v1/tasks", params={"cursor": "!!"}, headers=network.auth)
    assert bad.status_code == 422


async def test_a_task_waits_for_its_dependencies(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.run", answer(lambda i: {"v": i}, delay=0.4))
    # Slow enough that the dependent tasks below are submitted while it is still running.
    agent.on("x.fail", status(400, delay=1.0))
    await add_agent(network.services, agent.url, [{"name": "x.run"}, {"name": "x.fail"}])
    network.start_worker()
    first = (await network.submit(single(input={"n": 1}))).json()
    then = await network.submit(
        {
            "name": "then",
            "input": {"n": 2},
            "dependencies": [first["task_id"]],
            "subtasks": [{"name": "only", "capability": "x.run", "input": {"$ref": "task#/n"}}],
        }
    )
    assert then.json()["status"] == "PENDING"
    done = await network.wait_done(then.json()["task_id"])
    assert done["status"] == "COMPLETED"
    order = [c.task_id for c in agent.calls]
    assert order == [first["task_id"], then.json()["task_id"]]
    assert agent.calls[1].input == 2

    failing = (await network.submit(single("x.fail", max_retries=0))).json()
    waiting = (await network.submit(single(dependencies=[failing["task_id"]]))).json()
    chained = (await network.submit(single(dependencies=[waiting["task_id"]]))).json()
    for task_id in (waiting["task_id"], chained["task_id"]):
        task = await network.wait_done(task_id)
        assert (task["status"], task["error_code"]) == ("FAILED", "DEPENDENCY_FAILED")
        assert (await network.subtasks(task_id))["only"]["status"] == "CANCELLED"
    late = await problem(network, single(dependencies=[failing["task_id"]]))
    assert (late["code"], late["field"]) == ("DEPENDENCY_FAILED", "/dependencies/0")


async def test_events_stream_live_and_resume_after_the_last_id(network: Network) -> None:
    agent = await network.agent()
    agent.on("x.run", answer("ok", delay=0.3))
    await add_agent(network.services, agent.url, [{"name": "x.run"}])
    network.start_worker()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            network.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: _started(server))
        task_id = (
            await network.submit(
                {
                    "name": "chain",
                    "subtasks": [
                        {"name": "a", "capability": "x.run"},
                        {"name": "b", "capability": "x.run", "depends_on": ["a"]},
                        {"name": "c", "capability": "x.run", "depends_on": ["b"]},
                    ],
                }
            )
        ).json()["task_id"]
        url = f"http://127.0.0.1:{port}/v1/tasks/{task_id}/events"
        headers = {**network.auth, "accept": "text/event-stream"}
        first: list[dict[str, Any]] = []
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in _sse(response):
                first.append(event)
                if len(first) == 5:
                    break  # drop the connection mid-task
        assert (await network.task(task_id))["status"] == "EXECUTING"
        rest: list[dict[str, Any]] = []
        resume = {**headers, "last-event-id": str(first[-1]["log_id"])}
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http,
            http.stream("GET", url, headers=resume) as response,
        ):
            async for event in _sse(response):
                rest.append(event)
        assert rest[-1]["event_type"] == "COMPLETED" and rest[-1]["subtask_id"] is None
        everything = await network.events(task_id)
        assert [e["log_id"] for e in first + rest] == [e["log_id"] for e in everything]
        # A finished task's stream replays from the start and ends.
        async with httpx.AsyncClient(timeout=10) as http:
            replay = await http.get(url, headers=headers)
        assert replay.text.count("\nid: ") + replay.text.startswith("id: ") == len(everything)
    finally:
        server.should_exit = True
        await serving


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def _sse(response: httpx.Response) -> Any:
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            yield json.loads("\n".join(data))
            data = []


async def test_the_claim_query_stays_on_the_partial_index(network: Network) -> None:
    """With 100,000 finished subtasks in the table, claiming reads only claimable rows."""
    task_id = uuid.uuid4()
    async with network.services.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO tasks (task_id, name, created_by, status, input_schema, output_schema)"
            " VALUES ($1, 'old', $2, 'COMPLETED', '{}', '{}')",
            task_id,
            network.creator.agent_id,
        )
        await conn.execute(
            "INSERT INTO subtasks (parent_task_id, name, status, input, capability_name,"
            " completed_at) SELECT $1, 's' || g, 'COMPLETED', '{}', 'x.run', NOW()"
            " FROM generate_series(1, 100000) g",
            task_id,
        )
        # A realistic queue also holds work waiting for its backoff: with no READY row at
        # all, every index is equally cheap and the planner's choice is a coin toss.
        await conn.execute(
            "INSERT INTO subtasks (parent_task_id, name, status, input, capability_name,"
            " next_attempt_at) SELECT $1, 'w' || g, 'READY', '{}', 'x.run',"
            " NOW() + INTERVAL '1 day' FROM generate_series(1, 200) g",
            task_id,
        )
        await conn.execute("ANALYZE subtasks")
    async with network.services.db.acquire() as conn:
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) " + claims.CLAIM_READY, 8
        )
    text = json.dumps(plan)
    assert "idx_subtasks_claimable" in text
    assert "Seq Scan" not in text
    assert plan[0]["Execution Time"] < 50
