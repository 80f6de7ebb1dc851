"""Agents: signed registration, lookup (cached), listing, profile updates, tags,
deregistration, and operator suspension.

Every state change is one PostgreSQL transaction; the ``agent:{id}`` cache entry is
invalidated after the commit (see ``dukenet.registry.cache`` for why that is race-free).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet import crypto
from dukenet.audit.trail import first_registration_record
from dukenet.errors import InvalidInput, InvalidSignature, InvalidState
from dukenet.registry import capabilities
from dukenet.registry.cache import AgentCache
from dukenet.registry.errors import AgentExists, AgentNotFound
from dukenet.registry.inputs import AgentUpdate, Registration, parse, timestamp_skew
from dukenet.registry.models import Agent, AgentPage, SignedRegistration, Tags
from dukenet.store.cache import Cache
from dukenet.store.postgres import Connection, Database, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.registry", "queries.sql")
TIMESTAMP_WINDOW_SECONDS = 300
_DAY = 86_400.0


def uptime_percent(up_seconds: float, window_seconds: float) -> float:
    """Covered share of a window in percent (two decimals); a window of no length is 100 %."""
    if window_seconds <= 0:
        return 100.0
    return round(min(100.0, max(0.0, 100.0 * up_seconds / window_seconds)), 2)


def agent_from_row(row: Record) -> Agent:
    """The API resource for a ``get_agent``/``list_agents`` row."""
    measured: datetime = row["measured_at"]
    created: datetime = row["created_at"]
    lifetime = max(0.0, (measured - created).total_seconds())
    return Agent(
        agent_id=row["agent_id"],
        public_key=row["public_key"],
        display_name=row["display_name"],
        description=row["description"],
        endpoint_url=row["endpoint_url"],
        status=row["status"],
        status_reason=row["status_reason"],
        created_at=created,
        updated_at=row["updated_at"],
        last_heartbeat=row["last_heartbeat"],
        owner_address=row["owner_address"],
        avatar_url=row["avatar_url"],
        trust_score=float(row["trust_score"]),
        version=row["version"],
        metadata=row["metadata"],
        tags=list(row["tags"]),
        uptime_30d=uptime_percent(row["up_30d"], min(lifetime, 30 * _DAY)),
        uptime_90d=uptime_percent(row["up_90d"], min(lifetime, 90 * _DAY)),
        uptime_all_time=uptime_percent(row["up_all"], lifetime),
        audit_cid=row["audit_cid"],
    )


async def _fetch_agent(conn: Connection, agent_id: str) -> Agent:
    row = await conn.fetchrow(QUERIES["get_agent"], agent_id)
    if row is None:
        raise AgentNotFound(f"no registered agent {agent_id}")
    return agent_from_row(row)


async def _lock_agent(conn: Connection, agent_id: str) -> Record:
    row = await conn.fetchrow(QUERIES["lock_agent"], agent_id)
    if row is None:
        raise AgentNotFound(f"no registered agent {agent_id}")
    return row


def verify_registration(
    payload: dict[str, Any], now: datetime | None = None, *, parsed: Registration | None = None
) -> Registration:
    """Parse a registration and check its signature and timestamp; return the parsed form.
    ``parsed``: the payload already validated as a ``Registration`` (the API's body)."""
    registration = parsed if parsed is not None else parse(Registration, payload)
    agent_id = crypto.agent_id_for(registration.public_key)
    if registration.agent_id is not None and registration.agent_id != agent_id:
        raise InvalidInput("agent_id is not sha256 of the public key", field="/agent_id")
    seen: set[tuple[str, str]] = set()
    for index, spec in enumerate(registration.capabilities):
        capabilities.check_spec(spec, f"/capabilities/{index}")
        if (spec.name, spec.version) in seen:
            raise InvalidInput(
                "the same capability name and version appear twice", field=f"/capabilities/{index}"
            )
        seen.add((spec.name, spec.version))
    try:
        crypto.verify_payload(crypto.load_public_key(registration.public_key), payload)
    except (rfc8785.CanonicalizationError, ValueError) as exc:
        raise InvalidInput(f"payload cannot be canonicalized (RFC 8785): {exc}", field="") from exc
    skew = timestamp_skew(registration.timestamp, now or datetime.now(UTC))
    if skew > TIMESTAMP_WINDOW_SECONDS:
        raise InvalidSignature(
            f"signed timestamp is {skew:.0f} s from server time "
            f"(allowed ±{TIMESTAMP_WINDOW_SECONDS} s)"
        )
    return registration


async def register(
    db: Database,
    cache: Cache,
    payload: dict[str, Any],
    *,
    network_key: Ed25519PrivateKey,
    heartbeat_ttl: int,
    parsed: Registration | None = None,
) -> Agent:
    """Register an agent from its signed payload; 409 ``AGENT_EXISTS`` if the key is known.
    ``parsed``: the payload already validated as a ``Registration``, if the caller has it."""
    registration = verify_registration(payload, parsed=parsed)
    agent_id = crypto.agent_id_for(registration.public_key)
    tags = sorted(registration.tags)
    # The signed registration becomes the agent's audit record, written by the same
    # statement as the agent (one round trip, autocommitted, when there are no
    # capabilities; otherwise one transaction with them).
    path, record = first_registration_record(network_key, agent_id=agent_id, registration=payload)
    audit_cid = record.cid
    async with db.transaction() if registration.capabilities else db.acquire() as conn:
        row = await conn.fetchrow(
            QUERIES["register_agent"],
            agent_id,
            registration.public_key,
            registration.display_name,
            registration.description,
            registration.endpoint_url,
            registration.owner_address,
            registration.avatar_url,
            registration.version,
            registration.metadata,
            payload,
            float(heartbeat_ttl),
            tags,
            audit_cid,
            record.data,
            list(record.links),
            path,
        )
        if row is None:
            raise AgentExists(
                f"agent {agent_id} is already registered (keys are never reused)",
                field="/public_key",
            )
        await capabilities.insert_specs(conn, agent_id, registration.capabilities)
    if registration.capabilities:
        # Search results are capabilities: only these change what a search returns. A new
        # agent has no ``agent:{id}`` entry to drop (a reader that missed around the commit
        # stores nothing if it found no agent, else this first state), so a registration
        # without capabilities invalidates nothing.
        await AgentCache.of(cache).invalidate(agent_id)
    return Agent(
        agent_id=agent_id,
        public_key=registration.public_key,
        display_name=registration.display_name,
        description=registration.description,
        endpoint_url=registration.endpoint_url,
        status="ACTIVE",
        status_reason=None,
        created_at=row["created_at"],
        updated_at=row["created_at"],
        last_heartbeat=row["created_at"],
        owner_address=registration.owner_address,
        avatar_url=registration.avatar_url,
        trust_score=float(row["trust_score"]),
        version=registration.version,
        metadata=registration.metadata,
        tags=tags,
        uptime_30d=100.0,
        uptime_90d=100.0,
        uptime_all_time=100.0,
        audit_cid=audit_cid,
    )


async def agent_json(
    db: Database, cache: Cache, agent_id: str, *, prefetched: bytes | None = None
) -> bytes:
    """The agent resource as JSON bytes, from ``agent:{id}`` or PostgreSQL (then cached).

    ``prefetched``: the raw ``agent:{id}`` value if the caller already read it."""

    async def load() -> bytes | None:
        async with db.acquire() as conn:
            row = await conn.fetchrow(QUERIES["get_agent"], agent_id)
        return None if row is None else agent_from_row(row).model_dump_json().encode()

    found = await AgentCache.of(cache).read(agent_id, load, prefetched=prefetched)
    if found is None:
        raise AgentNotFound(f"no registered agent {agent_id}")
    return found


async def get_agent(db: Database, cache: Cache, agent_id: str) -> Agent:
    """The agent resource (cached)."""
    return Agent.model_validate_json(await agent_json(db, cache, agent_id))


async def get_registration(db: Database, agent_id: str) -> SignedRegistration:
    """The signed registration payload as received."""
    async with db.read() as conn:
        row = await conn.fetchrow(QUERIES["get_registration"], agent_id)
    if row is None:
        raise AgentNotFound(f"no agent {agent_id}")
    return SignedRegistration(
        agent_id=row["agent_id"],
        payload=row["payload"],
        received_at=row["received_at"],
        audit_cid=row["audit_cid"],
    )


def _encode_cursor(created_at: datetime, agent_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), agent_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, agent_id = json.loads(raw)
        return datetime.fromisoformat(created), str(agent_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


async def list_agents(
    db: Database,
    *,
    status: str | None = None,
    tags: list[str] | None = None,
    min_trust: Decimal | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> AgentPage:
    """Registered agents, newest first, filtered; keyset-paginated."""
    after = _decode_cursor(cursor) if cursor else (None, None)
    wanted = sorted({t.strip().lower() for t in tags}) if tags else None
    async with db.read() as conn:
        rows = await conn.fetch(
            QUERIES["list_agents"], status, wanted, min_trust, after[0], after[1], limit + 1
        )
    items = [agent_from_row(row) for row in rows[:limit]]
    next_cursor = (
        _encode_cursor(items[-1].created_at, items[-1].agent_id) if len(rows) > limit else None
    )
    return AgentPage(items=items, next_cursor=next_cursor)


async def update_agent(db: Database, cache: Cache, agent_id: str, update: AgentUpdate) -> Agent:
    """Apply a partial profile update; fields sent as ``null`` are cleared."""
    fields = sorted(update.model_fields_set)
    if "display_name" in fields and update.display_name is None:
        raise InvalidInput("display_name cannot be cleared", field="/display_name")
    async with db.transaction() as conn:
        await _lock_agent(conn, agent_id)
        await conn.execute(
            QUERIES["update_agent"],
            agent_id,
            update.display_name,
            update.description,
            update.endpoint_url,
            update.owner_address,
            update.avatar_url,
            update.version,
            update.metadata,
            fields,
        )
        agent = await _fetch_agent(conn, agent_id)
    await AgentCache.of(cache).invalidate(agent_id)
    return agent


async def set_tags(db: Database, cache: Cache, agent_id: str, tags: list[str]) -> Tags:
    """Replace the agent's tag set."""
    wanted = sorted(set(tags))
    async with db.transaction() as conn:
        await _lock_agent(conn, agent_id)
        await conn.execute(QUERIES["delete_agent_tags"], agent_id)
        await conn.execute(QUERIES["insert_tags"], agent_id, wanted)
        await conn.execute(QUERIES["touch_agent"], agent_id)
    await AgentCache.of(cache).invalidate(agent_id)
    return Tags(agent_id=agent_id, tags=wanted)


async def deregister(db: Database, cache: Cache, agent_id: str) -> None:
    """Deregister: capabilities and tags go; the agent row, its history and records stay."""
    async with db.transaction() as conn:
        row = await _lock_agent(conn, agent_id)
        await conn.execute(QUERIES["delete_agent_capabilities"], agent_id)
        await conn.execute(QUERIES["delete_agent_tags"], agent_id)
        await conn.execute(QUERIES["deregister_agent"], agent_id)
        await conn.execute(QUERIES["close_uptime"], agent_id)
        await conn.execute(
            QUERIES["record_status_change"],
            agent_id,
            row["status"],
            "INACTIVE",
            "agent",
            "DEREGISTERED",
            None,
        )
    await AgentCache.of(cache).invalidate(agent_id)


async def suspend(db: Database, cache: Cache, agent_id: str, reason: str) -> Agent:
    """Operator: suspend an agent (it can no longer log in or be selected)."""
    async with db.transaction() as conn:
        row = await _lock_agent(conn, agent_id)
        if row["status"] == "SUSPENDED":
            raise InvalidState("the agent is already suspended")
        await conn.execute(QUERIES["set_status"], agent_id, "SUSPENDED", reason)
        await conn.execute(
            QUERIES["record_status_change"],
            agent_id,
            row["status"],
            "SUSPENDED",
            "operator",
            "SUSPENDED",
            reason,
        )
        agent = await _fetch_agent(conn, agent_id)
    await AgentCache.of(cache).invalidate(agent_id)
    return agent


async def reinstate(
    db: Database, cache: Cache, agent_id: str, reason: str, *, heartbeat_ttl: int
) -> Agent:
    """Operator: lift a suspension; the agent is ACTIVE if its heartbeat is fresh, else INACTIVE."""
    async with db.transaction() as conn:
        row = await _lock_agent(conn, agent_id)
        if row["status"] != "SUSPENDED":
            raise InvalidState("the agent is not suspended")
        fresh = row["last_heartbeat"] is not None and row["last_heartbeat"] > row[
            "now"
        ] - timedelta(seconds=heartbeat_ttl)
        status = "ACTIVE" if fresh else "INACTIVE"
        await conn.execute(QUERIES["set_status"], agent_id, status, None)
        await conn.execute(
            QUERIES["record_status_change"],
            agent_id,
            "SUSPENDED",
            status,
            "operator",
            "REINSTATED",
            reason,
        )
        agent = await _fetch_agent(conn, agent_id)
    await AgentCache.of(cache).invalidate(agent_id)
    return agent


async def registered_status(db: Database, agent_id: str) -> str:
    """The status of a registered agent; ``AgentNotFound`` otherwise."""
    async with db.acquire() as conn:
        status: str | None = await conn.fetchval(QUERIES["agent_status"], agent_id)
    if status is None:
        raise AgentNotFound(f"no registered agent {agent_id}")
    return status


async def public_key_and_status(db: Database, agent_id: str) -> tuple[str, str]:
    """A registered agent's public key (base64) and status; ``AgentNotFound`` otherwise."""
    async with db.acquire() as conn:
        row = await conn.fetchrow(QUERIES["agent_public_key"], agent_id)
    if row is None:
        raise AgentNotFound(f"no registered agent {agent_id}")
    return row["public_key"], row["status"]
