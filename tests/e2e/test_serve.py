"""`dukenet serve` and `dukenet db` as real processes, on the embedded default and on URLs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis

from dukenet.config import Settings
from dukenet.runtime import prepare_database
from dukenet.store.embedded import EmbeddedServices
from tests.conftest import free_port, server_env, wait_ready


def _embedded_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
    env["DUKENET_DATA_DIR"] = str(data_dir)
    return env


def _serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "dukenet", "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _embedded_postgres_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(180)
def test_serve_on_embedded_default_from_empty_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = _embedded_env(data_dir)
    log = tmp_path / "serve.log"
    process, base = _serve(env, log)
    try:
        wait_ready(base, timeout=90, process=process)
        first = httpx.get(f"{base}/v1/network").json()
        assert "embedded PostgreSQL + Redis" in log.read_text()
    finally:
        _stop(process)
    assert process.returncode == 0, log.read_text()
    assert not _embedded_postgres_running(data_dir), "embedded PostgreSQL outlived the server"
    key_file = data_dir / "network_key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Restart on the same data dir: same identity, schema already there.
    process, base = _serve(env, log)
    try:
        wait_ready(base, timeout=60, process=process)
        assert httpx.get(f"{base}/v1/network").json() == first
    finally:
        _stop(process)
    assert process.returncode == 0
    assert not _embedded_postgres_running(data_dir)


@pytest.mark.timeout(180)
async def test_embedded_servers_keep_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    embedded = EmbeddedServices(data_dir)
    settings = Settings(
        data_dir=data_dir,
        database_url=embedded.start_postgres(),
        redis_url=embedded.start_redis(),
    )
    try:
        settings = await prepare_database(settings, embedded)
        assert settings.database_url
        conn = await asyncpg.connect(settings.database_url)
        await conn.execute("INSERT INTO agents (agent_id, public_key) VALUES ($1, 'pk')", "e" * 64)
        await conn.close()
        assert settings.redis_url
        client = redis.Redis.from_url(settings.redis_url)
        client.set("persisted", "yes")
        client.close()
    finally:
        embedded.stop()

    again = EmbeddedServices(data_dir)
    admin_url = again.start_postgres()
    redis_url = again.start_redis()
    try:
        reopened = await prepare_database(
            Settings(data_dir=data_dir, database_url=admin_url, redis_url=redis_url), again
        )
        assert reopened.database_url
        conn = await asyncpg.connect(reopened.database_url)
        assert (
            await conn.fetchval("SELECT public_key FROM agents WHERE agent_id = $1", "e" * 64)
            == "pk"
        )
        await conn.close()
        client = redis.Redis.from_url(redis_url)
        assert client.get("persisted") == b"yes"
        client.close()
    finally:
        again.stop()


def test_db_commands_against_a_url(settings: Settings, tmp_path: Path) -> None:
    env = server_env(settings)
    status = subprocess.run(
        [sys.executable, "-m", "dukenet", "db", "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"applied_at": null' not in status.stdout  # the module database is migrated
    upgrade = subprocess.run(
        [sys.executable, "-m", "dukenet", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "up to date" in upgrade.stdout


def test_db_upgrade_reports_unreachable_database_clearly(tmp_path: Path) -> None:
    env = _embedded_env(tmp_path)
    env["DUKENET_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    result = subprocess.run(
        [sys.executable, "-m", "dukenet", "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "DATABASE_UNAVAILABLE" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dukenet", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("serve", "db"):
        assert command in result.stdout
