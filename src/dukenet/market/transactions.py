"""Transactions as the parties and operators see them: who may do what, reads and listing.

A buyer creates (holds), the seller completes (settles), either party fails a PENDING
one (release), the seller or an operator refunds a COMPLETED one within the refund
window. A party acting on someone else's transaction is 403 ``FORBIDDEN``. Each action
runs on the caller's connection inside one database transaction (see ``escrow``).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet.errors import Forbidden, InvalidInput
from dukenet.market import escrow
from dukenet.market.errors import TransactionNotFound
from dukenet.market.inputs import PurchaseRequest
from dukenet.market.records import transaction_dict
from dukenet.store.postgres import Connection
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.market", "queries.sql")
OPERATOR = None  # the acting "agent" of operator requests
Role = Literal["buyer", "seller"]
_FIRST_PAGE = (datetime.fromisoformat("9999-12-31T00:00:00+00:00"), UUID(int=2**128 - 1))


def _role(locked: escrow.Locked, caller: str | None) -> str:
    """``buyer``, ``seller`` or ``operator`` (``caller`` None); 403 for anyone else."""
    if caller is OPERATOR:
        return "operator"
    if caller == locked.buyer:
        return "buyer"
    if caller == locked.seller:
        return "seller"
    raise Forbidden("only a party to a transaction may act on it")


async def create(
    conn: Connection,
    buyer_agent_id: str,
    request: PurchaseRequest,
    *,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """The buyer's purchase: a PENDING transaction holding ``amount`` from its balance
    (402 without the money, 404/409 for an unknown or unavailable seller)."""
    return await escrow.create_hold(
        conn,
        buyer_agent_id=buyer_agent_id,
        seller_agent_id=request.seller_agent_id,
        amount=request.amount,
        currency=request.currency,
        transaction_type=request.transaction_type,
        item_id=request.item_id,
        payment_method=request.payment_method,
        metadata=request.metadata,
        idempotency_key=idempotency_key,
        actor="buyer",
        check_seller=True,
    )


async def complete(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    transaction_id: UUID,
    *,
    caller: str,
    fee_rate: Decimal,
    amount: Decimal | None = None,
    completion_proof: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The seller settles a PENDING transaction (the buyer cannot: 403)."""
    locked = await escrow.lock_transaction(conn, transaction_id)
    if _role(locked, caller) != "seller":
        raise Forbidden("only the seller completes a transaction")
    return await escrow.settle_locked(
        conn,
        network_key,
        locked,
        fee_rate=fee_rate,
        amount=amount,
        completion_proof=completion_proof,
        actor="seller",
    )


async def fail(
    conn: Connection, transaction_id: UUID, *, caller: str, reason: str | None = None
) -> dict[str, Any]:
    """Either party fails a PENDING transaction; the hold returns to the buyer."""
    locked = await escrow.lock_transaction(conn, transaction_id)
    role = _role(locked, caller)
    return await escrow.release_locked(
        conn, locked, reason=reason or f"failed by the {role}", actor=role
    )


async def refund(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    transaction_id: UUID,
    *,
    caller: str | None,
    window: timedelta,
    reason: str | None = None,
) -> dict[str, Any]:
    """The seller or an operator (``caller`` None) refunds a COMPLETED transaction within
    ``window`` of its completion (409 ``REFUND_WINDOW_CLOSED`` after)."""
    locked = await escrow.lock_transaction(conn, transaction_id)
    role = _role(locked, caller)
    if role == "buyer":
        raise Forbidden("only the seller or an operator refunds a transaction")
    return await escrow.refund_locked(
        conn,
        network_key,
        locked,
        reason=reason or f"refunded by the {role}",
        window=window,
        actor=role,
    )


async def get(conn: Connection, transaction_id: UUID, *, caller: str | None) -> dict[str, Any]:
    """One transaction, for its parties and operators (``caller`` None)."""
    row = await conn.fetchrow(QUERIES["get_transaction"], transaction_id)
    if row is None:
        raise TransactionNotFound(f"no transaction {transaction_id}")
    if caller is not OPERATOR and caller not in (row["buyer_agent_id"], row["seller_agent_id"]):
        raise Forbidden("only a party to a transaction may read it")
    return transaction_dict(row)


def encode_cursor(created_at: datetime, transaction_id: UUID) -> str:
    """An opaque keyset cursor: the last item's ``created_at`` and id."""
    raw = json.dumps([created_at.isoformat(), str(transaction_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The position a cursor from ``encode_cursor`` stands for (422 if it is not one)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, transaction_id = json.loads(raw)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive timestamp")
        return moment, UUID(transaction_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


async def list_for(
    conn: Connection,
    agent_id: str,
    *,
    role: Role | None = None,
    status: str | None = None,
    transaction_type: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], str | None]:
    """An agent's transactions (as buyer, seller or either), newest first, with the cursor
    of the next page (None on the last)."""
    after = decode_cursor(cursor) if cursor else _FIRST_PAGE
    query = {"buyer": "list_as_buyer", "seller": "list_as_seller", None: "list_as_party"}[role]
    rows = await conn.fetch(
        QUERIES[query], agent_id, status, transaction_type, after[0], after[1], limit + 1
    )
    items = [transaction_dict(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last["created_at"], last["transaction_id"])
    return items, next_cursor
