"""``dukenet agent``: register, show, list, update, deregister and heartbeat, over HTTP."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import BaseModel
from rich.table import Table

from dukenet.cli.common import JsonOutput, console, err_console
from dukenet.cli.keys import KeyPath, default_key_path
from dukenet.sdk import Agent, Client
from dukenet.sdk.errors import APIError
from dukenet.sdk.registry import UNSET

app = typer.Typer(help="Register and manage this agent.", no_args_is_help=True)

ServerUrl = Annotated[
    str,
    typer.Option("--server", envvar="DUKENET_SERVER_URL", help="DukeNET API base URL"),
]
DEFAULT_SERVER = "http://127.0.0.1:8080"


@contextmanager
def api_client(server: str, key: Path | None, *, need_key: bool = True) -> Iterator[Client]:
    """A ``Client`` for ``server`` with this agent's key; API errors print one line and exit 1."""
    path = key or default_key_path()
    if need_key and not path.exists():
        err_console.print(f"[bold red]error[/] no key at {path}; run `dukenet keygen` first")
        sys.exit(1)
    try:
        with Client(server, key=path if path.exists() else None) as client:
            yield client
    except APIError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        err_console.print(f"[bold red]error[/] {exc.code}: {exc.detail}{where}")
        sys.exit(1)
    except httpx.TransportError as exc:
        err_console.print(f"[bold red]error[/] cannot reach {server}: {exc}")
        sys.exit(1)


def emit(model: BaseModel, json_output: bool) -> None:
    """Print a resource as JSON (``--json``) or as a two-column table."""
    if json_output:
        console.print_json(model.model_dump_json())
        return
    table = Table(show_header=False, box=None)
    for name, value in model.model_dump(mode="json").items():
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        table.add_row(f"[bold]{name}[/]", shown)
    console.print(table)


def parse_json_option(text: str | None, option: str) -> Any:
    """A JSON value given on the command line, or ``@file`` to read one."""
    if text is None:
        return None
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        err_console.print(f"[bold red]error[/] {option} is not valid JSON: {exc}")
        sys.exit(2)


Name = Annotated[str | None, typer.Option("--name", help="Display name")]
Description = Annotated[str | None, typer.Option(help="What the agent does")]
Endpoint = Annotated[str | None, typer.Option("--endpoint", help="http(s) URL the network calls")]
Owner = Annotated[str | None, typer.Option("--owner-address", help="Ethereum address (EIP-55)")]
Avatar = Annotated[str | None, typer.Option("--avatar-url", help="Avatar image URL")]
Version = Annotated[str | None, typer.Option("--version", help="Agent software version")]
Metadata = Annotated[str | None, typer.Option(help="JSON object, or @file.json")]
TagOption = Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeat for several)")]


@app.command()
def register(
    name: Annotated[str, typer.Option("--name", help="Display name")],
    description: Description = None,
    endpoint: Endpoint = None,
    owner_address: Owner = None,
    avatar_url: Avatar = None,
    version: Version = None,
    metadata: Metadata = None,
    tag: TagOption = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Register this key as an agent (a signed, timestamped payload)."""
    with api_client(server, key) as client:
        agent = client.register(
            name,
            description=description,
            endpoint_url=endpoint,
            owner_address=owner_address,
            avatar_url=avatar_url,
            version=version,
            metadata=parse_json_option(metadata, "--metadata"),
            tags=tag,
        )
    emit(agent, json_output)


@app.command()
def show(
    agent_id: Annotated[str | None, typer.Argument(help="Agent id (default: this key's)")] = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Show an agent."""
    with api_client(server, key, need_key=agent_id is None) as client:
        agent = client.get_agent(agent_id)
    emit(agent, json_output)


@app.command("list")
def list_agents(
    status: Annotated[str | None, typer.Option(help="ACTIVE, INACTIVE or SUSPENDED")] = None,
    tag: TagOption = None,
    min_trust: Annotated[float | None, typer.Option(help="Minimum trust score")] = None,
    limit: Annotated[int, typer.Option(help="Page size")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    server: ServerUrl = DEFAULT_SERVER,
    json_output: JsonOutput = False,
) -> None:
    """List agents, newest first."""
    with api_client(server, None, need_key=False) as client:
        page = client.list_agents(
            status=status, tags=tag, min_trust=min_trust, cursor=cursor, limit=limit
        )
    if json_output:
        console.print_json(page.model_dump_json())
        return
    table = Table("agent_id", "display_name", "status", "trust", "tags", "last_heartbeat")
    for agent in page.items:
        table.add_row(
            agent.agent_id[:16] + "…",
            agent.display_name or "",
            agent.status,
            f"{agent.trust_score:.2f}",
            ", ".join(agent.tags),
            agent.last_heartbeat.isoformat() if agent.last_heartbeat else "",
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}")


@app.command()
def update(
    name: Name = None,
    description: Description = None,
    endpoint: Endpoint = None,
    owner_address: Owner = None,
    avatar_url: Avatar = None,
    version: Version = None,
    metadata: Metadata = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Replace the tags (repeat for several)")
    ] = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Change this agent's profile (only the options given) and/or replace its tags."""
    changes: dict[str, Any] = {
        "display_name": name,
        "description": description,
        "endpoint_url": endpoint,
        "owner_address": owner_address,
        "avatar_url": avatar_url,
        "version": version,
        "metadata": parse_json_option(metadata, "--metadata"),
    }
    given = {k: v for k, v in changes.items() if v is not None}
    with api_client(server, key) as client:
        if tag is not None:
            client.set_tags(tag)
        agent: Agent = (
            client.update_agent(**{k: given.get(k, UNSET) for k in changes})
            if given
            else client.get_agent()
        )
    emit(agent, json_output)


@app.command()
def deregister(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Deregister this agent (capabilities and tags go; history stays; the key is retired)."""
    if not yes:
        typer.confirm("Deregister this agent? Its key can never register again", abort=True)
    with api_client(server, key) as client:
        agent_id = client.agent_id
        client.deregister()
    if json_output:
        console.print_json(json.dumps({"agent_id": agent_id, "deregistered": True}))
    else:
        console.print(f"[green]deregistered[/] {agent_id}")


@app.command()
def heartbeat(
    every: Annotated[
        float | None, typer.Option(help="Keep sending one every N seconds until interrupted")
    ] = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Send a heartbeat (or keep sending them with --every)."""
    with api_client(server, key) as client:
        while True:
            beat = client.heartbeat()
            emit(beat, json_output)
            if every is None:
                return
            time.sleep(every)
