"""``dukenet search``: find capabilities on a DukeNET server (a rich table, or ``--json``)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from dukenet.cli.agent import DEFAULT_SERVER, ServerUrl, api_client
from dukenet.cli.common import JsonOutput, console, err_console
from dukenet.sdk.search import SearchFilters, SearchResult

Text = Annotated[str | None, typer.Option()]


def _row(result: SearchResult) -> list[str]:
    capability, agent = result.capability, result.agent
    price = (
        "free"
        if capability.pricing_model == "free"
        else (
            f"{capability.price:.4f} {capability.currency}"
            + (" /mo" if capability.pricing_model == "subscription" else "")
        )
    )
    return [
        capability.name,
        capability.version + (" [dim](deprecated)[/]" if capability.deprecated else ""),
        agent.display_name or agent.agent_id[:12],
        f"{agent.trust_score:.2f}",
        price,
        "-" if capability.latency_p99_ms is None else f"{capability.latency_p99_ms:,} ms",
        "-" if capability.availability_percent is None else f"{capability.availability_percent}%",
        ", ".join(agent.tags),
        capability.capability_id[:12],
    ]


def _table(results: list[SearchResult], title: str) -> Table:
    table = Table(
        "capability", "version", "agent", "trust", "price", "p99", "avail.", "tags", "id",
        title=title,
    )  # fmt: skip
    for result in results:
        table.add_row(*_row(result))
    return table


def register(app: typer.Typer) -> None:
    """Add ``search`` to the top-level app."""

    @app.command()
    def search(
        name: Annotated[
            str | None, typer.Option(help="Exact capability name, or a prefix like 'text.*'")
        ] = None,
        q: Annotated[str | None, typer.Option("--q", "-q", help="Full-text query")] = None,
        tag: Annotated[
            list[str] | None, typer.Option("--tag", help="Agent has this tag (repeatable)")
        ] = None,
        min_trust: Annotated[float | None, typer.Option(min=0, max=100)] = None,
        max_price: Annotated[
            str | None, typer.Option(help="Highest price (needs --currency)")
        ] = None,
        currency: Text = None,
        pricing_model: Annotated[
            str | None, typer.Option(help="per_call, subscription or free")
        ] = None,
        max_latency_ms: Annotated[int | None, typer.Option(min=1)] = None,
        min_availability: Annotated[float | None, typer.Option(min=0, max=100)] = None,
        version: Annotated[str | None, typer.Option(help="Version range, e.g. '>=1.2,<2'")] = None,
        accepts: Annotated[
            str | None, typer.Option(help="JSON document the input schema must accept")
        ] = None,
        include_deprecated: bool = False,
        status: Annotated[str, typer.Option(help="ACTIVE or INACTIVE")] = "ACTIVE",
        any_heartbeat: Annotated[
            bool, typer.Option(help="Include agents whose heartbeat expired")
        ] = False,
        sort: Annotated[str, typer.Option(help="trust, price, latency or relevance")] = "trust",
        limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
        cursor: Text = None,
        all_pages: Annotated[bool, typer.Option("--all", help="Follow every page")] = False,
        server: ServerUrl = DEFAULT_SERVER,
        json_output: JsonOutput = False,
    ) -> None:
        """Search capabilities by name, text, tags, trust, price, SLO, version or input."""
        filters: dict[str, Any] = {
            "name": name, "q": q, "tags": tag, "min_trust": min_trust, "max_price": max_price,
            "currency": currency, "pricing_model": pricing_model,
            "max_latency_ms": max_latency_ms, "min_availability": min_availability,
            "version": version, "status": status.upper(), "sort": sort, "limit": limit,
            "cursor": cursor, "include_deprecated": include_deprecated,
            "fresh_heartbeat": not any_heartbeat,
        }  # fmt: skip
        if accepts is not None:
            try:
                filters["accepts"] = json.loads(accepts)
            except ValueError as exc:
                err_console.print(f"[bold red]error[/] --accepts is not JSON: {exc}")
                sys.exit(1)
        given: SearchFilters = {k: v for k, v in filters.items() if v is not None}  # type: ignore[assignment]
        with api_client(server, None, need_key=False) as client:
            if all_pages:
                results = list(client.search_all(**given))
                if json_output:
                    console.print_json(json.dumps([r.model_dump(mode="json") for r in results]))
                else:
                    console.print(_table(results, f"{len(results)} results"))
                return
            page = client.search(**given)
        if json_output:
            console.print_json(page.model_dump_json())
            return
        console.print(_table(page.items, f"{len(page.items)} results"))
        if page.next_cursor:
            console.print(f"[dim]more: --cursor {page.next_cursor}[/]")
