"""`dukenet demo` as a user runs it: the whole story, then nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _embedded_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
    env["COLUMNS"] = "160"
    return env


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (e.g. the demo's data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


def _wait_gone(text: str, within: float = 10.0) -> list[str]:
    deadline = time.monotonic() + within
    while (left := _processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_tells_the_whole_story_and_cleans_up(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "dukenet", "demo", "--data-dir", str(data_dir)],
        env=_embedded_env(),
        capture_output=True,
        text=True,
        timeout=200,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert elapsed < 60, f"the demo took {elapsed:.0f}s"
    assert "DukeNET is up" in output
    for agent in ("Lexicon Labs", "Summit Summaries", "Relay Recaps", "Mood Metrics", "Quill & Co"):
        assert agent in output
    assert "funded with 1.00 USD" in output
    assert "killed" in output and "failover" in output
    assert "Result" in output and "# What is DukeNET?" in output
    assert "Money moved (USD)" in output and "every cent accounted for" in output
    assert "/dukenet/tasks/" in output and "CID bafy" in output
    assert "dukenet audit verify: OK" in output
    assert "Traceback" not in output + result.stderr
    assert _wait_gone(str(data_dir)) == [], "the demo left processes running"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    log = tmp_path / "demo.log"
    with log.open("wb") as output:
        demo = subprocess.Popen(
            [sys.executable, "-m", "dukenet", "demo", "--data-dir", str(data_dir)],
            env=_embedded_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 90
        while b"funded with" not in log.read_bytes():
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert len(_processes_mentioning(str(data_dir))) >= 6  # the server and five agents
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 130, log.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert "interrupted" in log.read_text()
    assert _wait_gone(str(data_dir)) == [], "processes survived Ctrl-C"
