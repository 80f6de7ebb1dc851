"""The running process's services: settings, PostgreSQL, Redis and the network key.

Whoever opens ``Services`` closes it. The API lifespan, workers and CLI commands all use
``open_services`` so they share one code path to the stores.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet.config import Settings
from dukenet.network import load_network_key, network_id_for
from dukenet.store import migrations
from dukenet.store.cache import Cache
from dukenet.store.embedded import EmbeddedServices, ensure_database
from dukenet.store.postgres import Database

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything domain code needs from the process, handed out by dependency injection."""

    settings: Settings
    db: Database
    cache: Cache
    network_key: Ed25519PrivateKey
    network_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.network_id = network_id_for(self.network_key)


def start_embedded(settings: Settings) -> tuple[Settings, EmbeddedServices | None]:
    """Start embedded servers for unset URLs; return settings that point at them."""
    if settings.database_url and settings.redis_url:
        return settings, None
    embedded = EmbeddedServices(settings.data_dir)
    updates: dict[str, str] = {}
    if not settings.database_url:
        updates["database_url"] = embedded.start_postgres()
    if not settings.redis_url:
        updates["redis_url"] = embedded.start_redis()
    return settings.model_copy(update=updates), embedded


async def prepare_database(
    settings: Settings, embedded: EmbeddedServices | None = None
) -> Settings:
    """Apply pending migrations (creating the embedded ``dukenet`` database first)."""
    assert settings.database_url
    url = settings.database_url
    if embedded is not None and embedded.postgres_started:
        url = await ensure_database(url)
    db = await Database.connect(url, pgbouncer=settings.pgbouncer, min_size=1, max_size=1)
    try:
        async with db.session() as conn:
            applied = await migrations.upgrade(conn)
            await migrations.ensure_log_partitions(conn)
        if applied:
            log.info("applied migrations: %s", ", ".join(f"{m.version:04d}" for m in applied))
    finally:
        await db.close()
    return settings.model_copy(update={"database_url": url})


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (Linux and macOS), else asyncio's own.

    A worker spends much of its time in the event loop's socket writes and reads (agent
    calls, PostgreSQL, Redis); uvloop does them in C. uvicorn already picks it for the API.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop has no Windows build
        return None
    return uvloop.new_event_loop


def run_async(main: Coroutine[object, object, T]) -> T:
    """``asyncio.run`` on the fastest event loop available (see ``event_loop_factory``)."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(main)


def freeze_startup_heap() -> None:
    """Move everything allocated so far (modules, the app, pools) out of the collector's reach.

    A long-running process holds ~150,000 objects after start-up; without this every
    full (generation 2) collection walks all of them, a 50-90 ms stop of the event loop
    that showed up as the p99 of every request. The cycle collector skips frozen objects
    (reference counting still frees them); per-request garbage is collected as before.
    Call once, when start-up is complete."""
    gc.collect()
    gc.freeze()


def thaw_heap() -> None:
    """Undo ``freeze_startup_heap`` at shutdown: what was frozen can be collected again, so
    a process that runs one app after another (the test suite, the demo) frees each app's
    reference cycles instead of keeping them for good."""
    gc.unfreeze()


@asynccontextmanager
async def open_services(
    settings: Settings, *, generic_plans: bool = False
) -> AsyncIterator[Services]:
    """Open pools and the Redis client for configured URLs; close them on exit
    (``generic_plans``: see ``store.postgres.create_pool``)."""
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("open_services needs database_url and redis_url (start_embedded)")
    db = await Database.connect(
        settings.database_url,
        settings.replica_urls,
        pgbouncer=settings.pgbouncer,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        generic_plans=generic_plans,
    )
    cache = Cache.connect(settings.redis_url, settings.redis_prefix)
    try:
        yield Services(settings, db, cache, load_network_key(settings))
    finally:
        await cache.close()
        await db.close()
