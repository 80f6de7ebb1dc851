"""asyncpg pools for the primary and optional read replicas, with driver errors translated.

Use ``async with db.transaction() as conn`` for every state change (one transaction per
change), ``db.acquire()`` for single statements, and ``db.read()`` for reads that tolerate
replica lag. Exceptions raised inside these blocks leave as ``dukenet.errors`` types.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, TypeAlias

import asyncpg
import asyncpg.pool

from dukenet.errors import (
    AlreadyExists,
    Conflict,
    DatabaseUnavailable,
    DukenetError,
    InvalidInput,
)

log = logging.getLogger(__name__)

Connection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)
Isolation: TypeAlias = Literal["read_committed", "serializable", "repeatable_read"]
Record: TypeAlias = asyncpg.Record


class SerializationConflict(Conflict):
    """A concurrent transaction won a race (serialization failure or deadlock); retry."""

    code = "CONCURRENT_UPDATE"
    title = "Concurrent update"


_UNAVAILABLE = (
    OSError,
    ConnectionError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    # Raised when the server dropped a pooled connection while it sat idle.
    asyncpg.InternalClientError,
)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Convert asyncpg exceptions raised inside the block into DukeNET errors."""
    try:
        yield
    except DukenetError:
        raise
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(
            "a row with the same identity already exists",
            extra={"constraint": exc.constraint_name},
        ) from exc
    except (asyncpg.CheckViolationError, asyncpg.NotNullViolationError) as exc:
        raise InvalidInput(
            f"value refused by the database: {exc.constraint_name or exc.column_name}",
            extra={"constraint": exc.constraint_name},
        ) from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise InvalidInput(
            "a referenced resource does not exist", extra={"constraint": exc.constraint_name}
        ) from exc
    except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError) as exc:
        raise SerializationConflict(str(exc)) from exc
    except (asyncpg.DataError, asyncpg.exceptions.StringDataRightTruncationError) as exc:
        raise InvalidInput(f"value refused by the database: {exc}") from exc
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(f"PostgreSQL unavailable: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise DukenetError(f"database error: {exc.__class__.__name__}") from exc


async def _init_connection(conn: Connection) -> None:
    """Decode JSON/JSONB to Python objects on every pooled connection."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(conn: Connection) -> None:
    """The pool's reset: nothing beyond asyncpg's own rollback of an open transaction.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release, one extra round trip per borrowed connection. Pooled
    connections here leave no session state behind: transactions, ``SET LOCAL`` and
    transaction-scoped advisory locks end at commit, and ``LISTEN`` runs on dedicated
    connections. Work that does leave session state uses ``Database.session()``, which
    resets fully before release.
    """
    del conn


async def create_pool(
    url: str,
    *,
    pgbouncer: bool = False,
    min_size: int = 2,
    max_size: int = 20,
    generic_plans: bool = False,
) -> asyncpg.Pool:
    """An asyncpg pool; with ``pgbouncer`` no server-side prepared statements are cached.

    JIT compilation is off for the pool's sessions: every statement here is small, and one
    whose cost estimate balloons (a few CTEs over a table without statistics yet) would pay
    hundreds of milliseconds of compilation at every execution. Behind PgBouncer (which
    refuses unknown startup parameters) set ``jit = off`` on the database or role instead.

    ``generic_plans`` is for processes whose statements all find their rows by key, taking
    the keys as arrays (workers). Each prepared statement is planned once per session
    (``plan_cache_mode = force_generic_plan``): PostgreSQL otherwise re-plans such a
    statement at every execution when the array is short, because its custom plan then
    looks cheaper. Sequential scans are off for those sessions (``enable_seqscan = off``;
    a table no index serves is still scanned): a plan made once, while the tables of a new
    network are nearly empty, would otherwise scan them sequentially for the whole session
    as they grow. At 200 tasks/s (W2) this took PostgreSQL's CPU from 4.45 to 3.72 ms a
    task and the p50 ready→call from 10.9 to 7.2 ms."""
    options: dict[str, Any] = {}
    if pgbouncer:
        options["statement_cache_size"] = 0
        options["max_cached_statement_lifetime"] = 0
    else:
        options["server_settings"] = {"jit": "off"}
        if generic_plans:
            options["server_settings"]["plan_cache_mode"] = "force_generic_plan"
            options["server_settings"]["enable_seqscan"] = "off"
    with translate_errors():
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            **options,
        )
    assert pool is not None
    return pool


class Database:
    """The primary pool plus optional replica pools."""

    def __init__(
        self, primary: asyncpg.Pool, replicas: list[asyncpg.Pool] | None = None, *, url: str = ""
    ) -> None:
        self.primary = primary
        self.replicas = replicas or []
        self.url = url
        self._next_replica = itertools.cycle(self.replicas) if self.replicas else None

    @classmethod
    async def connect(
        cls,
        url: str,
        replica_urls: list[str] | None = None,
        *,
        pgbouncer: bool = False,
        min_size: int = 2,
        max_size: int = 20,
        generic_plans: bool = False,
    ) -> Database:
        """Open the primary pool and one pool per replica URL."""
        options: dict[str, Any] = {
            "pgbouncer": pgbouncer,
            "min_size": min_size,
            "max_size": max_size,
            "generic_plans": generic_plans,
        }
        primary = await create_pool(url, **options)
        replicas = [await create_pool(r, **options) for r in replica_urls or []]
        return cls(primary, replicas, url=url)

    async def close(self, grace: float = 10.0) -> None:
        """Close every pool, waiting at most ``grace`` seconds for borrowed connections.

        A connection still borrowed after that (a stuck job) is terminated, so shutting
        down never hangs.
        """
        for pool in [self.primary, *self.replicas]:
            try:
                await asyncio.wait_for(pool.close(), timeout=grace)
            except TimeoutError:
                log.warning("PostgreSQL pool did not close within %.0f s; terminating", grace)
                pool.terminate()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """A primary connection without an explicit transaction (autocommit)."""
        with translate_errors():
            async with self.primary.acquire() as conn:
                yield conn

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Connection]:
        """A primary connection for work that leaves session state behind (session-level
        advisory locks, temporary tables, ``SET``): reset before it goes back to the pool
        (asyncpg's reset query plus ``DISCARD TEMP``), or terminated if the reset fails.
        Other connections skip that round trip."""
        with translate_errors():
            async with self.primary.acquire() as conn:
                try:
                    yield conn
                finally:
                    try:
                        if not conn.is_closed():
                            reset = conn.get_reset_query().rstrip().rstrip(";")
                            await conn.execute(f"{reset}; DISCARD TEMP")
                    except (OSError, asyncpg.PostgresError, asyncio.CancelledError):
                        conn.terminate()
                        raise

    @asynccontextmanager
    async def transaction(
        self, *, isolation: Isolation = "read_committed"
    ) -> AsyncIterator[Connection]:
        """A primary connection inside one transaction; committed when the block succeeds."""
        with translate_errors():
            async with self.primary.acquire() as conn, conn.transaction(isolation=isolation):
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        """A connection for reads that tolerate replica lag (the primary without replicas)."""
        pool = next(self._next_replica) if self._next_replica else self.primary
        with translate_errors():
            async with pool.acquire() as conn:
                yield conn

    async def ping(self) -> None:
        """Raise ``DatabaseUnavailable`` unless the primary answers."""
        async with self.acquire() as conn:
            await conn.fetchval("SELECT 1", timeout=2)
