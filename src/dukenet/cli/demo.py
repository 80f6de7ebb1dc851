"""``dukenet demo``: DukeNET on the embedded default, with nothing to configure."""

from __future__ import annotations

from typing import Annotated

import typer

from dukenet.cli.common import DataDir, build_settings
from dukenet.cli.serve import run_server


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the top-level app."""

    @app.command()
    def demo(
        port: Annotated[int, typer.Option(envvar="DUKENET_PORT", help="Bind port")] = 8080,
        data_dir: DataDir = None,
    ) -> None:
        """Run DukeNET on embedded PostgreSQL and Redis and print where it listens."""
        run_server(
            build_settings(port=port, data_dir=data_dir, database_url=None, redis_url=None),
            banner="DukeNET demo",
        )
