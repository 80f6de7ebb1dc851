"""Shared helpers for benchmarks: percentiles, a rich table, the JSON report, benchmark
databases and process CPU."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from dukenet.store import migrations

RESULTS = Path(__file__).parent / "results"
ADMIN_URL = os.environ.get("DUKENET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def freeze_heap() -> None:
    """Keep a load generator's full garbage collections (50+ ms with a big heap) out of
    the latencies it measures: what exists now is never scanned again."""
    gc.collect()
    gc.freeze()


async def admin_sql(sql: str, url: str = ADMIN_URL) -> None:
    """Run one statement (e.g. CREATE/DROP DATABASE) on its own connection."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(name: str, *extra_sql: str) -> str:
    """A fresh benchmark database with every migration applied (then ``extra_sql``);
    returns its URL."""
    await admin_sql(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rpartition("/")[0] + f"/{name}"
    conn = await asyncpg.connect(url)
    try:
        await migrations.upgrade(conn)
        for sql in extra_sql:
            await conn.execute(sql)
    finally:
        await conn.close()
    return url


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def children(pid: int) -> list[int]:
    """Direct children of a process (e.g. uvicorn's worker processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """``cpu_seconds`` of a process and its direct children (a server and its workers)."""
    return sum(cpu_seconds(p) for p in (pid, *children(pid)))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarize(samples: list[float]) -> dict[str, float]:
    """min, p50, p95, p99, max and mean of samples."""
    return {
        "min": min(samples),
        "p50": percentile(samples, 50),
        "p95": percentile(samples, 95),
        "p99": percentile(samples, 99),
        "max": max(samples),
        "mean": statistics.fmean(samples),
    }


def report(
    name: str, title: str, columns: list[str], rows: list[list[Any]], data: dict[str, Any]
) -> Path:
    """Print a table and write ``bench/results/{name}.json``."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row))
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        **data,
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
    Console().print(f"wrote {path}")
    return path
