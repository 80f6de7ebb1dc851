"""The double-entry ledger: postings, deposits and payouts, balances and the invariant.

Every movement of money is a ``ledger_movements`` row with ``ledger_entries`` that sum to
zero, all written by one statement; a statement trigger refuses any statement that leaves
a movement unbalanced. Accounts are ``AVAILABLE`` and ``HELD`` per agent and currency,
``PLATFORM_FEES`` and ``EXTERNAL`` per currency. The same trigger maintains the agents'
balance rows from the entries (and another refuses any other change to them), so nothing
can be spent twice or created from nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from dukenet.errors import InvalidInput, PaymentRequired
from dukenet.market.errors import AgentNotFound
from dukenet.market.fees import MAX_FUNDING_AMOUNT, check_amount, check_currency
from dukenet.store.postgres import Connection, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.market", "queries.sql")
ZERO = Decimal("0.0000")

Account = Literal["AVAILABLE", "HELD", "PLATFORM_FEES", "EXTERNAL"]
FundingKind = Literal["DEPOSIT", "PAYOUT"]


@dataclass(frozen=True)
class Posting:
    """One entry of a movement: ``amount`` is the change of the account's balance."""

    account: Account
    agent_id: str | None
    amount: Decimal


def posting_arrays(
    postings: list[Posting],
) -> tuple[list[str], list[str | None], list[Decimal]]:
    """Column arrays for ``unnest`` (zero postings are left out; they move nothing)."""
    kept = [p for p in postings if p.amount != 0]
    if sum((p.amount for p in kept), ZERO) != 0:
        # The database would refuse it at commit too; failing here names the bug sooner.
        raise AssertionError(f"unbalanced postings: {postings}")
    return [p.account for p in kept], [p.agent_id for p in kept], [p.amount for p in kept]


def balance_dict(row: Record | None, currency: str) -> dict[str, Any]:
    """``{currency, available, held}`` of a balance row (zeros when there is none)."""
    if row is None:
        return {"currency": currency, "available": ZERO, "held": ZERO}
    return {"currency": row["currency"], "available": row["available"], "held": row["held"]}


async def ensure_agent(conn: Connection, agent_id: str, *, field: str | None = None) -> str:
    """The agent's status, or ``AgentNotFound`` if it was never registered."""
    row = await conn.fetchrow(QUERIES["agent_status"], agent_id)
    if row is None:
        raise AgentNotFound(f"no registered agent {agent_id}", field=field)
    status: str = row["status"]
    return status


async def _fund(
    conn: Connection,
    kind: FundingKind,
    agent_id: str,
    *,
    amount: Decimal,
    currency: str,
    payment_method: str,
    payment_reference: str | None,
) -> dict[str, Any]:
    amount = check_amount(amount, maximum=MAX_FUNDING_AMOUNT)
    currency = check_currency(currency)
    if not payment_method or len(payment_method) > 50:
        raise InvalidInput("payment_method must be 1-50 characters", field="/payment_method")
    if payment_reference is not None and len(payment_reference) > 100:
        raise InvalidInput(
            "payment_reference must be at most 100 characters", field="/payment_reference"
        )
    await ensure_agent(conn, agent_id)
    if kind == "PAYOUT":
        locked = await conn.fetch(QUERIES["lock_balances"], [agent_id], currency)
        available = locked[0]["available"] if locked else ZERO
        if available < amount:
            raise PaymentRequired(
                f"payout of {amount} {currency} exceeds the available balance of {available}",
                field="/amount",
                extra={"available": str(available), "currency": currency},
            )
    movement = await conn.fetchrow(
        QUERIES["fund"],
        kind,
        agent_id,
        currency,
        amount,
        payment_method,
        payment_reference,
        1 if kind == "DEPOSIT" else -1,
    )
    assert movement is not None  # an INSERT ... RETURNING returns its row
    balance = await conn.fetchrow(QUERIES["balance"], agent_id, currency)
    return {
        "movement_id": movement["movement_id"],
        "kind": kind,
        "agent_id": agent_id,
        "amount": movement["amount"],
        "currency": currency,
        "payment_method": payment_method,
        "payment_reference": payment_reference,
        "created_at": movement["created_at"],
        "balance": balance_dict(balance, currency),
    }


async def deposit(
    conn: Connection,
    agent_id: str,
    *,
    amount: Decimal,
    currency: str,
    payment_method: str,
    payment_reference: str | None = None,
) -> dict[str, Any]:
    """Record money entering the network for ``agent_id`` (external → available)."""
    return await _fund(
        conn,
        "DEPOSIT",
        agent_id,
        amount=amount,
        currency=currency,
        payment_method=payment_method,
        payment_reference=payment_reference,
    )


async def payout(
    conn: Connection,
    agent_id: str,
    *,
    amount: Decimal,
    currency: str,
    payment_method: str,
    payment_reference: str | None = None,
) -> dict[str, Any]:
    """Record money leaving the network (available → external); 402 beyond the available."""
    return await _fund(
        conn,
        "PAYOUT",
        agent_id,
        amount=amount,
        currency=currency,
        payment_method=payment_method,
        payment_reference=payment_reference,
    )


async def balances_of(conn: Connection, agent_id: str) -> list[dict[str, Any]]:
    """The agent's available and held balance per currency (404 for an unknown agent)."""
    rows = await conn.fetch(QUERIES["agent_balances"], agent_id)
    if not rows:
        await ensure_agent(conn, agent_id)
    return [balance_dict(row, row["currency"]) for row in rows]


async def summary(conn: Connection) -> list[dict[str, Any]]:
    """Per currency: the ledger's account totals, funding, and whether every invariant holds.

    ``balanced`` is true when available + held + platform fees = deposits - payouts, the
    entries sum to zero, the balance rows equal the entries, and the held total equals the
    holds of PENDING transactions.
    """
    accounts: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for row in await conn.fetch(QUERIES["entry_totals"]):
        accounts[row["currency"]][row["account"]] = row["total"]
    funding = {row["currency"]: row for row in await conn.fetch(QUERIES["funding_totals"])}
    rows = {row["currency"]: row for row in await conn.fetch(QUERIES["balance_totals"])}
    pending = {row["currency"]: row["held"] for row in await conn.fetch(QUERIES["pending_totals"])}
    mismatched_agents: int = await conn.fetchval(QUERIES["balance_mismatches"])
    report: list[dict[str, Any]] = []
    for currency in sorted(set(accounts) | set(funding) | set(rows) | set(pending)):
        totals = accounts[currency]
        deposits = funding[currency]["deposits"] if currency in funding else ZERO
        payouts = funding[currency]["payouts"] if currency in funding else ZERO
        row_available = rows[currency]["available"] if currency in rows else ZERO
        row_held = rows[currency]["held"] if currency in rows else ZERO
        available, held = totals["AVAILABLE"], totals["HELD"]
        fees, external = totals["PLATFORM_FEES"], totals["EXTERNAL"]
        balanced = (
            available + held + fees == deposits - payouts
            and available + held + fees + external == 0
            and (row_available, row_held) == (available, held)
            and held == pending.get(currency, ZERO)
            and mismatched_agents == 0
        )
        report.append(
            {
                "currency": currency,
                "available": available,
                "held": held,
                "platform_fees": fees,
                "deposits": deposits,
                "payouts": payouts,
                "external": external,
                "balanced": balanced,
            }
        )
    return report
