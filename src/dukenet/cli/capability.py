"""``dukenet capability``: publish, list and deprecate this agent's capabilities."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from dukenet.cli.agent import DEFAULT_SERVER, ServerUrl, api_client, emit, parse_json_option
from dukenet.cli.common import JsonOutput, console
from dukenet.cli.keys import KeyPath

app = typer.Typer(help="Publish and manage capabilities.", no_args_is_help=True)


@app.command()
def add(
    name: Annotated[
        str | None, typer.Option(help="Dotted lowercase name, e.g. text.summarize")
    ] = None,
    version: Annotated[str | None, typer.Option("--version", help="Semantic version")] = None,
    description: Annotated[str | None, typer.Option(help="What it does")] = None,
    input_schema: Annotated[
        str | None, typer.Option(help="JSON Schema of the input (JSON or @file)")
    ] = None,
    output_schema: Annotated[
        str | None, typer.Option(help="JSON Schema of the output (JSON or @file)")
    ] = None,
    pricing_model: Annotated[
        str | None, typer.Option(help="per_call, subscription or free")
    ] = None,
    price: Annotated[str | None, typer.Option(help="Decimal price, e.g. 0.0100")] = None,
    currency: Annotated[str | None, typer.Option(help="Currency code (USD)")] = None,
    latency_p99_ms: Annotated[int | None, typer.Option(help="Declared p99 latency")] = None,
    availability: Annotated[
        Decimal | None, typer.Option("--availability", help="Declared availability percent")
    ] = None,
    spec: Annotated[
        str | None, typer.Option("--spec", help="The whole capability as JSON or @file")
    ] = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Publish a capability (options override fields of --spec)."""
    body: dict[str, Any] = parse_json_option(spec, "--spec") or {}
    options = {
        "name": name,
        "version": version,
        "description": description,
        "input_schema": parse_json_option(input_schema, "--input-schema"),
        "output_schema": parse_json_option(output_schema, "--output-schema"),
        "pricing_model": pricing_model,
        "price": price,
        "currency": currency,
        "latency_p99_ms": latency_p99_ms,
        "availability_percent": str(availability) if availability is not None else None,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    with api_client(server, key) as client:
        capability = client.add_capability(body)
    emit(capability, json_output)


@app.command("list")
def list_capabilities(
    agent_id: Annotated[str | None, typer.Argument(help="Agent id (default: this key's)")] = None,
    include_deprecated: Annotated[
        bool, typer.Option("--include-deprecated/--live-only", help="Show deprecated ones")
    ] = True,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """List an agent's capabilities."""
    with api_client(server, key, need_key=agent_id is None) as client:
        page = client.list_capabilities(agent_id, include_deprecated=include_deprecated)
    if json_output:
        console.print_json(page.model_dump_json())
        return
    table = Table("capability_id", "name", "version", "pricing", "price", "deprecated")
    for item in page.items:
        table.add_row(
            item.capability_id[:16] + "…",
            item.name,
            item.version,
            item.pricing_model,
            f"{item.price:.4f} {item.currency}",
            "yes" if item.deprecated else "",
        )
    console.print(table)


@app.command()
def deprecate(
    capability_id: Annotated[str, typer.Argument(help="The capability to deprecate")],
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Deprecate a capability: kept, but no longer selected for new work."""
    with api_client(server, key) as client:
        capability = client.deprecate_capability(capability_id)
    emit(capability, json_output)
