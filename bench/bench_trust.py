"""Trust benchmark: full recomputation and per-event updates at network scale.

Builds its own database (default 100,000 agents, 1,000,000 ratings, 5,000,000 attempts,
1,000,000 completed tasks with 2,000,000 subtasks, a 20-agent rating ring) with COPY, then
measures on the real PostgreSQL and Redis:

* building the per-agent attempt aggregates from the raw attempts (``rebuild``);
* the full recomputation (fraud scan, EigenTrust over the rating graph, every agent's score,
  records for the changed ones) on first run, in steady state, and with the rebuild;
* per-event incremental updates: record an attempt, recompute the agent's score and append
  its record in one transaction, then invalidate the caches (p50/p99 over 1,000 events).

Targets: full recomputation <= 30 s, per-event p99 <= 10 ms. Run with
``.venv/bin/python bench/bench_trust.py`` (``--scale 0.1`` for a quick run).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import report, summarize
from dukenet.store import migrations
from dukenet.store.cache import Cache
from dukenet.store.postgres import Database
from dukenet.trust import events, recompute
from dukenet.trust.parameters import TrustParameters

ADMIN_URL = os.environ.get("DUKENET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DUKENET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE = "dukenet_bench_trust"
DAY = 86_400.0
NOW = time.time()
RING = 20


def _uuids(count: int, rng: np.random.Generator) -> list[str]:
    raw = rng.integers(0, 2**63, size=(count, 2), dtype=np.int64).view(np.uint64)
    return [str(uuid.UUID(int=(int(a) << 64) | int(b))) for a, b in raw]


def _timestamps(seconds: npt.NDArray[np.float64]) -> list[str]:
    micros = (seconds * 1e6).astype(np.int64).astype("datetime64[us]")
    return np.datetime_as_string(micros, unit="us", timezone="UTC").tolist()


async def _copy(conn: asyncpg.Connection, table: str, columns: list[str], rows: list[str]) -> None:
    data = ("\n".join(rows) + "\n").encode()
    await conn.copy_to_table(table, source=io.BytesIO(data), columns=columns, format="csv")


async def build(url: str, agents: int, tasks: int, attempts: int, seed: int) -> dict[str, int]:
    """Create the data set with COPY (foreign-key triggers off: it is consistent by design)."""
    rng = np.random.default_rng(seed)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        agent_ids = [f"{x:064x}" for x in rng.integers(0, 2**62, agents, dtype=np.int64)]
        agent_ids = [f"{i:08x}" + a[8:] for i, a in enumerate(agent_ids)]  # unique by construction
        created = NOW - rng.uniform(0, 365, agents) * DAY
        created_text = _timestamps(created)
        owners = [""] * agents
        for i in range(0, min(agents, 150), 3):  # 50 owners of 3 agents each
            owner = f"0x{i:040x}"
            owners[i] = owners[i + 1] = owners[i + 2] = owner
        statuses = rng.choice(["ACTIVE", "INACTIVE"], agents, p=[0.8, 0.2])
        await _copy(
            conn,
            "agents",
            [
                "agent_id",
                "public_key",
                "display_name",
                "status",
                "owner_address",
                "created_at",
                "last_heartbeat",
            ],
            [
                f"{a},{a[:43]}=,agent {i},{statuses[i]},{owners[i]},{created_text[i]},"
                f"{created_text[i]}"
                for i, a in enumerate(agent_ids)
            ],
        )
        verified = np.flatnonzero(rng.random(agents) < 0.6)
        await _copy(
            conn,
            "agent_registrations",
            ["agent_id", "payload"],
            [f'{agent_ids[i]},"{{""signature"": ""x""}}"' for i in verified.tolist()],
        )
        up_start = created + rng.uniform(0, 1, agents) * (NOW - created)
        up_end = np.minimum(NOW + 60, up_start + rng.uniform(0, 1, agents) * (NOW - up_start))
        start_text, end_text = _timestamps(up_start), _timestamps(up_end)
        await _copy(
            conn,
            "agent_uptime_intervals",
            ["agent_id", "started_at", "ended_at"],
            [f"{a},{start_text[i]},{end_text[i]}" for i, a in enumerate(agent_ids)],
        )

        # tasks: creator -> seller (two subtasks each, the first one's agent is rated)
        ring = list(range(RING))
        ring_trades = [(b, ring[(i + s) % RING]) for i, b in enumerate(ring) for s in range(1, 6)]
        creators = rng.integers(RING, agents, tasks)
        sellers = rng.integers(RING, agents, tasks)
        sellers = np.where(sellers == creators, (sellers + 1) % agents, sellers)
        sellers = np.maximum(sellers, RING)
        for k, (buyer, seller) in enumerate(ring_trades):
            creators[k], sellers[k] = buyer, seller
        task_ids = _uuids(tasks, rng)
        done = NOW - rng.uniform(0, 365, tasks) * DAY
        done_text = _timestamps(done)
        for start in range(0, tasks, 200_000):
            chunk = range(start, min(tasks, start + 200_000))
            await _copy(
                conn,
                "tasks",
                [
                    "task_id",
                    "name",
                    "created_by",
                    "status",
                    "input_schema",
                    "output_schema",
                    "completed_at",
                ],
                [
                    f"{task_ids[t]},work,{agent_ids[creators[t]]},COMPLETED,{{}},{{}},{done_text[t]}"
                    for t in chunk
                ],
            )
        subtask_ids = _uuids(2 * tasks, rng)
        second_sellers = rng.integers(RING, agents, tasks)
        second_sellers[: len(ring_trades)] = sellers[: len(ring_trades)]
        costs = np.round(rng.exponential(0.5, 2 * tasks), 4)
        for k in range(len(ring_trades)):
            costs[2 * k] = 0.01
        sub_agent = np.empty(2 * tasks, dtype=np.int64)
        sub_agent[0::2], sub_agent[1::2] = sellers, second_sellers
        for start in range(0, 2 * tasks, 400_000):
            chunk = range(start, min(2 * tasks, start + 400_000))
            await _copy(
                conn,
                "subtasks",
                [
                    "subtask_id",
                    "parent_task_id",
                    "name",
                    "assigned_agent_id",
                    "status",
                    "input",
                    "capability_name",
                    "cost",
                    "quoted_price",
                    "completed_at",
                ],
                [
                    f"{subtask_ids[s]},{task_ids[s // 2]},step{s % 2},{agent_ids[sub_agent[s]]},"
                    f"COMPLETED,{{}},text.summarize,{costs[s]:.4f},{costs[s]:.4f},"
                    f"{done_text[s // 2]}"
                    for s in chunk
                ],
            )
        ratings = np.clip(np.round(rng.normal(4.0, 0.8, tasks), 2), 0, 5)
        ratings[: len(ring_trades)] = 5.0
        rated_at = _timestamps(done + rng.uniform(0, 2 * DAY, tasks))
        for start in range(0, tasks, 200_000):
            chunk = range(start, min(tasks, start + 200_000))
            await _copy(
                conn,
                "agent_ratings",
                ["agent_id", "rater_agent_id", "task_id", "rating", "created_at", "task_value"],
                [
                    f"{agent_ids[sellers[t]]},{agent_ids[creators[t]]},{task_ids[t]},"
                    f"{ratings[t]:.2f},{rated_at[t]},{costs[2 * t]:.4f}"
                    for t in chunk
                ],
            )
        # attempts: every subtask gets its successful attempt; the rest are earlier attempts
        # (failures, some not the agent's fault, a few cancellations) by other agents
        extra = attempts - 2 * tasks
        extra_subtasks = rng.integers(0, 2 * tasks, max(0, extra))
        extra_agents = rng.integers(0, agents, max(0, extra))
        # attempt numbers 1, 2, ... per subtask (the successful one is number 100)
        order = np.argsort(extra_subtasks, kind="stable")
        sorted_subtasks = extra_subtasks[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_subtasks)) + 1]
        run_index = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        attempt_numbers = np.empty(len(order), dtype=np.int64)
        attempt_numbers[order] = run_index + 1
        latency = np.maximum(1, rng.lognormal(5.0, 0.8, attempts)).astype(np.int64)
        declared = rng.choice([200, 500, 1000, 2000], attempts)
        kinds = rng.random(max(0, extra))
        finished = done[np.concatenate([np.arange(2 * tasks) // 2, extra_subtasks // 2])]
        finished_text = _timestamps(finished)
        rows: list[str] = []
        for s in range(2 * tasks):
            rows.append(
                f"{subtask_ids[s]},100,{agent_ids[sub_agent[s]]},success,false,{latency[s]},"
                f"{declared[s]},{costs[s]:.4f},{finished_text[s]}"
            )
            if len(rows) == 500_000:
                await _copy_attempts(conn, rows)
                rows = []
        for j in range(max(0, extra)):
            s = int(extra_subtasks[j])
            i = 2 * tasks + j
            kind = kinds[j]
            outcome, caused = (
                ("failure", "true")
                if kind < 0.7
                else ("failure", "false")
                if kind < 0.9
                else ("cancelled", "false")
            )
            rows.append(
                f"{subtask_ids[s]},{attempt_numbers[j]},{agent_ids[extra_agents[j]]},{outcome},"
                f"{caused},"
                f"{latency[i]},{declared[i]},{costs[s]:.4f},{finished_text[i]}"
            )
            if len(rows) == 500_000:
                await _copy_attempts(conn, rows)
                rows = []
        if rows:
            await _copy_attempts(conn, rows)
        await conn.execute("SET session_replication_role = DEFAULT")
        await conn.execute("VACUUM ANALYZE")
        counts = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("agents", "tasks", "subtasks", "agent_ratings", "agent_attempts")
        }
    finally:
        await conn.close()
    return counts


async def _copy_attempts(conn: asyncpg.Connection, rows: list[str]) -> None:
    await _copy(
        conn,
        "agent_attempts",
        [
            "subtask_id",
            "attempt",
            "agent_id",
            "outcome",
            "caused_by_agent",
            "latency_ms",
            "declared_p99_ms",
            "value",
            "finished_at",
        ],
        rows,
    )


async def per_event(
    db: Database, cache: Cache, params: TrustParameters, count: int, seed: int
) -> tuple[list[float], list[float]]:
    """Latencies (ms) of full per-event updates (record + recompute + commit + invalidate)
    and of the recomputation alone, on random agents and subtasks."""
    rng = np.random.default_rng(seed + 1)
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT subtask_id, assigned_agent_id FROM subtasks TABLESAMPLE SYSTEM (1) LIMIT $1",
            count,
        )
    full: list[float] = []
    recompute_only: list[float] = []
    for number, row in enumerate(rows):
        outcome = "success" if rng.random() < 0.8 else "failure"
        started = time.perf_counter()
        async with db.transaction() as conn:
            await events.record_attempt(
                conn,
                agent_id=row["assigned_agent_id"],
                capability_id=None,
                subtask_id=row["subtask_id"],
                attempt=1_000 + number,
                outcome=outcome,
                caused_by_agent=outcome == "failure",
                latency_ms=int(rng.integers(20, 2_000)),
                declared_p99_ms=500,
                params=params,
            )
            middle = time.perf_counter()
            await events.recompute_trust(
                conn, cache, row["assigned_agent_id"], reason="attempt", params=params
            )
            recompute_only.append((time.perf_counter() - middle) * 1000)
        await events.after_commit_invalidate(cache, [row["assigned_agent_id"]])
        full.append((time.perf_counter() - started) * 1000)
    return full, recompute_only


async def run(scale: float, events_count: int, seed: int, keep: bool, reuse: bool) -> None:
    agents, tasks = int(100_000 * scale), int(1_000_000 * scale)
    attempts = int(5_000_000 * scale)
    admin = await asyncpg.connect(ADMIN_URL)
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
    url = ADMIN_URL.rpartition("/")[0] + f"/{DATABASE}"
    started = time.perf_counter()
    if reuse and exists:
        await admin.close()
        conn = await asyncpg.connect(url)
        await migrations.upgrade(conn)
        counts = {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("agents", "tasks", "subtasks", "agent_ratings", "agent_attempts")
        }
        await conn.close()
        print(f"reusing {DATABASE}: {counts}")
    else:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        await admin.close()
        conn = await asyncpg.connect(url)
        await migrations.upgrade(conn)
        await conn.close()
        counts = await build(url, agents, tasks, attempts, seed)
    build_seconds = time.perf_counter() - started

    params = TrustParameters()
    prefix = f"bench:trust:{uuid.uuid4().hex[:8]}:"
    db = await Database.connect(url, min_size=1, max_size=4)
    cache = Cache.connect(REDIS_URL, prefix)
    timings: dict[str, Any] = {}
    try:
        async with db.acquire() as conn:
            started = time.perf_counter()
            stats_agents = await recompute.rebuild_attempt_stats(conn, params)
            timings["rebuild_stats_s"] = time.perf_counter() - started
        runs: dict[str, recompute.RunReport] = {}
        for name, rebuild in (("first", False), ("steady", False), ("with_rebuild", True)):
            started = time.perf_counter()
            found = await recompute.recompute_all(db, cache, params, rebuild=rebuild)
            assert found is not None
            timings[f"full_{name}_s"] = time.perf_counter() - started
            runs[name] = found
        full, recompute_only = await per_event(db, cache, params, events_count, seed)
    finally:
        async with cache.guard() as client:
            keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
            if keys:
                await client.delete(*keys)
        await cache.close()
        await db.close()
        if not keep:
            admin = await asyncpg.connect(ADMIN_URL)
            await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            await admin.close()

    event_stats = summarize(full)
    recompute_stats = summarize(recompute_only)
    first = runs["first"]
    rows = [
        [
            "data set",
            f"{counts['agents']:,} agents, {counts['agent_ratings']:,} ratings, "
            f"{counts['agent_attempts']:,} attempts",
            "",
            f"built in {build_seconds:.0f} s",
        ],
        [
            "aggregates from raw attempts (rebuild)",
            f"{timings['rebuild_stats_s']:.2f} s",
            "",
            f"{stats_agents:,} agents",
        ],
        [
            "full recomputation, first run",
            f"{timings['full_first_s']:.2f} s",
            "<= 30 s",
            f"{first.records_appended:,} records, {first.flags_raised} flags, "
            f"EigenTrust {first.eigentrust_iterations} it / {first.eigentrust_edges:,} edges",
        ],
        [
            "full recomputation, steady state",
            f"{timings['full_steady_s']:.2f} s",
            "<= 30 s",
            f"{runs['steady'].records_appended:,} records",
        ],
        [
            "full recomputation incl. rebuild",
            f"{timings['full_with_rebuild_s']:.2f} s",
            "<= 30 s",
            f"{runs['with_rebuild'].records_appended:,} records",
        ],
        [
            "per-event update p50 / p99",
            f"{event_stats['p50']:.2f} / {event_stats['p99']:.2f} ms",
            "p99 <= 10 ms",
            f"{len(full)} events (record + recompute + commit + invalidate)",
        ],
        [
            "  recompute only p50 / p99",
            f"{recompute_stats['p50']:.2f} / {recompute_stats['p99']:.2f} ms",
            "",
            "",
        ],
    ]
    report(
        "trust",
        "Trust recomputation",
        ["measure", "result", "target", "details"],
        rows,
        {
            "scale": scale,
            "counts": counts,
            "build_seconds": build_seconds,
            "rebuild_stats_seconds": timings["rebuild_stats_s"],
            "full_recompute_seconds": {
                "first_run": timings["full_first_s"],
                "steady_state": timings["full_steady_s"],
                "with_rebuild": timings["full_with_rebuild_s"],
            },
            "full_recompute_phases": {name: r.phases for name, r in runs.items()},
            "first_run": {
                "records_appended": first.records_appended,
                "flags_raised": first.flags_raised,
                "eigentrust_iterations": first.eigentrust_iterations,
                "eigentrust_edges": first.eigentrust_edges,
                "pre_trusted": first.pre_trusted,
            },
            "per_event_ms": event_stats,
            "recompute_only_ms": recompute_stats,
            "targets": {"full_recompute_seconds": 30, "per_event_p99_ms": 10},
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full data set")
    parser.add_argument("--events", type=int, default=1000, help="per-event updates to time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument(
        "--reuse", action="store_true", help="use a kept benchmark database instead of building"
    )
    args = parser.parse_args()
    asyncio.run(run(args.scale, args.events, args.seed, args.keep or args.reuse, args.reuse))


if __name__ == "__main__":
    main()
