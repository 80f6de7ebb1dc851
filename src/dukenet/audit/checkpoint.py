"""C2SP checkpoints (tlog-checkpoint) inside C2SP signed notes, signed with Ed25519.

A checkpoint body is three lines: the log's origin, the tree size in decimal and the
standard-base64 root hash. The signed note appends a blank line and one signature line
per signer: ``— <key name> <base64(4-byte key id || 64-byte signature)>``, where the key
id is the first 4 bytes of SHA-256(key name || "\\n" || 0x01 || public key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dukenet import crypto
from dukenet.errors import InvalidInput, InvalidSignature

ED25519_ALGORITHM = b"\x01"
_DASH = "\u2014 "  # em dash + space starts every signature line


def origin_for(network_id: str) -> str:
    """The log origin of a network: unique per network key."""
    return f"dukenet/audit/{network_id}"


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte key id of an Ed25519 note key."""
    material = name.encode() + b"\n" + ED25519_ALGORITHM + crypto.public_key_bytes(public_key)
    return hashlib.sha256(material).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The note verifier key string ``name+hexid+base64(0x01||key)`` used by C2SP tools."""
    encoded = base64.b64encode(ED25519_ALGORITHM + crypto.public_key_bytes(public_key)).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint body (signatures checked separately)."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The note text that is signed, ending in a newline."""
        lines = [self.origin, str(self.tree_size), base64.b64encode(self.root_hash).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a signed note."""

    name: str
    key_id: bytes
    signature: bytes


def sign_checkpoint(checkpoint: Checkpoint, key: Ed25519PrivateKey, name: str) -> str:
    """The signed note for ``checkpoint``, signed by ``key`` under ``name``."""
    if not name or any(c.isspace() or c == "+" for c in name):
        raise InvalidInput("a note key name must be non-empty, without spaces or '+'")
    body = checkpoint.body()
    signature = key.sign(body.encode())
    blob = base64.b64encode(key_id(name, key.public_key()) + signature).decode()
    return f"{body}\n{_DASH}{name} {blob}\n"


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signature lines; ``InvalidSignature`` if malformed."""
    if not note.endswith("\n"):
        raise InvalidSignature("signed note must end with a newline")
    text, separator, signature_block = note.rpartition("\n\n")
    if not separator:
        raise InvalidSignature("signed note has no signature block")
    signatures: list[NoteSignature] = []
    for line in signature_block.splitlines():
        if not line.startswith(_DASH):
            raise InvalidSignature(f"malformed signature line: {line[:60]!r}")
        name, _, blob = line[len(_DASH) :].rpartition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidSignature("signature line is not base64") from exc
        if not name or len(raw) < 5:
            raise InvalidSignature(f"malformed signature line: {line[:60]!r}")
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    if not signatures:
        raise InvalidSignature("signed note carries no signature")
    return text + "\n", signatures


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body; ``InvalidInput`` when it is not one."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise InvalidInput("checkpoint must have origin, size and root hash lines")
    origin, size_text, root_text, *extensions = lines[:-1]
    if not origin or not size_text.isdigit() or (size_text != "0" and size_text[0] == "0"):
        raise InvalidInput("checkpoint origin or tree size is malformed")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("checkpoint root hash is not base64") from exc
    if len(root) != 32:
        raise InvalidInput("checkpoint root hash must be 32 bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def verify_checkpoint(note: str, name: str, public_key: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint in ``note`` if ``public_key`` signed it under ``name``; else raise."""
    text, signatures = split_note(note)
    wanted = key_id(name, public_key)
    for signature in signatures:
        if signature.name == name and signature.key_id == wanted:
            try:
                public_key.verify(signature.signature, text.encode())
            except _CryptoInvalidSignature as exc:
                raise InvalidSignature("checkpoint signature does not verify") from exc
            checkpoint = parse_checkpoint(text)
            if checkpoint.origin != name:
                raise InvalidSignature("checkpoint origin does not match its key name")
            return checkpoint
    raise InvalidSignature(f"checkpoint is not signed by {name}")
