"""Registry throughput: registrations/s and cached agent lookups/s over real HTTP.

Runs the DukeNET API as a real uvicorn process (one process, uvloop + httptools, with
``DUKENET_EMBEDDED_WORKER=false`` because this measures the API, not the subtask worker) on
localhost against PostgreSQL and Redis, next to a *bare* FastAPI process (its own uvicorn
process, same flags) doing only the one underlying store operation per request: one INSERT
of a row shaped like an ``agents`` row built from the same registration JSON, or one Redis
GET of the same cached agent bytes. DukeNET and bare runs are interleaved in rounds so
machine noise hits both alike, and the report gives each DukeNET figure as a ratio to its
bare floor from the same run. Before its measured rounds each server (DukeNET and bare)
takes ``--warmup`` unmeasured registrations (default 500), so the rounds measure a server
at work, pool connections open and statements prepared, not its start-up.

The load generator is aiohttp (already a DukeNET dependency; nothing is installed by this
script): ``--client-processes`` processes, each with one ``ClientSession`` and an equal
share of the 32 requests kept in flight, bodies serialised before the clock starts. A
``GET /bare/ok`` round (no store at all) records the client's own ceiling so the report
shows the client is not the bottleneck. The cached lookups run a second time with
``--low-concurrency`` requests in flight (default 8): with 32 in flight each request
queues behind the others (mean latency = in flight / throughput). The server's peak
RSS is the kernel's high-water mark (VmHWM). ``os.getloadavg()`` before and after the
run is recorded in the JSON.

Needs: PostgreSQL at ``DUKENET_TEST_DATABASE_URL`` (a role that may CREATE DATABASE) and
Redis at ``DUKENET_TEST_REDIS_URL``; the project venv (aiohttp, uvicorn[standard]).

    python bench/bench_registry.py [--registrations 3000] [--lookup-seconds 10]
        [--rounds 3] [--warmup 500] [--client-processes 1] [--profile-server]

``--profile-server`` runs the DukeNET server under cProfile and prints its top cumulative
costs after the run (the throughput figures of a profiled run are not the real ones).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    admin_sql,
    create_database,
    freeze_heap,
    report,
    summarize,
    tree_cpu_seconds,
)
from dukenet import crypto
from dukenet.sdk import build_registration

REDIS_URL = os.environ.get("DUKENET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POOL_SIZE = 20  # PostgreSQL connections per server (shared out when it runs several processes)
CONCURRENCY = 32

# A table shaped like ``agents`` (same column types, primary key and unique key), so the
# bare INSERT pays the same index maintenance and row width as DukeNET's main row.
BARE_TABLE = """
CREATE TABLE bench_bare (
  agent_id      VARCHAR(64) PRIMARY KEY,
  public_key    TEXT NOT NULL UNIQUE,
  display_name  VARCHAR(255),
  description   TEXT,
  endpoint_url  TEXT,
  version       VARCHAR(20),
  metadata      JSONB,
  payload       JSONB NOT NULL,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT NOW()
)
"""
BARE_INSERT = """
INSERT INTO bench_bare (agent_id, public_key, display_name, description, endpoint_url,
                        version, metadata, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)
"""


# ---------------------------------------------------------------- bare comparison app
def bare_app() -> FastAPI:
    """FastAPI doing one INSERT or one Redis GET per request (the floor to compare with).

    Request/Response are imported at module level: with postponed annotations FastAPI
    resolves ``request: Request`` in the module's globals, and a name it cannot resolve
    silently becomes a required query parameter (the 422s of the earlier version).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            os.environ["BARE_DATABASE_URL"],
            min_size=int(os.environ["DUKENET_POOL_MAX_SIZE"]),
            max_size=int(os.environ["DUKENET_POOL_MAX_SIZE"]),
        )
        app.state.redis = aioredis.Redis.from_url(os.environ["BARE_REDIS_URL"])
        app.state.prefix = os.environ["BARE_PREFIX"] + "bare:"
        freeze_heap()  # as DukeNET does after start-up (runtime.freeze_startup_heap)
        yield
        await app.state.pool.close()
        await app.state.redis.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/bare/ok")
    async def ok() -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    @app.post("/bare/insert", status_code=201)
    async def insert(request: Request) -> Response:
        body = await request.body()
        data = json.loads(body)
        await request.app.state.pool.execute(
            BARE_INSERT,
            hashlib.sha256(data["public_key"].encode()).hexdigest(),
            data["public_key"],
            data.get("display_name"),
            data.get("description"),
            data.get("endpoint_url"),
            data.get("version"),
            json.dumps(data.get("metadata") or {}),
            body.decode(),
        )
        return Response(b'{"ok":true}', status_code=201, media_type="application/json")

    @app.get("/bare/get/{key}")
    async def get(key: str, request: Request) -> Response:
        state = request.app.state
        value = await state.redis.get(state.prefix + key)
        if value is None:
            return Response(status_code=404)
        return Response(value, media_type="application/json")

    return app


# ---------------------------------------------------------------- load generation
Work = list[tuple[str, str, bytes | None]]


def _client_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One client process: one aiohttp session keeping ``concurrency`` requests in flight."""

    async def run() -> dict[str, Any]:
        latencies: list[float] = []
        errors: dict[int, int] = {}
        work: Work = job["work"]
        deadline = job["deadline"]
        cursor = 0
        headers = {"content-type": "application/json"}

        async def one_slot(http: aiohttp.ClientSession) -> None:
            nonlocal cursor
            clock = time.perf_counter
            while True:
                if deadline is not None:
                    if time.time() >= deadline:
                        return
                    method, url, body = work[cursor % len(work)]
                else:
                    if cursor >= len(work):
                        return
                    method, url, body = work[cursor]
                cursor += 1
                started = clock()
                async with http.request(
                    method, url, data=body, headers=headers if body is not None else None
                ) as response:
                    await response.read()
                    status = response.status
                latencies.append(clock() - started)
                if status >= 300:
                    errors[status] = errors.get(status, 0) + 1

        connector = aiohttp.TCPConnector(limit=job["concurrency"], force_close=False)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
            began = time.time()
            await asyncio.gather(*(one_slot(http) for _ in range(job["concurrency"])))
            ended = time.time()
        return {"latencies": latencies, "errors": errors, "began": began, "ended": ended}

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        pass
    freeze_heap()
    return asyncio.run(run())


def load(
    pool: ProcessPoolExecutor,
    processes: int,
    work: Work,
    *,
    seconds: float | None = None,
    concurrency: int = CONCURRENCY,
) -> dict[str, Any]:
    """Run ``work`` with ``concurrency`` requests in flight from ``processes`` client
    processes."""
    shares = [work[i::processes] for i in range(processes)]
    start_at = time.time() + 0.3
    jobs = [
        {
            "work": share,
            "concurrency": max(1, concurrency // processes),
            "start_at": start_at,
            "deadline": start_at + seconds if seconds else None,
        }
        for share in shares
    ]
    results = list(pool.map(_client_worker, jobs))
    errors: dict[int, int] = {}
    for r in results:
        for status, count in r["errors"].items():
            errors[status] = errors.get(status, 0) + count
    return {
        "latencies": [x for r in results for x in r["latencies"]],
        "seconds": max(r["ended"] for r in results) - min(r["began"] for r in results),
        "errors": errors,
    }


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput over all rounds (requests / summed seconds) and pooled latencies."""
    latencies = [x for r in rounds for x in r["latencies"]]
    seconds = sum(r["seconds"] for r in rounds)
    cpu = sum(r.get("server_cpu_seconds", 0.0) for r in rounds)
    errors: dict[int, int] = {}
    for r in rounds:
        for status, count in r["errors"].items():
            errors[status] = errors.get(status, 0) + count
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "per_second": len(latencies) / seconds,
        "per_second_by_round": [len(r["latencies"]) / r["seconds"] for r in rounds],
        "p99_ms_by_round": [summarize([x * 1000 for x in r["latencies"]])["p99"] for r in rounds],
        "latency_ms": summarize([x * 1000 for x in latencies]),
        "errors": errors,
        # Server process CPU: ~1.0 of a core means the one server process is saturated.
        "server_cpu_cores": cpu / seconds,
        "server_cpu_ms_per_request": 1000 * cpu / len(latencies),
    }


# ---------------------------------------------------------------- servers
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Runs uvicorn under cProfile. SIGUSR1 writes the profile so far to ``{out}.1`` and starts a
# fresh one (so each benchmark phase gets its own); SIGTERM writes ``{out}`` and exits.
# (``python -m cProfile`` writes nothing: uvicorn re-raises SIGTERM after shutting down.)
PROFILED_UVICORN = """
import cProfile, signal, sys, uvicorn
out = sys.argv[1]
state = {"profile": cProfile.Profile(), "n": 0}
def phase(*_):
    state["profile"].disable()
    state["n"] += 1
    state["profile"].dump_stats(f"{out}.{state['n']}")
    state["profile"] = cProfile.Profile()
    state["profile"].enable()
def stop(*_):
    state["profile"].disable()
    state["profile"].dump_stats(out)
    sys.exit(0)
signal.signal(signal.SIGUSR1, phase)
signal.signal(signal.SIGTERM, stop)
sys.argv = ["uvicorn", *sys.argv[2:]]
state["profile"].enable()
uvicorn.main()
"""


def start_uvicorn(
    target: str, env: dict[str, str], *, profile_to: Path | None = None, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """``uvicorn target --factory`` (uvloop, httptools) on a free port, once it answers;
    ``workers`` > 1 runs that many server processes on the port."""
    port = _free_port()
    python = [sys.executable, "-m", "uvicorn"]
    if profile_to is not None:
        python = [sys.executable, "-c", PROFILED_UVICORN, str(profile_to)]
    process = subprocess.Popen(
        [
            *python,
            target,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
            *(["--workers", str(workers)] if workers > 1 else []),
        ],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{target} exited with {process.returncode}")
        try:
            httpx.get(f"{url}/", timeout=1)  # any answer means it is serving
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise TimeoutError(f"{target} did not start")


def measured(pid: int, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``load(*args, **kwargs)`` plus the CPU seconds process ``pid`` spent meanwhile."""
    before = tree_cpu_seconds(pid)
    result = load(*args, **kwargs)
    result["server_cpu_seconds"] = tree_cpu_seconds(pid) - before
    return result


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _load_average() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1m": one, "5m": five, "15m": fifteen}


# ---------------------------------------------------------------- the benchmark
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrations", type=int, default=3000)
    parser.add_argument("--lookup-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved DukeNET/bare rounds")
    parser.add_argument(
        "--warmup",
        type=int,
        default=500,
        help="unmeasured registrations sent to each server before its measured rounds",
    )
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--agents", type=int, default=200, help="agents looked up at random")
    parser.add_argument(
        "--low-concurrency",
        type=int,
        default=8,
        help="requests in flight for the second, lightly queued lookup run",
    )
    parser.add_argument(
        "--registration-processes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="server process counts for the registration runs (lookups: always one)",
    )
    parser.add_argument("--profile-server", action="store_true")
    args = parser.parse_args()
    rounds = max(1, args.rounds)
    load_before = _load_average()
    print(f"load average before: {load_before}")

    run_id = uuid.uuid4().hex[:8]
    db_name = f"dukenet_bench_{run_id}"
    prefix = f"bench:{run_id}:"
    db_url = asyncio.run(create_database(db_name, BARE_TABLE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
    env |= {
        "DUKENET_DATABASE_URL": db_url,
        "DUKENET_REDIS_URL": REDIS_URL,
        "DUKENET_REDIS_PREFIX": prefix,
        "DUKENET_NETWORK_KEY": crypto.private_key_to_b64(crypto.generate_private_key()),
        "DUKENET_DATA_DIR": f"/tmp/dukenet-bench-{run_id}",
        "DUKENET_POOL_MAX_SIZE": str(POOL_SIZE),
        # The benchmark measures the API: no subtask worker inside the server process.
        "DUKENET_EMBEDDED_WORKER": "false",
        # Limits are enforced (each request still pays its Redis round trip) but high enough
        # that one benchmark client address is never throttled.
        "DUKENET_RATE_LIMITS": "register=10000000/minute,read=10000000/minute",
        "BARE_DATABASE_URL": db_url,
        "BARE_REDIS_URL": REDIS_URL,
        "BARE_PREFIX": prefix,
    }
    profile_path = Path(f"/tmp/dukenet-bench-{run_id}.prof") if args.profile_server else None
    processes: list[subprocess.Popen[bytes]] = []
    clients = ProcessPoolExecutor(args.client_processes)
    try:
        server, url = start_uvicorn("dukenet.api.app:create_app", env, profile_to=profile_path)
        processes.append(server)
        bare, bare_url = start_uvicorn("bench.bench_registry:bare_app", env)
        processes.append(bare)
        # Start the client processes (imports) before any clock runs.
        list(clients.map(abs, range(args.client_processes)))
        print(f"signing {args.registrations} registrations ...")
        payloads = [
            json.dumps(
                build_registration(
                    crypto.generate_private_key(),
                    f"Bench agent {i}",
                    description="benchmark agent",
                    tags=["bench", f"g{i % 10}"],
                    endpoint_url="https://agent.example/run",
                    version="1.0.0",
                )
            ).encode()
            for i in range(
                (args.registrations + 2 * args.warmup) * len(args.registration_processes)
                + args.agents
            )
        ]
        lookup_payloads = payloads[: args.agents]
        payloads = payloads[args.agents :]

        print("client ceiling (GET /bare/ok) ...")
        ceiling = combine(
            [
                load(
                    clients,
                    args.client_processes,
                    [("GET", f"{bare_url}/bare/ok", None)],
                    seconds=3,
                )
            ]
        )

        registrations: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        for number, count in enumerate(args.registration_processes):
            print(f"registrations, {count} server process(es) ...")
            ours, floor = (server, url), (bare, bare_url)
            if count > 1:
                # The same 20 connections in all, shared out among the processes.
                shared = env | {"DUKENET_POOL_MAX_SIZE": str(max(1, POOL_SIZE // count))}
                ours = start_uvicorn("dukenet.api.app:create_app", shared, workers=count)
                floor = start_uvicorn("bench.bench_registry:bare_app", shared, workers=count)
                processes.extend((ours[0], floor[0]))
            share = args.registrations + 2 * args.warmup
            mine = payloads[number * share : number * share + args.registrations]
            if args.warmup:
                # Unmeasured: each server opens its pool connections and prepares its
                # statements, as a server at work already has.
                spare = payloads[number * share + args.registrations : (number + 1) * share]
                load(
                    clients,
                    args.client_processes,
                    [("POST", f"{ours[1]}/v1/agents", p) for p in spare[: args.warmup]],
                )
                load(
                    clients,
                    args.client_processes,
                    [("POST", f"{floor[1]}/bare/insert", p) for p in spare[args.warmup :]],
                )
            reg_rounds: list[dict[str, Any]] = []
            ins_rounds: list[dict[str, Any]] = []
            for r in range(rounds):
                chunk = mine[r::rounds]
                reg_work: Work = [("POST", f"{ours[1]}/v1/agents", p) for p in chunk]
                ins_work: Work = [("POST", f"{floor[1]}/bare/insert", p) for p in chunk]
                reg_rounds.append(measured(ours[0].pid, clients, args.client_processes, reg_work))
                ins_rounds.append(measured(floor[0].pid, clients, args.client_processes, ins_work))
            registrations[count] = combine(reg_rounds), combine(ins_rounds)
            if count > 1:  # the lookups run against the one-process servers, alone
                for process in (ours[0], floor[0]):
                    process.terminate()
                    process.wait(timeout=60)
        registration, bare_insert = registrations[args.registration_processes[0]]

        ids = []
        with httpx.Client(timeout=30) as http:
            for payload in lookup_payloads:
                created = http.post(
                    f"{url}/v1/agents",
                    content=payload,
                    headers={"content-type": "application/json"},
                )
                created.raise_for_status()
                ids.append(created.json()["agent_id"])
            samples = {}
            for agent_id in ids:  # warm the cache
                response = http.get(f"{url}/v1/agents/{agent_id}")
                response.raise_for_status()
                samples[agent_id] = response.content
        client = redis.Redis.from_url(REDIS_URL)
        for agent_id, sample in samples.items():
            client.set(f"{prefix}bare:{agent_id}", sample, ex=600)

        if profile_path is not None:  # registration profile ends here, lookups start
            server.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
        print("cached lookups ...")
        random.seed(1)
        picks = [random.choice(ids) for _ in range(50_000)]
        get_work: Work = [("GET", f"{url}/v1/agents/{a}", None) for a in picks]
        bare_work: Work = [("GET", f"{bare_url}/bare/get/{a}", None) for a in picks]
        share = args.lookup_seconds / rounds

        def lookup_rounds(concurrency: int) -> tuple[dict[str, Any], dict[str, Any]]:
            """DukeNET and bare lookups, interleaved over the rounds."""
            ours: list[dict[str, Any]] = []
            floor: list[dict[str, Any]] = []
            for _ in range(rounds):
                for pid, work, results in (
                    (server.pid, get_work, ours),
                    (bare.pid, bare_work, floor),
                ):
                    results.append(
                        measured(
                            pid,
                            clients,
                            args.client_processes,
                            work,
                            seconds=share,
                            concurrency=concurrency,
                        )
                    )
            return combine(ours), combine(floor)

        lookups, bare_get = lookup_rounds(CONCURRENCY)
        # The same lookups with fewer requests in flight: with 32 in flight a request waits
        # behind the other 31 (Little's law: mean latency = in flight / throughput), so the
        # latency a lightly queued caller sees is measured separately.
        lookups_low, bare_get_low = lookup_rounds(args.low_concurrency)
        server_rss = peak_rss_mb(server.pid)
        bare_rss = peak_rss_mb(bare.pid)
    finally:
        clients.shutdown()
        for process in processes:
            process.terminate()
            process.wait(timeout=60)
        keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(match=prefix + "*", count=1000))
        if keys:
            redis.Redis.from_url(REDIS_URL).delete(*keys)
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    load_after = _load_average()

    if profile_path is not None and profile_path.exists():
        import pstats

        for path, phase in (
            (Path(f"{profile_path}.1"), "registrations"),
            (profile_path, "lookups"),
        ):
            if path.exists():
                for order in ("tottime", "cumulative"):
                    print(f"server profile, {phase} phase, top 25 by {order} ({path}):")
                    pstats.Stats(str(path)).sort_stats(order).print_stats(25)

    def row(name: str, result: dict[str, Any], floor: dict[str, Any], target: str) -> list[Any]:
        return [
            name,
            result["per_second"],
            result["latency_ms"]["p50"],
            result["latency_ms"]["p99"],
            floor["per_second"],
            floor["latency_ms"]["p99"],
            result["per_second"] / floor["per_second"],
            sum(result["errors"].values()) + sum(floor["errors"].values()),
            target,
        ]

    rows = [
        row(
            f"POST /v1/agents (register), {count} server process(es)",
            ours,
            floor,
            "≥ 500/s, p99 ≤ 50 ms",
        )
        for count, (ours, floor) in registrations.items()
    ] + [
        row("GET /v1/agents/{id} (cached)", lookups, bare_get, "≥ 3000/s, p99 ≤ 10 ms"),
        row(
            f"GET /v1/agents/{{id}} (cached), {args.low_concurrency} in flight",
            lookups_low,
            bare_get_low,
            "p99 ≤ 10 ms",
        ),
        row("GET /bare/ok (client ceiling)", ceiling, ceiling, "not the bottleneck"),
    ]
    report(
        "registry",
        f"Registry over HTTP, {CONCURRENCY} in flight, lookups on 1 server process, no "
        "embedded worker "
        f"(server peak RSS {server_rss:.1f} MiB{', PROFILED' if profile_path else ''})",
        [
            "operation",
            "req/s",
            "p50 ms",
            "p99 ms",
            "bare req/s",
            "bare p99 ms",
            "ratio to bare",
            "errors",
            "target",
        ],
        rows,
        {
            "profiled": profile_path is not None,
            "load_average": {"before": load_before, "after": load_after},
            "concurrency": CONCURRENCY,
            "client": f"aiohttp {aiohttp.__version__}, one ClientSession per process",
            "client_processes": args.client_processes,
            "rounds": rounds,
            "server_processes": {"lookups": 1, "registrations": args.registration_processes},
            "server": "uvicorn --loop uvloop --http httptools, DUKENET_EMBEDDED_WORKER=false",
            "client_ceiling_bare_ok": ceiling,
            "registration": registration,
            "bare_insert": bare_insert,
            "registration_by_server_processes": {
                str(count): {"dukenet": ours, "bare_insert": floor}
                for count, (ours, floor) in registrations.items()
            },
            "cached_lookup": lookups,
            "bare_redis_get": bare_get,
            "low_concurrency": args.low_concurrency,
            "cached_lookup_low_concurrency": lookups_low,
            "bare_redis_get_low_concurrency": bare_get_low,
            "ratios": {
                "registration_to_bare_insert": registration["per_second"]
                / bare_insert["per_second"],
                "lookup_to_bare_get": lookups["per_second"] / bare_get["per_second"],
            },
            "server_peak_rss_mib": server_rss,
            "bare_server_peak_rss_mib": bare_rss,
            "targets": {
                "registration_per_second": 500,
                "registration_p99_ms": 50,
                "lookup_per_second": 3000,
                "lookup_p99_ms": 10,
            },
        },
    )


if __name__ == "__main__":
    main()
