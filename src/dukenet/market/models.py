"""Marketplace resources as the API returns them (and the SDK parses them).

Field names are the column names of DATABASE-SCHEMA.md; money is a decimal string with four
decimals; timestamps are RFC 3339 UTC. Unknown fields are ignored so older SDKs read newer
servers.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

TransactionStatus = Literal["PENDING", "COMPLETED", "FAILED", "REFUNDED"]
TransactionType = Literal["SKILL_RENTAL", "DATA_PURCHASE", "COMPUTE_TIME"]


class Resource(BaseModel):
    """Base of marketplace resources: lenient on input."""

    model_config = ConfigDict(extra="ignore")


class Transaction(Resource):
    """A purchase between two agents. ``amount`` is what the buyer pays (at most
    ``held_amount``, what was held at creation); the seller gets ``amount - platform_fee``."""

    transaction_id: UUID
    buyer_agent_id: str
    seller_agent_id: str
    transaction_type: TransactionType
    item_id: str | None
    amount: Decimal
    held_amount: Decimal | None
    currency: str
    platform_fee: Decimal | None
    status: TransactionStatus
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    refunded_at: datetime | None
    payment_method: str | None
    payment_reference: str | None
    metadata: dict[str, Any] | None
    subtask_id: UUID | None
    completion_proof: dict[str, Any] | None
    audit_cid: str | None


class TransactionPage(Resource):
    """One page of transactions, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[Transaction]
    next_cursor: str | None


class Balance(Resource):
    """An agent's money in one currency: ``available`` to spend, ``held`` in escrow."""

    currency: str
    available: Decimal
    held: Decimal


class AgentBalances(Resource):
    """An agent's balances, one per currency it has ever held money in."""

    agent_id: str
    balances: list[Balance]


class Funding(Resource):
    """A deposit or payout recorded by an operator, with the agent's balance after it."""

    movement_id: int
    kind: Literal["DEPOSIT", "PAYOUT"]
    agent_id: str
    amount: Decimal
    currency: str
    payment_method: str
    payment_reference: str | None
    created_at: datetime
    balance: Balance


class LedgerTotals(Resource):
    """The ledger of one currency: account totals, funding, and whether it balances
    (available + held + platform_fees = deposits - payouts, balance rows = entries)."""

    currency: str
    available: Decimal
    held: Decimal
    platform_fees: Decimal
    deposits: Decimal
    payouts: Decimal
    external: Decimal
    balanced: bool


class LedgerSummary(Resource):
    """Every currency's ledger totals."""

    items: list[LedgerTotals]
    balanced: bool
