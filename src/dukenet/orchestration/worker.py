"""The worker: claims READY subtasks, calls their agents, records the outcomes.

One process runs one ``Worker`` with ``concurrency`` call slots:

* the claim loop fills free slots with batched claims (``FOR UPDATE SKIP LOCKED``, most
  urgent first); when nothing is claimable it sleeps until a ``NOTIFY`` on its dedicated
  listening connection, the next retry time, or a jittered poll (the only wake-up source
  when ``DUKENET_PGBOUNCER`` is set, as PgBouncer cannot carry LISTEN);
* each claimed attempt runs in its own asyncio task: call the agent, check the answer,
  then hand it to the recorder, which commits the answers that queued up meanwhile in one
  fenced transaction (failures are recorded one by one). The call slot is free as soon
  as the answer is handed over, so the next claim runs while the recorder commits; at
  most ``recording_limit`` answers wait for it, their leases renewed like the calls';
* dependents a completion makes READY are claimed by the recorder in that same
  transaction, into slots reserved for them (``reserve``/``dispatched``), and called
  right after its commit;
* the lease loop renews the leases of running calls every third of the lease, and stops
  calls whose attempt was taken away (task cancelled, lease reaped);
* the maintenance loop reaps expired leases and fails tasks past their deadline;
* the trust feeder records the trust of finished attempts after their commits (see
  ``feedback``), including those a worker that died left queued.

``stop()`` (SIGTERM) stops claiming, lets running calls finish for the grace period and
returns the rest to READY without counting them as failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

import asyncpg

from dukenet.errors import DukenetError
from dukenet.orchestration import feedback, reaper
from dukenet.orchestration.claims import Assignment, ClaimResult, claim
from dukenet.orchestration.completion import Answer, check_answer
from dukenet.orchestration.engine import READY_CHANNEL, Context, Work, transact
from dukenet.orchestration.errors import FailureCode
from dukenet.orchestration.invoker import Accepted, Invoker, Outcome, Success
from dukenet.orchestration.outcomes import (
    Failure,
    accept_attempt,
    fail_attempt,
    fail_ready,
    log_ignored,
)
from dukenet.orchestration.progress import Changes
from dukenet.orchestration.recorder import Recorder
from dukenet.orchestration.selection import CandidateCache
from dukenet.runtime import Services
from dukenet.store.postgres import Connection
from dukenet.store.sql import load_queries

log = logging.getLogger(__name__)
T = TypeVar("T")
QUERIES = load_queries("dukenet.orchestration", "queries.sql")
CLAIM_LINGER = 0.003  # seconds a busy worker with a backlog waits to claim several slots at once
SHUTDOWN = Failure(
    FailureCode.WORKER_SHUTDOWN,
    "the worker stopped before the agent answered",
    retryable=True,
    counts=False,
)


@dataclass
class _Running:
    """One attempt in flight: its asyncio task and whether it is still in the call."""

    assignment: Assignment
    task: asyncio.Task[None] | None = None
    calling: bool = True
    accepted: bool = False


@dataclass
class WorkerStats:
    """Counters a benchmark or an operator may read."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    stale: int = 0
    claims: int = 0
    unrecorded: int = 0
    started_at: float = field(default_factory=time.monotonic)


def default_worker_id() -> str:
    """``host:pid:random``, unique among the workers of a deployment."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims and runs subtasks until ``stop()``; see the module docstring."""

    def __init__(
        self,
        services: Services,
        *,
        concurrency: int | None = None,
        worker_id: str | None = None,
    ) -> None:
        settings = services.settings
        self.services = services
        self.context = Context.from_services(services)
        self.concurrency = concurrency or settings.worker_concurrency
        self.batch_size = min(settings.worker_batch_size, self.concurrency)
        self.lease_seconds = settings.worker_lease_seconds
        self.poll_interval = settings.worker_poll_interval
        self.shutdown_grace = settings.worker_shutdown_grace
        self.maintenance_interval = settings.maintenance_interval
        self.listen = not settings.pgbouncer
        self.worker_id = worker_id or default_worker_id()
        self.invoker = Invoker(
            services.network_key, services.network_id, max_connections=self.concurrency * 2
        )
        self.stats = WorkerStats()
        self.candidates = CandidateCache()
        self.recording_limit = 2 * self.concurrency  # answers that may wait for the recorder
        self.recorder = Recorder(
            services,
            self.context,
            max_batch=self.recording_limit,
            on_wake=self.wake,
            dispatcher=self,
        )
        self._running: dict[UUID, _Running] = {}
        self._recording: dict[UUID, _Running] = {}  # answered, being committed
        self._reserved = 0  # slots the recorder is claiming dependents for
        self.feeder = feedback.Feeder(services)  # records the trust of finished attempts
        self._background: set[asyncio.Task[object]] = set()  # failures and releases
        self._wake = asyncio.Event()
        self._look = False  # read the next retry time at the next idle wait
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler)."""
        self._stopping.set()
        self._wake.set()
        self._slot_free.set()

    async def run(self) -> None:
        """Work until ``stop()``; then finish or release in-flight attempts and return."""
        await self.invoker.start()
        self.feeder.start()
        self.recorder.start()
        helpers: list[asyncio.Task[None]] = []
        try:
            if self.listen:
                await self._start_listener()
            helpers = [
                asyncio.create_task(self._lease_loop(), name="dukenet-leases"),
                asyncio.create_task(self._maintenance_loop(), name="dukenet-maintenance"),
            ]
            log.info("worker %s started (concurrency %d)", self.worker_id, self.concurrency)
            await self._claim_loop()
        finally:
            self.stop()
            await self._drain()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._stop_listener()
            await self.recorder.stop()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self.feeder.stop()
            await self.invoker.close()
            log.info("worker %s stopped", self.worker_id)

    # ------------------------------------------------------------------ wake-ups

    async def _start_listener(self) -> None:
        url = self.services.db.url
        try:
            self._listener = await asyncpg.connect(url)
            await self._listener.add_listener(READY_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN unavailable, polling only: %s", exc)
            self._listener = None

    async def _stop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)

    def _notified(self, *_: object) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Claim now (new READY work appeared)."""
        self._wake.set()

    async def _idle_wait(self) -> None:
        """Sleep until a NOTIFY, the next retry time or a jittered poll, whichever first.

        The next retry time is read only when ``_look`` is set (see ``_claim_loop``): after
        a claim that took rows nothing else was due."""
        timeout = self.poll_interval * random.uniform(0.5, 1.5)
        if self._look:
            self._look = False
            try:
                async with self.services.db.acquire() as conn:
                    next_at: datetime | None = await conn.fetchval(QUERIES["next_ready_at"])
                if next_at is not None:
                    # Claimable rows another worker is claiming right now: look again shortly.
                    until = max(0.01, (next_at - datetime.now(UTC)).total_seconds())
                    timeout = min(timeout, until)
            except DukenetError as exc:
                log.warning("worker poll failed: %s", exc)
        if self._listener is not None and self._listener.is_closed():
            await self._start_listener()  # reconnect a dropped LISTEN connection
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout + 0.001)

    # ------------------------------------------------------------------ claiming

    async def _claim_loop(self) -> None:
        more_waiting = False
        while not self._stopping.is_set():
            free = self._free_slots()
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            if free < self.batch_size and self._running and more_waiting:
                # Busy with work waiting: let a few more slots free up so one claim fills
                # several of them (without a backlog, new work is claimed at once).
                free = await self._gather_slots(free)
            wanted = min(free, self.batch_size)
            self._wake.clear()
            try:
                result = await self._claim(wanted)
            except DukenetError as exc:
                log.warning("claim failed: %s", exc)
                await asyncio.sleep(self.poll_interval * random.uniform(0.5, 1.5))
                continue
            more_waiting = result.claimed >= wanted  # a full claim: more is probably there
            for assignment in result.assignments:
                self._start(assignment)
            for subtask_id, attempt, failure in result.unattemptable:
                await self._record(_fail_ready(self.context, subtask_id, attempt, failure))
            # A claim that took rows took everything due: the next retry time is read only
            # after an empty claim, or a deferral or retry of this worker's own (one round
            # trip fewer per claim under steady load).
            if result.claimed == 0 or result.deferred:
                self._look = True
            if result.claimed < wanted and not self._stopping.is_set():
                await self._idle_wait()

    async def _gather_slots(self, free: int) -> int:
        """Wait up to ``CLAIM_LINGER`` seconds for ``batch_size`` free slots."""
        loop = asyncio.get_running_loop()
        until = loop.time() + CLAIM_LINGER
        while free < self.batch_size and not self._stopping.is_set():
            remaining = until - loop.time()
            if remaining <= 0:
                break
            self._slot_free.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_free.wait(), remaining)
            free = self._free_slots()
        return free

    def _free_slots(self) -> int:
        """Call slots free for new claims (none while ``recording_limit`` answers wait)."""
        if len(self._recording) >= self.recording_limit:
            return 0
        return self.concurrency - len(self._running) - self._reserved

    # The recorder's side (``recorder.Dispatcher``): dependents it claims in its own
    # transaction run here, in slots reserved for them while it commits.

    def reserve(self, wanted: int) -> int:
        """Reserve up to ``wanted`` free slots for the recorder's claim (none when stopping)."""
        if self._stopping.is_set():
            return 0
        granted = max(0, min(wanted, self._free_slots()))
        self._reserved += granted
        return granted

    def dispatched(self, result: ClaimResult | None, reserved: int) -> None:
        """Start what the recorder claimed (committed), or release it when stopping."""
        self._reserved -= reserved
        self._slot_free.set()
        if result is None:
            return
        self.stats.claimed += len(result.assignments)
        for assignment in result.assignments:
            if self._stopping.is_set():
                # Claimed as the worker stopped: back to READY (not counted as a failure).
                release = _release(self.context, assignment.subtask_id, assignment.attempt)
                self._spawn(self._record(release))
            else:
                self._start(assignment)
        for subtask_id, attempt, failure in result.unattemptable:
            self._spawn(self._record(_fail_ready(self.context, subtask_id, attempt, failure)))
        if result.deferred:
            self._look = True  # no eligible agent now: read when it is due again
            self.wake()

    def _spawn(self, work: Coroutine[object, object, object]) -> None:
        task = asyncio.create_task(self._logged(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _logged(self, work: Coroutine[object, object, object]) -> None:
        try:
            await work
        except DukenetError as exc:
            log.warning("could not record a dispatched attempt (the reaper will): %s", exc)

    async def _claim(self, wanted: int) -> ClaimResult:
        async def work(conn: Connection, changes: Changes) -> ClaimResult:
            return await claim(
                conn,
                self.context,
                changes,
                worker_id=self.worker_id,
                limit=wanted,
                lease_seconds=self.lease_seconds,
                candidates=self.candidates,
            )

        result = await transact(self.services, work, on_wake=self.wake, publish_later=True)
        self.stats.claims += 1
        self.stats.claimed += len(result.assignments)
        return result

    def _start(self, assignment: Assignment) -> None:
        running = _Running(assignment)
        self._running[assignment.subtask_id] = running
        running.task = asyncio.create_task(
            self._attempt(running), name=f"dukenet-attempt-{assignment.subtask_id}"
        )

    # ------------------------------------------------------------------ one attempt

    async def _attempt(self, running: _Running) -> None:
        assignment = running.assignment
        try:
            try:
                outcome: Outcome = await self.invoker.invoke(assignment)
            except asyncio.CancelledError:
                if self._stopping.is_set() or running.calling:
                    # Taken away (lease lost) or shutting down: the drain releases it.
                    return
                raise
            running.calling = False
            await self._record_outcome(assignment, outcome, running)
        except DukenetError as exc:
            # The outcome could not be recorded (database down): the lease will expire
            # and the reaper returns the attempt to READY.
            log.error(
                "could not record attempt %s/%d: %s", assignment.subtask_id, assignment.attempt, exc
            )
        except Exception:
            log.exception("attempt %s/%d crashed", assignment.subtask_id, assignment.attempt)
        finally:
            self._running.pop(assignment.subtask_id, None)
            self._slot_free.set()

    async def _record_outcome(
        self, assignment: Assignment, outcome: Outcome, running: _Running
    ) -> None:
        subtask_id, attempt = assignment.subtask_id, assignment.attempt
        context = self.context
        if isinstance(outcome, Success):
            answer = Answer(
                subtask_id,
                assignment.task_id,
                attempt,
                outcome.output,
                outcome.cost,
                outcome.latency_ms,
            )
            problem = await check_answer(
                self.services.db, answer, assignment.capability_id, assignment.price
            )
            if problem is None:
                # Handed over: the slot frees now and the lease stays renewed until the
                # recorder committed (or found the attempt stale).
                self._recording[subtask_id] = running
                done = self.recorder.submit(answer, paid=assignment.price > 0)
                done.add_done_callback(lambda future: self._recorded(running, future))
                return
            outcome = problem
        if isinstance(outcome, Accepted):
            remaining = (assignment.deadline - datetime.now(UTC)).total_seconds()

            async def accept(conn: Connection, changes: Changes) -> bool:
                return await accept_attempt(conn, subtask_id, attempt, max(1.0, remaining))

            running.accepted = True
            if not await self._record(accept):
                await self._ignored(subtask_id, attempt)
        else:
            failure = outcome

            async def fail(conn: Connection, changes: Changes) -> bool:
                return await fail_attempt(conn, context, changes, subtask_id, attempt, failure)

            if await self._record(fail):
                self.stats.failed += 1
                # A retry may be due later: read its time at the next idle wait.
                self._look = True
                self.wake()
            else:
                await self._ignored(subtask_id, attempt)

    def _recorded(self, running: _Running, future: asyncio.Future[str]) -> None:
        assignment = running.assignment
        self._recording.pop(assignment.subtask_id, None)
        self._slot_free.set()
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            # The database is down: the lease expires and the reaper returns the attempt.
            self.stats.unrecorded += 1
            log.error(
                "could not record attempt %s/%d: %s", assignment.subtask_id, assignment.attempt, exc
            )
        elif (result := future.result()) == "COMPLETED":
            self.stats.completed += 1
        elif result == "FAILED":
            self.stats.failed += 1
        else:
            self.stats.stale += 1

    async def _ignored(self, subtask_id: UUID, attempt: int) -> None:
        self.stats.stale += 1

        async def record(conn: Connection, changes: Changes) -> None:
            await log_ignored(conn, changes, subtask_id, attempt, f"worker {self.worker_id}")

        await self._record(record)

    async def _record(self, work: Work[T]) -> T:
        return await transact(self.services, work, on_wake=self.wake)

    # ------------------------------------------------------------------ leases

    async def _lease_loop(self) -> None:
        period = max(0.05, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(period)
            calling = [r for r in self._running.values() if not r.accepted]
            calling += self._recording.values()
            if not calling:
                continue
            ids = [r.assignment.subtask_id for r in calling]
            attempts = [r.assignment.attempt for r in calling]
            missed: list[_Running] = []
            held: set[UUID] = set()
            try:
                async with self.services.db.transaction() as conn:
                    renewed = {
                        row["subtask_id"]
                        for row in await conn.fetch(
                            QUERIES["renew_leases"],
                            ids,
                            attempts,
                            self.worker_id,
                            self.lease_seconds,
                        )
                    }
                missed = [r for r in calling if r.assignment.subtask_id not in renewed]
                if missed:
                    async with self.services.db.acquire() as conn:
                        held = {
                            row["subtask_id"]
                            for row in await conn.fetch(
                                QUERIES["still_held"],
                                [r.assignment.subtask_id for r in missed],
                                [r.assignment.attempt for r in missed],
                                self.worker_id,
                            )
                        }
            except DukenetError as exc:
                log.warning("lease renewal failed: %s", exc)
                continue
            for running in missed:
                if running.assignment.subtask_id not in held and running.calling:
                    # The attempt was taken away (cancelled, reaped): stop calling.
                    log.info(
                        "attempt %s/%d lost its lease",
                        running.assignment.subtask_id,
                        running.assignment.attempt,
                    )
                    if running.task is not None:
                        running.task.cancel()

    # ------------------------------------------------------------------ maintenance

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.maintenance_interval * random.uniform(0.75, 1.25))
            try:
                await reaper.reap_expired_leases(self.services, self.context)
                await reaper.fail_overdue_tasks(self.services, self.context)
            except DukenetError as exc:
                log.warning("maintenance sweep failed: %s", exc)

    # ------------------------------------------------------------------ shutdown

    async def _drain(self) -> None:
        """Let running calls finish for the grace period, then release the rest."""
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.shutdown_grace)
        left = [r for r in self._running.values() if r.calling]
        for running in left:
            if running.task is not None:
                running.task.cancel()
        # Calls are cancelled; outcomes being recorded are waited for.
        await asyncio.gather(*tasks, return_exceptions=True)
        for running in left:
            subtask_id, attempt = running.assignment.subtask_id, running.assignment.attempt
            try:
                await self._record(_release(self.context, subtask_id, attempt))
            except DukenetError as exc:
                log.warning(
                    "could not release %s/%d (the reaper will): %s", subtask_id, attempt, exc
                )
        self._running.clear()


def _fail_ready(context: Context, subtask_id: UUID, attempt: int, failure: Failure) -> Work[bool]:
    async def work(conn: Connection, changes: Changes) -> bool:
        return await fail_ready(conn, context, changes, subtask_id, attempt, failure)

    return work


def _release(context: Context, subtask_id: UUID, attempt: int) -> Work[bool]:
    async def work(conn: Connection, changes: Changes) -> bool:
        return await fail_attempt(conn, context, changes, subtask_id, attempt, SHUTDOWN)

    return work


async def run_embedded_worker(services: Services) -> None:
    """Background job of ``dukenet serve``: one worker in the API process."""
    worker = Worker(services)
    runner = asyncio.create_task(worker.run(), name="dukenet-embedded-worker")
    try:
        await asyncio.shield(runner)
    except asyncio.CancelledError:
        worker.stop()
        await runner
        raise
