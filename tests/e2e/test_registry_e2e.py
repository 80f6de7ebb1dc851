"""The registry through a real `dukenet serve` process: the blocking SDK and the CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dukenet import crypto
from dukenet.sdk import Client, errors


def test_full_registration_round_trip_through_the_sdk(live_server: str) -> None:
    key = crypto.generate_private_key()
    with Client(live_server, key=key, admin_token="test-admin-token") as dn:
        agent = dn.register(
            "Round Trip",
            endpoint_url="http://127.0.0.1:9/agent",
            tags=["E2E"],
            capabilities=[
                {
                    "name": "text.echo",
                    "version": "1.0.0",
                    "input_schema": {"type": "object"},
                    "output_schema": {},
                }
            ],
        )
        assert agent.agent_id == crypto.agent_id_for(key.public_key())
        assert dn.get_agent().tags == ["e2e"]
        assert dn.heartbeat().status == "ACTIVE"  # logs in on its own
        capability = dn.add_capability(
            {
                "name": "text.summarize",
                "version": "2.0.0",
                "input_schema": {},
                "output_schema": {},
                "pricing_model": "per_call",
                "price": "0.25",
            }
        )
        assert [c.name for c in dn.list_capabilities().items] == ["text.echo", "text.summarize"]
        assert dn.deprecate_capability(capability.capability_id).deprecated
        assert dn.update_agent(description="now described").description == "now described"
        assert dn.get_registration().payload["display_name"] == "Round Trip"
        with pytest.raises(errors.AgentExists):
            dn.register("Twice")
        dn.suspend_agent(agent.agent_id, "testing")
        with pytest.raises(errors.AgentSuspended):
            dn.heartbeat()
        dn.reinstate_agent(agent.agent_id, "done testing")
        dn.logout()
        dn.deregister()
        with pytest.raises(errors.AgentNotFound):
            dn.get_agent()


def _cli(args: list[str], env: dict[str, str]) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "dukenet", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_cli_agent_and_capability_commands(live_server: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
    env |= {
        "DUKENET_SERVER_URL": live_server,
        "DUKENET_AGENT_KEY": str(tmp_path / "key.pem"),
        "COLUMNS": "200",
    }
    keys = _cli(["keygen"], env)
    assert stat.S_IMODE((tmp_path / "key.pem").stat().st_mode) == 0o600

    agent = _cli(
        [
            "agent",
            "register",
            "--name",
            "CLI Agent",
            "--tag",
            "cli",
            "--metadata",
            '{"lang": "en"}',
        ],
        env,
    )
    assert agent["agent_id"] == keys["agent_id"] and agent["metadata"] == {"lang": "en"}
    assert _cli(["agent", "show"], env)["display_name"] == "CLI Agent"
    listed = _cli(["agent", "list", "--tag", "cli"], env)
    assert [a["agent_id"] for a in listed["items"]] == [keys["agent_id"]]
    updated = _cli(["agent", "update", "--description", "from the CLI", "--tag", "x"], env)
    assert (updated["description"], updated["tags"]) == ("from the CLI", ["x"])
    assert _cli(["agent", "heartbeat"], env)["status"] == "ACTIVE"

    schema = tmp_path / "in.json"
    schema.write_text('{"type": "object"}')
    capability = _cli(
        [
            "capability",
            "add",
            "--name",
            "text.translate",
            "--version",
            "1.0.0",
            "--input-schema",
            f"@{schema}",
            "--output-schema",
            "{}",
            "--pricing-model",
            "per_call",
            "--price",
            "0.5",
        ],
        env,
    )
    assert capability["price"] == "0.5000"
    assert len(_cli(["capability", "list"], env)["items"]) == 1
    deprecated = _cli(["capability", "deprecate", capability["capability_id"]], env)
    assert deprecated["deprecated"] is True

    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "dukenet",
            "capability",
            "add",
            "--name",
            "bad",
            "--version",
            "1.0.0",
            "--input-schema",
            '{"type": "nope"}',
            "--output-schema",
            "{}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "SCHEMA_INVALID" in refused.stderr and "/input_schema/type" in refused.stderr

    assert _cli(["agent", "deregister", "--yes"], env)["deregistered"] is True
