"""The CPU one W1 job cannot do without: what every system in W1 pays, what DukeNET pays
on top because the spec asks for it, and what that leaves for the rest.

Each part is timed alone, in this process, as CPU time per job (``time.process_time``):

* the agent call every W1 worker makes: an aiohttp POST of the W1 payload to the echo agent
  of ``bench_orchestration`` (16 at a time) and the JSON answer read back;
* the RFC 9421 signature of DukeNET's invocation (``httpsig.sign_request``: Ed25519 over the
  signature base, with the RFC 9530 Content-Digest);
* the signed audit record of a finished single-subtask task, shaped like a W1 task's (its
  row, its subtask and its seven log rows): ``records.seal``, i.e. DAG-CBOR, Ed25519, CID;
* the checks of the answer against the capability's ``output_schema`` and of the assembled
  output against the task's (compiled jsonschema validators, as the worker holds them).

When ``bench/results/orchestration.json`` holds a W1 run, the report sets these beside the
CPU per job each system used there (workers plus PostgreSQL backends): what is left of
pgqueuer's CPU after the agent call is its whole queue, and what is left of DukeNET's after
the call and the parts above is its queue, DAG, log rows, status cache and trust.

Run: ``.venv/bin/python bench/bench_job_budget.py`` (after ``bench_orchestration.py`` for
the comparison). Writes ``bench/results/job_budget.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_orchestration import PAYLOAD, EchoAgent
from bench.common import RESULTS, report
from dukenet import crypto, httpsig
from dukenet.audit.records import seal, task_execution_path
from dukenet.orchestration import schemas

CONCURRENCY = 16
OUTPUT_SCHEMA = {"type": "object"}  # the echo capability's, as bench_orchestration registers it


def per_call_us(function: Callable[[], object], count: int) -> float:
    """CPU microseconds per call of ``function`` (after a warm-up)."""
    for _ in range(min(200, count)):
        function()
    started = time.process_time()
    for _ in range(count):
        function()
    return (time.process_time() - started) * 1e6 / count


async def agent_call_us(agent: EchoAgent, count: int) -> float:
    """Client CPU per POST of the W1 payload to the echo agent, 16 calls at a time."""
    import aiohttp

    async with aiohttp.ClientSession() as session:

        async def call(i: int) -> None:
            payload = {**PAYLOAD, "n": i}
            async with session.post(agent.url, json=payload) as response:
                answer = await response.json()
            assert answer["output"] == payload

        for i in range(200):
            await call(i)
        slots = asyncio.Semaphore(CONCURRENCY)

        async def limited(i: int) -> None:
            async with slots:
                await call(i)

        started = time.process_time()
        await asyncio.gather(*(limited(i) for i in range(count)))
        return (time.process_time() - started) * 1e6 / count


def invocation() -> tuple[bytes, str]:
    """An invocation body as the worker sends it, and the agent's URL."""
    body = json.dumps(
        {
            "subtask_id": str(uuid.uuid4()),
            "task_id": str(uuid.uuid4()),
            "attempt": 1,
            "capability": "bench.echo",
            "input": PAYLOAD,
            "deadline": None,
        },
        separators=(",", ":"),
    ).encode()
    return body, "http://127.0.0.1:8765/invoke"


def execution_record() -> dict[str, Any]:
    """The fields of a W1 task's execution record, with the types the database returns."""
    now = datetime.now(UTC)
    task_id, subtask_id = uuid.uuid4(), uuid.uuid4()
    agent = "e" * 64
    base = {"agent_id": agent, "attempt": 1}

    def event(n: int, kind: str, message: str, sub: bool, **metadata: Any) -> dict[str, Any]:
        return {
            "log_id": n,
            "subtask_id": subtask_id if sub else None,
            "event_type": kind,
            "message": message,
            "error_code": None,
            "timestamp": now + timedelta(milliseconds=n),
            "metadata": metadata or None,
        }

    return {
        "type": "dukenet/task-execution",
        "version": 1,
        "timestamp": now.isoformat(),
        "path": task_execution_path(str(task_id)),
        "task_id": str(task_id),
        "task": {
            "task_id": task_id,
            "name": "bench 1",
            "description": None,
            "created_by": "c" * 64,
            "created_at": now,
            "status": "COMPLETED",
            "priority": "NORMAL",
            "deadline": None,
            "timeout_seconds": None,
            "started_at": now,
            "completed_at": now,
            "input_schema": {},
            "output_schema": {},
            "actual_input": PAYLOAD,
            "actual_output": {},
            "cost_limit": None,
            "estimated_cost": "0.0000",
            "actual_cost": "0.0000",
            "currency": "USD",
            "max_retries": 3,
            "current_retries": 0,
            "backoff_strategy": "exponential",
            "tags": [],
            "dependencies": [],
            "error_code": None,
            "error": None,
        },
        "subtasks": [
            {
                "subtask_id": subtask_id,
                "name": "echo",
                "capability_name": "bench.echo",
                "status": "COMPLETED",
                "assigned_agent_id": agent,
                "capability_id": "f" * 64,
                "attempt": 1,
                "failures": 0,
                "cost": "0.0000",
                "input": {"$ref": "task#"},
                "resolved_input": PAYLOAD,
                "output": PAYLOAD,
                "started_at": now,
                "completed_at": now,
                "error_code": None,
                "error": None,
                "depends_on": [],
                "transaction_id": None,
            }
        ],
        "log": [
            event(1, "SUBMITTED", "bench 1", False, dependencies=[], subtasks=1),
            event(2, "STARTED", "bench 1", False),
            event(3, "READY", "echo", True),
            event(4, "ASSIGNED", "echo → agent eeeeeeeeeeee", True, **base, price="0.0000"),
            event(5, "STARTED", "echo", True, **base, timeout_seconds=2.0, worker="host:1:a"),
            event(6, "COMPLETED", "echo", True, **base, cost="0.0000"),
            event(7, "COMPLETED", "every subtask completed", False),
        ],
    }


def measured_w1() -> dict[str, float]:
    """CPU ms per job (workers + PostgreSQL) of each system in the last W1 run, if any."""
    path = RESULTS / "orchestration.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text()).get("w1") or []
    return {
        row["system"]: row["worker_cpu_ms_per_job"] + row["extra"]["database_cpu_ms_per_job"]
        for row in rows
        if "worker_cpu_ms_per_job" in row
    }


async def main(args: argparse.Namespace) -> None:
    key = crypto.generate_private_key()
    body, url = invocation()
    headers = {"Content-Type": "application/json"}
    record = execution_record()
    answer = {"output": PAYLOAD}

    def sign() -> object:
        return httpsig.sign_request(
            method="POST", url=url, headers=headers, body=body, private_key=key, key_id="net"
        )

    def check() -> object:
        return schemas.first_error(OUTPUT_SCHEMA, answer["output"]), schemas.first_error({}, {})

    agent = EchoAgent()
    try:
        call_us = await agent_call_us(agent, args.calls)
    finally:
        agent.stop()
    parts = {
        "agent call (aiohttp POST + JSON answer), every system": call_us,
        "RFC 9421 signature of the invocation (DukeNET)": per_call_us(sign, args.count),
        "signed audit record of the ended task (DukeNET)": per_call_us(
            lambda: seal(key, record), args.count
        ),
        "output schema checks, subtask and task (DukeNET)": per_call_us(check, args.count),
    }
    rows: list[list[Any]] = [[name, f"{us:,.0f}"] for name, us in parts.items()]
    extras_us = sum(us for name, us in parts.items() if name.endswith("(DukeNET)"))
    rows.append(["DukeNET's spec-mandated parts above, together", f"{extras_us:,.0f}"])
    budget: dict[str, Any] = {}
    measured = measured_w1()
    queue = measured.get("pgqueuer")
    dukenet = measured.get("DukeNET (N single-subtask tasks)")
    if queue is not None and dukenet is not None:
        queue_us = queue * 1000 - call_us
        rest_us = dukenet * 1000 - call_us - extras_us
        budget = {
            "pgqueuer_cpu_us_per_job": round(queue * 1000),
            "pgqueuer_queue_us_per_job": round(queue_us),
            "dukenet_cpu_us_per_job": round(dukenet * 1000),
            "dukenet_rest_us_per_job": round(rest_us),
            "dukenet_rest_allowed_to_tie_us": round(queue_us - extras_us),
        }
        rows += [
            ["pgqueuer in W1: workers + PostgreSQL per job", f"{queue * 1000:,.0f}"],
            ["  of which its queue (all but the agent call)", f"{queue_us:,.0f}"],
            ["DukeNET in W1: workers + PostgreSQL per job", f"{dukenet * 1000:,.0f}"],
            ["  of which queue, DAG, log, status, trust", f"{rest_us:,.0f}"],
            ["  what those may cost to tie pgqueuer", f"{queue_us - extras_us:,.0f}"],
        ]
    report(
        "job_budget",
        "CPU per W1 job (µs)",
        ["part", "µs/job"],
        rows,
        {"parts_us": {name: round(us, 1) for name, us in parts.items()}, "w1": budget},
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="calls per in-process part")
    parser.add_argument("--calls", type=int, default=5000, help="agent calls")
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
