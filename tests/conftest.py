"""Test fixtures on real PostgreSQL and Redis.

One template database is built with the migrations per run; each test module gets its own
copy (``CREATE DATABASE ... TEMPLATE``), dropped at the end. Redis keys use a per-run,
per-module prefix that is deleted afterwards. Point the suite elsewhere with
``DUKENET_TEST_DATABASE_URL`` (an admin connection) and ``DUKENET_TEST_REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.runtime import Services, open_services
from dukenet.sdk import AsyncClient as SdkClient
from dukenet.store import migrations

ADMIN_URL = os.environ.get("DUKENET_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DUKENET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:8]
ADMIN_TOKEN = "test-admin-token"
_counter = itertools.count()


def database_url_for(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrations.upgrade(conn)
    finally:
        await conn.close()


def create_database(template: str | None = None) -> str:
    """Create a fresh database for this run (optionally from ``template``); return its name."""
    name = f"dukenet_t_{RUN_ID}_{next(_counter)}"
    suffix = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_admin(f'CREATE DATABASE "{name}"{suffix}'))
    return name


def drop_database(name: str) -> None:
    """Drop a test database, disconnecting whoever still uses it."""
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database built by the migrations, used as the template for every test database."""
    name = create_database()
    asyncio.run(_migrate(database_url_for(name)))
    yield name
    drop_database(name)


@pytest.fixture(scope="module")
def database_url(template_database: str) -> Iterator[str]:
    """A migrated database of this test module's own."""
    name = create_database(template_database)
    yield database_url_for(name)
    drop_database(name)


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test module's own; its keys are deleted afterwards."""
    prefix = f"test:{RUN_ID}:{next(_counter)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture(scope="session")
def network_key_b64() -> str:
    """A network key shared by the run, so records signed in one test verify in another."""
    return crypto.private_key_to_b64(crypto.generate_private_key())


@pytest.fixture
def settings(
    database_url: str, redis_prefix: str, tmp_path: Path, network_key_b64: str
) -> Settings:
    """Settings pointing at this module's database and Redis prefix."""
    return Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        data_dir=tmp_path / "data",
        network_key=network_key_b64,
        admin_token=ADMIN_TOKEN,
        pool_min_size=1,
        pool_max_size=10,
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    """Open pools and Redis for one test."""
    async with open_services(settings) as opened:
        yield opened


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process, with its lifespan running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dukenet.test") as http:
            yield http


@asynccontextmanager
async def http_and_sdk(app: Any) -> AsyncIterator[tuple[httpx.AsyncClient, SdkClient]]:
    """A raw HTTP client and an SDK client (with a new key) on ``app``, in process."""
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://dukenet.test") as http,
        SdkClient(
            "http://dukenet.test", key=crypto.generate_private_key(), transport=transport
        ) as sdk,
    ):
        yield http, sdk


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(
    base_url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``/readyz`` until it answers 200, failing early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} not ready after {timeout}s")


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a ``dukenet`` subprocess using ``settings``."""
    env = dict(os.environ)
    env.update(
        DUKENET_DATABASE_URL=settings.database_url or "",
        DUKENET_REDIS_URL=settings.redis_url or "",
        DUKENET_REDIS_PREFIX=settings.redis_prefix,
        DUKENET_DATA_DIR=str(settings.data_dir),
        DUKENET_NETWORK_KEY=settings.network_key or "",
        DUKENET_ADMIN_TOKEN=settings.admin_token or "",
    )
    env.update(extra)
    return env


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """A real ``dukenet serve`` process on this module's database; yields its base URL."""
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
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
        log.close()
