"""The migrations build exactly the schema the code expects, safely and idempotently."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dukenet.store import migrations
from dukenet.store.sql import load_queries
from tests.conftest import create_database, database_url_for, drop_database

ORCHESTRATION = load_queries("dukenet.orchestration", "queries.sql")

# Every table, column and type of DATABASE-SCHEMA.md with its deliberate production changes.
# Tables added by later migrations are listed in LATER_TABLES (their own tests cover them).
EXPECTED_COLUMNS: dict[str, dict[str, str]] = {
    "agent_capabilities": {
        "capability_id": "character varying(64)",
        "agent_id": "character varying(64)",
        "name": "character varying(255)",
        "description": "text",
        "version": "character varying(20)",
        "input_schema": "jsonb",
        "output_schema": "jsonb",
        "deprecated": "boolean",
        "pricing_model": "character varying(20)",
        "price": "numeric(10,4)",
        "currency": "character varying(10)",
        "latency_p99_ms": "integer",
        "availability_percent": "numeric(5,2)",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
    },
    "agent_ratings": {
        "rating_id": "integer",
        "agent_id": "character varying(64)",
        "rater_agent_id": "character varying(64)",
        "task_id": "uuid",
        "rating": "numeric(3,2)",
        "review": "text",
        "created_at": "timestamp with time zone",
    },
    "agent_tags": {
        "agent_id": "character varying(64)",
        "tag": "character varying(100)",
    },
    "agents": {
        "agent_id": "character varying(64)",
        "public_key": "text",
        "display_name": "character varying(255)",
        "description": "text",
        "endpoint_url": "text",
        "status": "character varying(20)",
        "created_at": "timestamp with time zone",
        "last_heartbeat": "timestamp with time zone",
        "owner_address": "character varying(42)",
        "avatar_url": "text",
        "trust_score": "numeric(5,2)",
        "version": "character varying(20)",
        "metadata": "jsonb",
        "audit_cid": "text",
        "updated_at": "timestamp with time zone",
        "deregistered_at": "timestamp with time zone",
    },
    "schema_migrations": {
        "version": "integer",
        "name": "text",
        "checksum": "text",
        "applied_at": "timestamp with time zone",
    },
    "subtasks": {
        "subtask_id": "uuid",
        "parent_task_id": "uuid",
        "name": "character varying(255)",
        "description": "text",
        "assigned_agent_id": "character varying(64)",
        "status": "character varying(20)",
        "priority": "integer",
        "depends_on": "uuid[]",
        "started_at": "timestamp with time zone",
        "completed_at": "timestamp with time zone",
        "input": "jsonb",
        "output": "jsonb",
        "output_mapping": "jsonb",
        "cost": "numeric(10,4)",
        "created_at": "timestamp with time zone",
        "capability_name": "character varying(255)",
        "constraints": "jsonb",
        "pinned_agent_id": "character varying(64)",
        "resolved_input": "jsonb",
        "attempt": "integer",
        "next_attempt_at": "timestamp with time zone",
        "lease_expires_at": "timestamp with time zone",
        "claimed_by": "character varying(255)",
        "last_failed_agent_id": "character varying(64)",
        "error_code": "character varying(50)",
        "error": "text",
    },
    "task_execution_log": {
        "log_id": "bigint",
        "task_id": "uuid",
        "subtask_id": "uuid",
        "event_type": "character varying(50)",
        "message": "text",
        "error_code": "character varying(50)",
        "timestamp": "timestamp with time zone",
        "metadata": "jsonb",
    },
    "tasks": {
        "task_id": "uuid",
        "name": "character varying(255)",
        "description": "text",
        "created_by": "character varying(64)",
        "created_at": "timestamp with time zone",
        "status": "character varying(20)",
        "priority": "character varying(10)",
        "deadline": "timestamp with time zone",
        "timeout_seconds": "integer",
        "started_at": "timestamp with time zone",
        "completed_at": "timestamp with time zone",
        "input_schema": "jsonb",
        "output_schema": "jsonb",
        "actual_input": "jsonb",
        "actual_output": "jsonb",
        "cost_limit": "numeric(10,4)",
        "estimated_cost": "numeric(10,4)",
        "actual_cost": "numeric(10,4)",
        "max_retries": "integer",
        "current_retries": "integer",
        "backoff_strategy": "character varying(20)",
        "tags": "text[]",
        "dependencies": "uuid[]",
        "metadata": "jsonb",
        "idempotency_key": "character varying(255)",
        "error_code": "character varying(50)",
        "error": "text",
        "audit_cid": "text",
    },
    "transactions": {
        "transaction_id": "uuid",
        "buyer_agent_id": "character varying(64)",
        "seller_agent_id": "character varying(64)",
        "transaction_type": "character varying(20)",
        "item_id": "character varying(100)",
        "amount": "numeric(10,4)",
        "currency": "character varying(10)",
        "platform_fee": "numeric(10,4)",
        "status": "character varying(20)",
        "created_at": "timestamp with time zone",
        "completed_at": "timestamp with time zone",
        "payment_method": "character varying(50)",
        "payment_reference": "character varying(100)",
        "metadata": "jsonb",
        "idempotency_key": "character varying(255)",
        "subtask_id": "uuid",
        "audit_cid": "text",
    },
    "trust_records": {
        "record_id": "integer",
        "agent_id": "character varying(64)",
        "trust_score": "numeric(5,2)",
        "reputation_score": "numeric(5,2)",
        "rating": "numeric(3,2)",
        "total_ratings": "integer",
        "successful_transactions": "integer",
        "failed_transactions": "integer",
        "uptime_30d": "numeric(5,2)",
        "uptime_90d": "numeric(5,2)",
        "uptime_all_time": "numeric(5,2)",
        "avg_latency_ms": "integer",
        "p99_latency_ms": "integer",
        "success_rate": "numeric(5,2)",
        "verified_signer": "boolean",
        "rate_limited": "boolean",
        "fraud_flags": "integer",
        "last_audit": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
    },
}

LATER_TABLES: set[str] = {
    # 0005_registry
    "agent_registrations",
    "agent_status_changes",
    "agent_uptime_intervals",
    # 0006_audit
    "audit_blocks",
    "audit_paths",
    "audit_log_queue",
    "audit_log_leaves",
    "audit_log_nodes",
    "audit_checkpoints",
    "audit_publish_cursors",
    # 0007_market
    "balances",
    "idempotency_records",
    "ledger_entries",
    "ledger_movements",
    "transaction_status_history",
    # 0008_orchestration
    "task_progress",
    # 0009_search
    "capability_search",
    # 0010_trust
    "agent_attempts",
    "trust_agent_stats",
    "trust_stats_state",
    "trust_fraud_flags",
    "agent_owner_proofs",
    "trust_rate_limits",
    "trust_recompute_runs",
    "trust_network_scores",
    "trust_pending_events",
    # 0017_trust_feedback
    "trust_feedback",
}

EXPECTED_INDEXES = {
    "agents": {
        "agents_pkey",
        "agents_public_key_key",
        "idx_agents_status",
        "idx_agents_trust_score",
        "idx_agents_last_heartbeat",
        "idx_agents_metadata",
    },
    "agent_capabilities": {
        "agent_capabilities_pkey",
        "idx_capabilities_agent",
        "idx_capabilities_name",
        "idx_capabilities_deprecated",
        "idx_capabilities_input_schema",
        "idx_capabilities_name_live",
    },
    "agent_tags": {"agent_tags_pkey", "idx_agent_tags_tag"},
    "trust_records": {"trust_records_pkey", "idx_trust_agent", "idx_trust_updated"},
    "agent_ratings": {
        "agent_ratings_pkey",
        "agent_ratings_agent_id_rater_agent_id_task_id_key",
        "idx_ratings_agent",
        "idx_ratings_rater",
        "idx_ratings_task",
    },
    "tasks": {
        "tasks_pkey",
        "tasks_created_by_idempotency_key_key",
        "idx_tasks_status",
        "idx_tasks_created_by",
        "idx_tasks_created_at",
        "idx_tasks_priority",
        "idx_tasks_tags",
        "idx_tasks_dependencies",
        "idx_tasks_metadata",
        "idx_tasks_created_by_created",
    },
    "subtasks": {
        "subtasks_pkey",
        "subtasks_parent_task_id_name_key",
        "idx_subtasks_parent",
        "idx_subtasks_status",
        "idx_subtasks_claimable",
        "idx_subtasks_leases",
        "idx_subtasks_assigned_agent",
        "idx_subtasks_depends_on",
    },
    "task_execution_log": {
        "task_execution_log_pkey",
        "idx_log_task",
        "idx_log_timestamp",
        "idx_log_subtask",
    },
    "transactions": {
        "transactions_pkey",
        "transactions_buyer_agent_id_idempotency_key_key",
        "idx_transactions_buyer",
        "idx_transactions_seller",
        "idx_transactions_status",
        "idx_transactions_metadata",
        "idx_transactions_subtask",
    },
}
GIN_INDEXES = {
    "idx_agents_metadata",
    "idx_capabilities_input_schema",
    "idx_tasks_tags",
    "idx_tasks_dependencies",
    "idx_tasks_metadata",
    "idx_subtasks_depends_on",
    "idx_transactions_metadata",
}

_COLUMNS = """
SELECT c.relname AS table_name, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS column_type
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""
_INDEXES = """
SELECT t.relname AS table_name, i.relname AS index_name, am.amname AS method
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_am am ON am.oid = i.relam
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public' AND NOT t.relispartition
"""
_PARTITIONS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'task_execution_log'::regclass
ORDER BY c.relname
"""
_CHECKS = """
SELECT conrelid::regclass::text AS table_name, pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace
"""


async def _schema(conn: asyncpg.Connection) -> dict[str, object]:
    columns: dict[str, dict[str, str]] = {}
    for row in await conn.fetch(_COLUMNS):
        columns.setdefault(row["table_name"], {})[row["column_name"]] = row["column_type"]
    indexes: dict[str, dict[str, str]] = {}
    for row in await conn.fetch(_INDEXES):
        indexes.setdefault(row["table_name"], {})[row["index_name"]] = row["method"]
    partitions = {row["relname"]: row["bound"] for row in await conn.fetch(_PARTITIONS)}
    checks = sorted((r["table_name"], r["definition"]) for r in await conn.fetch(_CHECKS))
    return {"columns": columns, "indexes": indexes, "partitions": partitions, "checks": checks}


@pytest.fixture
def empty_database() -> object:
    name = create_database()
    yield database_url_for(name)
    drop_database(name)


def _month_start(months_ahead: int) -> datetime:
    now = datetime.now(UTC)
    month = now.month - 1 + months_ahead
    return datetime(now.year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


async def test_design_phases_build_exactly_the_designed_schema(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        applied = await migrations.upgrade(conn, target=4)
        assert [m.name for m in applied] == ["core", "task_system", "marketplace", "optimization"]
        schema = await _schema(conn)
    finally:
        await conn.close()
    columns = schema["columns"]
    assert isinstance(columns, dict)
    assert set(columns) == set(EXPECTED_COLUMNS)
    for table, expected in EXPECTED_COLUMNS.items():
        assert columns[table] == expected, table
    indexes = schema["indexes"]
    assert isinstance(indexes, dict)
    for table, names in EXPECTED_INDEXES.items():
        assert set(indexes[table]) == names, table
        for name in names & GIN_INDEXES:
            assert indexes[table][name] == "gin", name
    # No TIMESTAMP WITHOUT TIME ZONE anywhere.
    assert not [
        (t, c)
        for t, cols in columns.items()
        for c, ty in cols.items()
        if ty.startswith("timestamp without")
    ]
    # Monthly partitions for the current month and the next three, plus DEFAULT.
    partitions = schema["partitions"]
    assert isinstance(partitions, dict)
    expected_parts = {f"task_execution_log_{_month_start(i):%Y_%m}" for i in range(4)}
    assert set(partitions) == expected_parts | {"task_execution_log_default"}
    assert partitions["task_execution_log_default"] == "DEFAULT"
    # Every enumerated column carries a CHECK constraint.
    checks = " ".join(d for _, d in schema["checks"])  # type: ignore[union-attr]
    for fragment in (
        "'ACTIVE'",
        "'SUSPENDED'",
        "'per_call'",
        "'EXECUTING'",
        "'CANCELLED'",
        "'RUNNING'",
        "'SKILL_RENTAL'",
        "'REFUNDED'",
        "'exponential'",
        "'RETRYING'",
    ):
        assert fragment in checks, fragment


async def test_full_upgrade_keeps_the_design_and_adds_only_listed_tables(
    empty_database: str,
) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        await migrations.upgrade(conn)
        schema = await _schema(conn)
        statuses = await migrations.status(conn)
    finally:
        await conn.close()
    columns = schema["columns"]
    assert isinstance(columns, dict)
    assert set(columns) == set(EXPECTED_COLUMNS) | LATER_TABLES
    for table, expected in EXPECTED_COLUMNS.items():
        # Later phases may add columns; none of the designed ones may change or vanish.
        assert {c: columns[table][c] for c in expected} == expected, table
    assert all(s.applied_at is not None for s in statuses)
    # The production migrations drop only design indexes that other indexes serve better
    # (0013, 0014, 0015) and one that no query searches (0016); those indexes stay.
    indexes = schema["indexes"]
    assert isinstance(indexes, dict)
    dropped = {
        "agents": {"idx_agents_trust_score"},
        "trust_records": {"idx_trust_agent"},
        "transactions": {
            "idx_transactions_buyer",
            "idx_transactions_seller",
            "idx_transactions_status",
        },
        "tasks": {"idx_tasks_status", "idx_tasks_created_by", "idx_tasks_priority"},
        "subtasks": {"idx_subtasks_parent", "idx_subtasks_status", "idx_subtasks_depends_on"},
        "task_execution_log": {"idx_log_task", "idx_log_subtask"},
    }
    serving = {
        "transactions": {"idx_transactions_buyer_created", "idx_transactions_seller_created"},
        "tasks": {
            "idx_tasks_created_by_created",
            "idx_tasks_created_by_status",
            "idx_tasks_open_deadline",
        },
        "subtasks": {
            "subtasks_parent_task_id_name_key",
            "idx_subtasks_claimable",
            "idx_subtasks_leases",
        },
        "task_execution_log": {"idx_log_task_log_id", "task_execution_log_pkey"},
    }
    for table, names in EXPECTED_INDEXES.items():
        gone = dropped.get(table, set())
        assert set(indexes[table]) >= (names - gone) | serving.get(table, set()), table
        assert not set(indexes[table]) & gone, table
    for name in ("idx_tasks_dependencies", "idx_tasks_tags", "idx_tasks_metadata"):
        assert indexes["tasks"][name] == "gin", name


async def test_task_gin_indexes_hold_only_searchable_rows(empty_database: str) -> None:
    """A task without dependencies, tags or metadata adds nothing to the GIN indexes (whose
    pending lists every search reads); a waiting task's dependencies stay indexed."""
    conn = await asyncpg.connect(empty_database)
    try:
        await migrations.upgrade(conn)
        predicates = dict(
            await conn.fetch(
                "SELECT indexrelid::regclass::text, pg_get_expr(indpred, indrelid) FROM pg_index"
                " WHERE indexrelid::regclass::text IN"
                " ('idx_tasks_dependencies', 'idx_tasks_tags', 'idx_tasks_metadata')"
            )
        )
        assert "cardinality(dependencies) > 0" in predicates["idx_tasks_dependencies"]
        assert "'PENDING'" in predicates["idx_tasks_dependencies"]
        assert "cardinality(tags) > 0" in predicates["idx_tasks_tags"]
        assert "metadata <> '{}'::jsonb" in predicates["idx_tasks_metadata"]
    finally:
        await conn.close()


def _plan_indexes(plan: Any) -> set[str]:
    """The indexes an ``EXPLAIN (FORMAT JSON)`` plan reads."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(plan["Index Name"])
        for value in plan.values():
            found |= _plan_indexes(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _plan_indexes(item)
    return found


async def test_completions_look_subtasks_up_by_key_and_the_reaper_by_lease(
    empty_database: str,
) -> None:
    """The lease index holds the rows that have a lease. With a status predicate the
    completion's fence (``status = 'RUNNING'``) made it usable there, and under the worker's
    generic plans a completion read every entry a busy queue had left behind instead of
    looking its subtasks up by key (migration 0018)."""
    conn = await asyncpg.connect(empty_database)
    try:
        await migrations.upgrade(conn)
        # A queue as statistics see it mid-drain: thousands of finished subtasks, a few
        # running, each finished one having held a lease.
        await conn.execute(
            """
            INSERT INTO agents (agent_id, public_key) VALUES (repeat('a', 64), 'key');
            INSERT INTO tasks (task_id, name, created_by, input_schema, output_schema)
            VALUES ('00000000-0000-0000-0000-000000000001', 'drain', repeat('a', 64), '{}',
                    '{}');
            INSERT INTO subtasks (parent_task_id, name, capability_name, input, status,
                                  attempt, lease_expires_at)
            SELECT '00000000-0000-0000-0000-000000000001', 's' || n, 'echo', '{}',
                   CASE WHEN n <= 5 THEN 'RUNNING' ELSE 'COMPLETED' END, 1,
                   CASE WHEN n <= 5 THEN NOW() + interval '30 seconds' END
            FROM generate_series(1, 2000) AS n;
            ANALYZE subtasks;
            """
        )
        await conn.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")

        async def indexes(name: str, *args: Any) -> set[str]:
            plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {ORCHESTRATION[name]}", *args)
            return _plan_indexes(json.loads(plan))

        batch = 16  # answers a recorder commits at once under load
        completion = await indexes(
            "complete_subtasks",
            [uuid.uuid4() for _ in range(batch)],
            [1] * batch,
            ["{}"] * batch,
            [None] * batch,
        )
        assert "subtasks_pkey" in completion
        assert "idx_subtasks_leases" not in completion
        assert "idx_subtasks_leases" in await indexes("expired_leases", 10)
    finally:
        await conn.close()


async def test_upgrade_twice_is_a_no_op(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        await migrations.upgrade(conn)
        before = await _schema(conn)
        assert await migrations.upgrade(conn) == []
        assert await _schema(conn) == before
    finally:
        await conn.close()


async def test_record_blocks_are_compressed_with_lz4_where_the_server_has_it(
    empty_database: str,
) -> None:
    """Blocks written after the upgrade use lz4 on a server built with it (pglz, the
    default, otherwise) and read back as they were written."""
    conn = await asyncpg.connect(empty_database)
    try:
        await migrations.upgrade(conn)
        has_lz4 = await conn.fetchval(
            "SELECT 'lz4' = ANY (enumvals) FROM pg_settings"
            " WHERE name = 'default_toast_compression'"
        )
        method = await conn.fetchval(
            "SELECT attcompression::text FROM pg_attribute"
            " WHERE attrelid = 'audit_blocks'::regclass AND attname = 'data'"
        )
        assert method == ("l" if has_lz4 else "")  # "": the server's default
        data = json.dumps({"log": [{"event_type": "READY", "n": n} for n in range(200)]}).encode()
        await conn.execute(
            "INSERT INTO audit_blocks (cid, data, links) VALUES ('bafytest', $1, '{}')", data
        )
        stored = await conn.fetchrow(
            "SELECT data, pg_column_compression(data) AS method, pg_column_size(data) AS size"
            " FROM audit_blocks WHERE cid = 'bafytest'"
        )
        assert stored["data"] == data
        assert stored["method"] == ("lz4" if has_lz4 else "pglz")
        assert stored["size"] < len(data) / 2
    finally:
        await conn.close()


async def test_concurrent_upgrades_apply_each_file_once(empty_database: str) -> None:
    conns = [await asyncpg.connect(empty_database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrations.upgrade(c) for c in conns))
        versions = [m.version for result in results for m in result]
        assert sorted(versions) == [m.version for m in migrations.load_migrations()]
        rows = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == sorted(versions)
    finally:
        for c in conns:
            await c.close()


async def test_changed_migration_file_is_refused(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        await migrations.upgrade(conn, target=1)
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
            await migrations.upgrade(conn)
    finally:
        await conn.close()


async def _agent_and_task(conn: asyncpg.Connection) -> object:
    await conn.execute("INSERT INTO agents (agent_id, public_key) VALUES ($1, 'pk-a')", "a" * 64)
    return await conn.fetchval(
        "INSERT INTO tasks (name, created_by, input_schema, output_schema)"
        " VALUES ('t', $1, '{}', '{}') RETURNING task_id",
        "a" * 64,
    )


async def test_far_future_log_row_lands_in_default_partition_and_moves_when_its_month_comes(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        task_id = await _agent_and_task(conn)
        far = datetime.now(UTC) + timedelta(days=730)
        soon = _month_start(5) + timedelta(days=3)
        for when in (far, soon):
            await conn.execute(
                "INSERT INTO task_execution_log (task_id, event_type, timestamp)"
                " VALUES ($1, 'STARTED', $2)",
                task_id,
                when,
            )
        where = await conn.fetch(
            "SELECT tableoid::regclass::text AS part FROM task_execution_log ORDER BY timestamp"
        )
        assert [r["part"] for r in where] == ["task_execution_log_default"] * 2
        # The maintenance step creates the months ahead and moves parked rows into them.
        created = await migrations.ensure_log_partitions(conn, months_ahead=6)
        assert created == 3
        where = await conn.fetch(
            "SELECT tableoid::regclass::text AS part FROM task_execution_log ORDER BY timestamp"
        )
        assert [r["part"] for r in where] == [
            f"task_execution_log_{soon:%Y_%m}",
            "task_execution_log_default",
        ]
        assert await conn.fetchval("SELECT count(*) FROM task_execution_log") == 2
        assert await migrations.ensure_log_partitions(conn, months_ahead=6) == 0
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("sql", "args"),
    [
        (
            "INSERT INTO agents (agent_id, public_key, status) VALUES ($1, $2, 'BOGUS')",
            ("b" * 64, "pk-b"),
        ),
        (
            "INSERT INTO agents (agent_id, public_key, trust_score) VALUES ($1, $2, 101)",
            ("c" * 64, "pk-c"),
        ),
        (
            "INSERT INTO agents (agent_id, public_key, trust_score) VALUES ($1, $2, -1)",
            ("d" * 64, "pk-d"),
        ),
        ("INSERT INTO agents (agent_id, public_key) VALUES ($1, $2)", ("NOT-HEX", "pk-e")),
    ],
)
async def test_check_constraints_refuse_bad_values(
    database_url: str, sql: str, args: tuple[str, ...]
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_check_constraints_on_money_and_tasks(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO agents (agent_id, public_key) VALUES ($1, 'pk-f')", "f" * 64
            )
            await conn.execute(
                "INSERT INTO agents (agent_id, public_key) VALUES ($1, 'pk-9')", "9" * 64
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO transactions"
                " (buyer_agent_id, seller_agent_id, transaction_type, amount)"
                " VALUES ($1, $2, 'SKILL_RENTAL', -5)",
                "f" * 64,
                "9" * 64,
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO tasks (name, created_by, input_schema, output_schema, status)"
                " VALUES ('t', $1, '{}', '{}', 'DONE')",
                "f" * 64,
            )
    finally:
        await conn.close()
