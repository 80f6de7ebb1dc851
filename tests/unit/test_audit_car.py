"""CARv1 files decode with libipld and every block hashes back to its CID."""

from __future__ import annotations

import hashlib

import libipld

from dukenet.audit import car, codec


def test_car_roundtrip_with_libipld() -> None:
    child = codec.make_block({"output": "x" * 300})
    root = codec.make_block({"result": codec.Link(child.cid), "n": 1})
    data = car.header([root.cid]) + b"".join(car.iter_sections([root, child]))

    header, blocks = libipld.decode_car(data)
    assert header["version"] == 1
    assert [libipld.encode_cid(r) for r in header["roots"]] == [root.cid]
    assert {libipld.encode_cid(k) for k in blocks} == {root.cid, child.cid}

    parsed = car.read(data)
    assert parsed.roots == [root.cid]
    for cid, raw in parsed.blocks:
        assert codec.cid_for(raw) == cid
        assert libipld.decode_cid(cid)["hash"]["digest"] == hashlib.sha256(raw).digest()


def test_varint_matches_the_multiformats_examples() -> None:
    assert car.varint(1) == b"\x01"
    assert car.varint(127) == b"\x7f"
    assert car.varint(128) == b"\x80\x01"
    assert car.varint(255) == b"\xff\x01"
    assert car.varint(300) == b"\xac\x02"
    assert car.varint(16384) == b"\x80\x80\x01"
