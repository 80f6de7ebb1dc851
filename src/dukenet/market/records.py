"""Transactions as dicts and as JSON, and each transaction's audit record.

The record at ``/dukenet/transactions/{id}`` carries the transaction (without the buyer's
private ``metadata``), its status history, the payment proof (every ledger movement of the
transaction with its entries) and the completion proof. It is written through the audit
trail on the caller's connection, before the status change it describes, so both commit
together and the transaction row can carry the record's CID.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet.audit.codec import Block
from dukenet.audit.trail import seal_transaction_record
from dukenet.market.ledger import Posting
from dukenet.market.models import Transaction
from dukenet.store.postgres import Record

TRANSACTION_FIELDS = (
    "transaction_id",
    "buyer_agent_id",
    "seller_agent_id",
    "transaction_type",
    "item_id",
    "amount",
    "held_amount",
    "currency",
    "platform_fee",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
    "completed_at",
    "refunded_at",
    "payment_method",
    "payment_reference",
    "metadata",
    "subtask_id",
    "completion_proof",
    "audit_cid",
)
# Parts of a transaction left out of its public audit record: the buyer's free-form
# metadata stays private, and the record's own CID cannot be inside it.
_UNRECORDED = ("metadata", "audit_cid")


def transaction_dict(row: Record) -> dict[str, Any]:
    """A transaction row as the dict every caller gets (column names as keys)."""
    return {name: row[name] for name in TRANSACTION_FIELDS}


def transaction_json(transaction: dict[str, Any]) -> str:
    """The API's JSON of a transaction dict (money as decimal strings)."""
    return Transaction.model_validate(transaction).model_dump_json()


def as_created(row: Record) -> dict[str, Any]:
    """A transaction as its purchase returned it, from its row at any later time: every
    column a change writes back at its value from creation (a purchase's idempotent
    repeat answers with this rather than with a stored copy)."""
    created = transaction_dict(row)
    created.update(
        status="PENDING",
        amount=row["held_amount"],
        platform_fee=None,
        status_reason=None,
        updated_at=row["created_at"],
        completed_at=None,
        refunded_at=None,
        completion_proof=None,
        audit_cid=None,
    )
    return created


def changed_transaction(
    locked: Record,
    *,
    status: str,
    amount: Decimal,
    fee: Decimal | None,
    reason: str | None,
    completion_proof: dict[str, Any] | None,
    audit_cid: str | None,
) -> dict[str, Any]:
    """A locked transaction as the ``transition`` query leaves it (the row it would return),
    from the ``lock_transaction`` row: a proof or CID of None keeps the stored one."""
    now: datetime = locked["now"]
    changed = transaction_dict(locked)
    changed.update(status=status, amount=amount, platform_fee=fee, status_reason=reason)
    changed["updated_at"] = now
    if status == "COMPLETED":
        changed["completed_at"] = now
    if status == "REFUNDED":
        changed["refunded_at"] = now
    if completion_proof is not None:
        changed["completion_proof"] = completion_proof
    if audit_cid is not None:
        changed["audit_cid"] = audit_cid
    return changed


def seal_audit_record(
    network_key: Ed25519PrivateKey,
    locked: Record,
    changed: dict[str, Any],
    *,
    movement: str,
    postings: list[Posting],
    actor: str,
    completion_proof: dict[str, Any] | None,
) -> tuple[str, Block]:
    """The audit record of a locked transaction as it is about to become (``changed``, from
    ``changed_transaction``), and its path; the caller stores it in the statement that
    makes the change (``transition``), so both commit together.

    ``locked`` is the row of the ``lock_transaction`` query: the transaction with its
    clock (``now``), next movement id, status history, ledger movements and the CID now at
    its audit path (``audit_head``, which the new record links as ``previous``)."""
    now: datetime = locked["now"]
    status, reason, amount = changed["status"], changed["status_reason"], changed["amount"]
    final = dict(changed)
    if status == "COMPLETED":
        final["completion_proof"] = completion_proof  # as given, not as stored
    for name in _UNRECORDED:
        final.pop(name)
    history = [
        {"status": s, "actor": a, "reason": r, "changed_at": at}
        for s, a, r, at in locked["history"]
    ]
    history.append({"status": status, "actor": actor, "reason": reason, "changed_at": now})
    movements = [
        {
            "movement_id": movement_id,
            "kind": kind,
            "currency": currency,
            "amount": total,
            "created_at": created_at,
            "entries": [
                {"account": account, "agent_id": agent_id, "amount": value}
                for account, agent_id, value in entries
            ],
        }
        for movement_id, kind, currency, total, created_at, entries in locked["movements"]
    ]
    movements.append(
        {
            "movement_id": locked["next_movement_id"],
            "kind": movement,
            "currency": final["currency"],
            "amount": amount,
            "created_at": now,
            "entries": [
                {"account": p.account, "agent_id": p.agent_id, "amount": p.amount}
                for p in postings
                if p.amount != 0
            ],
        }
    )
    payment_proof = {
        "payment_method": final["payment_method"],
        "payment_reference": final["payment_reference"],
        "ledger": movements,
    }
    return seal_transaction_record(
        network_key,
        head=locked["audit_head"],
        transaction=final,
        status_history=history,
        payment_proof=payment_proof,
        completion_proof=final["completion_proof"],
    )
