"""``dukenet keygen``: create an agent's Ed25519 key (PEM, file mode 0600)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from dukenet import crypto
from dukenet.cli.common import JsonOutput, console, err_console
from dukenet.config import default_data_dir

KEY_FILE = "agent_key.pem"


def default_key_path() -> Path:
    """``$DUKENET_DATA_DIR/agent_key.pem`` (the user data dir by default)."""
    data_dir = os.environ.get("DUKENET_DATA_DIR")
    return (Path(data_dir) if data_dir else default_data_dir()) / KEY_FILE


KeyPath = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="DUKENET_AGENT_KEY",
        help="Agent private key file (default: agent_key.pem in the data dir)",
    ),
]


def register(app: typer.Typer) -> None:
    """Add ``keygen`` to the top-level app."""

    @app.command()
    def keygen(
        key: KeyPath = None,
        force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key")] = False,
        json_output: JsonOutput = False,
    ) -> None:
        """Generate an Ed25519 agent key and print its agent id and public key."""
        path = key or default_key_path()
        if path.exists() and not force:
            err_console.print(f"[bold red]error[/] {path} exists (use --force to replace it)")
            raise typer.Exit(1)
        private = crypto.generate_private_key()
        crypto.save_private_key(private, path)
        facts = {
            "agent_id": crypto.agent_id_for(private.public_key()),
            "public_key": crypto.public_key_b64(private),
            "key_file": str(path),
        }
        if json_output:
            console.print_json(json.dumps(facts))
        else:
            console.print(f"[green]key written[/] {path} (mode 0600)")
            console.print(f"agent id:   {facts['agent_id']}")
            console.print(f"public key: {facts['public_key']}")
