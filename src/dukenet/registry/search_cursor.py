"""Opaque, tamper-evident keyset cursors for search pages.

A cursor carries the sort key of the last row a page examined and a fingerprint of the
query it belongs to, serialized as JSON, base64url-encoded and authenticated with
HMAC-SHA256 under a key derived from the network key (HKDF, its own ``info`` label). A
client can pass it back but cannot forge, alter or reuse it with other filters: any of
that is a 422 naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dukenet.errors import InvalidInput

CURSOR_VERSION = 1
_TAG_BYTES = 16
MAX_CURSOR_LENGTH = 1_000


@lru_cache(maxsize=8)
def _derive(raw_private_key: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"dukenet/search-cursor/v1"
    ).derive(raw_private_key)


def cursor_key(network_key: Ed25519PrivateKey) -> bytes:
    """The HMAC key for cursors, derived from the network's private key."""
    raw = network_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return _derive(raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_TAG_BYTES]


def encode_cursor(key: bytes, fingerprint: str, position: list[Any]) -> str:
    """A cursor continuing after ``position`` (the sort key values) of query ``fingerprint``."""
    payload = json.dumps(
        {"v": CURSOR_VERSION, "q": fingerprint, "after": position}, separators=(",", ":")
    ).encode()
    return f"{_b64(payload)}.{_b64(_tag(key, payload))}"


def decode_cursor(key: bytes, fingerprint: str, cursor: str) -> list[Any]:
    """The position a cursor continues after; 422 (``field`` ``cursor``) unless it is one this
    server issued for this very query."""
    bad = InvalidInput("cursor is not one this search returned", field="cursor")
    if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
        raise bad
    encoded, tag = cursor.split(".")
    try:
        payload = _unb64(encoded)
        if not hmac.compare_digest(_tag(key, payload), _unb64(tag)):
            raise bad
        decoded = json.loads(payload)
    except (binascii.Error, ValueError) as exc:
        raise bad from exc
    if not isinstance(decoded, dict) or decoded.get("v") != CURSOR_VERSION:
        raise bad
    if decoded.get("q") != fingerprint:
        raise InvalidInput(
            "cursor belongs to a search with other filters or another sort; "
            "start again without a cursor",
            field="cursor",
        )
    position = decoded.get("after")
    if not isinstance(position, list):
        raise bad
    return position
