"""``dukenet agent trust ID``: an agent's trust breakdown (and history) from a server."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from dukenet.cli.agent import DEFAULT_SERVER, ServerUrl
from dukenet.cli.common import JsonOutput, console, err_console


def _fetch(server: str, agent_id: str, history: bool, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"history": 1, "limit": limit} if history else {}
    try:
        response = httpx.get(
            f"{server.rstrip('/')}/v1/agents/{agent_id}/trust", params=params, timeout=10.0
        )
    except httpx.TransportError as exc:
        err_console.print(f"[bold red]error[/] cannot reach {server}: {exc}")
        sys.exit(1)
    body: dict[str, Any] = response.json() if response.content else {}
    if not response.is_success:
        where = f" (field {body['field']})" if body.get("field") else ""
        code = body.get("code", response.status_code)
        err_console.print(f"[bold red]error[/] {code}: {body.get('detail', response.text)}{where}")
        sys.exit(1)
    return body


def _inputs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())


def _print(body: dict[str, Any]) -> None:
    console.print(
        f"[bold]agent[/] {body['agent_id']}  [bold]trust[/] {body['trust_score']:.2f}"
        f"  (computed now {body['computed_score']:.2f},"
        f" selection threshold {body['selection_threshold']:.2f})"
    )
    console.print(body["formula"])
    table = Table("component", "weight", "value", "points", "inputs", title="components")
    for name, part in body["components"].items():
        table.add_row(
            name,
            f"{part['weight']:.2f}",
            f"{part['value']:.4f}",
            f"{part['points']:.2f}",
            _inputs(part["inputs"]),
        )
    table.add_row("[bold]base[/]", "", "", f"{body['base_points']:.2f}", "")
    for name, penalty in body["penalties"].items():
        details = {k: v for k, v in penalty.items() if k != "points"}
        table.add_row(f"penalty: {name}", "", "", f"-{penalty['points']:.2f}", _inputs(details))
    console.print(table)
    network = body.get("network")
    if network:
        console.print(
            f"network trust {network['global_trust']:.3e}, rater weight"
            f" {network['rater_weight']:.3f}, pre-trusted {network['pre_trusted']}"
        )
    for flag in body.get("fraud_flags", []):
        console.print(f"[red]fraud flag {flag['flag_id']}[/] {flag['kind']}: {flag['reason']}")
    history = body.get("history")
    if history:
        series = Table(
            "record",
            "updated_at",
            "reason",
            "trust",
            "rating",
            "ok/failed",
            "uptime 30d",
            "p99 ms",
            "flags",
            title="history (newest first)",
        )
        for item in history["items"]:
            series.add_row(
                str(item["record_id"]),
                item["updated_at"],
                item["reason"] or "",
                f"{item['trust_score']:.2f}",
                f"{item['rating']:.2f}" if item["rating"] is not None else "",
                f"{item['successful_transactions']}/{item['failed_transactions']}",
                f"{item['uptime_30d']:.2f}" if item["uptime_30d"] is not None else "",
                str(item["p99_latency_ms"] or 0),
                str(item["fraud_flags"]),
            )
        console.print(series)


def trust(
    agent_id: Annotated[str, typer.Argument(help="Agent id")],
    history: Annotated[bool, typer.Option("--history", help="Show the trust records")] = False,
    limit: Annotated[int, typer.Option(help="History records to show")] = 20,
    server: ServerUrl = DEFAULT_SERVER,
    json_output: JsonOutput = False,
) -> None:
    """Show an agent's trust score: each component's weight, value and inputs, penalties,
    fraud flags, network trust and (``--history``) its trust records."""
    body = _fetch(server, agent_id, history, limit)
    if json_output:
        console.print_json(json.dumps(body))
        return
    _print(body)


def register(agent_app: typer.Typer) -> None:
    """Add ``trust`` to the ``dukenet agent`` group."""
    agent_app.command("trust")(trust)
