"""``dukenet tx``, ``dukenet balance`` and ``dukenet funds``: the marketplace over HTTP.

Agents act with their key (``--key``); operators with ``--admin-token`` (or
``DUKENET_ADMIN_TOKEN``). Money is given and shown as decimal strings.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dukenet.cli.agent import DEFAULT_SERVER, ServerUrl, api_client, emit, parse_json_option
from dukenet.cli.common import JsonOutput, console, err_console
from dukenet.cli.keys import KeyPath
from dukenet.sdk import Client
from dukenet.sdk.market import Transaction

tx_app = typer.Typer(
    help="Buy, complete, fail, refund and list transactions.", no_args_is_help=True
)
funds_app = typer.Typer(help="Operator: deposits, payouts and the ledger.", no_args_is_help=True)

AdminTokenOption = Annotated[
    str | None,
    typer.Option("--admin-token", envvar="DUKENET_ADMIN_TOKEN", help="Operator token"),
]
AsOperator = Annotated[
    bool, typer.Option("--as-operator", help="Act as the operator (needs --admin-token)")
]
IdempotencyKeyOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key", help="Reuse to retry safely (default: a fresh key per command)"
    ),
]
TransactionId = Annotated[str, typer.Argument(help="Transaction id")]
Reason = Annotated[str | None, typer.Option("--reason", help="Why (kept in the history)")]


@contextmanager
def market_client(
    server: str, key: Path | None, admin_token: str | None = None, *, operator: bool = False
) -> Iterator[Client]:
    """A client acting as this agent, or as the operator when ``operator`` is set."""
    if operator and not admin_token:
        err_console.print("[bold red]error[/] operator commands need --admin-token")
        sys.exit(2)
    with api_client(server, key, need_key=not operator) as client:
        client.admin_token = admin_token
        yield client


def _transactions_table(items: list[Transaction], me: str | None) -> Table:
    table = Table("transaction_id", "role", "counterparty", "type", "amount", "fee", "status")
    for t in items:
        role = "buyer" if t.buyer_agent_id == me else "seller" if t.seller_agent_id == me else ""
        other = t.seller_agent_id if role == "buyer" else t.buyer_agent_id
        fee = "" if t.platform_fee is None else str(t.platform_fee)
        table.add_row(
            str(t.transaction_id),
            role,
            other[:16] + "…",
            t.transaction_type,
            f"{t.amount} {t.currency}",
            fee,
            t.status,
        )
    return table


@tx_app.command("create")
def create(
    seller: Annotated[str, typer.Argument(help="Seller's agent id")],
    amount: Annotated[str, typer.Argument(help="Decimal amount, e.g. 12.50")],
    transaction_type: Annotated[
        str, typer.Option("--type", help="SKILL_RENTAL, DATA_PURCHASE or COMPUTE_TIME")
    ] = "DATA_PURCHASE",
    currency: Annotated[str, typer.Option(help="Currency code")] = "USD",
    item_id: Annotated[str | None, typer.Option("--item-id", help="What is bought")] = None,
    payment_method: Annotated[str | None, typer.Option("--payment-method")] = None,
    metadata: Annotated[str | None, typer.Option(help="JSON object, or @file.json")] = None,
    idempotency_key: IdempotencyKeyOption = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Buy from SELLER: the amount is held from your balance until it completes or fails."""
    with market_client(server, key) as client:
        transaction = client.create_transaction(
            seller,
            amount,
            transaction_type=transaction_type,
            currency=currency,
            item_id=item_id,
            payment_method=payment_method,
            metadata=parse_json_option(metadata, "--metadata"),
            idempotency_key=idempotency_key,
        )
    emit(transaction, json_output)


@tx_app.command("complete")
def complete(
    transaction_id: TransactionId,
    proof: Annotated[
        str | None, typer.Option("--proof", help="Completion proof: JSON object or @file")
    ] = None,
    cid: Annotated[str | None, typer.Option("--cid", help="Shortcut: proof {'cid': CID}")] = None,
    amount: Annotated[str | None, typer.Option(help="Charge less than was held")] = None,
    idempotency_key: IdempotencyKeyOption = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """As the seller, complete a PENDING transaction: you are paid amount minus the fee."""
    completion_proof = parse_json_option(proof, "--proof")
    if cid is not None:
        completion_proof = {**(completion_proof or {}), "cid": cid}
    with market_client(server, key) as client:
        transaction = client.complete_transaction(
            transaction_id,
            completion_proof=completion_proof,
            amount=amount,
            idempotency_key=idempotency_key,
        )
    emit(transaction, json_output)


@tx_app.command("fail")
def fail(
    transaction_id: TransactionId,
    reason: Reason = None,
    idempotency_key: IdempotencyKeyOption = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """As either party, fail a PENDING transaction; the hold returns to the buyer."""
    with market_client(server, key) as client:
        transaction = client.fail_transaction(
            transaction_id, reason=reason, idempotency_key=idempotency_key
        )
    emit(transaction, json_output)


@tx_app.command("refund")
def refund(
    transaction_id: TransactionId,
    reason: Reason = None,
    as_operator: AsOperator = False,
    admin_token: AdminTokenOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """As the seller (or operator), refund a COMPLETED transaction within the refund window."""
    with market_client(server, key, admin_token, operator=as_operator) as client:
        transaction = client.refund_transaction(
            transaction_id,
            reason=reason,
            as_operator=as_operator,
            idempotency_key=idempotency_key,
        )
    emit(transaction, json_output)


@tx_app.command("show")
def show(
    transaction_id: TransactionId,
    as_operator: AsOperator = False,
    admin_token: AdminTokenOption = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Show one transaction you are a party to."""
    with market_client(server, key, admin_token, operator=as_operator) as client:
        transaction = client.get_transaction(transaction_id, as_operator=as_operator)
    emit(transaction, json_output)


@tx_app.command("list")
def list_transactions(
    role: Annotated[str | None, typer.Option(help="buyer or seller (default both)")] = None,
    status: Annotated[str | None, typer.Option(help="PENDING, COMPLETED, FAILED, REFUNDED")] = None,
    transaction_type: Annotated[str | None, typer.Option("--type", help="Transaction type")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Page size")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page")] = None,
    server: ServerUrl = DEFAULT_SERVER,
    key: KeyPath = None,
    json_output: JsonOutput = False,
) -> None:
    """Your transactions, newest first (one page; pass --cursor for the next)."""
    with market_client(server, key) as client:
        page = client.list_transactions(
            role=role,
            status=status,
            transaction_type=transaction_type,
            cursor=cursor,
            limit=limit,
        )
        me = client.agent_id
    if json_output:
        console.print_json(page.model_dump_json())
        return
    console.print(_transactions_table(page.items, me))
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


def register(app: typer.Typer) -> None:
    """Add ``balance`` to the top-level app."""

    @app.command()
    def balance(
        agent_id: Annotated[
            str | None, typer.Argument(help="Agent id (default: this key's agent)")
        ] = None,
        admin_token: AdminTokenOption = None,
        server: ServerUrl = DEFAULT_SERVER,
        key: KeyPath = None,
        json_output: JsonOutput = False,
    ) -> None:
        """Available and held balance per currency (another agent's needs --admin-token)."""
        operator = agent_id is not None and admin_token is not None
        with market_client(server, key, admin_token, operator=operator) as client:
            balances = client.get_balance(agent_id, as_operator=operator)
        if json_output:
            console.print_json(balances.model_dump_json())
            return
        table = Table("currency", "available", "held", title=f"agent {balances.agent_id}")
        for row in balances.balances:
            table.add_row(row.currency, str(row.available), str(row.held))
        console.print(table)


def _funding(
    kind: str,
    agent_id: str,
    amount: str,
    currency: str,
    payment_method: str,
    reference: str | None,
    idempotency_key: str | None,
    admin_token: str | None,
    server: str,
    json_output: bool,
) -> None:
    with market_client(server, None, admin_token, operator=True) as client:
        action = client.deposit if kind == "deposit" else client.payout
        funding = action(
            agent_id,
            amount,
            currency=currency,
            payment_method=payment_method,
            payment_reference=reference,
            idempotency_key=idempotency_key,
        )
    emit(funding, json_output)


AgentArgument = Annotated[str, typer.Argument(help="Agent id")]
AmountArgument = Annotated[str, typer.Argument(help="Decimal amount, e.g. 100.00")]
CurrencyOption = Annotated[str, typer.Option(help="Currency code")]
MethodOption = Annotated[str, typer.Option("--payment-method", help="e.g. wire, card, usdc")]
ReferenceOption = Annotated[
    str | None, typer.Option("--reference", help="The payment's reference outside DukeNET")
]


@funds_app.command("deposit")
def deposit(
    agent_id: AgentArgument,
    amount: AmountArgument,
    currency: CurrencyOption = "USD",
    payment_method: MethodOption = "manual",
    reference: ReferenceOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    admin_token: AdminTokenOption = None,
    server: ServerUrl = DEFAULT_SERVER,
    json_output: JsonOutput = False,
) -> None:
    """Record money entering the network for an agent."""
    _funding(
        "deposit",
        agent_id,
        amount,
        currency,
        payment_method,
        reference,
        idempotency_key,
        admin_token,
        server,
        json_output,
    )


@funds_app.command("payout")
def payout(
    agent_id: AgentArgument,
    amount: AmountArgument,
    currency: CurrencyOption = "USD",
    payment_method: MethodOption = "manual",
    reference: ReferenceOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    admin_token: AdminTokenOption = None,
    server: ServerUrl = DEFAULT_SERVER,
    json_output: JsonOutput = False,
) -> None:
    """Record money leaving the network (refused beyond the available balance)."""
    _funding(
        "payout",
        agent_id,
        amount,
        currency,
        payment_method,
        reference,
        idempotency_key,
        admin_token,
        server,
        json_output,
    )


@funds_app.command("ledger")
def ledger(
    admin_token: AdminTokenOption = None,
    server: ServerUrl = DEFAULT_SERVER,
    json_output: JsonOutput = False,
) -> None:
    """The ledger's totals per currency and whether it balances."""
    with market_client(server, None, admin_token, operator=True) as client:
        summary = client.ledger_summary()
    if json_output:
        console.print_json(summary.model_dump_json())
        return
    table = Table("currency", "available", "held", "platform fees", "deposits", "payouts", "ok")
    for row in summary.items:
        table.add_row(
            row.currency,
            str(row.available),
            str(row.held),
            str(row.platform_fees),
            str(row.deposits),
            str(row.payouts),
            "[green]yes[/]" if row.balanced else "[bold red]NO[/]",
        )
    console.print(table)
    if not summary.balanced:
        sys.exit(1)
