"""Options shared by commands, each also settable by its ``DUKENET_*`` variable."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from dukenet.config import Settings
from dukenet.errors import DukenetError

console = Console()
err_console = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url", envvar="DUKENET_DATABASE_URL", help="PostgreSQL URL (embedded if unset)"
    ),
]
RedisUrl = Annotated[
    str | None,
    typer.Option("--redis-url", envvar="DUKENET_REDIS_URL", help="Redis URL (embedded if unset)"),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", envvar="DUKENET_DATA_DIR", help="Data directory for embedded servers and keys"
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def build_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with CLI flags that were given taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print DukeNET errors as one clear line and exit 1, instead of a traceback."""
    try:
        yield
    except DukenetError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        err_console.print(f"[bold red]error[/] {exc.instance_code}: {exc.detail}{where}")
        sys.exit(1)
