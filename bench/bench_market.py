"""Marketplace throughput: create+complete transaction pairs per second over real HTTP.

Runs the DukeNET API as a real uvicorn process on localhost (its own benchmark database,
PostgreSQL and Redis as configured). Each client loop buys (``POST /v1/transactions``,
holding the amount from the buyer's balance) and then completes as the seller
(``POST /v1/transactions/{id}/complete``: settlement, platform fee, audit record), both
with an ``Idempotency-Key`` and a bearer session, as real agents would. 32 loops run at
once from separate client processes (aiohttp, keep-alive).

* spread: each pair's buyer is one of 1,000 funded buyers, sellers one of 250;
* hot: every pair buys from the same buyer, so all 32 loops contend for one balance row.

Every agent has logged in and read its balance once before the clock starts, as agents
at work have: the runs measure the steady state (agent records cached), not a cold start.

At the end the ledger invariant is checked twice: by the operator route
(``GET /v1/admin/ledger``) and by plain SQL over the tables (every movement sums to zero;
balances + fees = deposits - payouts; balance rows = their entries).

Each server configuration (``--workers``: 1 process and one per CPU by default) runs on
a fresh database, next to a ``GET /healthz`` run that shows this machine's ceiling.

Throughput depends on whatever else the machine runs, so each run also reports the CPU
time a pair cost the server processes and the PostgreSQL backends serving the benchmark
database (from ``/proc``, Linux only): a steadier measure of the server's own work.

    python bench/bench_market.py [--seconds 20] [--buyers 1000] [--sellers 250] [--workers 1 2]
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
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    ADMIN_URL,
    admin_sql,
    children,
    cpu_seconds,
    create_database,
    freeze_heap,
    report,
    summarize,
)
from dukenet import crypto
from dukenet.sdk import AsyncClient

REDIS_URL = os.environ.get("DUKENET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_TOKEN = "bench-admin-token"
CONCURRENCY = 32
CLIENT_PROCESSES = 2
TARGET_PAIRS_PER_SECOND = 300
PRICE = "1.2345"


# ---------------------------------------------------------------- load generation
def _client_worker(job: dict[str, Any]) -> dict[str, Any]:
    """One client process: ``concurrency`` loops of create + complete until the deadline.

    The load uses aiohttp, which needs about half the CPU per request of httpx: client and
    server share this machine's cores, so a lighter client measures the server better.
    """

    async def run() -> dict[str, Any]:
        rng = random.Random(job["seed"])
        buyers: list[str] = job["buyers"]
        sellers: list[tuple[str, str]] = job["sellers"]
        pair_latencies: list[float] = []
        create_latencies: list[float] = []
        complete_latencies: list[float] = []
        errors: dict[str, int] = {}

        def failed(step: str, status: int) -> None:
            code = f"{step} {status}"
            errors[code] = errors.get(code, 0) + 1

        async def floor_loop(http: aiohttp.ClientSession) -> None:
            # The machine's ceiling for this client and server: a request that does nothing.
            while time.time() < job["deadline"]:
                started = time.perf_counter()
                async with http.get("/healthz") as response:
                    await response.read()
                if response.status != 200:
                    failed("healthz", response.status)
                    continue
                pair_latencies.append(time.perf_counter() - started)

        async def loop(http: aiohttp.ClientSession) -> None:
            while time.time() < job["deadline"]:
                buyer_token = rng.choice(buyers)
                seller_id, seller_token = rng.choice(sellers)
                started = time.perf_counter()
                async with http.post(
                    "/v1/transactions",
                    json={
                        "seller_agent_id": seller_id,
                        "transaction_type": "DATA_PURCHASE",
                        "amount": PRICE,
                        "item_id": "bench-item",
                    },
                    headers={
                        "authorization": f"Bearer {buyer_token}",
                        "idempotency-key": uuid.uuid4().hex,
                    },
                ) as created:
                    body = await created.json()
                middle = time.perf_counter()
                if created.status != 201:
                    failed("create", created.status)
                    continue
                async with http.post(
                    f"/v1/transactions/{body['transaction_id']}/complete",
                    json={"completion_proof": {"cid": "bafybench"}},
                    headers={
                        "authorization": f"Bearer {seller_token}",
                        "idempotency-key": uuid.uuid4().hex,
                    },
                ) as completed:
                    await completed.read()
                ended = time.perf_counter()
                if completed.status != 200:
                    failed("complete", completed.status)
                    continue
                create_latencies.append(middle - started)
                complete_latencies.append(ended - middle)
                pair_latencies.append(ended - started)

        connector = aiohttp.TCPConnector(limit=job["concurrency"])
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(job["url"], connector=connector, timeout=timeout) as http:
            await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
            began = time.time()
            work = floor_loop if job["floor"] else loop
            await asyncio.gather(*(work(http) for _ in range(job["concurrency"])))
            ended = time.time()
        return {
            "pairs": pair_latencies,
            "create": create_latencies,
            "complete": complete_latencies,
            "errors": errors,
            "began": began,
            "ended": ended,
        }

    freeze_heap()
    return asyncio.run(run())


def load(
    url: str,
    buyers: list[str],
    sellers: list[tuple[str, str]],
    seconds: float,
    *,
    floor: bool = False,
) -> dict[str, Any]:
    """CONCURRENCY create+complete loops (with ``floor``: ``GET /healthz`` loops) from
    CLIENT_PROCESSES processes for ``seconds``."""
    start_at = time.time() + 1.5
    jobs = [
        {
            "url": url,
            "buyers": buyers,
            "sellers": sellers,
            "concurrency": CONCURRENCY // CLIENT_PROCESSES,
            "start_at": start_at,
            "deadline": start_at + seconds,
            "seed": index,
            "floor": floor,
        }
        for index in range(CLIENT_PROCESSES)
    ]
    with ProcessPoolExecutor(CLIENT_PROCESSES) as pool:
        results = list(pool.map(_client_worker, jobs))
    pairs = [x for r in results for x in r["pairs"]]
    errors: dict[str, int] = {}
    for r in results:
        for code, count in r["errors"].items():
            errors[code] = errors.get(code, 0) + count
    elapsed = max(r["ended"] for r in results) - min(r["began"] for r in results)

    def ms(values: list[float]) -> dict[str, float]:
        return summarize([v * 1000 for v in values]) if values else {}

    return {
        "pairs": len(pairs),
        "seconds": elapsed,
        "pairs_per_second": len(pairs) / elapsed,
        "pair_latency_ms": ms(pairs),
        "create_latency_ms": ms([x for r in results for x in r["create"]]),
        "complete_latency_ms": ms([x for r in results for x in r["complete"]]),
        "errors": errors,
    }


# ---------------------------------------------------------------- CPU per pair
async def _backend_pids(database: str) -> list[int]:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


def _cpu_snapshot(server_pid: int, database: str) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the server's processes and the database's backends."""
    server = [server_pid, *children(server_pid)]
    backends = asyncio.run(_backend_pids(database))
    return {
        "server": {pid: cpu_seconds(pid) for pid in server},
        "postgres": {pid: cpu_seconds(pid) for pid in backends},
    }


def measured_load(
    server_pid: int, database: str, url: str, buyers: list[str], sellers: list[tuple[str, str]],
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """``load`` plus the server's and PostgreSQL's CPU milliseconds per completed pair
    (backends opened during the run count from zero)."""
    before = _cpu_snapshot(server_pid, database)
    result = load(url, buyers, sellers, seconds)
    after = _cpu_snapshot(server_pid, database)
    pairs = max(result["pairs"], 1)
    for side in ("server", "postgres"):
        spent = sum(cpu - before[side].get(pid, 0.0) for pid, cpu in after[side].items())
        result[f"{side}_cpu_ms_per_pair"] = spent * 1000 / pairs
    return result


# ---------------------------------------------------------------- setup
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """The DukeNET API under uvicorn on a free port, waiting until it is ready."""
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", "dukenet.api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--no-access-log", "--workers", str(workers),
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=Path(__file__).resolve().parent.parent)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not start")


async def make_agents(url: str, count: int, deposit: str | None) -> list[tuple[str, str]]:
    """Register ``count`` agents over HTTP, log each in, fund them and read their balance
    once; (agent_id, token)."""
    semaphore = asyncio.Semaphore(16)
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=16))
    operator = AsyncClient(url, admin_token=ADMIN_TOKEN)

    async def one(index: int) -> tuple[str, str]:
        async with semaphore:
            client = AsyncClient(url, key=crypto.generate_private_key(), transport=transport)
            await client.register(f"Bench agent {index}")
            session = await client.login()
            if deposit is not None:
                await operator.deposit(client.agent_id, deposit, payment_method="bench")
            # One authenticated read, as an agent already at work has made: its record is in
            # the agent cache when the clock starts (the steady state, not a cold start).
            await client.get_balance()
            return client.agent_id, session.token

    try:
        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        await operator.aclose()
        await transport.aclose()


async def commit_latency_ms(url: str, rounds: int = 50) -> float:
    """Median time of a one-row write transaction: PostgreSQL's commit (WAL flush) latency,
    which every money-moving request pays once and the hot buyer's row lock is held across."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE bench_commit (id BIGSERIAL PRIMARY KEY)")
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            await conn.execute("INSERT INTO bench_commit DEFAULT VALUES")
            samples.append((time.perf_counter() - started) * 1000)
        await conn.execute("DROP TABLE bench_commit")
    finally:
        await conn.close()
    return sorted(samples)[len(samples) // 2]


async def check_ledger_sql(url: str) -> dict[str, Any]:
    """The invariant straight from the tables, independent of the code under test."""
    conn = await asyncpg.connect(url)
    try:
        unbalanced = await conn.fetchval(
            "SELECT COUNT(*) FROM (SELECT movement_id FROM ledger_entries"
            " GROUP BY movement_id HAVING SUM(amount) <> 0) m"
        )
        money = await conn.fetchval("SELECT COALESCE(SUM(available + held), 0) FROM balances")
        fees = await conn.fetchval(
            "SELECT COALESCE(SUM(amount), 0) FROM ledger_entries WHERE account = 'PLATFORM_FEES'"
        )
        funding = await conn.fetchval(
            "SELECT COALESCE(SUM(CASE kind WHEN 'DEPOSIT' THEN amount ELSE -amount END), 0)"
            " FROM ledger_movements WHERE kind IN ('DEPOSIT', 'PAYOUT')"
        )
        drifted = await conn.fetchval(
            """
            SELECT COUNT(*) FROM balances b
            LEFT JOIN (SELECT agent_id, currency,
                              SUM(amount) FILTER (WHERE account = 'AVAILABLE') AS available,
                              SUM(amount) FILTER (WHERE account = 'HELD') AS held
                       FROM ledger_entries WHERE agent_id IS NOT NULL
                       GROUP BY agent_id, currency) e USING (agent_id, currency)
            WHERE b.available <> COALESCE(e.available, 0) OR b.held <> COALESCE(e.held, 0)
            """
        )
        completed = await conn.fetchval(
            "SELECT COUNT(*) FROM transactions WHERE status = 'COMPLETED'"
        )
        audited = await conn.fetchval(
            "SELECT COUNT(*) FROM transactions t JOIN audit_paths p"
            " ON p.path = '/dukenet/transactions/' || t.transaction_id AND p.cid = t.audit_cid"
            " WHERE t.status = 'COMPLETED'"
        )
    finally:
        await conn.close()
    return {
        "unbalanced_movements": unbalanced,
        "balances_plus_fees": str(money + fees),
        "deposits_minus_payouts": str(funding),
        "balance_rows_drifted": drifted,
        "completed_transactions": completed,
        "completed_with_audit_record": audited,
        "holds": unbalanced == 0 and money + fees == funding and drifted == 0,
    }


# ---------------------------------------------------------------- the benchmark
def run_configuration(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """One server configuration on a fresh database: setup, floor, spread, hot, ledger."""
    run_id = uuid.uuid4().hex[:8]
    db_name = f"dukenet_bench_market_{run_id}"
    prefix = f"bench:{run_id}:"
    db_url = asyncio.run(create_database(db_name))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
    env |= {
        "DUKENET_DATABASE_URL": db_url,
        "DUKENET_REDIS_URL": REDIS_URL,
        "DUKENET_REDIS_PREFIX": prefix,
        "DUKENET_NETWORK_KEY": crypto.private_key_to_b64(crypto.generate_private_key()),
        "DUKENET_DATA_DIR": f"/tmp/dukenet-bench-{run_id}",
        "DUKENET_ADMIN_TOKEN": ADMIN_TOKEN,
        "DUKENET_POOL_MAX_SIZE": str(args.pool),
        # Limits are enforced (every request still pays its Redis round trip) but set high
        # enough that the benchmark's agents are never throttled.
        "DUKENET_RATE_LIMITS": "register=10000000/minute,auth=10000000/minute,"
        "read=10000000/minute,write=10000000/minute",
    }
    load_before = os.getloadavg()
    commit_ms = asyncio.run(commit_latency_ms(db_url))
    server, url = start_server(env, workers)
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        print(f"[{workers} server process(es)] {args.buyers} buyers, {args.sellers} sellers ...")
        buyers = asyncio.run(make_agents(url, args.buyers, deposit="100000"))
        sellers = asyncio.run(make_agents(url, args.sellers, deposit=None))
        hot = asyncio.run(make_agents(url, 1, deposit="10000000"))
        print(f"  floor: GET /healthz, {args.seconds / 2:.0f}s ...")
        floor = load(url, [], [], args.seconds / 2, floor=True)
        print(f"  spread: {CONCURRENCY} clients over {args.buyers} buyers, {args.seconds:.0f}s ...")
        spread_tokens = [token for _, token in buyers]
        spread = measured_load(server.pid, db_name, url, spread_tokens, sellers, args.seconds)
        print(f"  hot: {CONCURRENCY} clients on one buyer, {args.seconds:.0f}s ...")
        hot_run = measured_load(server.pid, db_name, url, [hot[0][1]], sellers, args.seconds)
        summary = httpx.get(f"{url}/v1/admin/ledger", headers=admin).json()
        sql_check = asyncio.run(check_ledger_sql(db_url))
        hot_balance = httpx.get(f"{url}/v1/agents/{hot[0][0]}/balance", headers=admin).json()
    finally:
        server.terminate()
        server.wait(timeout=30)
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))

    spent = Decimal("10000000") - Decimal(hot_balance["balances"][0]["available"])
    hot_consistent = spent == Decimal(PRICE) * hot_run["pairs"]
    floor_rps = floor["pairs_per_second"]  # requests/s of GET /healthz
    return {
        "server_processes": workers,
        # Other work on the machine skews every figure: its load average before the run.
        "load_average_before": load_before,
        "postgres_commit_latency_ms": commit_ms,
        "spread": spread,
        "hot": hot_run,
        "hot_to_spread_ratio": hot_run["pairs_per_second"] / spread["pairs_per_second"],
        "healthz_floor": {
            "requests_per_second": floor_rps,
            "latency_ms": floor["pair_latency_ms"],
            "errors": floor["errors"],
        },
        # Each pair is two requests: how much of the do-nothing ceiling a pair's work leaves.
        "spread_requests_as_share_of_healthz_floor": 2 * spread["pairs_per_second"] / floor_rps,
        "ledger": {
            "operator_summary": summary,
            "sql_check": sql_check,
            "hot_buyer_spent": str(spent),
            "hot_buyer_spent_matches_pairs": hot_consistent,
            "invariant_holds": bool(summary["balanced"]) and sql_check["holds"] and hot_consistent,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each run")
    parser.add_argument("--buyers", type=int, default=1000)
    parser.add_argument("--sellers", type=int, default=250)
    parser.add_argument(
        "--pool", type=int, default=20, help="PostgreSQL connections per server process"
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, os.cpu_count() or 1],
        help="server process counts to measure (default: 1 and one per CPU)",
    )
    args = parser.parse_args()
    configurations = [run_configuration(args, w) for w in dict.fromkeys(args.workers)]

    def row(config: dict[str, Any], name: str) -> list[Any]:
        result = config[name]
        return [
            config["server_processes"],
            f"{name} ({args.buyers})" if name == "spread" else f"{name} (1)",
            result["pairs_per_second"],
            result["pair_latency_ms"].get("p50", 0.0),
            result["pair_latency_ms"].get("p99", 0.0),
            sum(result["errors"].values()),
            result["server_cpu_ms_per_pair"],
            result["postgres_cpu_ms_per_pair"],
            config["hot_to_spread_ratio"] if name == "hot" else "",
            config["healthz_floor"]["requests_per_second"] if name == "spread" else "",
            config["postgres_commit_latency_ms"] if name == "spread" else "",
        ]

    invariant = all(c["ledger"]["invariant_holds"] for c in configurations)
    best = max(c["spread"]["pairs_per_second"] for c in configurations)
    report(
        "market",
        f"create+complete pairs over HTTP, {CONCURRENCY} clients; "
        f"ledger {'balanced' if invariant else 'BROKEN'}",
        [
            "procs",
            "buyers",
            "pairs/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "server cpu ms/pair",
            "pg cpu ms/pair",
            "hot/spread",
            "healthz/s",
            "commit ms",
        ],
        [row(c, name) for c in configurations for name in ("spread", "hot")],
        {
            "concurrency": CONCURRENCY,
            "client_processes": CLIENT_PROCESSES,
            "seconds_per_run": args.seconds,
            "buyers": args.buyers,
            "sellers": args.sellers,
            "price": PRICE,
            "idempotency_keys": True,
            "pool_max_size_per_process": args.pool,
            "configurations": configurations,
            "best_spread_pairs_per_second": best,
            "target_pairs_per_second": TARGET_PAIRS_PER_SECOND,
            "meets_target": best >= TARGET_PAIRS_PER_SECOND,
            "ledger_invariant_holds": invariant,
        },
    )
    if not invariant:
        sys.exit(1)


if __name__ == "__main__":
    main()
