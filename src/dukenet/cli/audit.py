"""``dukenet audit``: verify records against a server, witness checkpoints, export CAR files."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.table import Table

from dukenet.audit import blockstore, car
from dukenet.audit.errors import VerificationFailed
from dukenet.audit.verify import Report, WitnessState, verify_record_on_server, witness_checkpoint
from dukenet.cli.common import (
    DatabaseUrl,
    DataDir,
    JsonOutput,
    build_settings,
    console,
    err_console,
    friendly_errors,
)
from dukenet.config import default_data_dir
from dukenet.runtime import start_embedded
from dukenet.store.embedded import ensure_database
from dukenet.store.postgres import Database

app = typer.Typer(help="Audit trail: verify records, witness checkpoints, export CAR files.")

ServerUrl = Annotated[
    str,
    typer.Option("--server", envvar="DUKENET_SERVER_URL", help="Base URL of a DukeNET server"),
]
TrustedKey = Annotated[
    str | None,
    typer.Option(
        "--trusted-key",
        envvar="DUKENET_TRUSTED_NETWORK_KEY",
        help="The network's base64 public key to pin (default: remembered on first use)",
    ),
]
StateFile = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="Where the last verified checkpoint per server is kept "
        "(default: audit-witness.json in the data dir)",
    ),
]


def _state(path: Path | None, data_dir: Path | None) -> WitnessState:
    return WitnessState.load(path or (data_dir or default_data_dir()) / "audit-witness.json")


def _print_report(report: Report, json_output: bool) -> None:
    if json_output:
        console.print_json(
            json.dumps(
                {
                    "target": report.target,
                    "cid": report.cid,
                    "ok": report.ok,
                    "tree_size": report.checkpoint.tree_size if report.checkpoint else None,
                    "checks": [
                        {"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks
                    ],
                }
            )
        )
        return
    table = Table("check", "result", "detail", title=f"audit {report.target}")
    for check in report.checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAILED[/]", check.detail)
    console.print(table)


@app.command()
def verify(
    target: Annotated[str, typer.Argument(help="A /dukenet/... path or a record CID")],
    server: ServerUrl = "http://127.0.0.1:8080",
    trusted_key: TrustedKey = None,
    state: StateFile = None,
    data_dir: DataDir = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the record to be checkpointed")
    ] = 10.0,
    json_output: JsonOutput = False,
) -> None:
    """Check a record's CID, signatures, inclusion in a signed checkpoint, and that the log is
    consistent with the last checkpoint seen. Exits 1 on any failure."""
    witness = _state(state, data_dir)

    async def run() -> Report:
        async with httpx.AsyncClient(base_url=server, timeout=30.0) as http:
            return await verify_record_on_server(
                http, target, trusted_key=trusted_key, state=witness, wait=wait
            )

    try:
        report = asyncio.run(run())
    except VerificationFailed as exc:
        if isinstance(exc.report, Report):
            _print_report(exc.report, json_output)
        err_console.print(f"[bold red]verification failed[/] {exc.detail}")
        sys.exit(1)
    _print_report(report, json_output)


@app.command()
def checkpoint(
    server: ServerUrl = "http://127.0.0.1:8080",
    trusted_key: TrustedKey = None,
    state: StateFile = None,
    data_dir: DataDir = None,
    json_output: JsonOutput = False,
) -> None:
    """Fetch the server's newest signed checkpoint, verify its signature and its consistency
    with the last one seen, remember it, and print the signed note."""
    witness = _state(state, data_dir)

    async def run() -> Report:
        async with httpx.AsyncClient(base_url=server, timeout=30.0) as http:
            return await witness_checkpoint(http, trusted_key=trusted_key, state=witness)

    try:
        report = asyncio.run(run())
    except VerificationFailed as exc:
        if isinstance(exc.report, Report):
            _print_report(exc.report, json_output)
        err_console.print(f"[bold red]verification failed[/] {exc.detail}")
        sys.exit(1)
    if json_output:
        _print_report(report, True)
    else:
        _print_report(report, False)
        sys.stdout.write(report.note or "")


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="The CARv1 file to write")],
    prefix: Annotated[
        str, typer.Option(help="Only records whose path starts with this")
    ] = "/dukenet/",
    database_url: DatabaseUrl = None,
    data_dir: DataDir = None,
) -> None:
    """Write the records under a path prefix, with every block they link to (earlier
    versions included), as a CARv1 file whose roots are the paths' newest records."""
    settings = build_settings(database_url=database_url, data_dir=data_dir)
    settings, embedded = start_embedded(settings.model_copy(update={"redis_url": "unused://"}))

    async def run() -> tuple[int, int]:
        assert settings.database_url
        url = settings.database_url
        if embedded is not None and embedded.postgres_started:
            url = await ensure_database(url)
        db = await Database.connect(url, pgbouncer=settings.pgbouncer, min_size=1, max_size=1)
        try:
            async with db.acquire() as conn:
                entries = await blockstore.paths_with_prefix(conn, prefix)
                roots = list(dict.fromkeys(entry.cid for entry in entries))
                if not roots:
                    err_console.print(f"nothing is recorded under {prefix}")
                    sys.exit(1)
                count = 0
                tmp = out.with_suffix(out.suffix + ".tmp")
                with tmp.open("wb") as handle:
                    handle.write(car.header(roots))
                    async for block in blockstore.walk(conn, roots):
                        handle.write(car.section(block))
                        count += 1
                tmp.replace(out)
                return len(roots), count
        finally:
            await db.close()

    try:
        with friendly_errors():
            roots, blocks = asyncio.run(run())
    finally:
        if embedded is not None:
            embedded.stop()
    console.print(f"wrote {out}: {roots} roots, {blocks} blocks (CARv1)")
