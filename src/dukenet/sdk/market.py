"""Marketplace operations of the SDK: buy, complete, fail, refund, list, balances, funding.

Amounts are ``Decimal`` (or decimal strings); floats are refused so no cent is lost to
binary rounding. Money-moving calls send an ``Idempotency-Key`` (a fresh UUID unless you
pass your own): pass the same key when you retry after a lost response and the network
returns the original result instead of moving money twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from dukenet.sdk.base import ApiRequest, BaseClient, Flow, operation
from dukenet.sdk.errors import (
    Conflict,
    InvalidState,
    NotFound,
    PaymentRequired,
    ValidationFailed,
    register_code,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"


class _Resource(BaseModel):
    """Lenient resource: fields added by newer servers are kept, not refused."""

    model_config = ConfigDict(extra="allow")


class Transaction(_Resource):
    """A purchase: ``amount`` is what the buyer pays (at most ``held_amount``); the seller
    gets ``amount - platform_fee``. Status: PENDING, COMPLETED, FAILED or REFUNDED."""

    transaction_id: uuid.UUID
    buyer_agent_id: str
    seller_agent_id: str
    transaction_type: str
    item_id: str | None = None
    amount: Decimal
    held_amount: Decimal | None = None
    currency: str
    platform_fee: Decimal | None = None
    status: str
    status_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    refunded_at: datetime | None = None
    payment_method: str | None = None
    payment_reference: str | None = None
    metadata: dict[str, Any] | None = None
    subtask_id: uuid.UUID | None = None
    completion_proof: dict[str, Any] | None = None
    audit_cid: str | None = None


class TransactionPage(_Resource):
    """One page of transactions, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[Transaction]
    next_cursor: str | None = None


class Balance(_Resource):
    """Money in one currency: ``available`` to spend, ``held`` in escrow."""

    currency: str
    available: Decimal
    held: Decimal


class AgentBalances(_Resource):
    """An agent's balances per currency."""

    agent_id: str
    balances: list[Balance]


class Funding(_Resource):
    """A recorded deposit or payout, with the agent's balance after it."""

    movement_id: int
    kind: str
    agent_id: str
    amount: Decimal
    currency: str
    payment_method: str
    payment_reference: str | None = None
    created_at: datetime
    balance: Balance


class LedgerTotals(_Resource):
    """One currency's ledger totals and whether they balance."""

    currency: str
    available: Decimal
    held: Decimal
    platform_fees: Decimal
    deposits: Decimal
    payouts: Decimal
    external: Decimal
    balanced: bool


class LedgerSummary(_Resource):
    """Every currency's ledger totals."""

    items: list[LedgerTotals]
    balanced: bool


class InsufficientFunds(PaymentRequired):
    """The available balance does not cover the amount (``problem`` has ``available``)."""


class TransactionNotFound(NotFound):
    """No transaction with this id."""


class RefundWindowClosed(InvalidState):
    """The transaction completed too long ago to be refunded."""


class SellerUnavailable(Conflict):
    """The seller is suspended or deregistered."""


class IdempotencyKeyReused(ValidationFailed):
    """The Idempotency-Key was already used with a different request."""


for _code, _exception in (
    ("INSUFFICIENT_FUNDS", InsufficientFunds),
    ("TRANSACTION_NOT_FOUND", TransactionNotFound),
    ("REFUND_WINDOW_CLOSED", RefundWindowClosed),
    ("SELLER_UNAVAILABLE", SellerUnavailable),
    ("IDEMPOTENCY_KEY_REUSED", IdempotencyKeyReused),
):
    register_code(_code, _exception)


def money(amount: Decimal | str | int) -> str:
    """An amount as the API's decimal string (floats refused: they are not exact)."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | str | int):
        raise TypeError(f"amounts are Decimal, str or int, not {type(amount).__name__}")
    return str(Decimal(amount))


def _key_header(key: str | None) -> dict[str, str]:
    return {IDEMPOTENCY_HEADER: key or str(uuid.uuid4())}


def _without_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class MarketOperations(BaseClient):
    """Marketplace operations (mixin of ``Client`` and ``AsyncClient``)."""

    @operation
    def create_transaction(
        self,
        seller_agent_id: str,
        amount: Decimal | str | int,
        *,
        transaction_type: str = "DATA_PURCHASE",
        currency: str = "USD",
        item_id: str | None = None,
        payment_method: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Flow[Transaction]:
        """Buy from ``seller_agent_id``: a PENDING transaction holding ``amount`` from this
        agent's balance (``InsufficientFunds`` when it is not there)."""
        body = _without_none(
            seller_agent_id=seller_agent_id,
            transaction_type=transaction_type,
            amount=money(amount),
            currency=currency,
            item_id=item_id,
            payment_method=payment_method,
            metadata=metadata,
        )
        response = yield ApiRequest(
            "POST", "/v1/transactions", json=body, auth=True, headers=_key_header(idempotency_key)
        )
        return Transaction.model_validate_json(response.content)

    @operation
    def complete_transaction(
        self,
        transaction_id: uuid.UUID | str,
        *,
        completion_proof: dict[str, Any] | None = None,
        amount: Decimal | str | int | None = None,
        idempotency_key: str | None = None,
    ) -> Flow[Transaction]:
        """As the seller, settle a PENDING transaction (optionally charging less)."""
        body = _without_none(
            completion_proof=completion_proof,
            amount=None if amount is None else money(amount),
        )
        response = yield ApiRequest(
            "POST",
            f"/v1/transactions/{transaction_id}/complete",
            json=body,
            auth=True,
            headers=_key_header(idempotency_key),
        )
        return Transaction.model_validate_json(response.content)

    @operation
    def fail_transaction(
        self,
        transaction_id: uuid.UUID | str,
        *,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> Flow[Transaction]:
        """As either party, fail a PENDING transaction; the hold returns to the buyer."""
        response = yield ApiRequest(
            "POST",
            f"/v1/transactions/{transaction_id}/fail",
            json=_without_none(reason=reason),
            auth=True,
            headers=_key_header(idempotency_key),
        )
        return Transaction.model_validate_json(response.content)

    @operation
    def refund_transaction(
        self,
        transaction_id: uuid.UUID | str,
        *,
        reason: str | None = None,
        as_operator: bool = False,
        idempotency_key: str | None = None,
    ) -> Flow[Transaction]:
        """As the seller (or, with ``as_operator``, the operator), refund a COMPLETED one."""
        response = yield ApiRequest(
            "POST",
            f"/v1/transactions/{transaction_id}/refund",
            json=_without_none(reason=reason),
            auth=not as_operator,
            admin=as_operator,
            headers=_key_header(idempotency_key),
        )
        return Transaction.model_validate_json(response.content)

    @operation
    def get_transaction(
        self, transaction_id: uuid.UUID | str, *, as_operator: bool = False
    ) -> Flow[Transaction]:
        """One transaction this agent is a party to (any, with ``as_operator``)."""
        response = yield ApiRequest(
            "GET",
            f"/v1/transactions/{transaction_id}",
            auth=not as_operator,
            admin=as_operator,
        )
        return Transaction.model_validate_json(response.content)

    @operation
    def list_transactions(
        self,
        *,
        role: str | None = None,
        status: str | None = None,
        transaction_type: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Flow[TransactionPage]:
        """One page of this agent's transactions, newest first; pass ``next_cursor`` back."""
        params = _without_none(
            role=role, status=status, type=transaction_type, cursor=cursor, limit=limit
        )
        response = yield ApiRequest("GET", "/v1/transactions", params=params, auth=True)
        return TransactionPage.model_validate_json(response.content)

    @operation
    def get_balance(
        self, agent_id: str | None = None, *, as_operator: bool = False
    ) -> Flow[AgentBalances]:
        """Available and held balance per currency (this agent's own unless ``as_operator``)."""
        target = agent_id or self.agent_id
        response = yield ApiRequest(
            "GET", f"/v1/agents/{target}/balance", auth=not as_operator, admin=as_operator
        )
        return AgentBalances.model_validate_json(response.content)

    def _funding(
        self,
        kind: str,
        agent_id: str,
        amount: Decimal | str | int,
        currency: str,
        payment_method: str,
        payment_reference: str | None,
        idempotency_key: str | None,
    ) -> Flow[Funding]:
        body = _without_none(
            amount=money(amount),
            currency=currency,
            payment_method=payment_method,
            payment_reference=payment_reference,
        )
        response = yield ApiRequest(
            "POST",
            f"/v1/admin/agents/{agent_id}/{kind}",
            json=body,
            admin=True,
            headers=_key_header(idempotency_key),
        )
        return Funding.model_validate_json(response.content)

    @operation
    def deposit(
        self,
        agent_id: str,
        amount: Decimal | str | int,
        *,
        currency: str = "USD",
        payment_method: str = "manual",
        payment_reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Flow[Funding]:
        """Operator: record money entering the network for ``agent_id``."""
        return (
            yield from self._funding(
                "deposits",
                agent_id,
                amount,
                currency,
                payment_method,
                payment_reference,
                idempotency_key,
            )
        )

    @operation
    def payout(
        self,
        agent_id: str,
        amount: Decimal | str | int,
        *,
        currency: str = "USD",
        payment_method: str = "manual",
        payment_reference: str | None = None,
        idempotency_key: str | None = None,
    ) -> Flow[Funding]:
        """Operator: record money leaving the network (``InsufficientFunds`` beyond it)."""
        return (
            yield from self._funding(
                "payouts",
                agent_id,
                amount,
                currency,
                payment_method,
                payment_reference,
                idempotency_key,
            )
        )

    @operation
    def ledger_summary(self) -> Flow[LedgerSummary]:
        """Operator: the ledger's totals per currency and whether it balances."""
        response = yield ApiRequest("GET", "/v1/admin/ledger", admin=True)
        return LedgerSummary.model_validate_json(response.content)
