"""C2SP signed-note checkpoints: format, parse, verify, and refusal of any change."""

from __future__ import annotations

import base64
import hashlib

import pytest

from dukenet import crypto
from dukenet.audit.checkpoint import (
    Checkpoint,
    key_id,
    origin_for,
    parse_checkpoint,
    sign_checkpoint,
    split_note,
    verifier_key,
    verify_checkpoint,
)
from dukenet.errors import InvalidInput, InvalidSignature

KEY = crypto.parse_private_key(
    base64.b64encode(hashlib.sha256(b"checkpoint key").digest()).decode()
)
ORIGIN = origin_for("ab" * 32)
ROOT = hashlib.sha256(b"root").digest()


def note() -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, 1234, ROOT), KEY, ORIGIN)


def test_note_has_the_c2sp_layout() -> None:
    text = note()
    body, signature_block = text.split("\n\n")
    assert body.split("\n") == [ORIGIN, "1234", base64.b64encode(ROOT).decode()]
    assert signature_block.startswith(f"\u2014 {ORIGIN} ")
    assert text.endswith("\n")
    blob = base64.b64decode(signature_block.rstrip("\n").rsplit(" ", 1)[1])
    assert len(blob) == 4 + 64
    # Key id: SHA-256(name || "\n" || 0x01 || public key)[:4].
    raw = crypto.public_key_bytes(KEY.public_key())
    assert blob[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    assert blob[:4] == key_id(ORIGIN, KEY.public_key())
    # The signature covers the body including its final newline.
    KEY.public_key().verify(blob[4:], (body + "\n").encode())


def test_verify_returns_the_checkpoint() -> None:
    checkpoint = verify_checkpoint(note(), ORIGIN, KEY.public_key())
    assert checkpoint == Checkpoint(ORIGIN, 1234, ROOT)


def test_verifier_key_format() -> None:
    name, hex_id, encoded = verifier_key(ORIGIN, KEY.public_key()).split("+", 2)
    assert name == ORIGIN
    assert bytes.fromhex(hex_id) == key_id(ORIGIN, KEY.public_key())
    assert base64.b64decode(encoded) == b"\x01" + crypto.public_key_bytes(KEY.public_key())


@pytest.mark.parametrize(
    ("old", "new"),
    [("1234", "1235"), (base64.b64encode(ROOT).decode()[:8], "AAAAAAAA"), ("dukenet/", "dukenex/")],
)
def test_any_change_to_the_body_is_refused(old: str, new: str) -> None:
    tampered = note().replace(old, new, 1)
    assert tampered != note()
    with pytest.raises(InvalidSignature):
        verify_checkpoint(tampered, ORIGIN, KEY.public_key())


def test_other_keys_and_names_are_refused() -> None:
    with pytest.raises(InvalidSignature, match="not signed by"):
        verify_checkpoint(note(), ORIGIN, crypto.generate_private_key().public_key())
    with pytest.raises(InvalidSignature, match="not signed by"):
        verify_checkpoint(note(), "someone/else", KEY.public_key())


@pytest.mark.parametrize(
    "text",
    ["", "no newline", "origin\n1\nAAAA\n", "origin\n1\nroot\n\nnot a signature line\n"],
)
def test_malformed_notes_are_refused(text: str) -> None:
    with pytest.raises(InvalidSignature):
        split_note(text)


@pytest.mark.parametrize(
    "body",
    [
        "origin\n12\n",
        "origin\n012\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n-1\n" + base64.b64encode(ROOT).decode() + "\n",
        "origin\n1\nAAAA\n",
    ],
)
def test_malformed_checkpoints_are_refused(body: str) -> None:
    with pytest.raises(InvalidInput):
        parse_checkpoint(body)


def test_extension_lines_are_kept() -> None:
    text = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT, ("ext line",)), KEY, ORIGIN)
    assert verify_checkpoint(text, ORIGIN, KEY.public_key()).extensions == ("ext line",)
