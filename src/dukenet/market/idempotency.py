"""Idempotency keys for money-moving requests: a repeat gets the original response.

The key is claimed with an ``INSERT ... ON CONFLICT DO NOTHING`` in the same database
transaction as the money movement, so two requests racing with one key serialize on the
unique index: the second waits for the first to commit and then replays its stored
response (or, if the first failed and rolled back, runs itself). A key sent again with a
different request is 422 ``IDEMPOTENCY_KEY_REUSED``. Only successful responses are stored:
a failed request moved nothing, so running its repeat again is safe.

``claim`` and ``remember`` are the two steps for any change; the transaction routes fold
both into the statements that move the money (see ``escrow`` and the ``hold``,
``lock_transaction`` and ``transition`` queries), and a purchase stores no body at all: its
response is the transaction as created, which later changes never alter.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from dukenet.errors import Conflict, InvalidInput
from dukenet.market.errors import IdempotencyKeyReused
from dukenet.store.postgres import Connection
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.market", "queries.sql")
HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    """The response first given to a key: its status and exact JSON body."""

    status_code: int
    body: str


@dataclass(frozen=True)
class RequestKey:
    """A request's ``Idempotency-Key``: whose keys (``scope``), the key, and the request's
    ``fingerprint`` that a repeat must match."""

    scope: str
    key: str
    fingerprint: str


@dataclass
class Reply:
    """The answer to a request that changes a transaction, filled in by the change:
    ``escrow`` renders ``body`` from the transaction as it leaves it and, with a
    ``request`` key, stores it in the statement that makes the change."""

    status_code: int
    request: RequestKey | None
    body: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a money-moving request answers: status, JSON body, and whether it is a replay."""

    status_code: int
    body: str
    replayed: bool = False


def check_key(key: str) -> str:
    """A key of 1-255 printable ASCII characters (a UUID is the usual choice)."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise InvalidInput(
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
            extra={"header": HEADER},
        )
    return key


def fingerprint(method: str, path: str, payload: Any) -> str:
    """sha256 of the normalized request (method, path and parsed body), in hex."""
    canonical = json.dumps(
        {"method": method, "path": path, "body": payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    conn: Connection, scope: str, key: str, request_fingerprint: str
) -> StoredResponse | None:
    """Claim ``key`` for this request (``None``: go ahead) or return the stored response."""
    for _ in range(2):
        claimed = await conn.fetchval(
            QUERIES["claim_idempotency_key"], scope, key, request_fingerprint
        )
        if claimed is not None:
            return None
        stored = await stored_response(conn, RequestKey(scope, key, request_fingerprint))
        if stored is not None:
            return stored
        # purged between the two statements: claim it again
    raise unclaimable(key)


def unclaimable(key: str) -> Conflict:
    """409 for a key that was taken and gone again twice in a row (purged meanwhile)."""
    return Conflict(f"could not claim {HEADER} {key!r}; retry")


async def stored_response(conn: Connection, request: RequestKey) -> StoredResponse | None:
    """The response stored for a key this request could not claim; ``None`` if the record
    is gone (purged). 422 for another request's key, 409 while its request is in flight.
    A purchase's record has a status but no body (``StoredResponse.body`` is empty then)."""
    row = await conn.fetchrow(QUERIES["stored_response"], request.scope, request.key)
    if row is None:
        return None
    if row["fingerprint"] != request.fingerprint:
        raise IdempotencyKeyReused(
            f"{HEADER} {request.key!r} was already used with a different request",
            extra={"header": HEADER},
        )
    if row["status_code"] is None:
        raise Conflict(f"a request with {HEADER} {request.key!r} is still in progress")
    return StoredResponse(row["status_code"], row["response"] or "")


async def remember(conn: Connection, scope: str, key: str, status_code: int, body: str) -> None:
    """Store the response of the request that claimed ``key`` (before its commit)."""
    await conn.execute(QUERIES["remember_response"], scope, key, status_code, body)


async def purge(conn: Connection, older_than_seconds: float) -> int:
    """Forget keys older than the retention period; returns how many."""
    status = await conn.execute(QUERIES["purge_idempotency_records"], older_than_seconds)
    return int(status.split()[-1])
