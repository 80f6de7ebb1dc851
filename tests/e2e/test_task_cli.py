"""`dukenet task ...` against a real `dukenet serve` and real agent processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dukenet import crypto
from dukenet.config import Settings
from dukenet.sdk import AsyncClient, Client
from tests.conftest import ADMIN_TOKEN, REDIS_URL, free_port, server_env, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TEXT = "Agents publish capabilities. Clients submit tasks. The network pays for verified work."


@dataclass
class Network:
    """A server, agents serving the demo capabilities, and a funded client key."""

    url: str
    client_key: Path
    env: dict[str, str]


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def network(
    database_url: str,
    redis_prefix: str,
    network_key_b64: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Network]:
    tmp = tmp_path_factory.mktemp("task-cli")
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        data_dir=tmp / "data",
        network_key=network_key_b64,
        admin_token=ADMIN_TOKEN,
    )
    env = server_env(settings)
    processes: list[subprocess.Popen[bytes]] = []
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        with (tmp / "server.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dukenet", "serve", "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_ready(url, process=processes[0])
        agent_ports = {}
        for name in ("lexicon", "summit", "mood", "quill"):
            agent_ports[name] = free_port()
            with (tmp / f"{name}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [
                            *(sys.executable, "-m", "dukenet.demo_agents", name),
                            *("--network", url, "--port", str(agent_ports[name])),
                            *("--key", str(tmp / f"{name}.pem")),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        for name, agent_port in agent_ports.items():
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{agent_port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp / f"{name}.log").read_text()
                time.sleep(0.1)
        client_key = tmp / "client.pem"
        cli_env = {**env, "DUKENET_SERVER_URL": url, "DUKENET_AGENT_KEY": str(client_key)}
        subprocess.run(
            [sys.executable, "-m", "dukenet", "keygen"],
            env=cli_env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [sys.executable, "-m", "dukenet", "agent", "register", "--name", "CLI client"],
            env=cli_env,
            check=True,
            capture_output=True,
        )
        agent_id = crypto.agent_id_for(
            crypto.parse_private_key(client_key.read_bytes()).public_key()
        )
        deposit = httpx.post(
            f"{url}/v1/admin/agents/{agent_id}/deposits",
            json={"amount": "5.00", "currency": "USD", "payment_method": "test"},
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert deposit.status_code == 201, deposit.text
        yield Network(url, client_key, cli_env)
    finally:
        for process in reversed(processes):
            _stop(process)


def dukenet(
    network: Network, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dukenet", *args],
        env={**network.env, "COLUMNS": "200"},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def pipeline(summarize: bool = False) -> dict[str, Any]:
    """normalize → (keywords | sentiment [| summarize]) → compose."""
    text = {"$ref": "normalize#/text"}
    subtasks: list[dict[str, Any]] = [
        {
            "name": "normalize",
            "capability": "text.normalize",
            "input": {"text": {"$ref": "task#/text"}},
        },
        {
            "name": "keywords",
            "capability": "text.keywords",
            "depends_on": ["normalize"],
            "input": {"text": text},
        },
        {
            "name": "sentiment",
            "capability": "text.sentiment",
            "depends_on": ["normalize"],
            "input": {"text": text},
        },
    ]
    summary: Any = "no summary"
    if summarize:
        subtasks.append(
            {
                "name": "summarize",
                "capability": "text.summarize",
                "depends_on": ["normalize"],
                "input": {"text": text},
            }
        )
        summary = {"$ref": "summarize#/summary"}
    subtasks.append(
        {
            "name": "compose",
            "capability": "report.compose",
            "depends_on": [s["name"] for s in subtasks[1:]],
            "input": {
                "title": "CLI",
                "summary": summary,
                "keywords": {"$ref": "keywords#/keywords"},
                "sentiment": {"$ref": "sentiment#/label"},
            },
            "output_mapping": {"/report": "/report"},
        }
    )
    return {
        "name": "cli-test",
        "tags": ["cli"],
        "cost_limit": "1.00",
        "input_schema": {"type": "object", "required": ["text"]},
        "output_schema": {"type": "object", "required": ["report"]},
        "input": {"text": TEXT},
        "subtasks": subtasks,
    }


def test_submit_watch_show_and_list(network: Network, tmp_path: Path) -> None:
    spec = tmp_path / "task.json"
    spec.write_text(json.dumps(pipeline()))
    submitted = dukenet(network, "task", "submit", str(spec), "--json")
    assert submitted.returncode == 0, submitted.stderr
    task_id = json.loads(submitted.stdout)["task_id"]

    watched = dukenet(network, "task", "watch", task_id)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    for name in ("normalize", "keywords", "sentiment", "compose"):
        assert name in watched.stdout
    assert "COMPLETED" in watched.stdout
    assert "Lexicon Labs" in watched.stdout and "Quill & Co" in watched.stdout

    shown = dukenet(network, "task", "show", task_id, "--json")
    assert shown.returncode == 0, shown.stderr
    task = json.loads(shown.stdout)
    assert task["status"] == "COMPLETED"
    assert task["actual_output"]["report"].startswith("# CLI")
    # sentiment is Mood Metrics' long job: 202 first, the output posted back later.
    assert {s["name"]: s["status"] for s in task["subtasks"]} == {
        "normalize": "COMPLETED",
        "keywords": "COMPLETED",
        "sentiment": "COMPLETED",
        "compose": "COMPLETED",
    }

    listed = dukenet(network, "task", "list", "--tag", "cli", "--json")
    assert task_id in {t["task_id"] for t in json.loads(listed.stdout)["items"]}


def test_submit_from_stdin_and_wait(network: Network) -> None:
    result = dukenet(network, "task", "submit", "-", "--wait", stdin=json.dumps(pipeline()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "COMPLETED" in result.stdout
    assert "# CLI" in result.stdout


def test_idempotency_key_returns_the_same_task(network: Network) -> None:
    body = json.dumps(pipeline())
    first = dukenet(
        network, "task", "submit", "-", "--idempotency-key", "k-1", "--json", stdin=body
    )
    again = dukenet(
        network, "task", "submit", "-", "--idempotency-key", "k-1", "--json", stdin=body
    )
    assert json.loads(first.stdout)["task_id"] == json.loads(again.stdout)["task_id"]


def test_cancel_a_running_task(network: Network) -> None:
    submitted = dukenet(
        network, "task", "submit", "-", "--json", stdin=json.dumps(pipeline(summarize=True))
    )
    task_id = json.loads(submitted.stdout)["task_id"]
    cancelled = dukenet(network, "task", "cancel", task_id, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "CANCELLED"
    watched = dukenet(network, "task", "watch", task_id, "--poll")
    assert watched.returncode == 1
    assert "cancelled" in watched.stderr.lower()


def test_invalid_graph_is_refused_with_the_field_named(network: Network) -> None:
    spec = pipeline()
    spec["subtasks"][1]["depends_on"] = ["nowhere"]
    result = dukenet(network, "task", "submit", "-", stdin=json.dumps(spec))
    assert result.returncode == 1
    assert "/subtasks/1/depends_on/0" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_input_is_a_clear_error(network: Network, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = dukenet(network, "task", "submit", str(broken))
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr
    missing = dukenet(network, "task", "submit", str(tmp_path / "missing.json"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    unknown = dukenet(network, "task", "show", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == 1
    assert "Traceback" not in unknown.stderr


async def test_sdk_events_follow_the_task_to_its_end(network: Network) -> None:
    async with AsyncClient(network.url, key=network.client_key) as client:
        task = await client.submit_task(pipeline())
        events = [event async for event in client.events(task.task_id)]
        assert events[-1].ends_task and events[-1].event_type == "COMPLETED"
        kinds = {(e.event_type, e.subtask_id is None) for e in events}
        assert ("COMPLETED", False) in kinds  # subtasks completed before the task did
        # Resuming after an event replays only what came after it.
        middle = events[len(events) // 2]
        rest = [e async for e in client.events(task.task_id, last_event_id=middle.log_id)]
        assert [e.log_id for e in rest] == [e.log_id for e in events if e.log_id > middle.log_id]
        assert (await client.wait(task.task_id, timeout=5)).status == "COMPLETED"


def test_blocking_client_follows_and_waits_too(network: Network) -> None:
    with Client(network.url, key=network.client_key) as client:
        task = client.submit_task(pipeline())
        events = list(client.events(task.task_id))
        assert events[-1].ends_task
        assert {"ASSIGNED", "COMPLETED"} <= {e.event_type for e in events}
        finished = client.wait(task.task_id, timeout=10)
        assert finished.status == "COMPLETED"
        assert finished.actual_output["report"].startswith("# CLI")
