"""Marketplace errors: the ``dukenet.errors`` tree with resource-specific codes."""

from __future__ import annotations

from dukenet.errors import Conflict, InvalidInput, InvalidState, NotFound


class TransactionNotFound(NotFound):
    """No transaction has this id."""

    code = "TRANSACTION_NOT_FOUND"
    title = "Transaction not found"


class AgentNotFound(NotFound):
    """The agent named in the request is not registered (or was deregistered)."""

    code = "AGENT_NOT_FOUND"
    title = "Agent not found"


class RefundWindowClosed(InvalidState):
    """The transaction completed longer ago than the refund window allows."""

    code = "REFUND_WINDOW_CLOSED"
    title = "Refund window closed"


class IdempotencyKeyReused(InvalidInput):
    """An ``Idempotency-Key`` was sent again with a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"
    title = "Idempotency key reused"


class SellerUnavailable(Conflict):
    """The seller is suspended or deregistered and cannot be bought from."""

    code = "SELLER_UNAVAILABLE"
    title = "Seller unavailable"
