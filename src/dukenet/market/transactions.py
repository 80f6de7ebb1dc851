"""Transactions as the parties and operators see them: who may do what, reads and listing.

A buyer creates (holds), the seller completes (settles), either party fails a PENDING
one (release), the seller or an operator refunds a COMPLETED one within the refund
window. A party acting on someone else's transaction is 403 ``FORBIDDEN``. Each action
takes the request's ``Idempotency-Key`` (if any) and answers with the response's status
and JSON, replaying the first response to a repeated key.

``create`` is one statement and needs no transaction around it (each statement commits
by itself); the other actions run on the caller's connection inside one database
transaction (see ``escrow``).
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
from dukenet.market.idempotency import (
    Outcome,
    Reply,
    RequestKey,
    StoredResponse,
    stored_response,
    unclaimable,
)
from dukenet.market.inputs import PurchaseRequest
from dukenet.market.records import as_created, transaction_dict, transaction_json
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
    key: RequestKey | None = None,
) -> Outcome:
    """The buyer's purchase: a PENDING transaction holding ``amount`` from its balance
    (402 without the money, 404/409 for an unknown or unavailable seller), answered 201."""
    row = await escrow.create_hold(
        conn,
        buyer_agent_id=buyer_agent_id,
        seller_agent_id=request.seller_agent_id,
        amount=request.amount,
        currency=request.currency,
        transaction_type=request.transaction_type,
        item_id=request.item_id,
        payment_method=request.payment_method,
        metadata=request.metadata,
        request=key,
        status_code=201,
        actor="buyer",
        check_seller=True,
    )
    if row is not None:
        return Outcome(201, transaction_json(as_created(row)))
    assert key is not None  # only a used key refuses without raising
    # The key's first purchase: answered again with the transaction as it created it.
    created = await conn.fetchrow(QUERIES["purchase_by_key"], buyer_agent_id, key.key)
    if created is None:
        raise unclaimable(key.key)  # the key's record outlived its transaction's key
    return Outcome(201, transaction_json(as_created(created)), replayed=True)


async def _claim_and_lock(
    conn: Connection,
    transaction_id: UUID,
    key: RequestKey | None,
    proof: dict[str, Any] | None = None,
) -> escrow.Locked | StoredResponse:
    """The locked transaction, or the stored response when ``key`` was already used."""
    for _ in range(2):
        locked = await escrow.claim_and_lock(conn, transaction_id, key, proof=proof)
        if locked is not None:
            return locked
        assert key is not None  # only a used key refuses without raising
        stored = await stored_response(conn, key)
        if stored is not None:
            return stored
        # purged between the two statements: claim it again
    assert key is not None
    raise unclaimable(key.key)


def _replayed(stored: StoredResponse) -> Outcome:
    return Outcome(stored.status_code, stored.body, replayed=True)


async def complete(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    transaction_id: UUID,
    *,
    caller: str,
    fee_rate: Decimal,
    amount: Decimal | None = None,
    completion_proof: dict[str, Any] | None = None,
    key: RequestKey | None = None,
) -> Outcome:
    """The seller settles a PENDING transaction (the buyer cannot: 403)."""
    locked = await _claim_and_lock(conn, transaction_id, key, completion_proof)
    if isinstance(locked, StoredResponse):
        return _replayed(locked)
    if _role(locked, caller) != "seller":
        raise Forbidden("only the seller completes a transaction")
    reply = Reply(200, key)
    await escrow.settle_locked(
        conn,
        network_key,
        locked,
        fee_rate=fee_rate,
        amount=amount,
        completion_proof=completion_proof,
        actor="seller",
        reply=reply,
    )
    return Outcome(reply.status_code, reply.body)


async def fail(
    conn: Connection,
    transaction_id: UUID,
    *,
    caller: str,
    reason: str | None = None,
    key: RequestKey | None = None,
) -> Outcome:
    """Either party fails a PENDING transaction; the hold returns to the buyer."""
    locked = await _claim_and_lock(conn, transaction_id, key)
    if isinstance(locked, StoredResponse):
        return _replayed(locked)
    role = _role(locked, caller)
    reply = Reply(200, key)
    await escrow.release_locked(
        conn, locked, reason=reason or f"failed by the {role}", actor=role, reply=reply
    )
    return Outcome(reply.status_code, reply.body)


async def refund(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    transaction_id: UUID,
    *,
    caller: str | None,
    window: timedelta,
    reason: str | None = None,
    key: RequestKey | None = None,
) -> Outcome:
    """The seller or an operator (``caller`` None) refunds a COMPLETED transaction within
    ``window`` of its completion (409 ``REFUND_WINDOW_CLOSED`` after)."""
    locked = await _claim_and_lock(conn, transaction_id, key)
    if isinstance(locked, StoredResponse):
        return _replayed(locked)
    role = _role(locked, caller)
    if role == "buyer":
        raise Forbidden("only the seller or an operator refunds a transaction")
    reply = Reply(200, key)
    await escrow.refund_locked(
        conn,
        network_key,
        locked,
        reason=reason or f"refunded by the {role}",
        window=window,
        actor=role,
        reply=reply,
    )
    return Outcome(reply.status_code, reply.body)


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
