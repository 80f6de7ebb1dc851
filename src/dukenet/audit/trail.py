"""Writing audit records: the API other domains call inside their own transactions.

Each call builds the record, signs it with the network key, stores its block (and the
blocks of large inputs/outputs), points the record's path at it and appends its CID to
the Merkle log, all on the caller's connection, so the event and its record commit
together or not at all. It returns the record's CID. Writing a path again (a refund after
completion, a re-registration) keeps history: the new record links to the one before it
through ``previous``.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet.audit import blockstore
from dukenet.audit.codec import Block, Link, encode, make_block, normalize
from dukenet.audit.log import AUDIT_LOCK_NAMESPACE
from dukenet.audit.records import (
    RECORD_VERSION,
    RecordType,
    now_rfc3339,
    rating_path,
    registration_path,
    seal,
    split_registration,
    task_execution_path,
    transaction_path,
    verify_agent_signature,
)
from dukenet.errors import InvalidInput
from dukenet.store.postgres import Connection, translate_errors
from dukenet.store.sql import load_queries

__all__ = [
    "INLINE_LIMIT",
    "Link",
    "first_registration_record",
    "record_rating",
    "record_registration",
    "record_task_execution",
    "record_task_executions",
    "record_transaction",
    "seal_transaction_record",
    "store_value",
]

QUERIES = load_queries("dukenet.audit", "queries.sql")

# Inputs and outputs whose DAG-CBOR form is larger than this become blocks of their own,
# linked from the record; smaller ones stay inline.
INLINE_LIMIT = 1024
_VALUE_FIELDS = ("input", "output", "resolved_input", "actual_input", "actual_output")


async def store_value(conn: Connection, value: Any) -> Link:
    """Store ``value`` as a block of its own and return a link to it (e.g. for a proof)."""
    block = make_block(value)
    await blockstore.put_block(conn, block)
    return Link(block.cid)


async def _inline_or_link(conn: Connection, value: Any) -> Any:
    normalized = normalize(value)
    if isinstance(normalized, dict | list) and len(encode(normalized)) > INLINE_LIMIT:
        return await store_value(conn, value)
    return value


async def _externalize(conn: Connection, item: dict[str, Any]) -> dict[str, Any]:
    result = dict(item)
    for name in _VALUE_FIELDS:
        if result.get(name) is not None:
            result[name] = await _inline_or_link(conn, result[name])
    return result


async def _write(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    record_type: RecordType,
    path: str,
    fields: dict[str, Any],
) -> str:
    """Seal and store one record at ``path``, linking the record it replaces."""
    with translate_errors():
        await conn.execute(QUERIES["lock_path"], AUDIT_LOCK_NAMESPACE, path)
        head = await conn.fetchval(QUERIES["resolve_path"], path, column=1)
        block = _sealed(network_key, record_type, path, fields, head)
        await conn.fetchval(QUERIES["store_record"], block.cid, block.data, list(block.links), path)
    return block.cid


def _sealed(
    network_key: Ed25519PrivateKey,
    record_type: RecordType,
    path: str,
    fields: dict[str, Any],
    head: str | None,
) -> Block:
    """The signed record at ``path``, linking ``head`` (the record it replaces) if any."""
    record: dict[str, Any] = {
        "type": record_type.value,
        "version": RECORD_VERSION,
        "timestamp": now_rfc3339(),
        "path": path,
        **fields,
    }
    if head is not None:
        record["previous"] = Link(head)
    return seal(network_key, record)


def _required_id(value: dict[str, Any], name: str, field: str) -> str:
    identifier = value.get(name)
    if identifier is None or str(identifier) == "":
        raise InvalidInput(f"{field} needs {name}", field=f"/{name}")
    return str(identifier)


async def record_registration(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    *,
    agent_id: str,
    registration: dict[str, Any],
) -> str:
    """Record an agent registration at ``/dukenet/agents/{agent_id}/registration``.

    ``registration`` is the signed payload exactly as received (its ``signature`` must
    verify with its ``public_key``); it is kept verbatim so anyone can re-check it.
    """
    verify_agent_signature(registration)
    return await _write(
        conn,
        network_key,
        RecordType.REGISTRATION,
        registration_path(agent_id),
        _registration_fields(agent_id, registration),
    )


def first_registration_record(
    network_key: Ed25519PrivateKey, *, agent_id: str, registration: dict[str, Any]
) -> tuple[str, Block]:
    """The sealed record of a key's first registration and its path, built without the
    database, for a caller that stores it in the same statement as the agent itself
    (``registry.agents.register``: a key registers once, so the path is new and the record
    has no ``previous``). The caller has verified the payload's signature. The statement
    must write what ``store_record`` writes: the block, the path (a plain INSERT, so an
    unexpected existing path fails instead of losing history) and the log queue entry.
    """
    path = registration_path(agent_id)
    fields = _registration_fields(agent_id, registration)
    return path, _sealed(network_key, RecordType.REGISTRATION, path, fields, None)


def _registration_fields(agent_id: str, registration: dict[str, Any]) -> dict[str, Any]:
    return {
        "agent_id": agent_id,
        "public_key": registration["public_key"],
        "registered_at": registration.get("timestamp"),
        "initial_metadata": split_registration(registration),
        "registration": registration,
    }


async def record_transaction(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    *,
    transaction: dict[str, Any],
    status_history: list[dict[str, Any]],
    payment_proof: dict[str, Any],
    completion_proof: dict[str, Any] | None,
) -> str:
    """Record a transaction (parties, amounts, fee, status history, payment and completion
    proofs) at ``/dukenet/transactions/{transaction_id}``."""
    path, fields = _transaction_fields(transaction, status_history, payment_proof, completion_proof)
    return await _write(conn, network_key, RecordType.TRANSACTION, path, fields)


def seal_transaction_record(
    network_key: Ed25519PrivateKey,
    *,
    head: str | None,
    transaction: dict[str, Any],
    status_history: list[dict[str, Any]],
    payment_proof: dict[str, Any],
    completion_proof: dict[str, Any] | None,
) -> tuple[str, Block]:
    """``record_transaction``'s record and path, built without the database, for a caller
    that holds the transaction's row lock and stores the block in its own statement
    (``market.escrow``: a transaction changes status only under that lock, so its path has
    no other writer and ``head``, the path's current CID, can be read with the lock instead
    of under the path lock). The statement must write what ``store_record`` writes: the
    block, the path (replacing its CID) and the log queue entry."""
    path, fields = _transaction_fields(transaction, status_history, payment_proof, completion_proof)
    return path, _sealed(network_key, RecordType.TRANSACTION, path, fields, head)


def _transaction_fields(
    transaction: dict[str, Any],
    status_history: list[dict[str, Any]],
    payment_proof: dict[str, Any],
    completion_proof: dict[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    transaction_id = _required_id(transaction, "transaction_id", "transaction")
    fields = {
        "transaction_id": transaction_id,
        "transaction": transaction,
        "status_history": status_history,
        "payment_proof": payment_proof,
        "completion_proof": completion_proof,
    }
    return transaction_path(transaction_id), fields


async def record_task_execution(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    *,
    task: dict[str, Any],
    subtasks: list[dict[str, Any]],
    log: list[dict[str, Any]],
) -> str:
    """Record a task's execution (the task, its subtasks with assigned agents and the full
    execution log) at ``/dukenet/tasks/{task_id}/execution``. Inputs and outputs larger
    than ``INLINE_LIMIT`` bytes are stored as their own blocks and linked. The caller holds
    the task's row locked (see ``record_task_executions``)."""
    cids = await record_task_executions(conn, network_key, [(task, subtasks, log)])
    return cids[0]


async def record_task_executions(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    executions: list[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]],
) -> list[str]:
    """``record_task_execution`` for several tasks (``(task, subtasks, log)`` each) in two
    statements however many there are; returns their CIDs in order.

    The caller holds the tasks' rows locked (``FOR UPDATE``): a task's execution path is
    written only by the transaction that ends the task, under that lock, so the path has no
    other writer and needs no path lock (as ``seal_transaction_record``)."""
    paths: list[str] = []
    fields: list[dict[str, Any]] = []
    for task, subtasks, log in executions:
        task_id = _required_id(task, "task_id", "task")
        paths.append(task_execution_path(task_id))
        fields.append(
            {
                "task_id": task_id,
                "task": await _externalize(conn, task),
                "subtasks": [await _externalize(conn, subtask) for subtask in subtasks],
                "log": log,
            }
        )
    if not paths:
        return []
    with translate_errors():
        heads = {row["path"]: row["cid"] for row in await conn.fetch(QUERIES["heads"], paths)}
        blocks = [
            _sealed(network_key, RecordType.TASK_EXECUTION, path, item, heads.get(path))
            for path, item in zip(paths, fields, strict=True)
        ]
        await conn.execute(
            QUERIES["store_records"],
            [block.cid for block in blocks],
            [block.data for block in blocks],
            [json.dumps(list(block.links)) for block in blocks],
            paths,
        )
    return [block.cid for block in blocks]


async def record_rating(
    conn: Connection,
    network_key: Ed25519PrivateKey,
    *,
    rating: dict[str, Any],
    task_cid: str | None,
) -> str:
    """Record an accepted rating at ``/dukenet/agents/{agent_id}/ratings/{rating_id}``,
    linking the execution record of the rated task (``task_cid``) when it is known."""
    agent_id = _required_id(rating, "agent_id", "rating")
    rating_id = _required_id(rating, "rating_id", "rating")
    fields = {
        "agent_id": agent_id,
        "rating_id": rating_id,
        "rating": rating,
        "task_execution": None if task_cid is None else Link(task_cid),
    }
    return await _write(
        conn, network_key, RecordType.RATING, rating_path(agent_id, rating_id), fields
    )
