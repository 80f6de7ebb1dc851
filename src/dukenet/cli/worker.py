"""``dukenet worker``: a subtask worker process (run as many as needed, on any hosts)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from dukenet.cli.common import (
    DatabaseUrl,
    RedisUrl,
    build_settings,
    console,
    err_console,
    friendly_errors,
)
from dukenet.config import Settings
from dukenet.runtime import freeze_startup_heap, open_services, run_async


async def run_worker(settings: Settings, concurrency: int | None) -> None:
    """Run one worker until SIGTERM or SIGINT, then stop it gracefully."""
    from dukenet.orchestration.worker import Worker  # heavy: imported for this command only

    # Every statement of a worker finds its rows by key: one index plan per statement.
    async with open_services(settings, generic_plans=True) as services:
        worker = Worker(services, concurrency=concurrency)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        freeze_startup_heap()
        console.print(
            f"[bold green]DukeNET worker[/] {worker.worker_id} "
            f"(concurrency {worker.concurrency}, "
            f"{'polling' if settings.pgbouncer else 'LISTEN/NOTIFY'})"
        )
        await worker.run()


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the top-level app."""

    @app.command()
    def worker(
        concurrency: Annotated[
            int | None,
            typer.Option(
                "--concurrency",
                "-c",
                min=1,
                envvar="DUKENET_WORKER_CONCURRENCY",
                help="Agent calls this worker runs at once",
            ),
        ] = None,
        database_url: DatabaseUrl = None,
        redis_url: RedisUrl = None,
    ) -> None:
        """Claim and run subtasks until stopped (SIGTERM finishes or releases in-flight calls).

        Needs the PostgreSQL and Redis of a running network (DUKENET_DATABASE_URL and
        DUKENET_REDIS_URL); the embedded `dukenet serve` already runs a worker of its own.
        """
        settings = build_settings(
            database_url=database_url, redis_url=redis_url, worker_concurrency=concurrency
        )
        if not settings.database_url or not settings.redis_url:
            err_console.print(
                "[bold red]error[/] dukenet worker needs DUKENET_DATABASE_URL and "
                "DUKENET_REDIS_URL (the embedded `dukenet serve` runs its own worker)"
            )
            raise typer.Exit(2)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        with friendly_errors():
            run_async(run_worker(settings, concurrency))
