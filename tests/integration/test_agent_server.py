"""AgentServer as a real uvicorn server next to a real ``dukenet serve``: it joins the network,
runs correctly signed calls and refuses forged, stale and replayed ones."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from dukenet import crypto
from dukenet.config import Settings
from dukenet.httpsig import sign_request
from dukenet.sdk import AgentServer, CapabilityError, Invocation, Result
from tests.conftest import ADMIN_TOKEN, REDIS_URL, free_port, server_env, wait_ready

ECHO_INPUT = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
    "additionalProperties": False,
}
ECHO_OUTPUT = {"type": "object", "properties": {"echo": {"type": "string"}}}


@dataclass
class RunningAgent:
    """An AgentServer served by uvicorn in a thread, and every call its functions received."""

    agent: AgentServer
    url: str
    calls: list[tuple[str, Any]]
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def network(
    database_url: str,
    redis_prefix: str,
    network_key_b64: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A real ``dukenet serve`` on this module's database; yields its base URL."""
    tmp = tmp_path_factory.mktemp("network")
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        data_dir=tmp / "data",
        network_key=network_key_b64,
        admin_token=ADMIN_TOKEN,
    )
    port = free_port()
    with (tmp / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dukenet", "serve", "--port", str(port)],
            env=server_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, process=process)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_agent(network_url: str, key_file: Path) -> RunningAgent:
    """An echo agent (plus a picky and a long capability) on a free localhost port."""
    calls: list[tuple[str, Any]] = []
    agent = AgentServer(
        "Echo Agent", network_url=network_url, key=key_file, tags=["test"], heartbeat_interval=5
    )

    @agent.capability(
        "text.echo", input_schema=ECHO_INPUT, output_schema=ECHO_OUTPUT, price="0.0100"
    )
    async def echo(input: dict[str, Any], invocation: Invocation) -> Result:
        """Repeat the text."""
        calls.append(("text.echo", invocation.subtask_id))
        return Result({"echo": input["text"]}, cost="0.0050")

    @agent.capability("text.refuse", input_schema=True, output_schema=True)
    async def refuse(input: Any) -> Any:
        calls.append(("text.refuse", input))
        raise CapabilityError("I never do this", code="NOT_DOING_IT")

    port = free_port()
    config = uvicorn.Config(agent.app, host="127.0.0.1", port=port, log_level="warning")
    agent.endpoint_url = f"http://127.0.0.1:{port}/invoke"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the agent server did not start")
        time.sleep(0.05)
    return RunningAgent(agent, agent.endpoint_url, calls, server, thread)


@pytest.fixture(scope="module")
def running(network: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    key_file = tmp_path_factory.mktemp("agent") / "agent_key.pem"
    running = start_agent(network, key_file)
    yield running
    running.stop()


@pytest.fixture
def network_key(network_key_b64: str) -> crypto.Ed25519PrivateKey:
    return crypto.parse_private_key(network_key_b64)


def invocation_body(capability: str = "text.echo", payload: Any = None) -> bytes:
    return json.dumps(
        {
            "subtask_id": "3f0e1c9a-0000-4000-8000-000000000001",
            "task_id": "3f0e1c9a-0000-4000-8000-000000000000",
            "attempt": 1,
            "capability": capability,
            "input": {"text": "hello"} if payload is None else payload,
            "deadline": None,
        }
    ).encode()


def signed_headers(
    url: str, body: bytes, key: crypto.Ed25519PrivateKey, **options: Any
) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    headers.update(
        sign_request(
            method="POST",
            url=url,
            headers=headers,
            body=body,
            private_key=key,
            key_id=options.pop("key_id", crypto.agent_id_for(key.public_key())),
            **options,
        )
    )
    return headers


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=10)


def test_agent_registers_publishes_and_heartbeats(running: RunningAgent, network: str) -> None:
    agent = httpx.get(f"{network}/v1/agents/{running.agent.agent_id}").json()
    assert agent["status"] == "ACTIVE"
    assert agent["endpoint_url"] == running.url
    assert agent["last_heartbeat"] is not None
    assert agent["tags"] == ["test"]
    page = httpx.get(f"{network}/v1/agents/{running.agent.agent_id}/capabilities").json()
    published = {c["name"]: c for c in page["items"]}
    assert published["text.echo"]["pricing_model"] == "per_call"
    assert published["text.echo"]["price"] == "0.0100"
    assert published["text.echo"]["input_schema"] == ECHO_INPUT
    assert published["text.echo"]["description"] == "Repeat the text."
    assert published["text.refuse"]["pricing_model"] == "free"


def test_signed_call_runs_the_capability(
    running: RunningAgent, network_key: crypto.Ed25519PrivateKey
) -> None:
    body = invocation_body()
    response = post(running.url, body, signed_headers(running.url, body, network_key))
    assert response.status_code == 200, response.text
    assert response.json() == {"output": {"echo": "hello"}, "cost": "0.0050"}
    assert ("text.echo", "3f0e1c9a-0000-4000-8000-000000000001") in running.calls


def test_call_signed_by_another_key_is_refused(running: RunningAgent) -> None:
    before = len(running.calls)
    body = invocation_body()
    forged = signed_headers(running.url, body, crypto.generate_private_key())
    response = post(running.url, body, forged)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_SIGNATURE"
    assert len(running.calls) == before


def test_call_naming_another_key_id_is_refused(
    running: RunningAgent, network_key: crypto.Ed25519PrivateKey
) -> None:
    body = invocation_body()
    headers = signed_headers(running.url, body, network_key, key_id="some-other-network")
    assert post(running.url, body, headers).status_code == 401


def test_unsigned_call_is_refused(running: RunningAgent) -> None:
    response = post(running.url, invocation_body(), {"Content-Type": "application/json"})
    assert response.status_code == 401


def test_tampered_body_is_refused(
    running: RunningAgent, network_key: crypto.Ed25519PrivateKey
) -> None:
    body = invocation_body()
    headers = signed_headers(running.url, body, network_key)
    response = post(running.url, body.replace(b"hello", b"pwned"), headers)
    assert response.status_code == 401


def test_stale_created_is_refused(
    running: RunningAgent, network_key: crypto.Ed25519PrivateKey
) -> None:
    body = invocation_body()
    headers = signed_headers(
        running.url, body, network_key, created=int(time.time()) - 3600, expires_in=7200
    )
    response = post(running.url, body, headers)
    assert response.status_code == 401
    assert "age" in response.json()["detail"]


def test_replayed_call_is_refused(
    running: RunningAgent, network_key: crypto.Ed25519PrivateKey
) -> None:
    body = invocation_body()
    headers = signed_headers(running.url, body, network_key)
    assert post(running.url, body, headers).status_code == 200
    replay = post(running.url, body, headers)
    assert replay.status_code == 401
    assert "replay" in replay.json()["detail"]


def test_call_signed_for_another_agent_is_refused(
    running: RunningAgent, network_key: crypto.Ed25519PrivateKey
) -> None:
    body = invocation_body()
    headers = signed_headers("http://other-agent.example:9000/invoke", body, network_key)
    assert post(running.url, body, headers).status_code == 401


def test_input_that_breaks_the_schema_is_a_422(
    running: RunningAgent, network_key: crypto.Ed25519PrivateKey
) -> None:
    body = invocation_body(payload={"text": 42})
    response = post(running.url, body, signed_headers(running.url, body, network_key))
    assert response.status_code == 422
    assert response.json()["code"] == "SCHEMA_INVALID"
    assert "/text" in response.json()["detail"]


def test_capability_errors_and_unknown_capabilities(
    running: RunningAgent, network_key: crypto.Ed25519PrivateKey
) -> None:
    body = invocation_body("text.refuse", {"anything": True})
    response = post(running.url, body, signed_headers(running.url, body, network_key))
    assert response.status_code == 422
    assert response.json()["code"] == "NOT_DOING_IT"
    body = invocation_body("image.paint")
    response = post(running.url, body, signed_headers(running.url, body, network_key))
    assert response.status_code == 404


def test_restart_with_the_same_key_keeps_the_identity(network: str, tmp_path: Path) -> None:
    key_file = tmp_path / "agent_key.pem"
    first = start_agent(network, key_file)
    first.stop()
    second = start_agent(network, key_file)
    try:
        assert second.agent.agent_id == first.agent.agent_id
        agent = httpx.get(f"{network}/v1/agents/{second.agent.agent_id}").json()
        assert agent["endpoint_url"] == second.url
        page = httpx.get(f"{network}/v1/agents/{second.agent.agent_id}/capabilities").json()
        assert sorted(c["name"] for c in page["items"]) == ["text.echo", "text.refuse"]
    finally:
        second.stop()
