"""Cold start of `dukenet serve` on the embedded default with an existing data dir.

Measures the wall time from spawning the process until `/readyz` answers 200, over several
runs (the first run initialises the data dir and is reported separately).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import report, summarize


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_once(data_dir: Path) -> float:
    """Seconds from spawn to a 200 from /readyz; the server is then stopped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
    env["DUKENET_DATA_DIR"] = str(data_dir)
    port = _free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "dukenet", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(timeout=1) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError("server exited during start")
                try:
                    if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        return time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder) / "data"
        first = start_once(data_dir)
        warm = [start_once(data_dir) for _ in range(args.runs)]
    stats = summarize(warm)
    report(
        "startup",
        "dukenet serve cold start on the embedded default (spawn → /readyz 200)",
        ["case", "runs", "p50 s", "max s", "target"],
        [
            ["empty data dir (initdb)", 1, first, first, "-"],
            ["existing data dir", args.runs, stats["p50"], stats["max"], "< 3 s"],
        ],
        {
            "first_start_s": first,
            "existing_data_dir_s": stats,
            "target_s": 3.0,
            "meets_target": stats["max"] < 3.0,
        },
    )


if __name__ == "__main__":
    main()
