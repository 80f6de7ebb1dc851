"""CARv1 archives: a DAG-CBOR header ``{"roots": [...], "version": 1}`` then, per block,
``varint(len(cid) + len(data)) || cid || data``. The header is encoded with libipld; only
the unsigned LEB128 length prefix is written here.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

import libipld

from dukenet.audit.codec import Block, cid_bytes
from dukenet.errors import InvalidInput

CAR_CONTENT_TYPE = "application/vnd.ipld.car; version=1; order=dfs; dups=n"


def varint(value: int) -> bytes:
    """Unsigned LEB128 (the multiformats varint)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def header(roots: Iterable[str]) -> bytes:
    """The length-prefixed CARv1 header naming ``roots``."""
    encoded = libipld.encode_dag_cbor({"roots": [cid_bytes(r) for r in roots], "version": 1})
    return varint(len(encoded)) + encoded


def section(block: Block) -> bytes:
    """One length-prefixed block section."""
    raw = cid_bytes(block.cid)
    return varint(len(raw) + len(block.data)) + raw + block.data


async def stream(roots: list[str], blocks: AsyncIterable[Block]) -> AsyncIterator[bytes]:
    """A CARv1 as chunks: the header, then one section per block."""
    yield header(roots)
    async for block in blocks:
        yield section(block)


@dataclass(frozen=True)
class CarContents:
    """A parsed CARv1: its roots and its blocks as raw bytes, in file order."""

    roots: list[str]
    blocks: list[tuple[str, bytes]]


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 63:
            raise InvalidInput("truncated varint in CAR")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset


def _cid_length(data: bytes) -> int:
    """Length of the binary CIDv1 at the start of ``data``."""
    offset = 0
    for _ in range(3):  # version, codec, multihash code
        _, offset = _read_varint(data, offset)
    digest_size, offset = _read_varint(data, offset)
    return offset + digest_size


def read(data: bytes) -> CarContents:
    """Split a CARv1 into roots and raw blocks (each block is left for the caller to hash)."""
    length, offset = _read_varint(data, 0)
    head = libipld.decode_dag_cbor(data[offset : offset + length])
    offset += length
    if not isinstance(head, dict) or head.get("version") != 1:
        raise InvalidInput("not a CARv1")
    roots = [libipld.encode_cid(r) for r in head.get("roots", [])]
    blocks: list[tuple[str, bytes]] = []
    while offset < len(data):
        length, offset = _read_varint(data, offset)
        chunk = data[offset : offset + length]
        if len(chunk) != length:
            raise InvalidInput("truncated CAR section")
        split = _cid_length(chunk)
        blocks.append((libipld.encode_cid(chunk[:split]), chunk[split:]))
        offset += length
    return CarContents(roots, blocks)


def iter_sections(blocks: Iterable[Block]) -> Iterator[bytes]:
    """Sections for blocks already in memory."""
    for block in blocks:
        yield section(block)
