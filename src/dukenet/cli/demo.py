"""``dukenet demo``: the whole story on the embedded default, in under a minute.

1. starts ``dukenet serve`` (embedded PostgreSQL + Redis, in-process worker) on a fresh
   temporary data dir;
2. starts five small real agents (``dukenet.demo_agents``, AgentServer processes on
   localhost) with distinct capabilities and prices, two of them offering
   ``text.summarize``;
3. registers a client and funds it (operator deposit);
4. three agents' owners prove their Ethereum owner address (EIP-191), which counts in the
   trust score, so the agents have distinct trust;
5. submits a task whose graph fans out (normalize → summarize | keywords | sentiment)
   and back in (→ compose), and shows it live; the network picks the most trusted
   summarizer, which the demo kills mid-call, so the retry fails over to the other one;
6. prints the result, the money that moved and the trust that changed, and verifies the
   task's audit record with ``dukenet audit verify``.

Every process it started is stopped on the way out, also on Ctrl-C; the data dir is
removed unless ``--keep`` (or ``--data-dir``) is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from dukenet import crypto
from dukenet.cli.common import DataDir, console, err_console

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
from dukenet.cli.task import TaskView, money, styled, watch_task
from dukenet.demo_agents import ARTICLE, brief_task
from dukenet.sdk import AsyncClient, Task
from dukenet.sdk.errors import AgentNotFound, APIError

# (name in dukenet.demo_agents, display name, whether its owner proves the owner address)
AGENTS = [
    ("lexicon", "Lexicon Labs", True),
    ("summit", "Summit Summaries", True),
    ("relay", "Relay Recaps", False),
    ("mood", "Mood Metrics", False),
    ("quill", "Quill & Co", True),
]
FAILOVER_SUBTASK = "summarize"
DEPOSIT = Decimal("1.00")
PLATFORM = "platform fees"


def _new_owner() -> LocalAccount:
    """A fresh Ethereum account for an agent whose owner address the demo proves."""
    from eth_account import Account  # heavy import (about 1 s): only for the demo

    owner: LocalAccount = Account.create()
    return owner


def free_port() -> int:
    """A localhost TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """A child process the demo started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    agent_id: str = ""
    key: Path | None = None
    owner: LocalAccount | None = None


class DemoFailed(Exception):
    """A step of the demo did not work; the message says which."""


@dataclass
class Demo:
    """Everything the demo started, so that all of it can be stopped."""

    data_dir: Path
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    processes: list[Process] = field(default_factory=list)
    server_url: str = ""

    def environment(self) -> dict[str, str]:
        """The embedded default: no store URLs, this data dir, the demo's operator token."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
        env.update(
            DUKENET_DATA_DIR=str(self.data_dir),
            DUKENET_ADMIN_TOKEN=self.admin_token,
            DUKENET_LOG_LEVEL="warning",
        )
        return env

    def start(self, name: str, args: list[str]) -> Process:
        """Start ``python -m ...`` in its own session, so Ctrl-C reaches only the demo,
        which then stops its children in order."""
        log = self.data_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            popen = subprocess.Popen(
                [sys.executable, "-m", *args],
                env=self.environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        """SIGTERM everything still running (agents first, the server last), then SIGKILL."""
        running = [p for p in reversed(self.processes) if p.popen.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.popen.terminate()
        deadline = time.monotonic() + 20
        for process in running:
            try:
                process.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()

    async def wait_until(self, url: str, process: Process, within: float) -> None:
        """Poll ``url`` until it answers 200; fail early if the process exits."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if process.popen.poll() is not None:
                    code = process.popen.returncode
                    raise DemoFailed(f"{process.name} exited ({code}); see {process.log}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise DemoFailed(f"{process.name} not ready after {within:.0f}s; see {process.log}")


async def start_network(demo: Demo, port: int) -> None:
    """``dukenet serve`` on the embedded stores, with its worker."""
    args = ["dukenet", "serve", "--port", str(port), "--data-dir", str(demo.data_dir)]
    server = demo.start("server", args)
    demo.server_url = f"http://127.0.0.1:{port}"
    with console.status("starting DukeNET (embedded PostgreSQL + Redis, worker)..."):
        await demo.wait_until(f"{demo.server_url}/readyz", server, within=90)
    console.print(f"[green]✓[/] DukeNET is up at {demo.server_url}  (data in {demo.data_dir})")


async def start_agents(demo: Demo) -> dict[str, Process]:
    """The demo agents, each an AgentServer process; ready once joined and heartbeating."""
    agents: dict[str, Process] = {}
    health: dict[str, str] = {}
    for module_name, display, proven_owner in AGENTS:
        key = demo.data_dir / "keys" / f"{module_name}.pem"
        key.parent.mkdir(parents=True, exist_ok=True)
        private = crypto.load_or_create_private_key(key)
        owner = _new_owner() if proven_owner else None
        port = free_port()
        args = ["dukenet.demo_agents", module_name, "--network", demo.server_url]
        args += ["--port", str(port), "--key", str(key)]
        args += ["--owner-address", owner.address] if owner else []
        process = demo.start(f"agent-{module_name}", args)
        process.agent_id, process.key, process.owner = (
            crypto.agent_id_for(private.public_key()),
            key,
            owner,
        )
        agents[display] = process
        health[display] = f"http://127.0.0.1:{port}/healthz"
    with console.status(f"starting {len(agents)} agents..."):
        await asyncio.gather(
            *(demo.wait_until(health[name], agents[name], within=45) for name in agents)
        )
    return agents


async def prove_owners(demo: Demo, agents: dict[str, Process]) -> None:
    """Owners sign their agent's owner proof (EIP-191); the agent submits it (verified signer
    counts in the trust score)."""
    for name, process in agents.items():
        if process.owner is None:
            continue
        async with AsyncClient(demo.server_url, key=process.key) as agent:
            token = await agent.session_token()
            async with httpx.AsyncClient(
                base_url=demo.server_url,
                timeout=10,
                headers={"authorization": f"Bearer {token}"},
            ) as http:
                challenge = await http.get(f"/v1/agents/{process.agent_id}/owner-proof")
                challenge.raise_for_status()
                from eth_account.messages import encode_defunct  # heavy: demo only

                message = encode_defunct(text=challenge.json()["message"])
                signature = process.owner.sign_message(message).signature.hex()
                proof = await http.put(
                    f"/v1/agents/{process.agent_id}/owner-proof",
                    json={
                        "signature": signature if signature.startswith("0x") else "0x" + signature
                    },
                )
                if proof.status_code != 200:
                    raise DemoFailed(f"owner proof of {name} refused: {proof.text}")
    proven = ", ".join(name for name, p in agents.items() if p.owner is not None)
    console.print(f"[green]✓[/] owners proved their addresses (EIP-191) for {proven}")


async def fund_client(demo: Demo, client: AsyncClient) -> None:
    """Register the client (an agent without an endpoint); an operator deposits for it."""
    try:
        await client.get_agent()
    except AgentNotFound:
        await client.register("Demo Client", description="Submits the demo tasks.", tags=["demo"])
    async with AsyncClient(demo.server_url, admin_token=demo.admin_token) as operator:
        await operator.deposit(client.agent_id, DEPOSIT, payment_method="demo")
    console.print(f"[green]✓[/] client {client.agent_id[:12]}… funded with {DEPOSIT} USD")


async def show_agents(client: AsyncClient, agents: dict[str, Process]) -> None:
    """What each agent offers, at what price, with its trust score."""
    table = Table("agent", "capability", "price (USD)", "p99 latency", "trust", title="Agents")
    for name, process in agents.items():
        agent = await client.get_agent(process.agent_id)
        for capability in (await client.list_capabilities(process.agent_id)).items:
            table.add_row(
                name,
                capability.name,
                money(capability.price),
                f"{capability.latency_p99_ms} ms" if capability.latency_p99_ms else "",
                f"{agent.trust_score:.1f}",
            )
    console.print(table)


async def balances(
    client: AsyncClient, agent_ids: dict[str, str]
) -> dict[str, tuple[Decimal, Decimal]]:
    """(available, held) USD of each named agent and the platform's fees (as an operator)."""
    found: dict[str, tuple[Decimal, Decimal]] = {}
    for name, agent_id in agent_ids.items():
        usd = [
            b
            for b in (await client.get_balance(agent_id, as_operator=True)).balances
            if b.currency == "USD"
        ]
        found[name] = (usd[0].available, usd[0].held) if usd else (Decimal(0), Decimal(0))
    ledger = await client.ledger_summary()
    fees = [t.platform_fees for t in ledger.items if t.currency == "USD"]
    found[PLATFORM] = (fees[0] if fees else Decimal(0), Decimal(0))
    return found


@dataclass
class Chaos:
    """Kills the agent working on ``FAILOVER_SUBTASK`` mid-call, once."""

    agents: dict[str, Process]
    killed: str | None = None
    attempt: int = 0

    async def __call__(self, view: TaskView, live: Live) -> None:
        if self.killed is not None:
            return
        subtask = view.subtask(FAILOVER_SUBTASK)
        if subtask is None or subtask.status not in ("ASSIGNED", "RUNNING"):
            return
        for name, process in self.agents.items():
            if process.agent_id == subtask.assigned_agent_id and process.popen.poll() is None:
                await asyncio.sleep(0.3)  # let the call reach the agent: kill it mid-work
                process.popen.kill()
                process.popen.wait()
                self.killed, self.attempt = name, subtask.attempt
                live.console.print(
                    f"[bold red]✗ killed {name}[/] (SIGKILL) while it was working on "
                    f"{FAILOVER_SUBTASK!r}, attempt {subtask.attempt}"
                )
                return


async def show_result(
    client: AsyncClient, task: Task, chaos: Chaos, agents: dict[str, Process]
) -> None:
    """The task's output, and how the killed subtask got done anyway."""
    if task.status != "COMPLETED":
        raise DemoFailed(f"task {task.status}: {task.error_code} {task.error}")
    output = task.actual_output or {}
    console.print(Panel(str(output.get("report", output)), title="Result", border_style="green"))
    subtasks = await client.list_subtasks(task.task_id)
    summarize = next(s for s in subtasks if s.name == FAILOVER_SUBTASK)
    names = {p.agent_id: name for name, p in agents.items()}
    history = Table("time", "event", "detail", title=f"what happened to {FAILOVER_SUBTASK!r}")
    cursor: str | None = None
    while True:
        page = await client.list_task_events(task.task_id, cursor=cursor, limit=200)
        for event in page.items:
            if event.subtask_id == summarize.subtask_id:
                detail = " ".join(x for x in (event.error_code, event.message) if x)
                for agent_id, name in names.items():
                    detail = detail.replace(agent_id[:12], name).replace(agent_id, name)
                stamp = event.timestamp.strftime("%H:%M:%S.%f")[:-3] if event.timestamp else ""
                history.add_row(stamp, styled(event.event_type), detail)
        cursor = page.next_cursor
        if not cursor or not page.items:
            break
    console.print(history)
    winner = names.get(summarize.assigned_agent_id or "", "another agent")
    if chaos.killed:
        console.print(
            f"[green]✓ failover[/]: {FAILOVER_SUBTASK!r} lost {chaos.killed} on attempt "
            f"{chaos.attempt} and was completed by {winner} on attempt {summarize.attempt}"
        )
    else:
        console.print("[yellow]![/] the summarizer finished before it could be killed")


def show_money(
    before: dict[str, tuple[Decimal, Decimal]],
    after: dict[str, tuple[Decimal, Decimal]],
    task: Task,
) -> None:
    """Balances (available + held) before and after the task: who paid, who earned."""
    table = Table("party", "before", "after", "change", title="Money moved (USD)")
    net = Decimal(0)
    for name, now in after.items():
        old = sum(before.get(name, (Decimal(0), Decimal(0))), Decimal(0))
        change = sum(now, Decimal(0)) - old
        net += change
        style = "green" if change > 0 else "red" if change < 0 else "dim"
        table.add_row(name, money(old), money(old + change), f"[{style}]{change:+.4f}[/]")
    console.print(table)
    console.print(
        f"task cost {money(task.actual_cost)} USD (estimated {money(task.estimated_cost)}); "
        + ("[green]✓ every cent accounted for[/]" if net == 0 else f"[red]net {net:+.4f}[/]")
    )


def verify_audit(demo: Demo, task: Task) -> None:
    """Run ``dukenet audit verify`` on the task's execution record, as a user would."""
    path = f"/dukenet/tasks/{task.task_id}/execution"
    state = demo.data_dir / "audit-witness.json"
    command = ["dukenet", "audit", "verify", path, "--server", demo.server_url]
    result = subprocess.run(
        [sys.executable, "-m", *command, "--state", str(state), "--wait", "20"],
        env=demo.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    console.print(result.stdout.rstrip())
    console.print(f"audit record {path}  CID {task.audit_cid or '(not yet known)'}", soft_wrap=True)
    if result.returncode != 0:
        err_console.print(result.stderr.rstrip())
        raise DemoFailed("dukenet audit verify failed")
    console.print("[bold green]✓ dukenet audit verify: OK[/]")


async def story(demo: Demo, port: int) -> Task:
    """The demo itself, step by step; the main task as it ended."""
    await start_network(demo, port)
    agents = await start_agents(demo)
    client_key = crypto.load_or_create_private_key(demo.data_dir / "keys" / "client.pem")
    async with (
        AsyncClient(demo.server_url, key=client_key) as client,
        AsyncClient(demo.server_url, admin_token=demo.admin_token) as operator,
    ):
        await fund_client(demo, client)
        await prove_owners(demo, agents)
        await show_agents(client, agents)
        parties = {"Demo Client": client.agent_id}
        parties.update({name: p.agent_id for name, p in agents.items()})
        before = await balances(operator, parties)
        task = await client.submit_task(brief_task("What is DukeNET?", ARTICLE))
        console.print(
            f"[green]✓[/] submitted task {task.task_id}: normalize → "
            "(summarize | keywords | sentiment) → compose"
        )
        chaos = Chaos(agents)
        task = await watch_task(client, task.task_id, on_update=chaos, poll_interval=0.5)
        await show_result(client, task, chaos, agents)
        show_money(before, await balances(operator, parties), task)
        return task if task.audit_cid else await client.get_task(task.task_id)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so clean-up runs either way."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(data_dir: Path | None, port: int | None, keep: bool) -> int:
    """Run the story, always cleaning up; the exit code (0 when everything worked)."""
    started = time.monotonic()
    directory = data_dir or Path(tempfile.mkdtemp(prefix="dukenet-demo-"))
    demo = Demo(directory)
    code = 1
    try:
        with sigterm_as_interrupt():
            task = asyncio.run(story(demo, port or free_port()))
            verify_audit(demo, task)
        code = 0
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: stopping everything the demo started")
        code = 130
    except (DemoFailed, APIError, httpx.HTTPError, TimeoutError) as exc:
        err_console.print(f"[bold red]demo failed[/] {type(exc).__name__}: {exc}")
    finally:
        with console.status("stopping the agents and the server..."):
            demo.stop_all()
        if data_dir is None and not keep:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            console.print(f"logs and data kept in {directory}")
    if code == 0:
        console.print(f"[bold green]Demo finished[/] in {time.monotonic() - started:.1f} s")
    return code


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the top-level app."""

    @app.command()
    def demo(
        data_dir: DataDir = None,
        port: Annotated[int | None, typer.Option(help="API port (default: any free port)")] = None,
        keep: Annotated[
            bool, typer.Option("--keep", help="Keep the data dir and logs afterwards")
        ] = False,
    ) -> None:
        """Run the whole story: a network, five agents, a task with a fan-out and a fan-in,
        a failover, the money moved, and the audit record verified."""
        raise typer.Exit(run_demo(data_dir, port, keep))
