"""The record kinds, sealing with the network key, and verification of a record block.

Every record is a DAG-CBOR map with ``type``, ``version``, ``timestamp`` (RFC 3339 UTC),
``path``, ``signer`` (the network's base64 Ed25519 public key), an optional ``previous``
link to the record that was at the same path before, the kind's own fields, and
``signature``: the network's Ed25519 signature (standard base64) over the DAG-CBOR bytes
of the record without ``signature``. A registration also carries the agent's payload
exactly as received, whose own ``signature`` verifies with the agent's key (JCS, SPEC 2).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dukenet import crypto
from dukenet.audit.codec import Block, cid_for, decode, encode, links_in, normalize
from dukenet.errors import InvalidInput, InvalidSignature

RECORD_VERSION = 1
SIGNATURE = "signature"


class RecordType(StrEnum):
    """The ``type`` of each record kind."""

    REGISTRATION = "dukenet/agent-registration"
    TASK_EXECUTION = "dukenet/task-execution"
    TRANSACTION = "dukenet/transaction"
    RATING = "dukenet/rating"


def registration_path(agent_id: str) -> str:
    """``/dukenet/agents/{agent_id}/registration``."""
    return f"/dukenet/agents/{agent_id}/registration"


def task_execution_path(task_id: str) -> str:
    """``/dukenet/tasks/{task_id}/execution``."""
    return f"/dukenet/tasks/{task_id}/execution"


def transaction_path(transaction_id: str) -> str:
    """``/dukenet/transactions/{transaction_id}``."""
    return f"/dukenet/transactions/{transaction_id}"


def rating_path(agent_id: str, rating_id: str) -> str:
    """``/dukenet/agents/{agent_id}/ratings/{rating_id}``."""
    return f"/dukenet/agents/{agent_id}/ratings/{rating_id}"


def now_rfc3339() -> str:
    """The current time as an RFC 3339 UTC string with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@functools.lru_cache(maxsize=8)
def _signer(network_key: Ed25519PrivateKey) -> str:
    """The ``signer`` of the key's records (its public key; one or two keys per process)."""
    return crypto.public_key_b64(network_key)


def seal(network_key: Ed25519PrivateKey, record: dict[str, Any]) -> Block:
    """Normalize ``record``, add ``signer`` and the network ``signature``, encode and address."""
    body = normalize({k: v for k, v in record.items() if k != SIGNATURE})
    body["signer"] = _signer(network_key)
    unsigned = encode(body)
    body[SIGNATURE] = base64.b64encode(network_key.sign(unsigned)).decode()
    data = encode(body)
    return Block(cid_for(data), data, tuple(dict.fromkeys(links_in(body))))


def split_registration(payload: dict[str, Any]) -> dict[str, Any]:
    """The initial metadata of a registration payload: profile, capabilities and tags."""
    reserved = {"public_key", "capabilities", "tags", "timestamp", SIGNATURE}
    return {
        "profile": {k: v for k, v in payload.items() if k not in reserved},
        "capabilities": payload.get("capabilities") or [],
        "tags": payload.get("tags") or [],
    }


def verify_agent_signature(payload: dict[str, Any]) -> Ed25519PublicKey:
    """Check the agent's own signature on a registration payload; return the agent's key."""
    public_key = payload.get("public_key")
    if not isinstance(public_key, str):
        raise InvalidInput("registration payload carries no public_key", field="/public_key")
    key = crypto.load_public_key(public_key)
    crypto.verify_payload(key, payload)
    return key


@dataclass(frozen=True)
class VerifiedRecord:
    """A record block whose CID and signatures were checked."""

    cid: str
    record: dict[str, Any]

    @property
    def type(self) -> str:
        """The record's ``type``."""
        return str(self.record.get("type"))


def verify_record(
    data: bytes, *, expected_cid: str | None = None, network_key: Ed25519PublicKey | None = None
) -> VerifiedRecord:
    """Check a record block: CID, shape and the network's signature, and for registrations
    the agent's signature and that ``agent_id`` is the hash of its key. Raises
    ``InvalidSignature`` (or ``InvalidInput`` for a malformed block)."""
    cid = cid_for(data)
    if expected_cid is not None and cid != expected_cid:
        raise InvalidSignature(f"block hashes to {cid}, not {expected_cid}")
    try:
        record = decode(data)
    except ValueError as exc:
        raise InvalidInput(f"block is not DAG-CBOR: {exc}") from exc
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        raise InvalidInput("block is not a DukeNET record of a known version")
    if record.get("type") not in set(RecordType):
        raise InvalidInput(f"unknown record type {record.get('type')!r}")
    signer_text, signature_text = record.get("signer"), record.get(SIGNATURE)
    if not isinstance(signer_text, str) or not isinstance(signature_text, str):
        raise InvalidSignature("record carries no signer or signature")
    signer = crypto.load_public_key(signer_text, field="/signer")
    if network_key is not None and crypto.public_key_bytes(signer) != crypto.public_key_bytes(
        network_key
    ):
        raise InvalidSignature("record is signed by another key than the network's")
    try:
        signature = base64.b64decode(signature_text, validate=True)
        signer.verify(signature, encode({k: v for k, v in record.items() if k != SIGNATURE}))
    except (binascii.Error, ValueError, _CryptoInvalidSignature) as exc:
        raise InvalidSignature("the network signature on the record does not verify") from exc
    if record["type"] == RecordType.REGISTRATION:
        payload = record.get("registration")
        if not isinstance(payload, dict):
            raise InvalidInput("registration record carries no payload")
        agent_key = verify_agent_signature(payload)
        if payload.get("public_key") != record.get("public_key"):
            raise InvalidSignature("record public_key differs from the signed payload's")
        raw = crypto.public_key_bytes(agent_key)
        if record.get("agent_id") != hashlib.sha256(raw).hexdigest():
            raise InvalidSignature("agent_id is not the hash of the agent's public key")
        if record.get("path") != registration_path(str(record.get("agent_id"))):
            raise InvalidSignature("registration record names another path")
    return VerifiedRecord(cid, record)
