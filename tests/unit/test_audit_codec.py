"""DAG-CBOR records and CIDs against vectors from an independent implementation.

``audit_cid_vectors.json`` was computed with the ``dag-cbor`` + ``multiformats`` packages
(not libipld, not DukeNET code) and committed; these tests check that DukeNET produces the
same bytes and CIDs, and that bytes starting 0x01 never turn into links.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import libipld
import pytest

from dukenet import crypto
from dukenet.audit import codec, records
from dukenet.audit.errors import InvalidCid, UnrecordableValue

VECTORS = json.loads((Path(__file__).parent / "audit_cid_vectors.json").read_text())


def from_vector(value: Any) -> Any:
    """Turn the vector file's JSON conventions into the Python values DukeNET records."""
    if isinstance(value, dict):
        if set(value) == {"/"}:
            return codec.Link(value["/"])
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        if set(value) == {"$decimal"}:
            return Decimal(value["$decimal"])
        if set(value) == {"$uuid"}:
            return UUID(value["$uuid"])
        if set(value) == {"$datetime"}:
            return datetime.fromisoformat(value["$datetime"])
        return {k: from_vector(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_vector(v) for v in value]
    return value


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_blocks_match_the_independent_implementation(vector: dict[str, Any]) -> None:
    block = codec.make_block(from_vector(vector["input"]))
    assert block.data.hex() == vector["dag_cbor_hex"]
    assert block.cid == vector["cid"]
    assert block.cid.startswith("bafyrei")


@pytest.mark.parametrize("vector", VECTORS["signed_records"], ids=lambda v: v["name"])
def test_signed_records_match_the_independent_implementation(vector: dict[str, Any]) -> None:
    key = crypto.parse_private_key(vector["network_seed_b64"])
    block = records.seal(key, vector["record"])
    assert block.data.hex() == vector["dag_cbor_hex"]
    assert block.cid == vector["cid"]
    verified = records.verify_record(
        block.data, expected_cid=vector["cid"], network_key=key.public_key()
    )
    assert verified.record["registration"]["display_name"] == "Vector Agent"


def test_cid_is_what_ipfs_computes_for_the_bytes() -> None:
    data = codec.encode({"hello": "world"})
    info = libipld.decode_cid(codec.cid_for(data))
    assert info["version"] == 1
    assert info["codec"] == 0x71  # dag-cbor
    assert info["hash"]["code"] == 0x12  # sha2-256
    assert info["hash"]["digest"] == hashlib.sha256(data).digest()


def test_bytes_starting_0x01_never_become_links() -> None:
    # The libipld pitfall: bytes that parse as a CID are encoded as links (tag 42).
    looks_like_cid = bytes([0x01, 0x71, 0x12, 0x20]) + hashlib.sha256(b"x").digest()
    assert libipld.decode_cid(looks_like_cid)["codec"] == 0x71
    naive = libipld.decode_dag_cbor(libipld.encode_dag_cbor({"sig": looks_like_cid}))
    assert list(codec.links_in(naive))  # what would go wrong without the guard

    signatures = [bytes([0x01]) + os.urandom(63) for _ in range(500)] + [looks_like_cid]
    key = crypto.generate_private_key()
    for signature in signatures:
        block = records.seal(
            key,
            {"type": records.RecordType.TRANSACTION.value, "version": 1, "proof": signature},
        )
        decoded = codec.decode(block.data)
        assert decoded["proof"] == base64.b64encode(signature).decode()
        assert block.links == ()
        assert list(codec.links_in(decoded)) == []


def test_explicit_links_are_links() -> None:
    target = codec.make_block({"value": 1})
    block = codec.make_block({"input": codec.Link(target.cid), "n": 2})
    assert block.links == (target.cid,)
    assert codec.to_json(codec.decode(block.data)) == {"input": {"/": target.cid}, "n": 2}


def test_normalization_is_deterministic() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    same_moment = moment.astimezone(UTC)
    a = codec.make_block({"at": moment, "amount": Decimal("1.2500"), "id": UUID(int=7)})
    b = codec.make_block({"id": UUID(int=7), "amount": Decimal("1.2500"), "at": same_moment})
    assert a.cid == b.cid
    assert codec.decode(a.data) == {
        "at": "2025-01-02T01:04:05.123456Z",
        "amount": "1.2500",
        "id": "00000000-0000-0000-0000-000000000007",
    }
    # A naive datetime is taken as UTC.
    naive = codec.normalize(datetime(2025, 1, 1, 12, 0))
    assert naive == "2025-01-01T12:00:00Z"


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), {1: "x"}, {"k": object()}, Decimal("NaN")]
)
def test_values_without_a_deterministic_form_are_refused(value: Any) -> None:
    with pytest.raises(UnrecordableValue):
        codec.make_block(value)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"a": [{"b": float("nan")}]}, "/a/0/b"),
        ({"a": ({"b": 1}, {2: "x"})}, "/a/1"),
        ({"rows": [1, 2, {"at": Decimal("Infinity")}]}, "/rows/2/at"),
    ],
)
def test_a_refused_value_is_named_by_its_place(value: Any, field: str) -> None:
    with pytest.raises(UnrecordableValue) as raised:
        codec.normalize(value)
    assert raised.value.field == field


def test_plain_json_and_its_subclasses_normalize_alike() -> None:
    class Name(str):
        pass

    plain = {"a": [1, True, None, "x", {"b": 2**70}], "c": {"d": -0.0}}
    assert codec.normalize(plain) == {"a": [1, True, None, "x", {"b": str(2**70)}], "c": {"d": 0.0}}
    assert codec.normalize({Name("a"): (1, 2)}) == {"a": [1, 2]}


@pytest.mark.parametrize("text", ["", "bafy", "hello", "Qm" + "1" * 44])
def test_malformed_cids_are_refused(text: str) -> None:
    with pytest.raises(InvalidCid):
        codec.canonical_cid(text)


def test_any_multibase_of_a_cid_is_the_same_cid() -> None:
    cid = codec.make_block({"x": 1}).cid
    base58 = libipld.encode_multibase("z", codec.cid_bytes(cid))
    assert codec.canonical_cid(base58) == cid
    assert codec.canonical_cid(cid.upper().replace("B", "B", 1)) == cid


def test_tampered_record_fails_verification() -> None:
    key = crypto.generate_private_key()
    block = records.seal(key, {"type": records.RecordType.TRANSACTION.value, "version": 1, "x": 1})
    decoded = codec.decode(block.data)
    decoded["x"] = 2
    forged = libipld.encode_dag_cbor(decoded)
    with pytest.raises(Exception, match="does not verify"):
        records.verify_record(forged, network_key=key.public_key())
    with pytest.raises(Exception, match="hashes to"):
        records.verify_record(forged, expected_cid=block.cid)
    other = crypto.generate_private_key()
    with pytest.raises(Exception, match="another key"):
        records.verify_record(block.data, network_key=other.public_key())
