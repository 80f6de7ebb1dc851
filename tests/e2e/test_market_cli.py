"""The marketplace through a real `dukenet serve` process: the CLI end to end, and the
blocking SDK against a real socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dukenet import crypto
from dukenet.sdk import Client
from dukenet.sdk.market import InsufficientFunds

ADMIN_TOKEN = "test-admin-token"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dukenet", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _cli(args: list[str], env: dict[str, str]) -> Any:
    result = _run([*args, "--json"], env)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def _agent_env(live_server: str, key: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUKENET_")}
    return env | {"DUKENET_SERVER_URL": live_server, "DUKENET_AGENT_KEY": str(key)}


def test_cli_buys_completes_refunds_and_shows_balances(live_server: str, tmp_path: Path) -> None:
    buyer_env = _agent_env(live_server, tmp_path / "buyer.pem")
    seller_env = _agent_env(live_server, tmp_path / "seller.pem")
    operator_env = buyer_env | {"DUKENET_ADMIN_TOKEN": ADMIN_TOKEN}
    buyer = _cli(["keygen"], buyer_env)["agent_id"]
    seller = _cli(["keygen"], seller_env)["agent_id"]
    _cli(["agent", "register", "--name", "Buyer"], buyer_env)
    _cli(["agent", "register", "--name", "Seller"], seller_env)

    funded = _cli(
        ["funds", "deposit", buyer, "25.00", "--payment-method", "wire", "--reference", "W-1"],
        operator_env,
    )
    assert (funded["balance"]["available"], funded["payment_reference"]) == ("25.0000", "W-1")

    created = _cli(["tx", "create", seller, "10.01", "--item-id", "dataset-7"], buyer_env)
    assert (created["status"], created["amount"], created["item_id"]) == (
        "PENDING",
        "10.0100",
        "dataset-7",
    )
    tid = created["transaction_id"]
    completed = _cli(["tx", "complete", tid, "--cid", "bafyproof"], seller_env)
    assert (completed["status"], completed["platform_fee"]) == ("COMPLETED", "0.2502")
    assert completed["completion_proof"] == {"cid": "bafyproof"}

    balance = _cli(["balance"], seller_env)
    assert balance["balances"] == [{"currency": "USD", "available": "9.7598", "held": "0.0000"}]
    listed = _cli(["tx", "list", "--role", "buyer"], buyer_env)
    assert [t["transaction_id"] for t in listed["items"]] == [tid]

    # The buyer may not refund; the seller may.
    refused = _run(["tx", "refund", tid], buyer_env)
    assert refused.returncode == 1 and "FORBIDDEN" in refused.stderr
    refunded = _cli(["tx", "refund", tid, "--reason", "wrong file"], seller_env)
    assert (refunded["status"], refunded["status_reason"]) == ("REFUNDED", "wrong file")
    assert _cli(["tx", "show", tid], buyer_env)["status"] == "REFUNDED"

    as_operator = _cli(["balance", buyer], operator_env)
    assert as_operator["balances"][0]["available"] == "25.0000"
    too_much = _run(["funds", "payout", buyer, "25.0001"], operator_env)
    assert too_much.returncode == 1 and "INSUFFICIENT_FUNDS" in too_much.stderr
    _cli(["funds", "payout", buyer, "25"], operator_env)
    ledger = _cli(["funds", "ledger"], operator_env)
    assert ledger["balanced"] is True

    table = _run(["tx", "list"], buyer_env)
    assert table.returncode == 0 and "REFUNDED" in table.stdout


def test_blocking_sdk_over_a_real_socket(live_server: str) -> None:
    with (
        Client(live_server, key=crypto.generate_private_key()) as buyer,
        Client(live_server, key=crypto.generate_private_key()) as seller,
        Client(live_server, admin_token=ADMIN_TOKEN) as operator,
    ):
        buyer.register("SDK buyer")
        seller.register("SDK seller")
        operator.deposit(buyer.agent_id, Decimal("3"))
        first = buyer.create_transaction(seller.agent_id, "2", idempotency_key="sdk-1")
        again = buyer.create_transaction(seller.agent_id, "2", idempotency_key="sdk-1")
        assert first == again
        with pytest.raises(InsufficientFunds):
            buyer.create_transaction(seller.agent_id, "1.0001")
        with pytest.raises(TypeError):
            buyer.create_transaction(seller.agent_id, 0.5)  # type: ignore[arg-type]
        seller.fail_transaction(first.transaction_id, reason="out of stock")
        assert buyer.get_balance().balances[0].available == Decimal("3.0000")
        assert operator.ledger_summary().balanced
