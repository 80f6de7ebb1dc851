"""``dukenet serve``: the API server (and its embedded worker) on configured or embedded stores."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer
import uvicorn

from dukenet.cli.common import (
    DatabaseUrl,
    DataDir,
    RedisUrl,
    build_settings,
    console,
    friendly_errors,
)
from dukenet.config import Settings
from dukenet.runtime import prepare_database, start_embedded


def _export(settings: Settings) -> None:
    """Hand the resolved settings to uvicorn worker processes through the environment."""
    os.environ["DUKENET_DATABASE_URL"] = settings.database_url or ""
    os.environ["DUKENET_REDIS_URL"] = settings.redis_url or ""
    os.environ["DUKENET_DATA_DIR"] = str(settings.data_dir)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run_server(settings: Settings, *, banner: str = "DukeNET") -> None:
    """Start embedded stores as needed, migrate, and serve until interrupted.

    uvicorn re-raises SIGTERM after its graceful shutdown; our handler turns it into a
    normal exit so the embedded servers are stopped cleanly on the way out.
    """
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    settings, embedded = start_embedded(settings)
    try:
        with friendly_errors():
            settings = asyncio.run(prepare_database(settings, embedded))
        _export(settings)
        where = f"http://{settings.host}:{settings.port}"
        stores = "embedded PostgreSQL + Redis" if embedded else "configured PostgreSQL + Redis"
        console.print(
            f"[bold green]{banner}[/] listening on {where}  ({stores}; data in {settings.data_dir})"
        )
        console.print(f"API docs: {where}/docs   readiness: {where}/readyz")
        if settings.workers > 1:
            uvicorn.run(
                "dukenet.api.app:create_app",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_level=settings.log_level,
                access_log=False,
            )
        else:
            from dukenet.api.app import create_app

            uvicorn.run(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                access_log=False,
            )
    finally:
        if embedded is not None:
            embedded.stop()


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the top-level app."""

    @app.command()
    def serve(
        host: Annotated[
            str | None, typer.Option(envvar="DUKENET_HOST", help="Bind address")
        ] = None,
        port: Annotated[int | None, typer.Option(envvar="DUKENET_PORT", help="Bind port")] = None,
        workers: Annotated[
            int | None, typer.Option(envvar="DUKENET_WORKERS", help="API processes")
        ] = None,
        database_url: DatabaseUrl = None,
        redis_url: RedisUrl = None,
        data_dir: DataDir = None,
    ) -> None:
        """Run the API server with its embedded worker (embedded PostgreSQL/Redis if unset)."""
        run_server(
            build_settings(
                host=host,
                port=port,
                workers=workers,
                database_url=database_url,
                redis_url=redis_url,
                data_dir=data_dir,
            )
        )
