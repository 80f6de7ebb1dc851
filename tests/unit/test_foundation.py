"""Pure foundation logic: settings, the error tree, canonical signing and named queries."""

from __future__ import annotations

import base64
import hashlib
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from dukenet import crypto
from dukenet.config import Settings
from dukenet.errors import AlreadyExists, DukenetError, InvalidInput, InvalidSignature, RateLimited
from dukenet.store.migrations import load_migrations
from dukenet.store.sql import load_queries


def test_settings_come_from_dukenet_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUKENET_PLATFORM_FEE_RATE", "0.05")
    monkeypatch.setenv("DUKENET_DATABASE_REPLICA_URLS", "postgresql://a/x, postgresql://b/x")
    monkeypatch.setenv("DUKENET_PGBOUNCER", "1")
    monkeypatch.setenv("DUKENET_REDIS_URL", "")
    settings = Settings()
    assert settings.platform_fee_rate == Decimal("0.05")
    assert settings.replica_urls == ["postgresql://a/x", "postgresql://b/x"]
    assert settings.pgbouncer is True
    assert settings.redis_url is None  # blank means "use the embedded server"
    assert Settings(port=9000).port == 9000  # explicit values (CLI flags) win


def test_settings_refuse_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUKENET_PLATFORM_FEE_RATE", "1.5")
    with pytest.raises(ValueError, match="platform_fee_rate"):
        Settings()


def test_problem_details_carry_code_status_and_field() -> None:
    problem = InvalidInput("bad url", field="/endpoint_url").to_problem()
    assert problem["status"] == 422
    assert problem["code"] == "VALIDATION_FAILED"
    assert problem["field"] == "/endpoint_url"
    assert AlreadyExists("dup", code="AGENT_EXISTS").to_problem()["code"] == "AGENT_EXISTS"
    assert RateLimited(retry_after=7).to_problem()["retry_after"] == 7
    assert issubclass(InvalidSignature, DukenetError)


def test_agent_id_is_sha256_of_raw_public_key() -> None:
    key = crypto.generate_private_key()
    encoded = crypto.public_key_b64(key)
    raw = base64.b64decode(encoded)
    assert len(raw) == 32
    assert crypto.agent_id_for(encoded) == hashlib.sha256(raw).hexdigest()
    assert crypto.agent_id_for(key.public_key()) == crypto.agent_id_for(encoded)


def test_signature_covers_canonical_json_without_signature_field() -> None:
    key = crypto.generate_private_key()
    signed = crypto.sign_payload(key, {"b": 1, "a": "x", "nested": {"z": 1.0, "y": [3, 2]}})
    reordered = {
        "nested": {"y": [3, 2], "z": 1},
        "signature": signed["signature"],
        "a": "x",
        "b": 1,
    }
    crypto.verify_payload(key.public_key(), reordered)  # key order and 1.0 vs 1 don't matter
    assert crypto.signing_bytes(reordered) == b'{"a":"x","b":1,"nested":{"y":[3,2],"z":1}}'
    tampered = dict(reordered, b=2)
    with pytest.raises(InvalidSignature):
        crypto.verify_payload(key.public_key(), tampered)
    other = crypto.generate_private_key()
    with pytest.raises(InvalidSignature):
        crypto.verify_payload(other.public_key(), reordered)
    with pytest.raises(InvalidSignature, match="base64"):
        crypto.verify_payload(key.public_key(), dict(reordered, signature="%%%"))


def test_private_keys_round_trip_and_are_saved_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "agent.pem"
    key = crypto.load_or_create_private_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = crypto.load_or_create_private_key(path)
    assert crypto.public_key_b64(again) == crypto.public_key_b64(key)
    from_b64 = crypto.parse_private_key(crypto.private_key_to_b64(key))
    assert crypto.public_key_b64(from_b64) == crypto.public_key_b64(key)
    with pytest.raises(InvalidInput):
        crypto.parse_private_key("not a key")


def test_public_key_must_be_32_bytes_of_base64() -> None:
    with pytest.raises(InvalidInput) as info:
        crypto.load_public_key(base64.b64encode(b"short").decode())
    assert info.value.field == "/public_key"


def test_migrations_are_numbered_in_design_order() -> None:
    found = load_migrations()
    assert [(m.version, m.name) for m in found[:4]] == [
        (1, "core"),
        (2, "task_system"),
        (3, "marketplace"),
        (4, "optimization"),
    ]
    assert [m.version for m in found] == sorted({m.version for m in found})


def test_named_queries_are_split_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "querypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "q.sql").write_text(
        "-- name: first\nSELECT 1\n\n-- name: second\nSELECT $1::int\n  + 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    queries = load_queries("querypkg", "q.sql")
    assert queries == {"first": "SELECT 1", "second": "SELECT $1::int\n  + 1"}
