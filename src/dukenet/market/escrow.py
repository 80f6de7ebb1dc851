"""Escrow: hold, settle, release and refund a transaction's money.

This is the internal API other domains (orchestration) call. Every function runs on the
caller's connection inside the caller's open transaction and never commits: the money
moves together with whatever else the caller changes, or not at all.

    PENDING --settle--> COMPLETED --refund--> REFUNDED
       \\--release--> FAILED

Illegal transitions raise ``InvalidState`` (409 ``INVALID_STATE``). Reaching COMPLETED or
REFUNDED writes the transaction's audit record at ``/dukenet/transactions/{id}`` in the
same transaction. Returned dicts hold Python values (``Decimal``, ``datetime``, ``UUID``).

The API's requests carry an ``Idempotency-Key``: ``create_hold`` and ``claim_and_lock``
claim it in the statement that holds or locks, and a change given a ``Reply`` stores the
request's response in the statement that moves the money, so a change costs no round trip
for its key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet.audit.records import transaction_path
from dukenet.errors import InvalidInput, InvalidState, PaymentRequired
from dukenet.market.errors import (
    AgentNotFound,
    RefundWindowClosed,
    SellerUnavailable,
    TransactionNotFound,
)
from dukenet.market.fees import (
    check_amount,
    check_currency,
    check_transaction_type,
    platform_fee,
)
from dukenet.market.idempotency import Reply, RequestKey, stored_response
from dukenet.market.ledger import ZERO, Posting, posting_arrays
from dukenet.market.records import (
    changed_transaction,
    seal_audit_record,
    transaction_json,
)
from dukenet.store.postgres import Connection, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.market", "queries.sql")


@dataclass(frozen=True)
class Locked:
    """A transaction row locked ``FOR UPDATE`` in the caller's transaction."""

    row: Record

    @property
    def transaction_id(self) -> UUID:
        """The transaction's id."""
        value: UUID = self.row["transaction_id"]
        return value

    @property
    def status(self) -> str:
        """Its status when it was locked."""
        value: str = self.row["status"]
        return value

    @property
    def buyer(self) -> str:
        """The buyer's agent id."""
        value: str = self.row["buyer_agent_id"]
        return value

    @property
    def seller(self) -> str:
        """The seller's agent id."""
        value: str = self.row["seller_agent_id"]
        return value

    @property
    def held(self) -> Decimal:
        """The amount held from the buyer when it was created."""
        value: Decimal = self.row["held_amount"] or self.row["amount"]
        return value

    @property
    def now(self) -> datetime:
        """The database clock at the lock (every timestamp of the change uses it)."""
        value: datetime = self.row["now"]
        return value


async def lock_transaction(conn: Connection, transaction_id: UUID) -> Locked:
    """Lock a transaction for a state change (404 ``TRANSACTION_NOT_FOUND`` if unknown)."""
    locked = await claim_and_lock(conn, transaction_id, None)
    assert locked is not None  # without a key there is nothing to refuse
    return locked


async def claim_and_lock(
    conn: Connection,
    transaction_id: UUID,
    request: RequestKey | None,
    *,
    proof: dict[str, Any] | None = None,
) -> Locked | None:
    """Claim the request's ``Idempotency-Key`` and lock the transaction, in one statement;
    ``None`` when the key was already used (the caller replays, see
    ``idempotency.stored_response``). ``proof`` comes back as ``row["proof"]`` the way the
    database stores it."""
    claim = (request.scope, request.key, request.fingerprint) if request else (None,) * 3
    path = transaction_path(str(transaction_id))
    row = await conn.fetchrow(QUERIES["lock_transaction"], transaction_id, *claim, proof, path)
    assert row is not None  # the query always returns one row
    if not row["claimed"]:
        return None
    if row["transaction_id"] is None:
        raise TransactionNotFound(f"no transaction {transaction_id}")
    history = row["history"]
    if history and history[-1][0] != row["status"]:
        # The lock waited for a change that committed after this statement's snapshot:
        # read history and movements again (the lock and the key are ours now).
        row = await conn.fetchrow(
            QUERIES["lock_transaction"], transaction_id, None, None, None, proof, path
        )
        assert row is not None
    return Locked(row)


def _require(locked: Locked, status: str, action: str) -> None:
    if locked.status != status:
        raise InvalidState(
            f"transaction {locked.transaction_id} is {locked.status}: only a {status} "
            f"transaction can be {action}",
            extra={"status": locked.status},
        )


def _check_text(value: str | None, limit: int, field: str) -> None:
    if value is not None and len(value) > limit:
        raise InvalidInput(f"{field[1:]} must be at most {limit} characters", field=field)


async def create_hold(
    conn: Connection,
    *,
    buyer_agent_id: str,
    seller_agent_id: str,
    amount: Decimal,
    currency: str,
    transaction_type: str = "SKILL_RENTAL",
    item_id: str | None = None,
    subtask_id: UUID | None = None,
    payment_method: str = "escrow",
    metadata: dict[str, Any] | None = None,
    request: RequestKey | None = None,
    status_code: int = 201,
    actor: str = "system",
    check_seller: bool = False,
) -> Record | None:
    """``hold`` returning the whole new transaction row (for the API). With
    ``check_seller``, 404 ``AGENT_NOT_FOUND`` / 409 ``SELLER_UNAVAILABLE`` for a seller that
    is unknown, suspended or deregistered (checked in the same statement). With a
    ``request`` key, the key is claimed (its record keeps ``status_code``) by the same
    statement; ``None`` when it was already used (the caller replays)."""
    amount = check_amount(amount)
    currency = check_currency(currency)
    check_transaction_type(transaction_type)
    if buyer_agent_id == seller_agent_id:
        raise InvalidInput("an agent cannot buy from itself", field="/seller_agent_id")
    _check_text(item_id, 100, "/item_id")
    _check_text(payment_method, 50, "/payment_method")
    row = await conn.fetchrow(
        QUERIES["hold"],
        buyer_agent_id,
        seller_agent_id,
        transaction_type,
        item_id,
        amount,
        currency,
        payment_method,
        metadata,
        subtask_id,
        request.key if request else None,
        actor,
        check_seller,
        request.scope if request else None,
        request.fingerprint if request else None,
        status_code,
    )
    if row is None:
        # Nothing was written. A used key is answered before any other refusal, as if
        # it had been claimed first.
        if request is not None and await stored_response(conn, request) is not None:
            return None
        if check_seller:
            await _check_seller(conn, seller_agent_id)
        await _insufficient_funds(conn, buyer_agent_id, amount, currency)
    return row


async def _check_seller(conn: Connection, seller: str) -> None:
    """404 for an unknown seller, 409 ``SELLER_UNAVAILABLE`` for a suspended or gone one."""
    field = "/seller_agent_id"
    agent = await conn.fetchrow(QUERIES["agent_status"], seller)
    if agent is None:
        raise AgentNotFound(f"no registered agent {seller}", field=field)
    if agent["deregistered_at"] is not None or agent["status"] == "SUSPENDED":
        reason = "deregistered" if agent["deregistered_at"] is not None else "suspended"
        raise SellerUnavailable(f"seller {seller} is {reason}", field=field)


async def _insufficient_funds(
    conn: Connection, buyer: str, amount: Decimal, currency: str
) -> NoReturn:
    available = await conn.fetchval(QUERIES["available_balance"], buyer, currency)
    available = available if available is not None else ZERO
    raise PaymentRequired(
        f"the buyer's available balance of {available} {currency} does not cover {amount}",
        field="/amount",
        extra={"available": str(available), "required": str(amount), "currency": currency},
    )


async def hold(
    conn: Connection,
    *,
    buyer_agent_id: str,
    seller_agent_id: str,
    amount: Decimal,
    currency: str,
    transaction_type: str = "SKILL_RENTAL",
    item_id: str | None = None,
    subtask_id: UUID | None = None,
    payment_method: str = "escrow",
    metadata: dict[str, Any] | None = None,
) -> UUID:
    """Create a PENDING transaction and move ``amount`` from the buyer's available balance to
    held; 402 ``INSUFFICIENT_FUNDS`` (nothing written) when the balance does not cover it."""
    created = await create_hold(
        conn,
        buyer_agent_id=buyer_agent_id,
        seller_agent_id=seller_agent_id,
        amount=amount,
        currency=currency,
        transaction_type=transaction_type,
        item_id=item_id,
        subtask_id=subtask_id,
        payment_method=payment_method,
        metadata=metadata,
    )
    assert created is not None  # only a claimed key refuses without raising
    transaction_id: UUID = created["transaction_id"]
    return transaction_id


async def _transition(
    conn: Connection,
    network_key: Ed25519PrivateKey | None,
    locked: Locked,
    *,
    status: str,
    movement: str,
    postings: list[Posting],
    actor: str,
    amount: Decimal,
    fee: Decimal | None,
    reason: str | None = None,
    completion_proof: dict[str, Any] | None = None,
    reply: Reply | None = None,
) -> dict[str, Any]:
    """Write the next status with its ledger movement and history row (and, for COMPLETED
    and REFUNDED, the audit record first, so the row can carry its CID); with ``reply``,
    render the response from the transaction as changed and store it under the request's
    key in the same statement. Returns the transaction as changed."""
    _check_text(reason, 1000, "/reason")
    accounts, agents, amounts = posting_arrays(postings)
    stored_proof = None
    if completion_proof is not None:
        # The proof as the database stores it, which is what the row would return: read
        # back by ``claim_and_lock`` when it was given there, else asked for here.
        stored_proof = locked.row["proof"]
        if stored_proof is None:
            stored_proof = await conn.fetchval(QUERIES["as_stored_json"], completion_proof)
    changed = changed_transaction(
        locked.row,
        status=status,
        amount=amount,
        fee=fee,
        reason=reason,
        completion_proof=stored_proof,
        audit_cid=None,
    )
    audit_cid = audit_path = None
    audit: tuple[bytes, list[str]] = (b"", [])
    if network_key is not None:
        audit_path, block = seal_audit_record(
            network_key,
            locked.row,
            changed,
            movement=movement,
            postings=postings,
            actor=actor,
            completion_proof=completion_proof,
        )
        audit_cid = changed["audit_cid"] = block.cid
        audit = (block.data, list(block.links))
    key = reply.request if reply is not None else None
    if reply is not None:
        reply.body = transaction_json(changed)
    changed_id = await conn.fetchval(
        QUERIES["transition"],
        locked.transaction_id,
        status,
        amount,
        fee,
        completion_proof,
        audit_cid,
        reason,
        movement,
        locked.row["next_movement_id"],
        accounts,
        agents,
        amounts,
        actor,
        locked.now,
        key.scope if key else None,
        key.key if key else None,
        reply.status_code if reply else None,
        reply.body if reply else None,
        *audit,
        audit_path,
    )
    assert changed_id is not None  # the row is locked by this transaction
    return changed


async def settle_locked(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    locked: Locked,
    *,
    fee_rate: Decimal,
    amount: Decimal | None = None,
    completion_proof: dict[str, Any] | None = None,
    actor: str = "system",
    reply: Reply | None = None,
) -> dict[str, Any]:
    """``settle`` for a transaction already locked with ``lock_transaction`` (``reply``: see
    ``_transition``)."""
    _require(locked, "PENDING", "completed")
    held = locked.held
    charged = held if amount is None else check_amount(amount, allow_zero=True)
    if charged > held:
        raise InvalidInput(f"the charged amount {charged} exceeds the {held} held", field="/amount")
    if not Decimal(0) <= fee_rate < 1:
        raise InvalidInput(f"fee rate must be in [0, 1), got {fee_rate}", field="/fee_rate")
    fee = platform_fee(charged, fee_rate)
    postings = [
        Posting("HELD", locked.buyer, -held),
        Posting("AVAILABLE", locked.seller, charged - fee),
        Posting("PLATFORM_FEES", None, fee),
        Posting("AVAILABLE", locked.buyer, held - charged),
    ]
    return await _transition(
        conn,
        network_key,
        locked,
        status="COMPLETED",
        movement="SETTLE",
        postings=postings,
        actor=actor,
        amount=charged,
        fee=fee,
        completion_proof=completion_proof,
        reply=reply,
    )


async def settle(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    transaction_id: UUID,
    *,
    fee_rate: Decimal,
    amount: Decimal | None = None,
    completion_proof: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """PENDING → COMPLETED: the charged ``amount`` (default: all that is held; any rest goes
    back to the buyer) goes to the seller minus ``platform_fee(amount, fee_rate)``, the fee
    to the platform; writes the audit record and returns the transaction."""
    locked = await claim_and_lock(conn, transaction_id, None, proof=completion_proof)
    assert locked is not None  # without a key there is nothing to refuse
    return await settle_locked(
        conn,
        network_key,
        locked,
        fee_rate=fee_rate,
        amount=amount,
        completion_proof=completion_proof,
    )


async def release_locked(
    conn: Connection,
    locked: Locked,
    *,
    reason: str,
    actor: str = "system",
    reply: Reply | None = None,
) -> dict[str, Any]:
    """``release`` for a transaction already locked with ``lock_transaction`` (``reply``:
    see ``_transition``)."""
    _require(locked, "PENDING", "failed")
    held = locked.held
    postings = [Posting("HELD", locked.buyer, -held), Posting("AVAILABLE", locked.buyer, held)]
    return await _transition(
        conn,
        None,
        locked,
        status="FAILED",
        movement="RELEASE",
        postings=postings,
        actor=actor,
        amount=locked.row["amount"],
        fee=None,
        reason=reason,
        reply=reply,
    )


async def release(conn: Connection, transaction_id: UUID, *, reason: str) -> None:
    """PENDING → FAILED: the hold goes back to the buyer's available balance."""
    await release_locked(conn, await lock_transaction(conn, transaction_id), reason=reason)


async def refund_locked(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    locked: Locked,
    *,
    reason: str,
    window: timedelta | None = None,
    actor: str = "system",
    reply: Reply | None = None,
) -> dict[str, Any]:
    """``refund`` for a transaction already locked with ``lock_transaction`` (``reply``: see
    ``_transition``)."""
    _require(locked, "COMPLETED", "refunded")
    completed_at: datetime | None = locked.row["completed_at"]
    if window is not None and completed_at is not None and locked.now - completed_at > window:
        raise RefundWindowClosed(
            f"transaction {locked.transaction_id} completed at {completed_at.isoformat()}; "
            f"refunds are accepted for {int(window.total_seconds())} seconds",
            extra={"status": locked.status, "completed_at": completed_at.isoformat()},
        )
    charged: Decimal = locked.row["amount"]
    fee: Decimal = locked.row["platform_fee"] or ZERO
    currency: str = locked.row["currency"]
    # Both parties' rows, in the ledger's lock order, before checking the seller's funds.
    rows = await conn.fetch(QUERIES["lock_balances"], [locked.buyer, locked.seller], currency)
    seller_available = next(
        (row["available"] for row in rows if row["agent_id"] == locked.seller), ZERO
    )
    if seller_available < charged - fee:
        raise PaymentRequired(
            f"the seller's available balance of {seller_available} {currency} does not cover "
            f"the refund of {charged - fee}",
            extra={
                "available": str(seller_available),
                "required": str(charged - fee),
                "currency": currency,
            },
        )
    postings = [
        Posting("AVAILABLE", locked.seller, fee - charged),
        Posting("PLATFORM_FEES", None, -fee),
        Posting("AVAILABLE", locked.buyer, charged),
    ]
    return await _transition(
        conn,
        network_key,
        locked,
        status="REFUNDED",
        movement="REFUND",
        postings=postings,
        actor=actor,
        amount=charged,
        fee=locked.row["platform_fee"],
        reason=reason,
        reply=reply,  # the completion proof stays (and its record carries it again)
    )


async def refund(
    conn: Connection, network_key: Ed25519PrivateKey, transaction_id: UUID, *, reason: str
) -> None:
    """COMPLETED → REFUNDED: the seller's share and the platform fee go back to the buyer;
    writes the audit record (linking the completion record before it)."""
    locked = await lock_transaction(conn, transaction_id)
    await refund_locked(conn, network_key, locked, reason=reason)
