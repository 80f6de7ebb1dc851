"""The ``dukenet`` command line. Sub-command groups live in their own modules."""

from __future__ import annotations

import typer

from dukenet.cli import db, demo, serve

app = typer.Typer(
    name="dukenet",
    help="DukeNET: the open network for software agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
serve.register(app)
demo.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
