"""Ed25519 keys, agent ids and signatures over RFC 8785 canonical JSON.

All primitives come from ``cryptography`` and ``rfc8785``; nothing here is hand-written
cryptography. Signed payloads are signed over the JCS bytes of the body without its
``signature`` field; signatures and public keys travel as standard base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dukenet.errors import InvalidInput, InvalidSignature

SIGNATURE_FIELD = "signature"


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte form of a public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Standard base64 of the raw public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public_key_bytes(public)).decode()


def agent_id_for(public_key: str | bytes | Ed25519PublicKey) -> str:
    """``agent_id``: lowercase hex sha256 of the raw 32-byte public key."""
    if isinstance(public_key, Ed25519PublicKey):
        raw = public_key_bytes(public_key)
    elif isinstance(public_key, str):
        raw = decode_public_key_bytes(public_key)
    else:
        raw = public_key
    return hashlib.sha256(raw).hexdigest()


def decode_public_key_bytes(encoded: str, field: str = "/public_key") -> bytes:
    """Decode a standard-base64 raw Ed25519 public key, refusing anything else."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("public key is not valid base64", field=field) from exc
    if len(raw) != 32:
        raise InvalidInput("public key must be 32 raw bytes (Ed25519)", field=field)
    return raw


def load_public_key(encoded: str, field: str = "/public_key") -> Ed25519PublicKey:
    """Parse a base64 raw public key."""
    return Ed25519PublicKey.from_public_bytes(decode_public_key_bytes(encoded, field))


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (protected by file permissions)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_to_b64(key: Ed25519PrivateKey) -> str:
    """Standard base64 of the raw 32-byte private seed."""
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode()


def parse_private_key(text: str | bytes) -> Ed25519PrivateKey:
    """Parse a private key given as PEM or as base64 of the raw 32-byte seed."""
    data = text.encode() if isinstance(text, str) else text
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(stripped, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInput("private key is not Ed25519")
        return key
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("private key is neither PEM nor base64") from exc
    if len(raw) != 32:
        raise InvalidInput("raw Ed25519 private key must be 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


def save_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write a PEM private key with file mode 0600, created atomically with that mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_to_pem(key))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def load_or_create_private_key(path: Path) -> Ed25519PrivateKey:
    """Load the key at ``path``, generating and saving one (mode 0600) if it is missing."""
    if path.exists():
        return parse_private_key(path.read_bytes())
    key = generate_private_key()
    save_private_key(key, path)
    return key


def canonical_bytes(payload: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON bytes."""
    return bytes(rfc8785.dumps(payload))


def signing_bytes(payload: dict[str, Any]) -> bytes:
    """The bytes that are signed: JCS of the payload without its ``signature`` field."""
    return canonical_bytes({k: v for k, v in payload.items() if k != SIGNATURE_FIELD})


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> str:
    """Standard base64 of the Ed25519 signature over ``data``."""
    return base64.b64encode(key.sign(data)).decode()


def sign_payload(key: Ed25519PrivateKey, payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``payload`` with a ``signature`` over its canonical form."""
    signed = {k: v for k, v in payload.items() if k != SIGNATURE_FIELD}
    signed[SIGNATURE_FIELD] = sign_bytes(key, canonical_bytes(signed))
    return signed


def verify_bytes(public_key: Ed25519PublicKey, data: bytes, signature_b64: str) -> None:
    """Raise ``InvalidSignature`` unless ``signature_b64`` signs ``data``."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidSignature("signature is not valid base64") from exc
    if len(signature) != 64:
        raise InvalidSignature("signature must be 64 raw bytes")
    try:
        public_key.verify(signature, data)
    except _CryptoInvalidSignature as exc:
        raise InvalidSignature("signature does not verify") from exc


def verify_payload(public_key: Ed25519PublicKey, payload: dict[str, Any]) -> None:
    """Raise ``InvalidSignature`` unless the payload's ``signature`` signs the rest of it."""
    signature = payload.get(SIGNATURE_FIELD)
    if not isinstance(signature, str):
        raise InvalidSignature("payload carries no signature")
    verify_bytes(public_key, signing_bytes(payload), signature)
