"""Workers as real processes: a SIGKILLed worker loses nothing and duplicates nothing, a
SIGTERMed one finishes or hands back its calls, and `dukenet serve` runs tasks by itself.

The agent is a real HTTP server in the test process that sleeps on each call and records
every call with its attempt in a table of the test database.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiohttp import web

from dukenet import crypto
from dukenet.config import Settings
from dukenet.orchestration.submission import submit_task
from dukenet.runtime import Services, open_services
from tests.conftest import server_env
from tests.integration.market_support import assert_ledger_invariant
from tests.integration.test_orchestration_support import (
    FakeAgent,
    add_agent,
    fund,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CALLS_TABLE = """
CREATE TABLE IF NOT EXISTS agent_calls (
  call_id    BIGSERIAL PRIMARY KEY,
  subtask_id UUID NOT NULL,
  attempt    INTEGER NOT NULL,
  received   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
)
"""


class RecordingAgent(FakeAgent):
    """Records each verified call in ``agent_calls``, then sleeps, then answers."""

    def __init__(self, network_key_b64: str, pool: asyncpg.Pool, sleep: float) -> None:
        public = crypto.public_key_b64(crypto.parse_private_key(network_key_b64))
        super().__init__(public)
        self.pool = pool

        async def behaviour(payload: dict[str, Any]) -> web.StreamResponse:
            await self.pool.execute(
                "INSERT INTO agent_calls (subtask_id, attempt) VALUES ($1, $2)",
                UUID(payload["subtask_id"]),
                payload["attempt"],
            )
            await asyncio.sleep(sleep)
            return web.json_response({"output": {"n": payload["input"]["n"]}})

        self.on("work.sleep", behaviour)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as opened:
        async with opened.db.acquire() as conn:
            await conn.execute(CALLS_TABLE)
            await conn.execute("TRUNCATE agent_calls")
            await conn.execute("UPDATE agents SET status = 'INACTIVE'")
        yield opened


async def creator_with_funds(services: Services, amount: str = "100") -> str:
    creator = await add_agent(services, None, [])
    await fund(services, creator, amount)
    return creator


async def submit_independent(
    services: Services, creator: str, count: int, per_task: int, **extra: Any
) -> list[UUID]:
    task_ids = []
    for t in range(count // per_task):
        body = {
            "name": f"batch {t}",
            "max_retries": 3,
            "subtasks": [
                {"name": f"s{i}", "capability": "work.sleep", "input": {"n": t * per_task + i}}
                for i in range(per_task)
            ],
            **extra,
        }
        task_id, _ = await submit_task(services, creator, body)
        task_ids.append(task_id)
    return task_ids


class WorkerProcess:
    """A `dukenet worker` subprocess with its log in ``tmp``."""

    def __init__(self, settings: Settings, tmp: Path, name: str, **env: str) -> None:
        self.log_path = tmp / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dukenet", "worker", "--concurrency", env.pop("C", "128")],
            env=server_env(settings, **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self, within: float = 30) -> int:
        """The exit code (waiting in a thread: the agent shares this event loop)."""
        code = await asyncio.to_thread(self.process.wait, within)
        self._log.close()
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


FAST = {
    "DUKENET_WORKER_LEASE_SECONDS": "2",
    "DUKENET_MAINTENANCE_INTERVAL": "0.3",
    "DUKENET_RETRY_BASE_DELAY": "0.1",
    "DUKENET_WORKER_POLL_INTERVAL": "0.5",
    "DUKENET_LOG_LEVEL": "warning",
}


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


async def count(services: Services, sql: str, *args: Any) -> int:
    async with services.db.acquire() as conn:
        value: int = await conn.fetchval(sql, *args)
    return value


async def test_sigkill_with_200_calls_in_flight_loses_and_duplicates_nothing(
    settings: Settings,
    services: Services,
    network_key_b64: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    pool = services.db.primary
    agent = RecordingAgent(network_key_b64, pool, sleep=3.0)
    await agent.start()
    try:
        await add_agent(
            services,
            agent.url,
            [{"name": "work.sleep", "price": "0.0100", "latency_p99_ms": 10_000}],
        )
        creator = await creator_with_funds(services)
        task_ids = await submit_independent(services, creator, 200, 50)
        victim = WorkerProcess(settings, tmp_path, "victim", **FAST)
        survivor = WorkerProcess(settings, tmp_path, "survivor", **FAST)
        workers += [victim, survivor]

        async def all_in_flight() -> bool:
            return await count(services, "SELECT COUNT(*) FROM agent_calls") >= 200

        await wait_for(all_in_flight, within=30)
        in_flight_victim = await count(
            services,
            "SELECT COUNT(*) FROM subtasks WHERE status = 'RUNNING' AND claimed_by LIKE $1",
            f"%:{victim.process.pid}:%",
        )
        victim.signal(signal.SIGKILL)
        assert await victim.wait() == -signal.SIGKILL
        assert in_flight_victim > 0

        async def all_done() -> bool:
            return await count(
                services,
                "SELECT COUNT(*) FROM tasks WHERE task_id = ANY($1) AND status = 'COMPLETED'",
                task_ids,
            ) == len(task_ids)

        await wait_for(all_done, within=60)

        async with services.db.acquire() as conn:
            subtasks = await conn.fetch(
                "SELECT subtask_id, status, attempt, output FROM subtasks"
                " WHERE parent_task_id = ANY($1)",
                task_ids,
            )
            assert len(subtasks) == 200 and {s["status"] for s in subtasks} == {"COMPLETED"}
            # Every call the agent received is a distinct (subtask, attempt).
            duplicates = await conn.fetch(
                "SELECT subtask_id, attempt FROM agent_calls GROUP BY 1, 2 HAVING COUNT(*) > 1"
            )
            assert duplicates == []
            retried = await conn.fetchval(
                "SELECT COUNT(DISTINCT subtask_id) FROM agent_calls WHERE attempt > 1"
            )
            assert retried == in_flight_victim
            # Completed exactly once: one COMPLETED event and one settled payment each.
            completed_events = await conn.fetch(
                "SELECT subtask_id, COUNT(*) AS n FROM task_execution_log"
                " WHERE task_id = ANY($1) AND event_type = 'COMPLETED' AND subtask_id IS NOT NULL"
                " GROUP BY subtask_id",
                task_ids,
            )
            assert len(completed_events) == 200 and {r["n"] for r in completed_events} == {1}
            settled = await conn.fetch(
                "SELECT subtask_id, COUNT(*) AS n FROM transactions"
                " WHERE status = 'COMPLETED' AND subtask_id IS NOT NULL GROUP BY subtask_id"
            )
            assert len(settled) == 200 and {r["n"] for r in settled} == {1}
            released = await conn.fetchval(
                "SELECT COUNT(*) FROM transactions WHERE status = 'FAILED'"
            )
            assert released == in_flight_victim
            assert await conn.fetchval(
                "SELECT available FROM balances WHERE agent_id = $1", creator
            ) == Decimal("98.0000")
            await assert_ledger_invariant(conn)
            # The log tells the story of each retried subtask: lease expired, then retried.
            stories = await conn.fetch(
                "SELECT subtask_id, array_agg(event_type || ':' || COALESCE(error_code, '')"
                " ORDER BY log_id) AS events FROM task_execution_log"
                " WHERE task_id = ANY($1) AND subtask_id IN"
                " (SELECT subtask_id FROM agent_calls WHERE attempt > 1) GROUP BY subtask_id",
                task_ids,
            )
            assert len(stories) == in_flight_victim
            for story in stories:
                assert story["events"] == [
                    "READY:",
                    "ASSIGNED:",
                    "STARTED:",
                    "TIMEOUT:LEASE_EXPIRED",
                    "RETRYING:LEASE_EXPIRED",
                    "ASSIGNED:",
                    "STARTED:",
                    "COMPLETED:",
                ], story
    finally:
        await agent.stop()


async def test_sigterm_finishes_or_hands_back_running_calls(
    settings: Settings,
    services: Services,
    network_key_b64: str,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    agent = RecordingAgent(network_key_b64, services.db.primary, sleep=1.0)
    await agent.start()
    try:
        await add_agent(services, agent.url, [{"name": "work.sleep", "latency_p99_ms": 10_000}])
        creator = await creator_with_funds(services)
        # Grace longer than the calls: the worker finishes them before exiting.
        patient = WorkerProcess(settings, tmp_path, "patient", **FAST)
        workers.append(patient)
        first = await submit_independent(services, creator, 10, 10)

        async def calls(n: int) -> bool:
            return await count(services, "SELECT COUNT(*) FROM agent_calls") >= n

        await wait_for(lambda: calls(10))
        patient.signal(signal.SIGTERM)
        assert await patient.wait() == 0
        assert (
            await count(
                services,
                "SELECT COUNT(*) FROM subtasks WHERE parent_task_id = ANY($1)"
                " AND status = 'COMPLETED'",
                first,
            )
            == 10
        )

        # Grace shorter than the calls: the worker hands them back without using a retry.
        hasty = WorkerProcess(
            settings, tmp_path, "hasty", **{**FAST, "DUKENET_WORKER_SHUTDOWN_GRACE": "0.2"}
        )
        workers.append(hasty)
        second = await submit_independent(services, creator, 10, 10)
        await wait_for(lambda: calls(20))
        hasty.signal(signal.SIGTERM)
        assert await hasty.wait() == 0
        assert (
            await count(
                services,
                "SELECT COUNT(*) FROM subtasks WHERE parent_task_id = ANY($1)"
                " AND status = 'READY' AND failures = 0",
                second,
            )
            == 10
        )
        assert (
            await count(
                services,
                "SELECT COUNT(*) FROM task_execution_log WHERE task_id = ANY($1)"
                " AND error_code = 'WORKER_SHUTDOWN'",
                second,
            )
            == 10
        )
        finisher = WorkerProcess(settings, tmp_path, "finisher", **FAST)
        workers.append(finisher)

        async def done() -> bool:
            return (
                await count(
                    services,
                    "SELECT COUNT(*) FROM tasks WHERE task_id = ANY($1) AND status = 'COMPLETED'",
                    second,
                )
                == 1
            )

        await wait_for(done, within=30)
    finally:
        await agent.stop()


async def test_serve_runs_tasks_with_its_embedded_worker(
    settings: Settings, live_server: str, services: Services, network_key_b64: str
) -> None:
    agent = RecordingAgent(network_key_b64, services.db.primary, sleep=0.0)
    await agent.start()
    try:
        await add_agent(services, agent.url, [{"name": "work.sleep", "latency_p99_ms": 10_000}])
        from dukenet.sdk import AsyncClient

        async with AsyncClient(live_server, key=crypto.generate_private_key()) as creator:
            await creator.register("Creator")
            task = await creator.submit_task(
                {
                    "name": "via serve",
                    "input": {"n": 41},
                    "subtasks": [
                        {
                            "name": "s",
                            "capability": "work.sleep",
                            "input": {"n": {"$ref": "task#/n"}},
                            "output_mapping": {"/answer": "/n"},
                        }
                    ],
                }
            )
            done = await creator.wait(task.task_id, timeout=30)
        assert done.status == "COMPLETED"
        assert done.actual_output == {"answer": 41}
    finally:
        await agent.stop()
