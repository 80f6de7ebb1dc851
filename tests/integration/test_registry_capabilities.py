"""Capabilities: publish, validate, list, update, deprecate and remove."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.sdk import AsyncClient, errors

SPEC: dict[str, Any] = {
    "name": "text.summarize",
    "version": "1.2.0",
    "description": "Summarize English text",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    "output_schema": {"type": "object", "properties": {"summary": {"type": "string"}}},
    "pricing_model": "per_call",
    "price": "0.0125",
    "currency": "USD",
    "latency_p99_ms": 800,
    "availability_percent": 99.5,
}


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def sdk(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        "http://dukenet.test",
        key=crypto.generate_private_key(),
        transport=httpx.ASGITransport(app=app),
    ) as client:
        await client.register("Publisher")
        yield client


async def test_publish_and_read_back(sdk: AsyncClient) -> None:
    capability = await sdk.add_capability(SPEC)
    expected_id = hashlib.sha256(f"{sdk.agent_id}:text.summarize:1.2.0".encode()).hexdigest()
    assert capability.capability_id == expected_id
    assert str(capability.price) == "0.0125"
    assert capability.availability_percent == 99.5
    assert await sdk.get_capability(expected_id) == capability
    assert (await sdk.list_capabilities()).items == [capability]
    with pytest.raises(errors.CapabilityExists):
        await sdk.add_capability(SPEC)
    newer = await sdk.add_capability(SPEC | {"version": "1.3.0-beta.1"})
    assert newer.capability_id != expected_id


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"input_schema": {"type": "strng"}}, "SCHEMA_INVALID", "/input_schema/type"),
        (
            {"output_schema": {"properties": {"a": {"minLength": -1}}}},
            "SCHEMA_INVALID",
            "/output_schema/properties/a/minLength",
        ),
        ({"input_schema": {"pattern": "["}}, "SCHEMA_INVALID", "/input_schema/pattern"),
        ({"input_schema": "not a schema"}, "VALIDATION_FAILED", "/input_schema"),
        ({"name": "Text.Summarize"}, "VALIDATION_FAILED", "/name"),
        ({"name": "text..summarize"}, "VALIDATION_FAILED", "/name"),
        ({"version": "1.0"}, "VALIDATION_FAILED", "/version"),
        ({"price": "-1"}, "VALIDATION_FAILED", "/price"),
        ({"price": "0.00001"}, "VALIDATION_FAILED", "/price"),
        ({"price": "abc"}, "VALIDATION_FAILED", "/price"),
        ({"pricing_model": "free", "price": "0.5"}, "VALIDATION_FAILED", "/price"),
        ({"pricing_model": "auction"}, "VALIDATION_FAILED", "/pricing_model"),
        ({"availability_percent": 100.5}, "VALIDATION_FAILED", "/availability_percent"),
        ({"latency_p99_ms": 0}, "VALIDATION_FAILED", "/latency_p99_ms"),
        ({"currency": "usd"}, "VALIDATION_FAILED", "/currency"),
    ],
)
async def test_bad_capabilities_name_the_field(
    sdk: AsyncClient, change: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(errors.ValidationFailed) as refused:
        await sdk.add_capability(SPEC | change)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert (await sdk.list_capabilities()).items == []


async def test_free_means_price_zero(sdk: AsyncClient) -> None:
    free = await sdk.add_capability(
        {
            "name": "util.echo",
            "version": "0.1.0",
            "input_schema": True,
            "output_schema": {},
            "pricing_model": "free",
        }
    )
    assert (free.pricing_model, str(free.price)) == ("free", "0.0000")


async def test_update_deprecate_and_remove(sdk: AsyncClient) -> None:
    capability = await sdk.add_capability(SPEC)
    cid = capability.capability_id
    cheaper = await sdk.update_capability(cid, price="0.01", description="Faster")
    assert (str(cheaper.price), cheaper.description) == ("0.0100", "Faster")
    with pytest.raises(errors.SchemaInvalid) as refused:
        await sdk.update_capability(cid, output_schema={"type": 12})
    assert refused.value.field == "/output_schema/type"
    with pytest.raises(errors.ValidationFailed) as refused:
        await sdk.update_capability(cid, name="other.name")
    assert refused.value.field == "/name"
    made_free = await sdk.update_capability(cid, pricing_model="free")
    assert str(made_free.price) == "0.0000"

    deprecated = await sdk.deprecate_capability(cid)
    assert deprecated.deprecated is True
    assert (await sdk.list_capabilities(include_deprecated=False)).items == []
    assert [c.capability_id for c in (await sdk.list_capabilities()).items] == [cid]

    await sdk.delete_capability(cid)
    with pytest.raises(errors.CapabilityNotFound):
        await sdk.get_capability(cid)
    with pytest.raises(errors.CapabilityNotFound):
        await sdk.delete_capability(cid)


async def test_pagination_of_capabilities(sdk: AsyncClient) -> None:
    for minor in range(5):
        await sdk.add_capability(SPEC | {"version": f"1.{minor}.0"})
    first = await sdk.list_capabilities(limit=3)
    assert len(first.items) == 3 and first.next_cursor
    second = await sdk.list_capabilities(limit=3, cursor=first.next_cursor)
    assert len(second.items) == 2 and second.next_cursor is None
    versions = {c.version for c in first.items + second.items}
    assert versions == {f"1.{minor}.0" for minor in range(5)}
