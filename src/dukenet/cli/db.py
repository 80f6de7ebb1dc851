"""``dukenet db``: apply and inspect schema migrations."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.table import Table

from dukenet.cli.common import (
    DatabaseUrl,
    DataDir,
    JsonOutput,
    build_settings,
    console,
    friendly_errors,
)
from dukenet.config import Settings
from dukenet.runtime import start_embedded
from dukenet.store import migrations
from dukenet.store.embedded import EmbeddedServices, ensure_database
from dukenet.store.postgres import Database

app = typer.Typer(help="Schema migrations.", no_args_is_help=True)


async def _database_url(settings: Settings, embedded: EmbeddedServices | None) -> str:
    assert settings.database_url
    if embedded is not None and embedded.postgres_started:
        return await ensure_database(settings.database_url)
    return settings.database_url


def _with_connection(settings: Settings, action: str, json_output: bool) -> None:
    settings, embedded = start_embedded(settings.model_copy(update={"redis_url": "unused://"}))

    async def run() -> None:
        url = await _database_url(settings, embedded)
        db = await Database.connect(url, pgbouncer=settings.pgbouncer, min_size=1, max_size=1)
        try:
            async with db.session() as conn:
                if action == "upgrade":
                    applied = await migrations.upgrade(conn)
                    created = await migrations.ensure_log_partitions(conn)
                    names = [f"{m.version:04d}_{m.name}" for m in applied]
                    if json_output:
                        console.print_json(
                            json.dumps({"applied": names, "partitions_created": created})
                        )
                    elif names:
                        for name in names:
                            console.print(f"[green]applied[/] {name}")
                    else:
                        console.print("database is up to date")
                else:
                    rows = await migrations.status(conn)
                    if json_output:
                        console.print_json(
                            json.dumps(
                                [
                                    {
                                        "version": r.version,
                                        "name": r.name,
                                        "applied_at": r.applied_at.isoformat()
                                        if r.applied_at
                                        else None,
                                    }
                                    for r in rows
                                ]
                            )
                        )
                        return
                    table = Table("version", "name", "state", "applied at")
                    for r in rows:
                        state = "[green]applied[/]" if r.applied_at else "[yellow]pending[/]"
                        table.add_row(
                            f"{r.version:04d}",
                            r.name,
                            state,
                            r.applied_at.isoformat() if r.applied_at else "",
                        )
                    console.print(table)
        finally:
            await db.close()

    try:
        with friendly_errors():
            asyncio.run(run())
    finally:
        if embedded is not None:
            embedded.stop()


@app.command()
def upgrade(
    database_url: DatabaseUrl = None, data_dir: DataDir = None, json_output: JsonOutput = False
) -> None:
    """Apply pending migrations in order (a no-op when up to date)."""
    _with_connection(
        build_settings(database_url=database_url, data_dir=data_dir), "upgrade", json_output
    )


@app.command()
def status(
    database_url: DatabaseUrl = None, data_dir: DataDir = None, json_output: JsonOutput = False
) -> None:
    """List applied and pending migrations."""
    _with_connection(
        build_settings(database_url=database_url, data_dir=data_dir), "status", json_output
    )
