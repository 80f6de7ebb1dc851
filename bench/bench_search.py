"""Capability search at 100,000 agents and ~300,000 capabilities.

1. Seeds its own database with ``dukenet seed``'s synthetic registry (COPY), then VACUUM
   ANALYZE; a later run reuses it when it holds the same number of agents (``--reseed``
   forces a new one).
2. Server-side latency, measured in-process by calling ``Searcher.search_json`` (what the
   API route calls), for 8 query shapes, each cycling through several parameter variants:
   *uncached* (the registry version is bumped before every timed call, so each one reads the
   version, misses in Redis, queries PostgreSQL and stores the entry) and *cached* (hits).
3. HTTP throughput of the same mix through one uvicorn process (``dukenet.api.app``), with
   32 concurrent keep-alive clients in two client processes: once with the cache (steady
   state, mostly hits) and once with ``DUKENET_SEARCH_CACHE_TTL=0``.

The seeded agents do not send heartbeats while the benchmark runs, so the ACTIVE ones get a
fresh heartbeat just before measuring and the searches use a heartbeat TTL of one hour.

    python bench/bench_search.py [--agents 100000] [--iterations 300] [--http-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.bench_registry import load, peak_rss_mb, start_uvicorn
from bench.common import report, summarize
from dukenet import crypto
from dukenet.cli.seed import seed_registry
from dukenet.registry.search import Searcher
from dukenet.registry.search_cache import invalidate_search_cache
from dukenet.registry.search_cursor import cursor_key
from dukenet.registry.search_params import parse_search_query
from dukenet.sdk.search import SearchFilters, search_params
from dukenet.store import migrations
from dukenet.store.cache import Cache
from dukenet.store.postgres import Database

ADMIN_URL = os.environ.get("DUKENET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DUKENET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE = "dukenet_bench_search"
HEARTBEAT_TTL = 3_600
TARGET_UNCACHED_P99_MS = 20.0
TARGET_CACHED_P99_MS = 2.0


async def prepare(agents: int, reseed: bool) -> str:
    """The seeded benchmark database's URL (seeding it if needed)."""
    url = ADMIN_URL.rpartition("/")[0] + f"/{DATABASE}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if exists and reseed:
            await admin.execute(f'DROP DATABASE "{DATABASE}" WITH (FORCE)')
            exists = None
        if not exists:
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(url)
    try:
        applied = await migrations.upgrade(conn)
        count = await conn.fetchval("SELECT count(*) FROM agents")
    except migrations.MigrationError:  # seeded with another version of a migration
        return await prepare(agents, reseed=True)
    finally:
        await conn.close()
    if count != agents or (applied and count):
        if count:
            return await prepare(agents, reseed=True)
        db = await Database.connect(url, min_size=1, max_size=2)
        try:
            print(f"seeding {agents:,} agents (COPY) ...", flush=True)
            started = time.perf_counter()
            written, capabilities = await seed_registry(db, agents, seed=42)
            print(f"seeded {written:,} agents, {capabilities:,} capabilities in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        finally:
            await db.close()
    conn = await asyncpg.connect(url)
    try:
        # The seeded agents are idle: give the ACTIVE ones a recent heartbeat.
        await conn.execute(
            "UPDATE agents SET last_heartbeat = now() - random() * interval '60 seconds'"
            " WHERE status = 'ACTIVE'"
        )
        await conn.execute("VACUUM (ANALYZE) agents, agent_capabilities, capability_search")
    finally:
        await conn.close()
    return url


async def shapes(db: Database, searcher: Searcher) -> dict[str, list[SearchFilters]]:
    """The 8 query shapes, each with parameter variants drawn from the seeded data."""
    async with db.acquire() as conn:
        by_count = await conn.fetch(
            "SELECT name, count(*) AS n FROM capability_search GROUP BY name ORDER BY n DESC"
        )
        text_names = await conn.fetch(
            "SELECT name FROM capability_search WHERE name LIKE 'text.%' OR name LIKE 'nlp.%'"
            " GROUP BY name ORDER BY count(*) DESC LIMIT 6"
        )
    names = [r["name"] for r in by_count]
    # Popular, middling and rare names alike.
    mixed = names[:4] + names[len(names) // 2 : len(names) // 2 + 4] + names[-4:]
    prefixes = ["text.*", "image.*", "data.*", "finance.*", "code.*", "search.*"]
    deep: list[SearchFilters] = []
    for name in names[:3] + names[len(names) // 2 : len(names) // 2 + 2]:
        cursor = None
        for _ in range(24):  # page 25 of 20 results: results 481-500
            page = await searcher.search(parse_search_query(name=name, cursor=cursor))
            cursor = page.next_cursor
            if cursor is None:
                break
        if cursor is not None:
            deep.append({"name": name, "cursor": cursor})
    return {
        "name exact": [{"name": n} for n in mixed],
        "name prefix + min_trust + max_price": [
            {"name": p, "min_trust": 60 + 5 * (i % 4), "max_price": "0.05", "currency": "USD"}
            for i, p in enumerate(prefixes)
        ],
        "tags": [{"tags": t} for t in (["gpu"], ["eu", "nlp"], ["verified"], ["hipaa", "us"],
                                         ["fast", "cheap"], ["llm"])],
        "q full-text": [{"q": q} for q in ("translate subtitles", "fraud detection",
                                            "summarize documents", "speech recognize",
                                            "invoice extract", "private multilingual")],
        "accepts": [
            {"name": r["name"], "accepts": {"text": "Summarize this quarter's report."}}
            for r in text_names
        ],
        "deep page (page 25)": deep,
        "sort price + pricing_model": [
            {"name": n, "sort": "price", "pricing_model": "per_call"} for n in mixed[:8]
        ],
        "version range + SLOs, sort latency": [
            {"name": n, "version": ">=1.2,<3", "max_latency_ms": 2000, "min_availability": 95,
             "sort": "latency"}
            for n in mixed[:8]
        ],
    }  # fmt: skip


def _query(filters: SearchFilters) -> Any:
    params = dict(filters)
    if "accepts" in params:
        params["accepts"] = json.dumps(params["accepts"])
    return parse_search_query(**params)  # type: ignore[arg-type]


async def measure(
    searcher: Searcher, cache: Cache, variants: list[SearchFilters], iterations: int, hits: int
) -> dict[str, Any]:
    """Uncached and cached latency (ms) of one shape, cycling through its variants."""
    queries = [_query(v) for v in variants]
    results = []
    for query in queries * 2:  # warm up connections, plans and validators
        results.append(len(json.loads(await searcher.search_json(query))["items"]))
    uncached: list[float] = []
    for i in range(iterations):
        await invalidate_search_cache(cache)  # not timed: makes the next call a miss
        started = time.perf_counter()
        await searcher.search_json(queries[i % len(queries)])
        uncached.append((time.perf_counter() - started) * 1000)
    for query in queries:
        await searcher.search_json(query)  # fill
    cached: list[float] = []
    for i in range(hits):
        started = time.perf_counter()
        await searcher.search_json(queries[i % len(queries)])
        cached.append((time.perf_counter() - started) * 1000)
    return {
        "sample_body": (await searcher.search_json(queries[0])).decode(),
        "variants": len(variants),
        "mean_results": sum(results) / len(results),
        "uncached_ms": summarize(uncached),
        "cached_ms": summarize(cached),
    }


def http_work(all_shapes: dict[str, list[SearchFilters]]) -> list[tuple[str, str, Any]]:
    """The mix as GET requests, shapes interleaved."""
    urls = [
        [f"/v1/search/capabilities?{urlencode(search_params(v))}" for v in variants]
        for variants in all_shapes.values()
    ]
    work = []
    for index in range(max(len(u) for u in urls)):
        work += [("GET", u[index % len(u)], None) for u in urls]
    return work


def run_http(url: str, work: list[tuple[str, str, Any]], seconds: float) -> dict[str, Any]:
    """Throughput of the mix against one server process."""
    absolute = [(method, url + path, body) for method, path, body in work]
    load(absolute[:200])  # warm up
    return load(absolute * 50, seconds=seconds)


async def in_process(
    url: str, prefix: str, network_key: Ed25519PrivateKey, args: argparse.Namespace
) -> dict[str, Any]:
    db = await Database.connect(url, min_size=2, max_size=4)
    cache = Cache.connect(REDIS_URL, prefix)
    try:
        # The server's network key: the deep-page cursors made here are valid over HTTP too.
        searcher = Searcher(db, cache, cursor_key(network_key), HEARTBEAT_TTL, cache_ttl=30)
        all_shapes = await shapes(db, searcher)
        measured = {}
        for shape, variants in all_shapes.items():
            print(f"measuring {shape} ...", flush=True)
            measured[shape] = await measure(
                searcher, cache, variants, args.iterations, args.cached_iterations
            )
        return {"shapes": measured, "variants": all_shapes}
    finally:
        await cache.close()
        await db.close()


def main() -> None:
    os.environ.setdefault("COLUMNS", "150")  # room for the report table
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=300, help="uncached calls per shape")
    parser.add_argument("--cached-iterations", type=int, default=1_000)
    parser.add_argument("--http-seconds", type=float, default=10.0)
    parser.add_argument("--reseed", action="store_true", help="seed a new database")
    args = parser.parse_args()

    url = asyncio.run(prepare(args.agents, args.reseed))
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench:search:{run_id}:"
    network_key = crypto.generate_private_key()
    measured = asyncio.run(in_process(url, prefix, network_key, args))

    env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
    env |= {
        "DUKENET_DATABASE_URL": url,
        "DUKENET_REDIS_URL": REDIS_URL,
        "DUKENET_REDIS_PREFIX": prefix,
        "DUKENET_NETWORK_KEY": crypto.private_key_to_b64(network_key),
        "DUKENET_DATA_DIR": f"/tmp/dukenet-bench-search-{run_id}",
        "DUKENET_HEARTBEAT_TTL": str(HEARTBEAT_TTL),
        "DUKENET_EMBEDDED_WORKER": "false",
        "DUKENET_TRUST_RECOMPUTE_INTERVAL": "0",
        # Limits stay enforced (a Redis round trip per request) but never throttle the bench.
        "DUKENET_RATE_LIMITS": "read=10000000/minute",
    }
    work = http_work(measured["variants"])
    http: dict[str, Any] = {}
    for label, ttl in (("cached", "30"), ("uncached", "0")):
        server, base = start_uvicorn("dukenet.api.app:create_app", env | {
            "DUKENET_SEARCH_CACHE_TTL": ttl})  # fmt: skip
        try:
            print(f"HTTP, {label}, {args.http_seconds:.0f} s ...", flush=True)
            http[label] = run_http(base, work, args.http_seconds)
            http[label]["server_peak_rss_mib"] = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()

    # The floor on this machine, now: a bare FastAPI process returning one Redis GET of a
    # typical response body (bench_registry's bare app).
    body = json.dumps({"items": [], "next_cursor": None}).encode()
    sample = measured["shapes"]["name exact"].get("sample_body")
    if sample:
        body = sample.encode()
    redis_client = redis.Redis.from_url(REDIS_URL)
    redis_client.set(f"{prefix}bare:search", body, ex=600)
    redis_client.close()
    bare_env = env | {"BARE_DATABASE_URL": url, "BARE_REDIS_URL": REDIS_URL, "BARE_PREFIX": prefix}
    bare, bare_base = start_uvicorn("bench.bench_registry:bare_app", bare_env)
    try:
        print(f"HTTP, bare Redis GET floor, {args.http_seconds:.0f} s ...", flush=True)
        http["bare Redis GET (floor)"] = run_http(
            bare_base, [("GET", "/bare/get/search", None)], args.http_seconds
        )
    finally:
        bare.terminate()
        bare.wait(timeout=15)
    http["ratio_cached_to_floor"] = http["cached"]["per_second"] / http[
        "bare Redis GET (floor)"]["per_second"]  # fmt: skip

    rows: list[list[Any]] = []
    for shape, result in measured["shapes"].items():
        u, c = result["uncached_ms"], result["cached_ms"]
        ok = u["p99"] <= TARGET_UNCACHED_P99_MS and c["p99"] <= TARGET_CACHED_P99_MS
        rows.append([shape, result["variants"], round(result["mean_results"], 1), u["p50"],
                     u["p99"], c["p50"], c["p99"], "yes" if ok else "NO"])  # fmt: skip
    for label, result in http.items():
        if not isinstance(result, dict):
            continue
        errors = result["errors"] or 0
        rows.append([f"HTTP mix, {label}", f"{result['requests']:,} req",
                     f"{result['per_second']:,.0f} req/s", result["latency_ms"]["p50"],
                     result["latency_ms"]["p99"], "", "", f"errors {errors}"])  # fmt: skip
    report(
        "search",
        f"Capability search, {args.agents:,} agents (in-process ms; HTTP: 1 uvicorn process, "
        "32 concurrent clients)",
        ["shape", "variants", "results", "p50 uncached", "p99 uncached", "p50 cached",
         "p99 cached", "p99 ≤ 20 / 2 ms"],
        rows,
        {
            "agents": args.agents,
            "targets_ms": {"uncached_p99": TARGET_UNCACHED_P99_MS,
                           "cached_p99": TARGET_CACHED_P99_MS},
            "heartbeat_ttl_s": HEARTBEAT_TTL,
            "shapes": {k: {f: v for f, v in r.items() if f != "sample_body"}
                       for k, r in measured["shapes"].items()},
            "variants": measured["variants"],
            "http": http,
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
