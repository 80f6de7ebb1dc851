"""``dukenet agent trust ID`` against a real ``dukenet serve`` process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dukenet import crypto
from dukenet.sdk import Client

pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dukenet", "agent", "trust", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_agent_trust_prints_the_breakdown_and_history(live_server: str) -> None:
    with Client(live_server, key=crypto.generate_private_key()) as client:
        client.register("Cli Agent")
        agent_id = client.agent_id
    table = _cli(agent_id, "--server", live_server, "--history")
    assert table.returncode == 0, table.stderr
    for word in ("reputation", "delivery", "uptime", "latency", "signer", "50.00"):
        assert word in table.stdout

    as_json = _cli(agent_id, "--server", live_server, "--json", "--history")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["agent_id"] == agent_id
    assert body["trust_score"] == 50.0
    assert body["history"]["items"] == []

    missing = _cli("ab" * 32, "--server", live_server)
    assert missing.returncode == 1
    assert "AGENT_NOT_FOUND" in missing.stderr
