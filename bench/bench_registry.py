"""Registry throughput: registrations/s and cached agent lookups/s over real HTTP.

Runs the DukeNET API as a real uvicorn process (one process) on localhost, against
PostgreSQL and Redis, next to a *bare* FastAPI process doing only the one underlying store
operation per request (an INSERT of the same JSON, or one Redis GET of the same bytes), so
the report shows DukeNET's cost relative to the floor on this machine. Clients are
separate processes (httpx, keep-alive) with 32 concurrent requests in flight. The server's
peak RSS is the kernel's high-water mark (VmHWM).

    python bench/bench_registry.py [--registrations 3000] [--lookup-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import report, summarize
from dukenet import crypto
from dukenet.sdk import build_registration
from dukenet.store import migrations

ADMIN_URL = os.environ.get("DUKENET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DUKENET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONCURRENCY = 32
CLIENT_PROCESSES = 2


# ---------------------------------------------------------------- bare comparison app
def bare_app() -> Any:
    """FastAPI doing one INSERT or one Redis GET per request (the floor to compare with)."""
    import redis.asyncio as aioredis
    from fastapi import FastAPI, Request, Response

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(os.environ["BARE_DATABASE_URL"], max_size=20)
        app.state.redis = aioredis.Redis.from_url(os.environ["BARE_REDIS_URL"])
        yield
        await app.state.pool.close()
        await app.state.redis.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/bare/insert", status_code=201)
    async def insert(request: Request) -> Response:
        body = await request.body()
        await app.state.pool.execute(
            "INSERT INTO bench_bare (id, payload) VALUES ($1, $2::jsonb)",
            uuid.uuid4().hex,
            body.decode(),
        )
        return Response(b'{"ok":true}', status_code=201, media_type="application/json")

    @app.get("/bare/get/{key}")
    async def get(key: str) -> Response:
        value = await app.state.redis.get(f"{os.environ['BARE_PREFIX']}bare:{key}")
        return Response(value, media_type="application/json")

    return app


# ---------------------------------------------------------------- load generation
def _client_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One client process: ``concurrency`` keep-alive connections, requests from ``work``."""

    async def run() -> dict[str, Any]:
        latencies: list[float] = []
        errors: dict[int, int] = {}
        work: list[tuple[str, str, Any]] = job["work"]
        deadline = job.get("deadline")
        cursor = 0

        async def one_connection(http: httpx.AsyncClient) -> None:
            nonlocal cursor
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
                started = time.perf_counter()
                response = await http.request(method, url, json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 300:
                    errors[response.status_code] = errors.get(response.status_code, 0) + 1

        limits = httpx.Limits(max_connections=job["concurrency"])
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
            began = time.time()
            await asyncio.gather(*(one_connection(http) for _ in range(job["concurrency"])))
            ended = time.time()
        return {"latencies": latencies, "errors": errors, "began": began, "ended": ended}

    return asyncio.run(run())


def load(work: list[tuple[str, str, Any]], *, seconds: float | None = None) -> dict[str, Any]:
    """Run ``work`` with CONCURRENCY requests in flight from CLIENT_PROCESSES processes."""
    shares = [work[i::CLIENT_PROCESSES] for i in range(CLIENT_PROCESSES)]
    start_at = time.time() + 1.0
    jobs = [
        {
            "work": share,
            "concurrency": CONCURRENCY // CLIENT_PROCESSES,
            "start_at": start_at,
            "deadline": start_at + seconds if seconds else None,
        }
        for share in shares
    ]
    with ProcessPoolExecutor(CLIENT_PROCESSES) as pool:
        results = list(pool.map(_client_worker, jobs))
    latencies = [x for r in results for x in r["latencies"]]
    errors: dict[int, int] = {}
    for r in results:
        for status, count in r["errors"].items():
            errors[status] = errors.get(status, 0) + count
    elapsed = max(r["ended"] for r in results) - min(r["began"] for r in results)
    stats = summarize([x * 1000 for x in latencies])
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "per_second": len(latencies) / elapsed,
        "latency_ms": stats,
        "errors": errors,
    }


# ---------------------------------------------------------------- servers
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_uvicorn(target: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """``uvicorn target --factory`` on a free port, waiting until it answers."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
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


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _admin(sql: str, url: str = ADMIN_URL) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _prepare_database(name: str) -> str:
    await _admin(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rpartition("/")[0] + f"/{name}"
    conn = await asyncpg.connect(url)
    try:
        await migrations.upgrade(conn)
        await conn.execute("CREATE TABLE bench_bare (id TEXT PRIMARY KEY, payload JSONB NOT NULL)")
    finally:
        await conn.close()
    return url


# ---------------------------------------------------------------- the benchmark
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registrations", type=int, default=3000)
    parser.add_argument("--lookup-seconds", type=float, default=10.0)
    parser.add_argument("--agents", type=int, default=200, help="agents looked up at random")
    args = parser.parse_args()

    run_id = uuid.uuid4().hex[:8]
    db_name = f"dukenet_bench_{run_id}"
    prefix = f"bench:{run_id}:"
    db_url = asyncio.run(_prepare_database(db_name))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
    env |= {
        "DUKENET_DATABASE_URL": db_url,
        "DUKENET_REDIS_URL": REDIS_URL,
        "DUKENET_REDIS_PREFIX": prefix,
        "DUKENET_NETWORK_KEY": crypto.private_key_to_b64(crypto.generate_private_key()),
        "DUKENET_DATA_DIR": f"/tmp/dukenet-bench-{run_id}",
        "DUKENET_POOL_MAX_SIZE": "20",
        # Limits are enforced (each request still pays its Redis round trip) but high enough
        # that one benchmark client address is never throttled.
        "DUKENET_RATE_LIMITS": "register=10000000/minute,read=10000000/minute",
        "BARE_DATABASE_URL": db_url,
        "BARE_REDIS_URL": REDIS_URL,
        "BARE_PREFIX": prefix,
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        server, url = start_uvicorn("dukenet.api.app:create_app", env)
        processes.append(server)
        bare, bare_url = start_uvicorn("bench.bench_registry:bare_app", env)
        processes.append(bare)
        print(f"signing {args.registrations} registrations ...")
        payloads = [
            build_registration(
                crypto.generate_private_key(),
                f"Bench agent {i}",
                description="benchmark agent",
                tags=["bench", f"g{i % 10}"],
                endpoint_url="https://agent.example/run",
                version="1.0.0",
            )
            for i in range(args.registrations + args.agents)
        ]
        lookup_payloads = payloads[args.registrations :]
        payloads = payloads[: args.registrations]

        print("registrations ...")
        registration = load([("POST", f"{url}/v1/agents", p) for p in payloads])
        bare_insert = load([("POST", f"{bare_url}/bare/insert", p) for p in payloads])

        ids = []
        with httpx.Client(timeout=30) as http:
            for payload in lookup_payloads:
                created = http.post(f"{url}/v1/agents", json=payload)
                created.raise_for_status()
                ids.append(created.json()["agent_id"])
            sample = b""
            for agent_id in ids:  # warm the cache
                sample = http.get(f"{url}/v1/agents/{agent_id}").content
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for agent_id in ids:
            client.set(f"{prefix}bare:{agent_id}", sample, ex=600)

        print("cached lookups ...")
        random.seed(1)
        picks = [random.choice(ids) for _ in range(50_000)]
        lookups = load(
            [("GET", f"{url}/v1/agents/{a}", None) for a in picks], seconds=args.lookup_seconds
        )
        bare_get = load(
            [("GET", f"{bare_url}/bare/get/{a}", None) for a in picks], seconds=args.lookup_seconds
        )
        server_rss = peak_rss_mb(server.pid)
        bare_rss = peak_rss_mb(bare.pid)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(match=prefix + "*", count=1000))
        if keys:
            redis.Redis.from_url(REDIS_URL).delete(*keys)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))

    def row(name: str, result: dict[str, Any], floor: dict[str, Any], target: str) -> list[Any]:
        return [
            name,
            result["per_second"],
            result["latency_ms"]["p50"],
            result["latency_ms"]["p99"],
            floor["per_second"],
            result["per_second"] / floor["per_second"],
            sum(result["errors"].values()),
            target,
        ]

    rows = [
        row("POST /v1/agents (register)", registration, bare_insert, "≥ 500/s, p99 ≤ 50 ms"),
        row("GET /v1/agents/{id} (cached)", lookups, bare_get, "≥ 3000/s, p99 ≤ 10 ms"),
    ]
    report(
        "registry",
        f"Registry over HTTP, {CONCURRENCY} concurrent clients, 1 server process "
        f"(server peak RSS {server_rss:.1f} MiB)",
        [
            "operation",
            "req/s",
            "p50 ms",
            "p99 ms",
            "bare req/s",
            "ratio to bare",
            "errors",
            "target",
        ],
        rows,
        {
            "concurrency": CONCURRENCY,
            "client_processes": CLIENT_PROCESSES,
            "server_processes": 1,
            "registration": registration,
            "bare_insert": bare_insert,
            "cached_lookup": lookups,
            "bare_redis_get": bare_get,
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
