"""Numbered ``.sql`` migrations applied in order under a PostgreSQL advisory lock.

Each file runs in its own transaction and is recorded in ``schema_migrations`` with its
checksum; running ``upgrade`` again is a no-op, and two processes upgrading at once
serialize on the lock so exactly one applies each file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from dukenet.errors import DukenetError
from dukenet.store.postgres import Connection, Record, translate_errors

# Arbitrary but fixed: identifies the migration lock among advisory locks.
MIGRATION_LOCK_KEY = 0x64756B656E6574  # "dukenet"
_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(DukenetError):
    """An applied migration no longer matches its file, or a file is malformed."""

    code = "MIGRATION_ERROR"
    title = "Migration error"


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    """Whether a migration ran, and when."""

    version: int
    name: str
    applied_at: datetime | None


def load_migrations() -> list[Migration]:
    """All migration files shipped in the package, in version order."""
    folder = resources.files("dukenet.store") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_PATTERN.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions: {versions}")
    return found


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT NOT NULL,
  checksum   TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)
"""


async def _applied(conn: Connection) -> dict[int, Record]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
    return {row["version"]: row for row in rows}


async def upgrade(conn: Connection, target: int | None = None) -> list[Migration]:
    """Apply pending migrations (up to version ``target`` if given); return those applied."""
    with translate_errors():
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute(_CREATE_TABLE)
            applied = await _applied(conn)
            done: list[Migration] = []
            for migration in load_migrations():
                if target is not None and migration.version > target:
                    break
                row = applied.get(migration.version)
                if row is not None:
                    if row["checksum"] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name} was changed "
                            "after it was applied"
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
                done.append(migration)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def status(conn: Connection) -> list[MigrationStatus]:
    """Every known migration with its applied time (None when pending)."""
    with translate_errors():
        applied = await _applied(conn)
    return [
        MigrationStatus(
            m.version,
            m.name,
            applied[m.version]["applied_at"] if m.version in applied else None,
        )
        for m in load_migrations()
    ]


async def ensure_log_partitions(conn: Connection, months_ahead: int = 3) -> int:
    """Maintenance: create execution-log partitions through ``months_ahead`` months ahead."""
    with translate_errors():
        created: int = await conn.fetchval("SELECT dukenet_ensure_log_partitions($1)", months_ahead)
    return created
