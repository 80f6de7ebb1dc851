"""The live task status in Redis ``task:status:{task_id}``, rebuilt from PostgreSQL on a miss.

Each value carries the ``version`` of the ``task_progress`` row it was built from; a Lua
script stores it only when it is newer than what Redis holds, so writes that arrive out of
order (two workers finishing in quick succession) never roll the status back. Redis being
down costs only speed: writes are skipped and reads fall back to PostgreSQL.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from uuid import UUID

from dukenet.errors import CacheUnavailable
from dukenet.orchestration.errors import TaskNotFound
from dukenet.orchestration.models import TERMINAL_TASK_STATES
from dukenet.orchestration.progress import Snapshot, status_document
from dukenet.store.cache import Cache
from dukenet.store.postgres import Database
from dukenet.store.sql import load_queries

log = logging.getLogger(__name__)
QUERIES = load_queries("dukenet.orchestration", "queries.sql")

LIVE_TTL = 24 * 3600
FINISHED_TTL = 3600

_SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'data', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def status_key(cache: Cache, task_id: UUID | str) -> str:
    """``task:status:{task_id}`` (with the process's prefix)."""
    return cache.key("task", "status", str(task_id))


def _arguments(cache: Cache, snapshot: Snapshot) -> list[Any]:
    finished = snapshot.document["status"] in TERMINAL_TASK_STATES
    return [
        status_key(cache, snapshot.task_id),
        snapshot.version,
        json.dumps(snapshot.document, separators=(",", ":")),
        FINISHED_TTL if finished else LIVE_TTL,
    ]


async def publish(cache: Cache, snapshots: list[Snapshot]) -> None:
    """Store the snapshots (each only if newer than the cached one); never raises.

    EVAL (not EVALSHA) keeps it to one round trip without a NOSCRIPT dance; Redis
    compiles the short script once and reuses it.
    """
    if not snapshots:
        return
    try:
        async with cache.guard() as client:
            if len(snapshots) == 1:
                await client.eval(_SET_IF_NEWER, 1, *_arguments(cache, snapshots[0]))
                return
            async with client.pipeline(transaction=False) as pipe:
                for snapshot in snapshots:
                    pipe.eval(_SET_IF_NEWER, 1, *_arguments(cache, snapshot))
                await pipe.execute()
    except CacheUnavailable as exc:
        log.debug("task status not cached: %s", exc)


async def cached_status(cache: Cache, task_id: UUID) -> dict[str, Any] | None:
    """The cached status, or ``None`` on a miss (or while Redis is down)."""
    try:
        async with cache.guard() as client:
            data = await client.hget(status_key(cache, task_id), "data")
    except CacheUnavailable:
        return None
    if data is None:
        return None
    document: dict[str, Any] = json.loads(data)
    return document


async def rebuild_status(db: Database, cache: Cache, task_id: UUID) -> dict[str, Any]:
    """The status read from PostgreSQL, cached again (``TaskNotFound`` if there is none)."""
    async with db.acquire() as conn:
        row = await conn.fetchrow(QUERIES["task_status"], task_id)
    if row is None:
        raise TaskNotFound(f"no task {task_id}")
    document = status_document(row, row["status"], row["error_code"])
    await publish(cache, [Snapshot(task_id, int(row["version"]), document)])
    return document


async def read_status(db: Database, cache: Cache, task_id: UUID) -> dict[str, Any]:
    """The live status: Redis first, PostgreSQL on a miss."""
    return await cached_status(cache, task_id) or await rebuild_status(db, cache, task_id)
