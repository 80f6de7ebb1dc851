"""DAG-CBOR blocks and CIDv1 (dag-cbor codec, sha2-256, base32) with ``libipld``.

Values are first normalized into the IPLD data model: datetimes become RFC 3339 UTC
strings, Decimals decimal strings, UUIDs strings, -0.0 becomes 0.0 (strict DAG-CBOR
decoders refuse negative zero) and integers beyond 64 bits decimal strings. libipld
encodes *any* ``bytes`` value that parses as a CID (first byte 0x01 ...) as a link
(tag 42), which would silently turn about one signature or hash in a thousand into a
"link". So normalized values never hold
``bytes``: raw bytes become standard-base64 strings, and the only bytes handed to the
encoder are the CIDs of explicit ``Link`` values. A decoded block's ``bytes`` are
therefore always links.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import libipld

from dukenet.audit.errors import InvalidCid, UnrecordableValue

DAG_CBOR = 0x71
SHA2_256 = 0x12
_CID_PREFIX = bytes([0x01, DAG_CBOR, SHA2_256, 0x20])  # CIDv1, dag-cbor, sha2-256, 32 bytes
_INT_MIN = -(2**64)
_INT_MAX = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Link:
    """An IPLD link to another block, encoded as DAG-CBOR tag 42."""

    cid: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "cid", canonical_cid(self.cid))

    @property
    def raw(self) -> bytes:
        """The binary CID."""
        return cid_bytes(self.cid)


def cid_bytes(cid: str) -> bytes:
    """The binary form of a CIDv1 string (any multibase); ``InvalidCid`` if it is not one."""
    try:
        info = libipld.decode_cid(cid)
    except (ValueError, TypeError) as exc:
        raise InvalidCid(f"not a CID: {cid[:80]!r}") from exc
    if info["version"] != 1:
        raise InvalidCid("only CIDv1 is used for DukeNET records")
    try:
        _, raw = libipld.decode_multibase(cid)
    except ValueError as exc:
        raise InvalidCid(f"not a CID: {cid[:80]!r}") from exc
    return raw


def canonical_cid(cid: str) -> str:
    """The base32 (``b…``) form of a CIDv1 given in any multibase."""
    return libipld.encode_cid(cid_bytes(cid))


def cid_info(cid: str) -> dict[str, Any]:
    """``version``, ``codec`` and ``hash`` of a CID, as libipld reports them."""
    try:
        return libipld.decode_cid(cid)
    except (ValueError, TypeError) as exc:
        raise InvalidCid(f"not a CID: {cid[:80]!r}") from exc


def cid_for(data: bytes) -> str:
    """The CIDv1 (dag-cbor, sha2-256) of a block, in base32: what IPFS computes for it."""
    return libipld.encode_cid(_CID_PREFIX + hashlib.sha256(data).digest())


def normalize(value: Any, where: str = "") -> Any:
    """``value`` in the IPLD data model with one deterministic form (see module docstring).

    ``where`` is the JSON-pointer-like place of ``value`` that an ``UnrecordableValue``
    names. Most values are plain JSON (dicts, lists, strings, ints), which a walk without
    that bookkeeping normalizes; a value it cannot take is walked again with it."""
    try:
        return _plain(value)
    except UnrecordableValue:
        return _located(value, where)


def _plain(value: Any) -> Any:
    """``normalize`` without places: exact JSON types here, anything else by ``_located``.

    Records are mostly flat maps of strings and small integers, and every one is walked
    once before it is sealed: leaves are taken in the loop, without a call each."""
    kind = type(value)
    if kind is dict:
        result: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                raise UnrecordableValue("map key")  # _located names (or accepts) it
            kind = type(item)
            if kind is str or kind is bool or item is None:
                result[key] = item
            else:
                result[key] = _plain(item)
        return result
    if kind is list:
        return [item if type(item) is str or item is None else _plain(item) for item in value]
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if kind is datetime:
        return _datetime(value)
    if kind is UUID:
        return str(value)
    return _located(value, "")


def _datetime(value: datetime) -> str:
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _located(value: Any, where: str) -> Any:
    """``normalize``, keeping the place of every value for the error that names it."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Link):
        return value.raw
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            return str(value)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnrecordableValue(f"non-finite number at {where or '/'}", field=where or "/")
        return 0.0 if value == 0.0 else value  # no negative zero: strict decoders refuse it
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise UnrecordableValue(f"non-finite decimal at {where or '/'}", field=where or "/")
        return str(value)
    if isinstance(value, datetime):
        return _datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return _located(value.value, where)
    if isinstance(value, bytes | bytearray | memoryview):
        # The pitfall guard: raw bytes never reach the encoder.
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnrecordableValue(
                    f"map key {key!r} at {where or '/'} is not a string", field=where or "/"
                )
            result[key] = _located(item, f"{where}/{key}")
        return result
    if isinstance(value, list | tuple):
        return [_located(item, f"{where}/{i}") for i, item in enumerate(value)]
    raise UnrecordableValue(
        f"cannot record a {type(value).__name__} at {where or '/'}", field=where or "/"
    )


def encode(normalized: Any) -> bytes:
    """DAG-CBOR bytes of an already normalized value."""
    try:
        return libipld.encode_dag_cbor(normalized)
    except (ValueError, OverflowError) as exc:
        raise UnrecordableValue(f"value has no DAG-CBOR form: {exc}") from exc


def decode(data: bytes) -> Any:
    """Decode a DAG-CBOR block (links come back as binary CIDs)."""
    return libipld.decode_dag_cbor(data)


def links_in(value: Any) -> list[str]:
    """The CIDs a normalized or decoded value links to, depth first, in order."""
    found: list[str] = []
    _collect_links(value, found)
    return found


def _collect_links(value: Any, found: list[str]) -> None:
    # Normalized and decoded values hold exact dicts and lists (see ``normalize``), and
    # every record is walked once for its links: type checks, not isinstance, and no
    # generator per level.
    kind = type(value)
    if kind is bytes:
        found.append(libipld.encode_cid(value))
        return
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    else:
        return
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            _collect_links(item, found)
        elif kind is bytes:
            found.append(libipld.encode_cid(item))


def to_json(value: Any) -> Any:
    """A decoded block as JSON, links written the DAG-JSON way (``{"/": cid}``)."""
    if isinstance(value, bytes):
        return {"/": libipld.encode_cid(value)}
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class Block:
    """An encoded block: its CID, bytes and the CIDs it links to."""

    cid: str
    data: bytes
    links: tuple[str, ...]


def make_block(value: Any) -> Block:
    """Normalize, encode and address ``value``."""
    normalized = normalize(value)
    data = encode(normalized)
    return Block(cid_for(data), data, tuple(dict.fromkeys(links_in(normalized))))
