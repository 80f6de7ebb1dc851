"""Task operations of the SDK: submit a task graph, follow it, wait for it, cancel it.

Plain request/response operations are ``@operation`` generators (one code path for
``Client`` and ``AsyncClient``). Following a task needs a long-lived streaming response,
which the generator model cannot express, so ``events()`` and ``wait()`` are written once
per driver (``SyncTaskStreams``, ``AsyncTaskStreams``); both parse the Server-Sent Events
stream with ``httpx-sse`` and share ``_event_from_sse``.

``events()`` resumes after a dropped connection with ``Last-Event-ID`` and ends after the
event that ends the task.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse
from pydantic import BaseModel, ConfigDict

from dukenet.sdk.base import ApiRequest, AsyncDriver, BaseClient, Flow, SyncDriver, operation
from dukenet.sdk.errors import error_from_response

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
# How often ``events()`` reconnects in a row without receiving anything before giving up.
MAX_RECONNECTS = 5


class _Resource(BaseModel):
    """Lenient resource: fields added by newer servers are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class NetworkInfo(_Resource):
    """The network's identity: its id, Ed25519 public key (base64), version and fee rate."""

    network_id: str
    public_key: str
    version: str
    platform_fee_rate: Decimal


class Task(_Resource):
    """A submitted task and, once it ended, its output, cost, error and audit record CID."""

    task_id: str
    name: str
    status: str
    created_by: str | None = None
    priority: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    deadline: datetime | None = None
    cost_limit: Decimal | None = None
    estimated_cost: Decimal | None = None
    actual_cost: Decimal | None = None
    actual_output: Any = None
    current_retries: int | None = None
    tags: list[str] | None = None
    error_code: str | None = None
    error: str | None = None
    audit_cid: str | None = None

    @property
    def done(self) -> bool:
        """Whether the task has ended (completed, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES


class Subtask(_Resource):
    """One node of a task's graph: its state, the agent working on it, attempt and cost."""

    subtask_id: str
    name: str
    status: str
    parent_task_id: str | None = None
    capability_name: str | None = None
    assigned_agent_id: str | None = None
    depends_on: list[str] | None = None
    attempt: int = 0
    cost: Decimal | None = None
    output: Any = None
    error_code: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class TaskEvent(_Resource):
    """One entry of a task's execution log (``event_type`` as in SPEC 4)."""

    log_id: int
    task_id: str
    event_type: str
    subtask_id: str | None = None
    message: str | None = None
    error_code: str | None = None
    timestamp: datetime | None = None
    metadata: dict[str, Any] | None = None

    @property
    def ends_task(self) -> bool:
        """Whether this event is the task's own completion, failure or cancellation."""
        return self.subtask_id is None and self.event_type in TERMINAL_STATUSES


class TaskPage(_Resource):
    """One page of tasks; pass ``next_cursor`` back as ``cursor``."""

    items: list[Task]
    next_cursor: str | None = None


class SubtaskPage(_Resource):
    """One page of a task's subtasks."""

    items: list[Subtask]
    next_cursor: str | None = None


class TaskEventPage(_Resource):
    """One page of a task's execution log."""

    items: list[TaskEvent]
    next_cursor: str | None = None


def _event_from_sse(sse: ServerSentEvent) -> TaskEvent | None:
    """A ``TaskEvent`` from one SSE message (``None`` for keep-alives and other event kinds)."""
    if not sse.data:
        return None
    try:
        data = json.loads(sse.data)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "event_type" not in data:
        return None
    if "log_id" not in data and sse.id:
        data["log_id"] = int(sse.id)
    return TaskEvent.model_validate(data)


class TaskOperations(BaseClient):
    """Task operations (mixin of ``Client`` and ``AsyncClient``); tasks belong to their creator."""

    @operation
    def network_info(self) -> Flow[NetworkInfo]:
        """The network's public identity; its key verifies the network's calls to agents."""
        response = yield ApiRequest("GET", "/v1/network")
        return NetworkInfo.model_validate_json(response.content)

    @operation
    def submit_task(
        self, spec: dict[str, Any], *, idempotency_key: str | None = None
    ) -> Flow[Task]:
        """Submit a task with its subtask graph (SPEC 4 shape); a repeated key returns the
        original task instead of creating another."""
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        response = yield ApiRequest("POST", "/v1/tasks", json=spec, auth=True, headers=headers)
        return Task.model_validate_json(response.content)

    @operation
    def get_task(self, task_id: str) -> Flow[Task]:
        """A task, with its output and cost once it ended."""
        response = yield ApiRequest("GET", f"/v1/tasks/{task_id}", auth=True)
        return Task.model_validate_json(response.content)

    @operation
    def task_status(self, task_id: str) -> Flow[dict[str, Any]]:
        """The compact live status: counts per subtask state, progress, cost so far."""
        response = yield ApiRequest("GET", f"/v1/tasks/{task_id}/status", auth=True)
        status: dict[str, Any] = response.json()
        return status

    @operation
    def list_subtasks(self, task_id: str) -> Flow[list[Subtask]]:
        """Every subtask of a task (all pages)."""
        subtasks: list[Subtask] = []
        cursor: str | None = None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            response = yield ApiRequest(
                "GET", f"/v1/tasks/{task_id}/subtasks", params=params, auth=True
            )
            page = SubtaskPage.model_validate_json(response.content)
            subtasks.extend(page.items)
            cursor = page.next_cursor
            if not cursor or not page.items:
                return subtasks

    @operation
    def list_task_events(
        self, task_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> Flow[TaskEventPage]:
        """One page of the task's execution log, oldest first."""
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = yield ApiRequest("GET", f"/v1/tasks/{task_id}/events", params=params, auth=True)
        return TaskEventPage.model_validate_json(response.content)

    @operation
    def cancel_task(self, task_id: str) -> Flow[Task]:
        """Cancel a task you created: open subtasks are cancelled and held payments refunded."""
        response = yield ApiRequest("POST", f"/v1/tasks/{task_id}/cancel", auth=True)
        return Task.model_validate_json(response.content)

    @operation
    def list_tasks(
        self,
        *,
        status: str | None = None,
        tag: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Flow[TaskPage]:
        """One page of the tasks you created, newest first."""
        params: dict[str, Any] = {"limit": limit}
        params.update(
            {k: v for k, v in (("status", status), ("tag", tag), ("cursor", cursor)) if v}
        )
        response = yield ApiRequest("GET", "/v1/tasks", params=params, auth=True)
        return TaskPage.model_validate_json(response.content)

    @operation
    def post_subtask_result(
        self,
        subtask_id: str,
        *,
        attempt: int,
        output: Any = None,
        cost: Decimal | str | None = None,
        error: str | None = None,
        retryable: bool = True,
    ) -> Flow[dict[str, Any]]:
        """Agent side of a long job: deliver the output (or the error) of an attempt that was
        answered with 202. Only the assigned agent may post, and only for its attempt."""
        body: dict[str, Any] = {"attempt": attempt}
        if error is not None:
            body.update(error=error[:2000], retryable=retryable)
        else:
            body["output"] = output
            if cost is not None:
                body["cost"] = str(cost)
        response = yield ApiRequest(
            "POST", f"/v1/subtasks/{subtask_id}/result", json=body, auth=True
        )
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    @operation
    def session_token(self) -> Flow[str]:
        """A valid session token (logging in first when needed), for streaming requests."""
        if not self._session_is_fresh():
            yield from self._login()
        assert self.session is not None
        return self.session.token


def _stream_headers(token: str, last_event_id: int | None) -> dict[str, str]:
    headers = {"authorization": f"Bearer {token}", "accept": "text/event-stream"}
    if last_event_id is not None:
        headers["last-event-id"] = str(last_event_id)
    return headers


class SyncTaskStreams(TaskOperations, SyncDriver):
    """``events()`` and ``wait()`` for the blocking ``Client``."""

    def events(self, task_id: str, *, last_event_id: int | None = None) -> Iterator[TaskEvent]:
        """The task's execution log as it happens (SSE), ending with the event that ends the
        task; a dropped connection resumes after the last event received."""
        failures = 0
        while True:
            received = False
            try:
                headers = _stream_headers(self.session_token(), last_event_id)
                url = f"{self.base_url}/v1/tasks/{task_id}/events"
                with connect_sse(
                    self.http, "GET", url, headers=headers, timeout=httpx.Timeout(10, read=None)
                ) as source:
                    if not source.response.is_success:
                        source.response.read()
                        raise error_from_response(source.response)
                    for sse in source.iter_sse():
                        event = _event_from_sse(sse)
                        if event is None:
                            continue
                        received, last_event_id = True, event.log_id
                        yield event
                        if event.ends_task:
                            return
            except httpx.TransportError:
                pass
            if not received and self.get_task(task_id).done:
                return  # the stream ended and nothing is left to tell
            failures = 0 if received else failures + 1
            if failures >= MAX_RECONNECTS:
                raise ConnectionError(f"lost the event stream of task {task_id}")
            time.sleep(min(0.2 * 2**failures, 2.0))

    def wait(
        self, task_id: str, *, timeout: float | None = None, poll_interval: float = 0.5
    ) -> Task:
        """Block until the task ends and return it; ``TimeoutError`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = self.get_task(task_id)
            if task.done:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id} still {task.status} after {timeout}s")
            time.sleep(poll_interval)


class AsyncTaskStreams(TaskOperations, AsyncDriver):
    """``events()`` and ``wait()`` for ``AsyncClient``."""

    async def events(
        self, task_id: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[TaskEvent]:
        """The task's execution log as it happens (SSE), ending with the event that ends the
        task; a dropped connection resumes after the last event received."""
        failures = 0
        while True:
            received = False
            try:
                headers = _stream_headers(await self.session_token(), last_event_id)
                url = f"{self.base_url}/v1/tasks/{task_id}/events"
                async with aconnect_sse(
                    self.http, "GET", url, headers=headers, timeout=httpx.Timeout(10, read=None)
                ) as source:
                    if not source.response.is_success:
                        await source.response.aread()
                        raise error_from_response(source.response)
                    async for sse in source.aiter_sse():
                        event = _event_from_sse(sse)
                        if event is None:
                            continue
                        received, last_event_id = True, event.log_id
                        yield event
                        if event.ends_task:
                            return
            except httpx.TransportError:
                pass
            if not received and (await self.get_task(task_id)).done:
                return  # the stream ended and nothing is left to tell
            failures = 0 if received else failures + 1
            if failures >= MAX_RECONNECTS:
                raise ConnectionError(f"lost the event stream of task {task_id}")
            await asyncio.sleep(min(0.2 * 2**failures, 2.0))

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the same signature as Client.wait
        poll_interval: float = 0.5,
    ) -> Task:
        """Wait until the task ends and return it; ``TimeoutError`` after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while True:
                task = await self.get_task(task_id)
                if task.done:
                    return task
                await asyncio.sleep(poll_interval)
