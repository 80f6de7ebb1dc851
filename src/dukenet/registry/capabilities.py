"""Capabilities: publish, list, update (including deprecation) and remove.

``input_schema`` and ``output_schema`` must be valid JSON Schema Draft 2020-12 (checked
against the metaschema, so a typo such as ``"type": "strng"`` is refused with a pointer
to it). ``capability_id`` is sha256 of ``agent_id:name:version``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import rfc8785
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from dukenet import crypto
from dukenet.errors import Forbidden, InvalidInput, SchemaInvalid
from dukenet.registry.cache import AgentCache
from dukenet.registry.errors import AgentNotFound, CapabilityExists, CapabilityNotFound
from dukenet.registry.inputs import MAX_SCHEMA_BYTES, CapabilitySpec, CapabilityUpdate
from dukenet.registry.models import Capability, CapabilityPage
from dukenet.store.cache import Cache
from dukenet.store.postgres import Connection, Database, Record
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.registry", "queries.sql")


def capability_id_for(agent_id: str, name: str, version: str) -> str:
    """sha256 of ``agent_id:name:version``, lowercase hex."""
    return hashlib.sha256(f"{agent_id}:{name}:{version}".encode()).hexdigest()


def _escape(part: Any) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def check_json_schema(schema: Any, field: str) -> None:
    """Raise ``SchemaInvalid`` (pointing inside the schema) unless it is valid Draft 2020-12."""
    try:
        size = len(crypto.canonical_bytes(schema))
    except rfc8785.CanonicalizationError as exc:
        raise SchemaInvalid(f"schema is not interoperable JSON: {exc}", field=field) from exc
    if size > MAX_SCHEMA_BYTES:
        raise SchemaInvalid(f"schema is {size} bytes; the limit is {MAX_SCHEMA_BYTES}", field=field)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        pointer = field + "".join("/" + _escape(p) for p in exc.absolute_path)
        raise SchemaInvalid(
            f"not a valid JSON Schema (Draft 2020-12): {exc.message}", field=pointer
        ) from exc


def _check_price(pricing_model: str, price: Decimal, field: str) -> None:
    if pricing_model == "free" and price != 0:
        raise InvalidInput("a free capability has price 0", field=f"{field}/price")


def check_spec(spec: CapabilitySpec, field: str = "") -> None:
    """Checks beyond field formats: both schemas, and ``free`` means price 0."""
    check_json_schema(spec.input_schema, f"{field}/input_schema")
    check_json_schema(spec.output_schema, f"{field}/output_schema")
    _check_price(spec.pricing_model, spec.price, field)


def capability_from_row(row: Record) -> Capability:
    """The API resource for a capability row."""
    values = dict(row)
    if values.get("availability_percent") is not None:
        values["availability_percent"] = float(values["availability_percent"])
    return Capability.model_validate(values)


async def insert_specs(
    conn: Connection, agent_id: str, specs: Iterable[CapabilitySpec]
) -> list[Capability]:
    """Insert checked capabilities for ``agent_id`` on the caller's transaction."""
    created: list[Capability] = []
    for spec in specs:
        row = await conn.fetchrow(
            QUERIES["insert_capability"],
            capability_id_for(agent_id, spec.name, spec.version),
            agent_id,
            spec.name,
            spec.description,
            spec.version,
            spec.input_schema,
            spec.output_schema,
            spec.deprecated,
            spec.pricing_model,
            spec.price,
            spec.currency,
            spec.latency_p99_ms,
            spec.availability_percent,
        )
        if row is None:
            raise CapabilityExists(
                f"{spec.name} {spec.version} is already published by this agent; "
                "publish a new version instead",
                field="/name",
            )
        created.append(capability_from_row(row))
    return created


async def add_capability(
    db: Database, cache: Cache, agent_id: str, spec: CapabilitySpec
) -> Capability:
    """Publish a capability; 409 ``CAPABILITY_EXISTS`` for a name and version already published."""
    check_spec(spec)
    async with db.transaction() as conn:
        if await conn.fetchrow(QUERIES["lock_agent"], agent_id) is None:
            raise AgentNotFound(f"no registered agent {agent_id}")
        [capability] = await insert_specs(conn, agent_id, [spec])
        await conn.execute(QUERIES["touch_agent"], agent_id)
    await AgentCache.of(cache).invalidate(agent_id)
    return capability


async def get_capability(db: Database, capability_id: str) -> Capability:
    """One capability by id."""
    async with db.acquire() as conn:
        row = await conn.fetchrow(QUERIES["get_capability"], capability_id)
    if row is None:
        raise CapabilityNotFound(f"no capability {capability_id}")
    return capability_from_row(row)


def _encode_cursor(name: str, capability_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([name, capability_id]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, capability_id = json.loads(raw)
        return str(name), str(capability_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


async def list_capabilities(
    db: Database,
    agent_id: str,
    *,
    include_deprecated: bool = True,
    cursor: str | None = None,
    limit: int = 100,
) -> CapabilityPage:
    """An agent's capabilities by name; 404 if the agent is not registered."""
    after: tuple[str | None, str | None] = _decode_cursor(cursor) if cursor else (None, None)
    async with db.acquire() as conn:
        if await conn.fetchval(QUERIES["agent_status"], agent_id) is None:
            raise AgentNotFound(f"no registered agent {agent_id}")
        rows = await conn.fetch(
            QUERIES["list_capabilities"],
            agent_id,
            include_deprecated,
            after[0],
            after[1],
            limit + 1,
        )
    items = [capability_from_row(row) for row in rows[:limit]]
    next_cursor = (
        _encode_cursor(items[-1].name, items[-1].capability_id) if len(rows) > limit else None
    )
    return CapabilityPage(items=items, next_cursor=next_cursor)


async def update_capability(
    db: Database, cache: Cache, capability_id: str, actor: str, update: CapabilityUpdate
) -> Capability:
    """Change a capability of ``actor``'s own (403 for anyone else's)."""
    changes = {name: getattr(update, name) for name in update.model_fields_set}
    for required in ("input_schema", "output_schema", "pricing_model", "price", "currency"):
        if required in changes and changes[required] is None:
            raise InvalidInput(f"{required} cannot be cleared", field=f"/{required}")
    for name in ("input_schema", "output_schema"):
        if name in changes:
            check_json_schema(changes[name], f"/{name}")
    async with db.transaction() as conn:
        row = await conn.fetchrow(QUERIES["lock_capability"], capability_id)
        if row is None:
            raise CapabilityNotFound(f"no capability {capability_id}")
        if row["agent_id"] != actor:
            raise Forbidden("only the agent that published a capability may change it")
        merged = {**dict(row), **changes}
        if merged["pricing_model"] == "free" and "price" not in changes:
            merged["price"] = Decimal(0)
        _check_price(merged["pricing_model"], merged["price"], "")
        updated = await conn.fetchrow(
            QUERIES["update_capability"],
            capability_id,
            merged["description"],
            merged["input_schema"],
            merged["output_schema"],
            merged["deprecated"],
            merged["pricing_model"],
            merged["price"],
            merged["currency"],
            merged["latency_p99_ms"],
            merged["availability_percent"],
        )
        await conn.execute(QUERIES["touch_agent"], actor)
    await AgentCache.of(cache).invalidate(actor)
    assert updated is not None
    return capability_from_row(updated)


async def delete_capability(db: Database, cache: Cache, capability_id: str, actor: str) -> None:
    """Remove a capability of ``actor``'s own (403 for anyone else's)."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(QUERIES["lock_capability"], capability_id)
        if row is None:
            raise CapabilityNotFound(f"no capability {capability_id}")
        if row["agent_id"] != actor:
            raise Forbidden("only the agent that published a capability may remove it")
        await conn.execute(QUERIES["delete_capability"], capability_id)
        await conn.execute(QUERIES["touch_agent"], actor)
    await AgentCache.of(cache).invalidate(actor)
