"""The store boundary: pools, replicas, PgBouncer mode, Redis prefix and error translation."""

from __future__ import annotations

import pytest

from dukenet.errors import AlreadyExists, CacheUnavailable, DatabaseUnavailable, InvalidInput
from dukenet.runtime import Services
from dukenet.store.cache import Cache
from dukenet.store.postgres import Database
from tests.conftest import free_port


async def test_driver_errors_become_dukenet_errors(services: Services) -> None:
    agent = "1" * 64
    async with services.db.transaction() as conn:
        await conn.execute("INSERT INTO agents (agent_id, public_key) VALUES ($1, $2)", agent, "k1")
    with pytest.raises(AlreadyExists) as info:
        async with services.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO agents (agent_id, public_key) VALUES ($1, $2)", agent, "k2"
            )
    assert info.value.extra["constraint"] == "agents_pkey"
    with pytest.raises(InvalidInput):
        async with services.db.transaction() as conn:
            await conn.execute("UPDATE agents SET trust_score = 500 WHERE agent_id = $1", agent)


async def test_a_failed_transaction_writes_nothing(services: Services) -> None:
    agent = "2" * 64
    with pytest.raises(AlreadyExists):
        async with services.db.transaction() as conn:
            await conn.execute("INSERT INTO agents (agent_id, public_key) VALUES ($1, 'k3')", agent)
            await conn.execute("INSERT INTO agents (agent_id, public_key) VALUES ($1, 'k3')", agent)
    async with services.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM agents WHERE agent_id = $1", agent) == 0


async def test_jsonb_round_trips_as_python_objects(services: Services) -> None:
    async with services.db.transaction() as conn:
        await conn.execute(
            "INSERT INTO agents (agent_id, public_key, metadata) VALUES ($1, 'k4', $2)",
            "3" * 64,
            {"region": "eu", "gpus": [1, 2]},
        )
    async with services.db.read() as conn:
        stored = await conn.fetchval("SELECT metadata FROM agents WHERE agent_id = $1", "3" * 64)
    assert stored == {"region": "eu", "gpus": [1, 2]}


async def test_pooled_sessions_never_compile_statements(services: Services) -> None:
    # JIT would spend hundreds of milliseconds compiling any statement whose estimate
    # balloons (CTEs over tables without statistics), at every execution.
    async with services.db.acquire() as conn:
        assert await conn.fetchval("SHOW jit") == "off"
    async with services.db.read() as conn:
        assert await conn.fetchval("SHOW jit") == "off"


async def test_worker_pools_plan_each_statement_once_on_indexes(
    services: Services, database_url: str
) -> None:
    """A worker's sessions keep one generic plan per prepared statement, and that plan
    uses the index even when it was made while the table was empty; the API's sessions
    keep PostgreSQL's defaults."""
    async with services.db.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
        assert await conn.fetchval("SHOW enable_seqscan") == "on"
    db = await Database.connect(
        database_url, [database_url], min_size=1, max_size=2, generic_plans=True
    )
    try:
        async with db.read() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        async with db.acquire() as conn:
            await conn.execute("CREATE TEMP TABLE keyed (id int PRIMARY KEY, v text)")
            # The shape of the worker's statements: keys as an array, joined to the table.
            lookup = "SELECT k.v FROM unnest($1::int[]) u(id) JOIN keyed k ON k.id = u.id"
            assert await conn.fetch(lookup, [1]) == []  # planned now, on the empty table
            await conn.execute("INSERT INTO keyed SELECT g, 'x' FROM generate_series(1, 20000) g")
            assert [r["v"] for r in await conn.fetch(lookup, [7])] == ["x"]
            name = await conn.fetchval(
                "SELECT name FROM pg_prepared_statements WHERE statement = $1", lookup
            )
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE {name}('{{7}}')"))
            assert "Index" in plan and "Seq Scan" not in plan, plan
            await conn.execute("DROP TABLE keyed")
    finally:
        await db.close()


async def test_pgbouncer_mode_and_replica_pools(database_url: str) -> None:
    db = await Database.connect(
        database_url, [database_url], pgbouncer=True, min_size=1, max_size=2
    )
    try:
        assert len(db.replicas) == 1
        for _ in range(3):  # the same statement repeatedly, with no prepared-statement cache
            async with db.read() as conn:
                assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
        await db.ping()
    finally:
        await db.close()


async def test_unreachable_database_is_database_unavailable() -> None:
    with pytest.raises(DatabaseUnavailable):
        await Database.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/x", min_size=1)


async def test_cache_prefix_and_unavailable_redis(services: Services) -> None:
    cache = services.cache
    await cache.set(cache.key("agent", "abc"), b"v", ttl=30)
    async with cache.guard() as client:
        assert await client.get(services.settings.redis_prefix + "agent:abc") == b"v"
    dead = Cache.connect(f"redis://127.0.0.1:{free_port()}/0", "x:")
    try:
        with pytest.raises(CacheUnavailable):
            await dead.get(dead.key("anything"))
    finally:
        await dead.close()


async def test_session_state_is_reset_before_a_connection_returns_to_the_pool(
    database_url: str,
) -> None:
    # One pooled connection, so the next borrower gets the very same backend.
    db = await Database.connect(database_url, min_size=1, max_size=1)
    other = await Database.connect(database_url, min_size=1, max_size=1)
    try:
        async with db.session() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")
            assert await conn.fetchval("SELECT pg_try_advisory_lock(424242)")
            await conn.execute("CREATE TEMP TABLE leftover (x int)")
            await conn.execute("SET application_name = 'leftover'")
        async with db.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == backend
            assert await conn.fetchval("SELECT to_regclass('pg_temp.leftover')") is None
            assert await conn.fetchval("SHOW application_name") != "leftover"
        async with other.acquire() as conn:  # the session lock was released
            assert await conn.fetchval("SELECT pg_try_advisory_lock(424242)")
            await conn.fetchval("SELECT pg_advisory_unlock(424242)")
        # A plain borrow rolls back what it left open, without the extra reset round trip.
        async with db.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE never_committed (x int)")
        async with db.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.never_committed')") is None
    finally:
        await other.close()
        await db.close()
