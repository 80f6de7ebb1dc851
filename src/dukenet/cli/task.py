"""``dukenet task``: submit a task graph, show it, watch it live, cancel it, list tasks.

``task watch`` draws the task's DAG with rich: each subtask's state, the agent working on
it, its attempt and cost, refreshed on every Server-Sent Event of the task (and by polling
``GET /v1/tasks/{id}`` + ``/subtasks`` when the stream is unavailable).
Commands that follow a task exit 0 when it completed and 1 when it failed or was cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dukenet.cli.agent import DEFAULT_SERVER, ServerUrl, api_client
from dukenet.cli.common import JsonOutput, console, err_console
from dukenet.cli.keys import KeyPath, default_key_path
from dukenet.sdk import AsyncClient, Subtask, Task, TaskEvent
from dukenet.sdk.errors import AgentNotFound, APIError

app = typer.Typer(help="Submit, follow and cancel tasks.", no_args_is_help=True)

STATE_STYLES = {
    "PENDING": "dim",
    "READY": "cyan",
    "ASSIGNED": "yellow",
    "RUNNING": "bold yellow",
    "EXECUTING": "bold yellow",
    "COMPLETED": "green",
    "FAILED": "bold red",
    "CANCELLED": "magenta",
    "RETRYING": "yellow",
    "TIMEOUT": "red",
}
RECENT_EVENTS = 6

TaskId = Annotated[str, typer.Argument(help="The task id")]


def styled(state: str) -> Text:
    """A state name in its colour."""
    return Text(state, style=STATE_STYLES.get(state, ""))


def money(value: Decimal | None) -> str:
    """A decimal amount as shown to people (4 places), or an empty cell."""
    return "" if value is None else f"{value:.4f}"


@dataclass
class TaskView:
    """What a live view shows: the task, its subtasks, agent names and the latest events."""

    task: Task
    subtasks: list[Subtask] = field(default_factory=list)
    agent_names: dict[str, str] = field(default_factory=dict)
    events: deque[TaskEvent] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))

    def agent_name(self, agent_id: str | None) -> str:
        """The agent's display name, or a short id until it is known."""
        if not agent_id:
            return ""
        return self.agent_names.get(agent_id) or agent_id[:12] + "…"

    def subtask(self, name: str) -> Subtask | None:
        """The subtask called ``name``."""
        return next((s for s in self.subtasks if s.name == name), None)


def graph_order(subtasks: list[Subtask]) -> list[tuple[int, Subtask]]:
    """Subtasks with their depth in the DAG (roots are 1), in topological then given order."""
    by_id = {s.subtask_id: s for s in subtasks}
    depth: dict[str, int] = {}

    def depth_of(subtask: Subtask, seen: frozenset[str] = frozenset()) -> int:
        if subtask.subtask_id not in depth:
            parents = [by_id[d] for d in subtask.depends_on or [] if d in by_id and d not in seen]
            below = frozenset(seen | {subtask.subtask_id})
            depth[subtask.subtask_id] = 1 + max((depth_of(p, below) for p in parents), default=0)
        return depth[subtask.subtask_id]

    ordered = [(depth_of(s), index, s) for index, s in enumerate(subtasks)]
    return [(level, s) for level, _, s in sorted(ordered, key=lambda item: item[:2])]


def render(view: TaskView) -> RenderableType:
    """The task's header, its DAG as a table, and the latest events."""
    task = view.task
    counts: dict[str, int] = {}
    for subtask in view.subtasks:
        counts[subtask.status] = counts.get(subtask.status, 0) + 1
    done = counts.get("COMPLETED", 0)
    total = len(view.subtasks)
    header = Text.assemble(
        ("Task ", "bold"),
        (task.name, "bold cyan"),
        f"  {task.task_id}  ",
        styled(task.status),
        f"   {done}/{total} subtasks done   cost {money(task.actual_cost) or '0.0000'}",
        f" of limit {money(task.cost_limit)}" if task.cost_limit is not None else "",
    )
    names = {s.subtask_id: s.name for s in view.subtasks}
    table = Table("step", "subtask", "capability", "after", "state", "agent", "attempt", "cost")
    table.add_column("note", overflow="fold", max_width=48)
    for level, subtask in graph_order(view.subtasks):
        after = ", ".join(names.get(d, d[:8]) for d in subtask.depends_on or [])
        note = f"{subtask.error_code or ''} {subtask.error or ''}".strip()
        table.add_row(
            str(level),
            subtask.name,
            subtask.capability_name or "",
            after,
            styled(subtask.status),
            view.agent_name(subtask.assigned_agent_id),
            str(subtask.attempt or ""),
            money(subtask.cost) if subtask.status == "COMPLETED" else "",
            Text(note, style="red") if note else "",
        )
    parts: list[RenderableType] = [header, table]
    if view.events:
        log = Table("time", "event", "subtask", "detail", box=None, title="latest events")
        for event in view.events:
            name = names.get(event.subtask_id or "", "")
            message = event.message if event.message != name else None
            detail = " ".join(x for x in (event.error_code, message) if x)
            log.add_row(
                event.timestamp.strftime("%H:%M:%S.%f")[:-3] if event.timestamp else "",
                styled(event.event_type),
                name,
                detail,
            )
        parts.append(log)
    return Group(*parts)


async def refresh(client: AsyncClient, view: TaskView) -> None:
    """Reload the task and its subtasks; look up the names of newly seen agents."""
    view.task = await client.get_task(view.task.task_id)
    view.subtasks = await client.list_subtasks(view.task.task_id)
    for subtask in view.subtasks:
        agent_id = subtask.assigned_agent_id
        if agent_id and agent_id not in view.agent_names:
            try:
                agent = await client.get_agent(agent_id)
                view.agent_names[agent_id] = agent.display_name or agent_id[:12] + "…"
            except AgentNotFound:
                view.agent_names[agent_id] = agent_id[:12] + "…"


OnUpdate = Callable[[TaskView, Live], Awaitable[None]]


async def watch_task(
    client: AsyncClient,
    task_id: str,
    *,
    out: Console = console,
    live_events: bool = True,
    poll_interval: float = 1.0,
    on_update: OnUpdate | None = None,
) -> Task:
    """Show the task live until it ends; return it. ``on_update`` runs after each refresh."""
    view = TaskView(task=await client.get_task(task_id))
    wake = asyncio.Event()

    async def follow() -> None:
        with contextlib.suppress(APIError, ConnectionError, httpx.HTTPError):
            async for event in client.events(task_id):
                view.events.append(event)
                wake.set()

    follower = asyncio.create_task(follow()) if live_events else None
    try:
        with Live(render(view), console=out, refresh_per_second=10) as live:
            while True:
                await refresh(client, view)
                live.update(render(view))
                if on_update is not None:
                    await on_update(view, live)
                if view.task.done:
                    break
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll_interval)
            if follower is not None:
                # Let the stream deliver the task's last events before the final frame.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(follower), 1.0)
                live.update(render(view))
        out.print()  # the last frame stays; what follows starts on a line of its own
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    return view.task


@contextlib.asynccontextmanager
async def async_api_client(server: str, key: Path | None) -> AsyncIterator[AsyncClient]:
    """An ``AsyncClient`` with this agent's key; API errors print one line and exit 1."""
    path = key or default_key_path()
    if not path.exists():
        err_console.print(f"[bold red]error[/] no key at {path}; run `dukenet keygen` first")
        sys.exit(1)
    try:
        async with AsyncClient(server, key=path) as client:
            yield client
    except APIError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        err_console.print(f"[bold red]error[/] {exc.code}: {exc.detail}{where}")
        sys.exit(1)
    except (httpx.TransportError, ConnectionError) as exc:
        err_console.print(f"[bold red]error[/] cannot reach {server}: {exc}")
        sys.exit(1)


def read_spec(source: str) -> dict[str, Any]:
    """The task document in FILE, or on standard input for ``-``."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        err_console.print(f"[bold red]error[/] cannot read {source}: {exc.strerror}")
        sys.exit(2)
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        err_console.print(f"[bold red]error[/] {source} is not valid JSON: {exc}")
        sys.exit(2)
    if not isinstance(spec, dict):
        err_console.print(f"[bold red]error[/] {source} must hold a JSON object (the task)")
        sys.exit(2)
    return spec


def outcome_exit(task: Task) -> None:
    """Exit 0 for a completed task, 1 otherwise, with the reason on stderr."""
    if task.status == "COMPLETED":
        return
    reason = " ".join(x for x in (task.error_code, task.error) if x)
    err_console.print(f"[bold red]task {task.status.lower()}[/] {reason}".rstrip())
    sys.exit(1)


def print_task(task: Task, json_output: bool, subtasks: list[Subtask] | None = None) -> None:
    """A task as JSON, or as a summary (with its DAG when the subtasks are given)."""
    if json_output:
        document = task.model_dump(mode="json")
        if subtasks is not None:
            document["subtasks"] = [s.model_dump(mode="json") for s in subtasks]
        console.print_json(json.dumps(document))
        return
    if subtasks is not None:
        console.print(render(TaskView(task=task, subtasks=subtasks)))
    else:
        console.print(
            Text.assemble("task ", (task.task_id, "bold"), f"  {task.name}  ", styled(task.status))
        )
    facts = {
        "estimated cost": money(task.estimated_cost),
        "actual cost": money(task.actual_cost),
        "error": " ".join(x for x in (task.error_code, task.error) if x),
        "audit record": task.audit_cid or "",
    }
    for label, value in facts.items():
        if value:
            console.print(f"{label}: {value}")
    if task.actual_output is not None:
        console.print("output:")
        console.print_json(json.dumps(task.actual_output))


@app.command()
def submit(
    file: Annotated[str, typer.Argument(help="Task JSON file, or - for standard input")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="Repeat-safe key: resubmitting returns the same task")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Then show it live until it ends")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Then wait for it and print it")] = False,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Submit a task (the JSON document of SPEC 4: subtasks, depends_on, $ref inputs...)."""
    spec = read_spec(file)
    if watch:

        async def run() -> Task:
            async with async_api_client(server, key) as client:
                task = await client.submit_task(spec, idempotency_key=idempotency_key)
                return await watch_task(client, task.task_id)

        outcome_exit(asyncio.run(run()))
        return
    with api_client(server, key) as client:
        task = client.submit_task(spec, idempotency_key=idempotency_key)
        if wait:
            task = client.wait(task.task_id)
    print_task(task, json_output)
    if wait:
        outcome_exit(task)


@app.command()
def show(
    task_id: TaskId,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Show a task with its subtasks, output, cost and audit record."""
    with api_client(server, key) as client:
        task = client.get_task(task_id)
        subtasks = client.list_subtasks(task_id)
    print_task(task, json_output, subtasks)


@app.command()
def watch(
    task_id: TaskId,
    poll: Annotated[
        bool, typer.Option("--poll", help="Poll instead of following the event stream")
    ] = False,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
) -> None:
    """Show the task's DAG live until it ends (exit 1 if it failed or was cancelled)."""

    async def run() -> Task:
        async with async_api_client(server, key) as client:
            return await watch_task(client, task_id, live_events=not poll)

    outcome_exit(asyncio.run(run()))


@app.command()
def cancel(
    task_id: TaskId,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Cancel a task you created: open subtasks stop and held payments are refunded."""
    with api_client(server, key) as client:
        task = client.cancel_task(task_id)
    print_task(task, json_output)


@app.command("list")
def list_tasks(
    status: Annotated[
        str | None, typer.Option(help="PENDING, EXECUTING, COMPLETED, FAILED or CANCELLED")
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Only tasks with this tag")] = None,
    limit: Annotated[int, typer.Option(help="Page size")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """List the tasks you created, newest first."""
    with api_client(server, key) as client:
        page = client.list_tasks(status=status, tag=tag, cursor=cursor, limit=limit)
    if json_output:
        console.print_json(page.model_dump_json())
        return
    table = Table("task_id", "name", "status", "created", "cost", "error")
    for task in page.items:
        table.add_row(
            task.task_id,
            task.name,
            styled(task.status),
            task.created_at.strftime("%Y-%m-%d %H:%M:%S") if task.created_at else "",
            money(task.actual_cost),
            task.error_code or "",
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}")
