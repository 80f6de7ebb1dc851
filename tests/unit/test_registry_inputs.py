"""Pure registry logic: input formats, schema checks, uptime math, limits, SDK errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from dukenet import crypto
from dukenet.errors import InvalidInput, InvalidSignature, SchemaInvalid
from dukenet.registry.agents import uptime_percent, verify_registration
from dukenet.registry.capabilities import capability_id_for, check_json_schema
from dukenet.registry.inputs import AgentUpdate, CapabilitySpec, TagsUpdate, parse
from dukenet.registry.ratelimit import parse_limits
from dukenet.sdk import build_registration, errors


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        (
            "0x52908400098527886e0f7030069857d2e4169ee7",
            "0x52908400098527886E0F7030069857D2E4169EE7",
        ),
        (
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0x52908400098527886E0F7030069857D2E4169EE7",
        ),
        (
            "0xde709f2102306220921060314715629080e2fb77",
            "0xde709f2102306220921060314715629080e2fb77",
        ),
    ],
)
def test_ethereum_addresses_are_stored_checksummed(address: str, stored: str) -> None:
    assert parse(AgentUpdate, {"owner_address": address}).owner_address == stored


@pytest.mark.parametrize(
    "address",
    [
        "0x52908400098527886E0F7030069857D2E4169Ee7",
        "52908400098527886e0f7030069857d2e4169ee7",
        "0x5290",
        "0xZZ908400098527886e0f7030069857d2e4169ee7",
    ],
)
def test_bad_ethereum_addresses_point_at_the_field(address: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse(AgentUpdate, {"owner_address": address})
    assert refused.value.field == "/owner_address"


def test_tags_are_trimmed_lowercased_and_deduplicated() -> None:
    assert parse(TagsUpdate, {"tags": [" NLP", "nlp ", "Vision"]}).tags == ["nlp", "vision"]
    with pytest.raises(InvalidInput) as refused:
        parse(TagsUpdate, {"tags": ["fine", "bad\x00tag"]})
    assert refused.value.field == "/tags/1"


@pytest.mark.parametrize(
    ("price", "stored"), [("0.1", "0.1000"), (2, "2.0000"), ("0.01230", "0.0123")]
)
def test_prices_are_exact_decimals(price: Any, stored: str) -> None:
    spec = parse(
        CapabilitySpec,
        {
            "name": "a.b",
            "version": "1.0.0",
            "input_schema": {},
            "output_schema": {},
            "pricing_model": "per_call",
            "price": price,
        },
    )
    assert spec.price == Decimal(stored) and str(spec.price) == stored


@pytest.mark.parametrize("version", ["1.0.0", "0.1.2-rc.1+build.5", "10.20.30"])
def test_semantic_versions(version: str) -> None:
    parse(
        CapabilitySpec, {"name": "a", "version": version, "input_schema": {}, "output_schema": {}}
    )


@pytest.mark.parametrize("version", ["1.0", "01.0.0", "1.0.0-", "x"])
def test_non_semantic_versions_are_refused(version: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse(
            CapabilitySpec,
            {"name": "a", "version": version, "input_schema": {}, "output_schema": {}},
        )
    assert refused.value.field == "/version"


def test_schema_errors_point_inside_the_schema() -> None:
    check_json_schema({"type": "object", "properties": {"a/b": {"type": "string"}}}, "/x")
    with pytest.raises(SchemaInvalid) as refused:
        check_json_schema({"properties": {"a/b": {"type": 3}}}, "/input_schema")
    assert refused.value.field == "/input_schema/properties/a~1b/type"


def test_capability_id_is_sha256_of_agent_name_version() -> None:
    import hashlib

    expected = hashlib.sha256(b"abc:text.summarize:1.0.0").hexdigest()
    assert capability_id_for("abc", "text.summarize", "1.0.0") == expected


def test_uptime_percent() -> None:
    assert uptime_percent(45, 60) == 75.0
    assert uptime_percent(61, 60) == 100.0
    assert uptime_percent(0, 0) == 100.0
    assert uptime_percent(1, 3) == 33.33


def test_registration_signature_covers_every_field() -> None:
    key = crypto.generate_private_key()
    payload = build_registration(key, "Unit", metadata={"n": 1.5}, tags=["a"])
    assert verify_registration(payload).display_name == "Unit"
    tampered = payload | {"metadata": {"n": 2}}
    with pytest.raises(InvalidSignature):
        verify_registration(tampered)


def test_rate_limit_configuration() -> None:
    limits = parse_limits("read=10/second, write=none")
    assert limits["read"] is not None and limits["read"].amount == 10
    assert limits["write"] is None
    assert limits["register"] is not None and limits["register"].amount == 300
    with pytest.raises(ValueError):
        parse_limits("search=1/second")


def test_sdk_errors_are_typed_by_code() -> None:
    def problem(status: int, code: str, **extra: Any) -> httpx.Response:
        return httpx.Response(
            status, json={"code": code, "detail": "d", **extra}, headers={"retry-after": "7"}
        )

    assert type(errors.error_from_response(problem(409, "AGENT_EXISTS"))) is errors.AgentExists
    schema = errors.error_from_response(problem(422, "SCHEMA_INVALID", field="/a"))
    assert isinstance(schema, errors.ValidationFailed) and schema.field == "/a"
    limited = errors.error_from_response(problem(429, "RATE_LIMITED"))
    assert isinstance(limited, errors.RateLimited) and limited.retry_after == 7
    unknown = errors.error_from_response(problem(404, "TASK_NOT_FOUND"))
    assert type(unknown) is errors.NotFound and unknown.code == "TASK_NOT_FOUND"
    plain = errors.error_from_response(httpx.Response(502, text="bad gateway"))
    assert type(plain) is errors.APIError and plain.status == 502
