"""Run every benchmark one after another (``make bench``), each in its own process.

Benchmarks share this machine's cores, so they never run at the same time. Each writes
its table to the terminal and its JSON to ``bench/results/``; this script prints which
ones failed and exits non-zero if any did. Arguments after ``--`` go to every script, and
``--only registry,trust`` picks some of them.

    python bench/run_all.py [--only NAMES] [--quick]

``--quick`` passes each benchmark its small-scale options (a smoke run, not the figures
to report).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).parent
# job_budget reads the W1 figures orchestration writes, so it runs after it.
ORDER = [
    "startup",
    "registry",
    "search",
    "audit",
    "market",
    "trust",
    "orchestration",
    "job_budget",
]
QUICK: dict[str, list[str]] = {
    "startup": ["--runs", "1"],
    "registry": ["--registrations", "500", "--lookup-seconds", "2", "--rounds", "1"],
    "search": ["--agents", "5000", "--iterations", "20", "--http-seconds", "2"],
    "audit": ["--records", "1000", "--leaves", "10000", "--samples", "200"],
    "market": ["--seconds", "3", "--workers", "1"],
    "trust": ["--scale", "0.01"],
    "orchestration": ["--workloads", "w1", "--jobs", "500", "--skip", "celery"],
    "job_budget": ["--count", "500", "--calls", "500"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(ORDER), help="comma-separated names")
    parser.add_argument("--quick", action="store_true", help="small-scale smoke runs")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(ORDER))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(ORDER)}")
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent)}
    failed: list[str] = []
    for name in chosen:
        command = [sys.executable, str(BENCH / f"bench_{name}.py")]
        if args.quick:
            command += QUICK[name]
        print(f"== bench_{name} ({' '.join(command[2:]) or 'defaults'})", flush=True)
        started = time.monotonic()
        code = subprocess.call(command, env=env)
        print(f"== bench_{name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
