"""The ``dukenet`` command line. Sub-command groups live in their own modules."""

from __future__ import annotations

import typer

from dukenet.cli import (
    agent,
    audit,
    capability,
    db,
    demo,
    keys,
    market,
    search,
    seed,
    serve,
    task,
    trust,
    worker,
)

app = typer.Typer(
    name="dukenet",
    help="DukeNET: the open network for software agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(agent.app, name="agent")
trust.register(agent.app)
app.add_typer(capability.app, name="capability")
keys.register(app)
app.add_typer(audit.app, name="audit")
app.add_typer(task.app, name="task")
app.add_typer(market.tx_app, name="tx")
app.add_typer(market.funds_app, name="funds")
market.register(app)
search.register(app)
seed.register(app)
serve.register(app)
worker.register(app)
demo.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
