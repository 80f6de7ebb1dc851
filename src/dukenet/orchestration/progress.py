"""A task's live counters (``task_progress``) and the execution-log rows appended with them.

Every transaction that changes a task collects its changes in a ``Changes`` object: how
many subtasks moved between states, what was spent and reserved, and the log rows. Then
``Changes.flush`` locks and updates the task's progress row first and appends the log rows
after it, so a task's log ids grow in commit order (see 0008_orchestration.sql). Its
``snapshots()`` feed the Redis status cache once the transaction committed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from dukenet.orchestration.feedback import FinishedAttempt
from dukenet.store.postgres import Connection, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.orchestration", "queries.sql")
# flush_changes with the start of a claim's attempts as its first CTE (see started_attempts).
_FLUSH_CTES = re.split(r"^WITH ", QUERIES["flush_changes"], maxsplit=1, flags=re.MULTILINE)[1]
START_AND_FLUSH = f"WITH {QUERIES['started_attempts']},\n{_FLUSH_CTES}"
STATES = ("pending", "ready", "assigned", "running", "completed", "failed", "cancelled")
ZERO = Decimal("0.0000")


async def lock_before_payment(conn: Connection, task_id: UUID) -> None:
    """Lock a task's progress row before its escrow moves money (a settlement or a released
    hold). Balances come after progress rows in the lock order: a claim holds its tasks'
    progress rows while it takes holds, so a settlement that locked the buyer's balance
    first and the progress row second would deadlock with it."""
    await conn.execute(QUERIES["lock_progress"], [task_id])


@dataclass
class Delta:
    """Changes to one task's counters."""

    counts: Counter[str] = field(default_factory=Counter)
    spent: Decimal = ZERO
    reserved: Decimal = ZERO

    def move(self, source: str, target: str, n: int = 1) -> None:
        """``n`` subtasks moved from state ``source`` to ``target`` (names as in STATES)."""
        self.counts[source.lower()] -= n
        self.counts[target.lower()] += n


@dataclass
class LogRow:
    """One execution-log row to append."""

    task_id: UUID
    subtask_id: UUID | None
    event_type: str
    message: str | None = None
    error_code: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass
class Snapshot:
    """The compact live status of one task, as of a committed version."""

    task_id: UUID
    version: int
    document: dict[str, Any]


def status_document(
    row: Record | dict[str, Any], status: str, error_code: str | None
) -> dict[str, Any]:
    """The ``task:status:{id}`` JSON from a progress row and the task's status."""
    total = int(row["total"])
    counts = {state: int(row[state]) for state in STATES}
    finished = counts["completed"] + counts["failed"] + counts["cancelled"]
    cost_limit = row["cost_limit"]
    return {
        "task_id": str(row["task_id"]),
        "created_by": row["created_by"],
        "status": status,
        "version": int(row["version"]),
        "subtasks": {"total": total, **counts},
        "progress": round(finished / total, 4) if total else 1.0,
        "actual_cost": f"{row['spent_cost']:.4f}",
        "reserved_cost": f"{row['reserved_cost']:.4f}",
        "cost_limit": None if cost_limit is None else f"{cost_limit:.4f}",
        "error_code": error_code,
        "updated_at": _timestamp(row["updated_at"]),
    }


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


@dataclass
class TaskCounters:
    """Changes to a task's own row made with its counters: retries, cost, start."""

    retries: int = 0
    cost: Decimal = ZERO
    started: bool = False


@dataclass
class Changes:
    """What one transaction does to its tasks, written after the subtask rows.

    ``flush`` writes, in one statement, the progress rows (counters and version), then the
    log rows, then the task rows' counters. A transaction that must look at the new
    counters before deciding on more log rows (did the task just complete?) calls ``bump``
    and later ``write`` instead. Either may run more than once; each writes only what was
    added since. ``snapshots()`` gives the newest status document per task for Redis,
    ``wake`` tells whether READY work appeared that workers should claim now (``readied``
    lists subtasks a completion made READY, which the recorder may claim itself before the
    commit; ``needs_wake`` covers both), and ``finished`` holds the attempts that ended,
    for trust (see ``feedback``).
    """

    deltas: dict[UUID, Delta] = field(default_factory=dict)
    rows: list[LogRow] = field(default_factory=list)
    counters: dict[UUID, TaskCounters] = field(default_factory=dict)
    statuses: dict[UUID, tuple[str, str | None]] = field(default_factory=dict)
    progress: dict[UUID, Record] = field(default_factory=dict)
    wake: bool = False
    readied: list[UUID] = field(default_factory=list)
    finished: list[FinishedAttempt] = field(default_factory=list)

    @property
    def needs_wake(self) -> bool:
        """Whether READY work appeared that nobody claimed in this transaction."""
        return self.wake or bool(self.readied)

    def delta(self, task_id: UUID) -> Delta:
        """The (possibly empty) counter delta of ``task_id``."""
        return self.deltas.setdefault(task_id, Delta())

    def task(self, task_id: UUID) -> TaskCounters:
        """The pending changes to ``task_id``'s own row."""
        self.delta(task_id)
        return self.counters.setdefault(task_id, TaskCounters())

    def log(
        self,
        task_id: UUID,
        subtask_id: UUID | None,
        event_type: str,
        message: str | None = None,
        error_code: str | None = None,
        **metadata: Any,
    ) -> None:
        """Append an execution-log row (written after the task's progress row)."""
        self.delta(task_id)
        self.rows.append(
            LogRow(task_id, subtask_id, event_type, message, error_code, metadata or None)
        )

    def set_status(self, task_id: UUID, status: str, error_code: str | None = None) -> None:
        """The task's status as of this transaction, for its status snapshot."""
        self.delta(task_id)
        self.statuses[task_id] = (status, error_code)

    def snapshots(self) -> list[Snapshot]:
        """The newest status document of every task this transaction changed."""
        found = []
        for task_id, row in self.progress.items():
            status, error_code = self.statuses.get(task_id, ("EXECUTING", None))
            found.append(
                Snapshot(task_id, row["version"], status_document(row, status, error_code))
            )
        return found

    def _progress_columns(self) -> list[list[Any]]:
        columns: list[list[Any]] = [[] for _ in range(10)]
        for task_id in sorted(self.deltas):
            delta = self.deltas[task_id]
            values: list[Any] = [task_id, *(delta.counts[s] for s in STATES)]
            values += [delta.spent, delta.reserved]
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        return columns

    def _write_columns(self) -> list[list[Any]]:
        changed = [(t, c) for t, c in sorted(self.counters.items()) if c != TaskCounters()]
        return [
            [r.task_id for r in self.rows],
            [r.subtask_id for r in self.rows],
            [r.event_type for r in self.rows],
            [r.message for r in self.rows],
            [r.error_code for r in self.rows],
            [_json(r.metadata) for r in self.rows],
            [task_id for task_id, _ in changed],
            [c.retries for _, c in changed],
            [c.cost for _, c in changed],
            [c.started for _, c in changed],
        ]

    async def _lock(self, conn: Connection, locked: bool) -> None:
        if len(self.deltas) > 1 and not locked:
            # Several rows: lock them in id order first (one row is locked by the update).
            await conn.execute(QUERIES["lock_progress"], sorted(self.deltas))

    def created(self, row: Record, status: str) -> None:
        """A task's progress row as its submission inserted it (for its first snapshot)."""
        self.progress[row["task_id"]] = row
        self.statuses[row["task_id"]] = (status, None)

    def _keep(self, rows: list[Record]) -> dict[UUID, Record]:
        found = {row["task_id"]: row for row in rows}
        self.progress.update(found)
        return found

    async def bump(self, conn: Connection, *, locked: bool = False) -> dict[UUID, Record]:
        """Lock (unless ``locked``) and update the progress rows; return them by task id."""
        if not self.deltas:
            return {}
        await self._lock(conn, locked)
        rows = await conn.fetch(QUERIES["bump_progress"], *self._progress_columns())
        self.deltas = {task_id: Delta() for task_id in self.deltas}  # counted; keep the tasks
        return self._keep(rows)

    async def write(self, conn: Connection) -> None:
        """Append the log rows and update the task rows' counters (after ``bump``)."""
        if self.rows or any(c != TaskCounters() for c in self.counters.values()):
            await conn.execute(QUERIES["write_changes"], *self._write_columns())
        self.deltas.clear()
        self.rows.clear()
        self.counters.clear()

    async def flush(
        self, conn: Connection, *, locked: bool = False, starting: Sequence[Any] = ()
    ) -> dict[UUID, Record]:
        """``bump`` and ``write`` in one statement; return the new progress rows. With
        ``starting`` (the arguments of ``started_attempts`` in ``queries.sql``), the same
        statement starts a claim's attempts first."""
        if not self.deltas:
            return {}
        await self._lock(conn, locked)
        query = START_AND_FLUSH if starting else QUERIES["flush_changes"]
        rows = await conn.fetch(query, *self._progress_columns(), *self._write_columns(), *starting)
        self.deltas.clear()
        self.rows.clear()
        self.counters.clear()
        return self._keep(rows)
