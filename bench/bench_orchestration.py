"""Orchestration benchmarks: DukeNET's workers against peer task queues, in one run.

Every job POSTs the same ~200-byte JSON payload to the same local echo agent (an aiohttp
process) and checks the answer. Each system gets 2 worker processes x 16 concurrent
slots and its own fresh database on the same PostgreSQL (fsync and synchronous_commit as
configured on the server).

W1  drain: N jobs enqueued up front, then workers drain them. DukeNET twice: N
    single-subtask tasks, and one task with N independent subtasks. Peers: procrastinate,
    pgqueuer, Celery (Redis broker, thread pool). Reported: jobs/s, database commits and
    WAL bytes per completed job (pg_stat_database / pg_stat_wal deltas), peak worker RSS.
W2  latency at fixed arrival rates (50, 200, 500 tasks/s, one subtask each): ready→call
    (READY log row → agent receipt) and submission→completion (SUBMITTED → COMPLETED
    log rows), p50/p95/p99.
W3  DAG: chains A→B→C and diamonds A→(B,C)→D at a steady rate; gap between a parent's
    COMPLETED log row and its child's call.
W4  crash: paid subtasks that take a while, two workers, one SIGKILLed mid-run: lost,
    duplicated and double-settled subtasks (all must be 0) and time to recover.

Run: ``.venv/bin/pip install -e '.[bench]'`` then ``.venv/bin/python bench/bench_orchestration.py``
(``--quick`` for a smaller run). Writes ``bench/results/orchestration.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx
import psutil

from bench.common import percentile, report

HERE = Path(__file__).resolve()
ADMIN_URL = os.environ.get(
    "DUKENET_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DUKENET_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER = os.environ.get("DUKENET_BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/15")
PROCESSES = 2
CONCURRENCY = 16
PAYLOAD = {"text": "x" * 150, "n": 0}  # ~200 bytes as JSON with the envelope
CAPABILITY = "bench.echo"


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def fresh_database(name: str) -> str:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(name)


# ------------------------------------------------------------------------ echo agent


def run_echo_agent(port: int) -> None:
    """The echo agent process: answers every POST with its input; keeps receipt times."""
    import uvloop
    from aiohttp import web

    receipts: dict[str, tuple[float, int]] = {}
    stats = {"count": 0, "first": 0.0, "last": 0.0}

    async def invoke(request: web.Request) -> web.Response:
        now = time.time()
        body = await request.json()
        stats["count"] += 1
        stats["first"] = stats["first"] or now
        stats["last"] = now
        key = body.get("subtask_id")
        if key:
            receipts[f"{key}:{body.get('attempt')}"] = (now, body.get("attempt", 0))
        data = body.get("input", body)
        sleep = data.get("sleep") if isinstance(data, dict) else None
        if sleep:
            await asyncio.sleep(sleep)
        return web.json_response({"output": data})

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def get_receipts(request: web.Request) -> web.Response:
        return web.json_response(receipts)

    async def reset(request: web.Request) -> web.Response:
        receipts.clear()
        stats.update(count=0, first=0.0, last=0.0)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/invoke", invoke)
    app.router.add_get("/stats", get_stats)
    app.router.add_get("/receipts", get_receipts)
    app.router.add_post("/reset", reset)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


class EchoAgent:
    """The echo agent subprocess and its counters."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/invoke"
        self.base = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, str(HERE), "echo-agent", str(self.port)])
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{self.base}/stats", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

        # One client for the run: a new one per poll (httpx.get) builds an SSL context
        # each time, milliseconds of CPU taken from the system under test.
        self.client = httpx.Client(base_url=self.base, timeout=30)

    def stats(self) -> dict[str, float]:
        return self.client.get("/stats").json()

    def receipts(self) -> dict[str, tuple[float, int]]:
        return self.client.get("/receipts").json()

    def reset(self) -> None:
        self.client.post("/reset")

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------- measurement tools


class PeakRss:
    """Samples the resident set size (and CPU time) of processes and their children every
    100 ms."""

    def __init__(self, pids: list[int], database: str | None = None) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self.database = database
        self.db_cpu: dict[int, float] = {}  # PostgreSQL backends serving ``database``
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for process in self.processes:
                try:
                    family = [process, *process.children(recursive=True)]
                    self.peak = max(self.peak, max(p.memory_info().rss for p in family))
                    for member in family:
                        times = member.cpu_times()
                        self.cpu[member.pid] = times.user + times.system
                except psutil.Error:
                    pass
            if self.database:
                self._sample_backends()
            self._stop.wait(0.1)

    def _sample_backends(self) -> None:
        marker = f" {self.database} "
        for process in psutil.process_iter(["name", "cmdline"]):
            try:
                line = " ".join(process.info["cmdline"] or []) + " "
                if line.startswith("postgres:") and marker in line:
                    times = process.cpu_times()
                    self.db_cpu[process.pid] = times.user + times.system
            except psutil.Error:
                pass

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20

    @property
    def cpu_seconds(self) -> float:
        """CPU time used by the sampled processes (as of the last sample)."""
        return sum(self.cpu.values())

    @property
    def db_cpu_seconds(self) -> float:
        """CPU time of the database's backends (as of the last sample)."""
        return sum(self.db_cpu.values())


PG_WALDUMP = os.environ.get("DUKENET_BENCH_PG_WALDUMP", "/usr/lib/postgresql/15/bin/pg_waldump")
PG_WAL_DIR = os.environ.get("DUKENET_BENCH_PG_WAL_DIR", "/var/lib/postgresql/15/main/pg_wal")
_RECORD = re.compile(r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+),")
_RELATION = re.compile(r"rel \d+/(\d+)/\d+")


@dataclass
class Counters:
    """Where the database and the WAL stood at one moment."""

    commits: int
    wal_bytes: int
    lsn: str
    database_oid: int


async def pg_counters(db_name: str) -> Counters:
    """xact_commit of the database, cluster WAL bytes and the WAL insert position."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT d.xact_commit, d.datid, (SELECT wal_bytes FROM pg_stat_wal) AS wal,"
            " pg_current_wal_insert_lsn()::text AS lsn"
            " FROM pg_stat_database d WHERE d.datname = $1",
            db_name,
        )
    finally:
        await conn.close()
    return Counters(int(row["xact_commit"]), int(row["wal"]), row["lsn"], int(row["datid"]))


def database_wal_bytes(database_oid: int, start: str, end: str) -> int | None:
    """WAL bytes between two positions that belong to one database (records touching its
    relations, plus the commit records of their transactions), read with pg_waldump, so
    other databases' activity on a shared server does not count. None if unavailable."""
    if not (os.access(PG_WALDUMP, os.X_OK) and os.access(PG_WAL_DIR, os.R_OK)):
        return None
    done = subprocess.run(
        [PG_WALDUMP, "-p", PG_WAL_DIR, "-s", start, "-e", end],
        capture_output=True,
        text=True,
        check=False,
    )
    ours, mine_tx = 0, set()
    by_tx: dict[int, int] = {}
    for line in done.stdout.splitlines():
        record = _RECORD.search(line)
        if record is None:
            continue
        size, tx = int(record[1]), int(record[2])
        databases = {int(d) for d in _RELATION.findall(line)}
        if database_oid in databases:
            ours += size
            if tx:
                mine_tx.add(tx)
        elif not databases and tx:
            by_tx[tx] = by_tx.get(tx, 0) + size
    if done.returncode != 0 and not ours:
        return None
    return ours + sum(size for tx, size in by_tx.items() if tx in mine_tx)


@dataclass
class Drain:
    """One W1 measurement."""

    system: str
    jobs: int
    seconds: float
    commits: int
    wal_bytes: int  # of this system's database (pg_waldump), else cluster-wide
    peak_rss_mb: float
    worker_cpu_ms_per_job: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds

    def row(self) -> list[Any]:
        return [
            self.system,
            self.jobs,
            round(self.rate, 1),
            round(self.commits / self.jobs, 2),
            round(self.wal_bytes / self.jobs),
            round(self.worker_cpu_ms_per_job, 2),
            self.extra.get("database_cpu_ms_per_job", ""),
            round(self.peak_rss_mb, 1),
        ]


async def measure_drain(
    system: str,
    db_name: str,
    jobs: int,
    agent: EchoAgent,
    start_workers: Callable[[], list[subprocess.Popen[bytes]]],
    done: Callable[[], Awaitable[bool]],
    *,
    polls_commit: bool,
    settle: float = 1.5,
) -> Drain:
    """Start workers on an enqueued backlog and time the drain (first call → all done)."""
    agent.reset()
    await asyncio.sleep(settle)  # let the enqueuing connections' statistics arrive
    before = await pg_counters(db_name)
    workers = start_workers()
    sampler = PeakRss([w.pid for w in workers], db_name)
    polls = 0
    cpu_at_first_call: float | None = None
    db_cpu_at_first_call = 0.0
    try:
        deadline = time.monotonic() + 600
        while True:
            await asyncio.sleep(0.05)
            calls = agent.stats()["count"]
            if cpu_at_first_call is None and calls > 0:
                cpu_at_first_call = sampler.cpu_seconds  # leave out interpreter start-up
                db_cpu_at_first_call = sampler.db_cpu_seconds
            # Every job calls the agent at least once: until it has seen them all, asking
            # the system under test (a count over its tables) would only load it.
            if calls >= jobs:
                polls += 1
                if await done():
                    finished = time.time()
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{system}: drain did not finish")
            for worker in workers:
                if worker.poll() is not None:
                    raise RuntimeError(f"{system}: a worker exited with {worker.returncode}")
    finally:
        peak = sampler.stop()
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    await asyncio.sleep(settle)
    after = await pg_counters(db_name)
    first = agent.stats()["first"]
    commits = after.commits - before.commits - (polls if polls_commit else 0)
    cluster_wal = after.wal_bytes - before.wal_bytes
    own_wal = database_wal_bytes(before.database_oid, before.lsn, after.lsn)
    cpu = sampler.cpu_seconds - (cpu_at_first_call or 0.0)
    drain = Drain(
        system,
        jobs,
        finished - first,
        commits,
        own_wal if own_wal is not None else cluster_wal,
        peak,
        worker_cpu_ms_per_job=cpu * 1000 / jobs,
    )
    drain.extra["cluster_wal_bytes"] = cluster_wal
    drain.extra["database_cpu_ms_per_job"] = round(
        (sampler.db_cpu_seconds - db_cpu_at_first_call) * 1000 / jobs, 3
    )
    drain.extra["wal_measured"] = "database (pg_waldump)" if own_wal is not None else "cluster"
    return drain


# ----------------------------------------------------------------------------- DukeNET


def dukenet_env(url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DUKENET_DATABASE_URL=url,
        DUKENET_REDIS_URL=REDIS_URL,
        DUKENET_REDIS_PREFIX=f"bench:{uuid.uuid4().hex[:6]}:",
        DUKENET_NETWORK_KEY=NETWORK_KEY,
        DUKENET_LOG_LEVEL="warning",
        DUKENET_DATA_DIR=str(Path("/tmp") / "dukenet-bench"),
        DUKENET_POOL_MAX_SIZE="12",
    )
    env.update(extra)
    return env


def _network_key() -> str:
    from dukenet import crypto

    return crypto.private_key_to_b64(crypto.generate_private_key())


NETWORK_KEY = _network_key()


async def until(
    check: Callable[[], Awaitable[bool]], *, interval: float = 0.1, within: float = 600
) -> None:
    """Poll ``check`` until it holds (TimeoutError after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


def start_dukenet_workers(
    url: str, *, concurrency: int = CONCURRENCY, **extra: str
) -> list[subprocess.Popen[bytes]]:
    env = dukenet_env(url, **extra)
    return [
        subprocess.Popen(
            [sys.executable, "-m", "dukenet", "worker", "--concurrency", str(concurrency)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for _ in range(PROCESSES)
    ]


@dataclass
class DukenetBench:
    """A migrated DukeNET database with the echo agent registered and a funded creator."""

    url: str
    db_name: str
    services: Any
    creator: str
    agent_id: str
    opened: Any  # the open_services context, closed by dukenet_close


async def dukenet_setup(db_name: str, agent: EchoAgent, *, price: str = "0") -> DukenetBench:
    from dukenet.config import Settings
    from dukenet.market import ledger
    from dukenet.runtime import open_services
    from dukenet.store import migrations

    url = await fresh_database(db_name)
    conn = await asyncpg.connect(url)
    try:
        await migrations.upgrade(conn)
    finally:
        await conn.close()
    settings = Settings(
        database_url=url,
        redis_url=REDIS_URL,
        redis_prefix=f"bench:{uuid.uuid4().hex[:6]}:",
        network_key=NETWORK_KEY,
        data_dir=Path("/tmp") / "dukenet-bench",
        pool_min_size=2,
        pool_max_size=16,
    )
    context = open_services(settings)
    services = await context.__aenter__()
    agent_id, creator = secrets.token_hex(32), secrets.token_hex(32)
    async with services.db.transaction() as conn:
        for identity, endpoint in ((agent_id, agent.url), (creator, None)):
            await conn.execute(
                "INSERT INTO agents (agent_id, public_key, endpoint_url, last_heartbeat)"
                " VALUES ($1, $2, $3, NOW() + interval '1 day')",
                identity,
                secrets.token_urlsafe(32),
                endpoint,
            )
        await conn.execute(
            "INSERT INTO agent_capabilities (capability_id, agent_id, name, version, input_schema,"
            " output_schema, pricing_model, price, latency_p99_ms)"
            ' VALUES ($1, $2, $3, \'1.0.0\', \'{"type": "object"}\', \'{"type": "object"}\','
            " $4, $5, 1000)",
            secrets.token_hex(32),
            agent_id,
            CAPABILITY,
            "per_call" if Decimal(price) > 0 else "free",
            Decimal(price),
        )
        await ledger.deposit(
            conn, creator, amount=Decimal("100000"), currency="USD", payment_method="bench"
        )
    return DukenetBench(url, db_name, services, creator, agent_id, context)


async def dukenet_close(bench: DukenetBench) -> None:
    await bench.opened.__aexit__(None, None, None)


def single_task(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"bench {i}",
        "input": {**PAYLOAD, "n": i},
        "subtasks": [{"name": "echo", "capability": CAPABILITY, "input": {"$ref": "task#"}}],
        **extra,
    }


async def submit_many(
    bench: DukenetBench, bodies: list[dict[str, Any]], *, parallel: int = 16
) -> list[uuid.UUID]:
    from dukenet.orchestration.submission import submit_task

    ids: list[uuid.UUID] = [uuid.UUID(int=0)] * len(bodies)
    queue = list(enumerate(bodies))

    async def submitter() -> None:
        while queue:
            index, body = queue.pop()
            ids[index], _ = await submit_task(bench.services, bench.creator, body)

    await asyncio.gather(*(submitter() for _ in range(parallel)))
    return ids


async def count_completed_subtasks(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT COALESCE(SUM(completed), 0) FROM task_progress"))
    finally:
        await conn.close()


class Poller:
    """One connection that polls a count (its commits are subtracted from the totals)."""

    def __init__(self, url: str, sql: str, target: int) -> None:
        self.url, self.sql, self.target = url, sql, target
        self.conn: asyncpg.Connection | None = None

    async def __call__(self) -> bool:
        if self.conn is None:
            self.conn = await asyncpg.connect(self.url)
        return int(await self.conn.fetchval(self.sql)) >= self.target

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


async def dukenet_w1(agent: EchoAgent, jobs: int, *, wide: bool) -> Drain:
    name = "DukeNET (1 task x N subtasks)" if wide else "DukeNET (N single-subtask tasks)"
    bench = await dukenet_setup("bench_dukenet", agent)
    try:
        if wide:
            body = {
                "name": "wide",
                "input": PAYLOAD,
                "subtasks": [
                    {"name": f"s{i}", "capability": CAPABILITY, "input": {**PAYLOAD, "n": i}}
                    for i in range(jobs)
                ],
            }
            await submit_many(bench, [body], parallel=1)
        else:
            await submit_many(bench, [single_task(i) for i in range(jobs)])
        poller = Poller(bench.url, "SELECT COALESCE(SUM(completed), 0) FROM task_progress", jobs)
        try:
            drain = await measure_drain(
                name,
                bench.db_name,
                jobs,
                agent,
                lambda: start_dukenet_workers(bench.url),
                poller,
                polls_commit=True,
            )
        finally:
            await poller.close()
        async with bench.services.db.acquire() as conn:
            drain.extra["log_rows"] = await conn.fetchval("SELECT COUNT(*) FROM task_execution_log")
            drain.extra["audit_records"] = await conn.fetchval(
                "SELECT COUNT(*) FROM audit_paths WHERE path LIKE '/dukenet/tasks/%'"
            )
        return drain
    finally:
        await dukenet_close(bench)


# ------------------------------------------------------------------------------- peers


def run_peer_worker(system: str, url: str, agent_url: str) -> None:
    """A peer's worker process (``bench_orchestration.py peer-worker SYSTEM URL AGENT``)."""
    if system == "procrastinate":
        asyncio.run(_procrastinate_worker(url, agent_url))
    elif system == "pgqueuer":
        asyncio.run(_pgqueuer_worker(url, agent_url))
    else:
        raise SystemExit(f"unknown system {system}")


_SESSIONS: dict[str, Any] = {}  # the peer worker's shared aiohttp session


def _procrastinate_app(url: str, agent_url: str | None = None) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    session = _SESSIONS

    @app.task(name="echo", queue="bench")
    async def echo(payload: dict[str, Any]) -> None:
        import aiohttp

        if "s" not in session:
            session["s"] = aiohttp.ClientSession()
        async with session["s"].post(agent_url, json=payload) as response:
            answer = await response.json()
        assert answer["output"] == payload

    return app


async def _procrastinate_worker(url: str, agent_url: str) -> None:
    app = _procrastinate_app(url, agent_url)
    async with app.open_async():
        await app.run_worker_async(queues=["bench"], concurrency=CONCURRENCY, wait=True)
    session = _SESSIONS.get("s")
    if session is not None:
        await session.close()


async def _pgqueuer_worker(url: str, agent_url: str) -> None:
    import aiohttp
    from pgqueuer import AsyncpgDriver, Queries, QueueManager

    conn = await asyncpg.connect(url)
    manager = QueueManager(Queries(AsyncpgDriver(conn)))
    session = aiohttp.ClientSession()

    @manager.entrypoint("echo")
    async def echo(job: Any) -> None:
        payload = json.loads(job.payload)
        async with session.post(agent_url, json=payload) as response:
            answer = await response.json()
        assert answer["output"] == payload

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, manager.shutdown.set)
    await manager.run(batch_size=8, max_concurrent_tasks=CONCURRENCY)
    await session.close()


def start_peer_workers(system: str, url: str, agent: EchoAgent) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen([sys.executable, str(HERE), "peer-worker", system, url, agent.url])
        for _ in range(PROCESSES)
    ]


async def procrastinate_w1(agent: EchoAgent, jobs: int) -> Drain:
    url = await fresh_database("bench_procrastinate")
    app = _procrastinate_app(url)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        task = app.tasks["echo"]
        for start in range(0, jobs, 1000):
            await task.batch_defer_async(
                *({"payload": {**PAYLOAD, "n": i}} for i in range(start, min(jobs, start + 1000)))
            )
    poller = Poller(
        url,
        f"SELECT {jobs} - COUNT(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')",
        jobs,
    )
    try:
        return await measure_drain(
            "procrastinate",
            "bench_procrastinate",
            jobs,
            agent,
            lambda: start_peer_workers("procrastinate", url, agent),
            poller,
            polls_commit=True,
        )
    finally:
        await poller.close()


async def pgqueuer_w1(agent: EchoAgent, jobs: int) -> Drain:
    from pgqueuer import AsyncpgDriver, Queries

    url = await fresh_database("bench_pgqueuer")
    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        for start in range(0, jobs, 1000):
            count = min(jobs, start + 1000) - start
            await queries.enqueue(
                ["echo"] * count,
                [json.dumps({**PAYLOAD, "n": start + i}).encode() for i in range(count)],
                [0] * count,
            )
    finally:
        await conn.close()
    poller = Poller(url, f"SELECT {jobs} - COUNT(*) FROM pgqueuer", jobs)
    try:
        return await measure_drain(
            "pgqueuer",
            "bench_pgqueuer",
            jobs,
            agent,
            lambda: start_peer_workers("pgqueuer", url, agent),
            poller,
            polls_commit=True,
        )
    finally:
        await poller.close()


# Celery: the app lives at module level so `celery -A bench.bench_orchestration` finds it.
try:
    from celery import Celery

    celery_app = Celery("bench", broker=CELERY_BROKER)
    celery_app.conf.update(
        task_default_queue="bench",
        worker_prefetch_multiplier=4,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    _local = threading.local()

    @celery_app.task(name="echo", ignore_result=True)
    def celery_echo(payload: dict[str, Any]) -> None:
        client = getattr(_local, "client", None)
        if client is None:
            client = _local.client = httpx.Client(timeout=30)
        answer = client.post(os.environ["BENCH_AGENT_URL"], json=payload).json()
        assert answer["output"] == payload

except ImportError:  # the bench extra is not installed
    celery_app = None


async def celery_w1(agent: EchoAgent, jobs: int) -> Drain:
    import redis

    broker = redis.Redis.from_url(CELERY_BROKER)
    broker.flushdb()
    for i in range(jobs):
        celery_echo.apply_async(args=[{**PAYLOAD, "n": i}])
    env = {**os.environ, "BENCH_AGENT_URL": agent.url, "PYTHONPATH": str(HERE.parent.parent)}

    def start() -> list[subprocess.Popen[bytes]]:
        return [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "bench.bench_orchestration:celery_app",
                    "worker",
                    "--pool",
                    "threads",
                    "-c",
                    str(CONCURRENCY),
                    "-Q",
                    "bench",
                    "--loglevel",
                    "WARNING",
                    "-n",
                    f"bench{i}@%h",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(PROCESSES)
        ]

    async def done() -> bool:
        return agent.stats()["count"] >= jobs

    drain = await measure_drain(
        "Celery (Redis broker)", "postgres", jobs, agent, start, done, polls_commit=False
    )
    drain.commits = 0
    drain.extra["note"] = "Redis broker: nothing durable in PostgreSQL; WAL is other activity"
    return drain


# --------------------------------------------------------------------------------- W2/W3


async def log_times(bench: DukenetBench, event: str, *, subtasks: bool) -> dict[str, float]:
    """Epoch seconds of log rows of a kind, by subtask id (or task id)."""
    column = "subtask_id" if subtasks else "task_id"
    condition = "subtask_id IS NOT NULL" if subtasks else "subtask_id IS NULL"
    async with bench.services.db.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {column} AS id, MIN(EXTRACT(EPOCH FROM timestamp)) AS at"
            f" FROM task_execution_log WHERE event_type = $1 AND {condition} GROUP BY 1",
            event,
        )
    return {str(r["id"]): float(r["at"]) for r in rows}


async def paced(rate: float, count: int, submit: Callable[[int], Awaitable[None]]) -> float:
    """Call ``submit(i)`` ``count`` times at ``rate`` per second; return the achieved rate."""
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(submit(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return count / (time.monotonic() - start)


async def dukenet_w2(agent: EchoAgent, rates: list[int], seconds: float) -> list[dict[str, Any]]:
    from dukenet.orchestration.submission import submit_task

    results = []
    for rate in rates:
        bench = await dukenet_setup("bench_dukenet", agent)
        workers = start_dukenet_workers(bench.url)
        try:
            await asyncio.sleep(3)  # workers connected and idle
            agent.reset()
            count = int(rate * seconds)

            async def submit(i: int, bench: DukenetBench = bench) -> None:
                await submit_task(bench.services, bench.creator, single_task(i))

            achieved = await paced(rate, count, submit)
            poller = Poller(
                bench.url, "SELECT COALESCE(SUM(completed), 0) FROM task_progress", count
            )
            await until(poller)
            await poller.close()
            ready = await log_times(bench, "READY", subtasks=True)
            submitted = await log_times(bench, "SUBMITTED", subtasks=False)
            completed = await log_times(bench, "COMPLETED", subtasks=False)
            receipts = agent.receipts()
            ready_to_call = [
                (receipts[f"{sid}:1"][0] - at) * 1000
                for sid, at in ready.items()
                if f"{sid}:1" in receipts
            ]
            end_to_end = [
                (completed[t] - at) * 1000 for t, at in submitted.items() if t in completed
            ]
            results.append(
                {
                    "rate": rate,
                    "achieved_rate": round(achieved, 1),
                    "tasks": count,
                    "ready_to_call_ms": _percentiles(ready_to_call),
                    "submit_to_complete_ms": _percentiles(end_to_end),
                }
            )
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)
            await dukenet_close(bench)
    return results


def _percentiles(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(samples, 50), 2),
        "p95": round(percentile(samples, 95), 2),
        "p99": round(percentile(samples, 99), 2),
        "n": len(samples),
    }


def chain(i: int) -> dict[str, Any]:
    return {
        "name": f"chain {i}",
        "input": PAYLOAD,
        "subtasks": [
            {"name": "a", "capability": CAPABILITY, "input": {"$ref": "task#"}},
            {"name": "b", "capability": CAPABILITY, "depends_on": ["a"], "input": {"$ref": "a#"}},
            {"name": "c", "capability": CAPABILITY, "depends_on": ["b"], "input": {"$ref": "b#"}},
        ],
    }


def diamond(i: int) -> dict[str, Any]:
    return {
        "name": f"diamond {i}",
        "input": PAYLOAD,
        "subtasks": [
            {"name": "a", "capability": CAPABILITY, "input": {"$ref": "task#"}},
            {"name": "b", "capability": CAPABILITY, "depends_on": ["a"], "input": {"$ref": "a#"}},
            {"name": "c", "capability": CAPABILITY, "depends_on": ["a"], "input": {"$ref": "a#"}},
            {
                "name": "d",
                "capability": CAPABILITY,
                "depends_on": ["b", "c"],
                "input": {"b": {"$ref": "b#/n"}, "c": {"$ref": "c#/n"}},
            },
        ],
    }


async def dukenet_w3(agent: EchoAgent, chains: int, diamonds: int, rate: float) -> dict[str, Any]:
    from dukenet.orchestration.submission import submit_task

    bench = await dukenet_setup("bench_dukenet", agent)
    workers = start_dukenet_workers(bench.url)
    try:
        await asyncio.sleep(3)
        agent.reset()
        bodies = [chain(i) for i in range(chains)] + [diamond(i) for i in range(diamonds)]
        order = sorted(range(len(bodies)), key=lambda i: (i * 7919) % len(bodies))

        async def submit(i: int) -> None:
            await submit_task(bench.services, bench.creator, bodies[order[i]])

        await paced(rate, len(bodies), submit)
        total = chains * 3 + diamonds * 4
        poller = Poller(bench.url, "SELECT COALESCE(SUM(completed), 0) FROM task_progress", total)
        await until(poller)
        await poller.close()
        completed = await log_times(bench, "COMPLETED", subtasks=True)
        receipts = agent.receipts()
        async with bench.services.db.acquire() as conn:
            edges = await conn.fetch(
                "SELECT subtask_id, depends_on FROM subtasks WHERE cardinality(depends_on) > 0"
            )
        gaps = []
        for edge in edges:
            called = receipts.get(f"{edge['subtask_id']}:1")
            if called is None:
                continue
            # the gap after the parent that finished last (the one that unblocked the child)
            parent_done = max(completed[str(p)] for p in edge["depends_on"])
            gaps.append((called[0] - parent_done) * 1000)
        return {
            "chains": chains,
            "diamonds": diamonds,
            "rate_tasks_per_s": rate,
            "edges": len(gaps),
            "parent_to_child_ms": {
                **_percentiles(gaps),
                "median": round(statistics.median(gaps), 2),
            },
        }
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
        await dukenet_close(bench)


# ------------------------------------------------------------------------------- W4


async def dukenet_w4(agent: EchoAgent, subtasks: int, sleep: float) -> dict[str, Any]:
    bench = await dukenet_setup("bench_dukenet", agent, price="0.0100")
    env = {
        "DUKENET_WORKER_LEASE_SECONDS": "3",
        "DUKENET_MAINTENANCE_INTERVAL": "0.5",
        "DUKENET_RETRY_BASE_DELAY": "0.1",
    }
    try:
        per_task = 100
        bodies = [
            {
                "name": f"crash {t}",
                "subtasks": [
                    {
                        "name": f"s{i}",
                        "capability": CAPABILITY,
                        "input": {"n": t * per_task + i, "sleep": sleep},
                    }
                    for i in range(per_task)
                ],
            }
            for t in range(subtasks // per_task)
        ]
        ids = await submit_many(bench, bodies, parallel=4)
        agent.reset()
        workers = start_dukenet_workers(bench.url, concurrency=64, **env)
        try:

            async def a_third_called() -> bool:
                return agent.stats()["count"] >= subtasks / 3

            await until(a_third_called, interval=0.05)
            victim = workers[0]
            async with bench.services.db.acquire() as conn:
                in_flight = await conn.fetch(
                    "SELECT subtask_id FROM subtasks"
                    " WHERE status = 'RUNNING' AND claimed_by LIKE $1",
                    f"%:{victim.pid}:%",
                )
            victim.kill()
            killed_at = time.time()
            poller = Poller(
                bench.url, "SELECT COALESCE(SUM(completed), 0) FROM task_progress", subtasks
            )
            await until(poller, within=300)
            await poller.close()
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(timeout=30)
        async with bench.services.db.acquire() as conn:
            lost = await conn.fetchval(
                "SELECT COUNT(*) FROM subtasks"
                " WHERE parent_task_id = ANY($1) AND status <> 'COMPLETED'",
                ids,
            )
            duplicated = await conn.fetchval(
                "SELECT COUNT(*) FROM (SELECT subtask_id FROM task_execution_log"
                " WHERE event_type = 'COMPLETED' AND subtask_id IS NOT NULL"
                " GROUP BY subtask_id HAVING COUNT(*) > 1) d"
            )
            double_settled = await conn.fetchval(
                "SELECT COUNT(*) FROM (SELECT subtask_id FROM transactions"
                " WHERE status = 'COMPLETED' GROUP BY subtask_id HAVING COUNT(*) > 1) d"
            )
            settled = await conn.fetchval(
                "SELECT COUNT(*) FROM transactions WHERE status = 'COMPLETED'"
            )
            victims = [r["subtask_id"] for r in in_flight]
            recovered = await conn.fetchval(
                "SELECT MAX(EXTRACT(EPOCH FROM completed_at)) FROM subtasks"
                " WHERE subtask_id = ANY($1)",
                victims,
            )
            reaped = await conn.fetchval(
                "SELECT MAX(EXTRACT(EPOCH FROM timestamp)) FROM task_execution_log"
                " WHERE subtask_id = ANY($1) AND event_type = 'RETRYING'",
                victims,
            )
            restarted = await conn.fetchval(
                "SELECT MAX(EXTRACT(EPOCH FROM timestamp)) FROM task_execution_log"
                " WHERE subtask_id = ANY($1) AND event_type = 'ASSIGNED'",
                victims,
            )
            backlog_done = await conn.fetchval(
                "SELECT MAX(EXTRACT(EPOCH FROM completed_at)) FROM subtasks"
                " WHERE parent_task_id = ANY($1)",
                ids,
            )
        # Receipts are keyed by (subtask, attempt): a repeated call overwrote one.
        receipts = agent.receipts()
        return {
            "subtasks": subtasks,
            "agent_sleep_s": sleep,
            "lease_s": 3,
            "in_flight_on_killed_worker": len(in_flight),
            "lost": lost,
            "completed_twice": duplicated,
            "settled_twice": double_settled,
            "settled": settled,
            "agent_calls": int(agent.stats()["count"]),
            "distinct_attempt_calls": len(receipts),
            "duplicate_attempt_calls": int(agent.stats()["count"]) - len(receipts),
            # kill → the last of the killed worker's attempts back to READY (lease expiry)
            "reaped_within_seconds": round(float(reaped or killed_at) - killed_at, 2),
            # kill → the last of them started again (retries queue behind older READY work)
            "restarted_within_seconds": round(float(restarted or killed_at) - killed_at, 2),
            # kill → the last of them completed (they queue behind the rest of the backlog)
            "recovery_seconds": round(float(recovered or killed_at) - killed_at, 2),
            "backlog_done_seconds": round(float(backlog_done or killed_at) - killed_at, 2),
        }
    finally:
        await dukenet_close(bench)


# ------------------------------------------------------------------------------ main


async def main(args: argparse.Namespace) -> None:
    agent = EchoAgent()
    data: dict[str, Any] = {
        "setup": {
            "processes": PROCESSES,
            "concurrency_per_process": CONCURRENCY,
            "payload_bytes": len(json.dumps(PAYLOAD)),
            "postgres": await _postgres_settings(),
        }
    }
    try:
        drains: list[Drain] = []
        if "w1" in args.workloads:
            runners: list[tuple[str, Callable[[], Awaitable[Drain]]]] = [
                ("dukenet", lambda: dukenet_w1(agent, args.jobs, wide=False)),
                ("procrastinate", lambda: procrastinate_w1(agent, args.jobs)),
                ("pgqueuer", lambda: pgqueuer_w1(agent, args.jobs)),
                ("celery", lambda: celery_w1(agent, args.jobs)),
                ("dukenet-wide", lambda: dukenet_w1(agent, args.jobs, wide=True)),
            ]
            for name, run in runners:
                if name in args.skip:
                    continue
                print(f"W1 {name} ...", flush=True)
                drain = await run()
                print(f"   {drain.row()}", flush=True)
                drains.append(drain)
            data["w1"] = [
                {
                    **d.__dict__,
                    "rate": round(d.rate, 1),
                    "commits_per_job": d.commits / d.jobs,
                    "wal_bytes_per_job": d.wal_bytes / d.jobs,
                }
                for d in drains
            ]
        if "w2" in args.workloads:
            print("W2 ...", flush=True)
            data["w2"] = await dukenet_w2(agent, args.rates, args.w2_seconds)
            print(f"   {data['w2']}", flush=True)
        if "w3" in args.workloads:
            print("W3 ...", flush=True)
            data["w3"] = await dukenet_w3(agent, args.chains, args.diamonds, args.w3_rate)
            print(f"   {data['w3']}", flush=True)
        if "w4" in args.workloads:
            print("W4 ...", flush=True)
            data["w4"] = await dukenet_w4(agent, args.w4_subtasks, args.w4_sleep)
            print(f"   {data['w4']}", flush=True)
    finally:
        agent.stop()
    rows: list[list[Any]] = [["W1 " + d.row()[0], *d.row()[1:]] for d in drains]
    for entry in data.get("w2", []):
        rows.append(
            [
                f"W2 DukeNET at {entry['rate']}/s (achieved {entry['achieved_rate']})",
                entry["tasks"],
                f"ready→call p50/p95/p99 {entry['ready_to_call_ms']['p50']}/"
                f"{entry['ready_to_call_ms']['p95']}/{entry['ready_to_call_ms']['p99']} ms",
                f"submit→done p50 {entry['submit_to_complete_ms']['p50']} ms",
                f"p99 {entry['submit_to_complete_ms']['p99']} ms",
                "",
                "",
                "",
            ]
        )
    if "w3" in data:
        w3 = data["w3"]["parent_to_child_ms"]
        rows.append(
            [
                "W3 DukeNET chains+diamonds",
                data["w3"]["edges"],
                f"parent→child median {w3['median']} ms",
                f"p95 {w3['p95']} ms",
                f"p99 {w3['p99']} ms",
                "",
                "",
                "",
            ]
        )
    if "w4" in data:
        w4 = data["w4"]
        rows.append(
            [
                "W4 DukeNET SIGKILL",
                w4["subtasks"],
                f"lost {w4['lost']}, twice {w4['completed_twice']}",
                f"settled twice {w4['settled_twice']}",
                f"back to READY in {w4['reaped_within_seconds']} s,"
                f" all done {w4['recovery_seconds']} s after the kill",
                f"{w4['in_flight_on_killed_worker']} in flight",
                "",
                "",
            ]
        )
    report(
        "orchestration",
        "Orchestration (2 processes x 16 slots, echo agent)",
        [
            "workload / system",
            "jobs",
            "jobs/s or latency",
            "commits/job",
            "WAL B/job",
            "worker CPU ms/job",
            "DB CPU ms/job",
            "peak RSS MB",
        ],
        rows,
        data,
    )


async def _postgres_settings() -> dict[str, str]:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        rows = await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN"
            " ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections',"
            " 'server_version', 'autovacuum')"
        )
    finally:
        await conn.close()
    return {r["name"]: r["setting"] for r in rows}


def cli() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "echo-agent":
        run_echo_agent(int(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "peer-worker":
        run_peer_worker(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", default="w1,w2,w3,w4")
    parser.add_argument("--skip", default="", help="W1 systems to skip, e.g. celery,dukenet-wide")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rates", default="50,200,500")
    parser.add_argument("--w2-seconds", type=float, default=10.0)
    parser.add_argument("--chains", type=int, default=1000)
    parser.add_argument("--diamonds", type=int, default=200)
    parser.add_argument("--w3-rate", type=float, default=100.0)
    parser.add_argument("--w4-subtasks", type=int, default=2000)
    parser.add_argument("--w4-sleep", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true", help="a small run to check the setup")
    args = parser.parse_args()
    args.workloads = args.workloads.split(",")
    args.skip = [s for s in args.skip.split(",") if s]
    args.rates = [int(r) for r in args.rates.split(",")]
    if args.quick:
        args.jobs, args.w2_seconds, args.chains, args.diamonds = 1000, 3.0, 100, 20
        args.w4_subtasks = 400
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
