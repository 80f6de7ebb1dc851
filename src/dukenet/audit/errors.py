"""Audit errors, each a subclass of the ``dukenet.errors`` tree with its own stable code.

BadRequest
└── InvalidCid (400 INVALID_CID)
NotFound
├── BlockNotFound (404 BLOCK_NOT_FOUND)
├── AuditPathNotFound (404 AUDIT_PATH_NOT_FOUND)
├── LeafNotFound (404 LEAF_NOT_FOUND; the CID is not (yet) in the log)
└── CheckpointNotFound (404 CHECKPOINT_NOT_FOUND)
InvalidInput
├── InvalidTreeSize (422 INVALID_TREE_SIZE)
└── UnrecordableValue (422 UNRECORDABLE_VALUE)
DukenetError
├── VerificationFailed (502 AUDIT_VERIFICATION_FAILED; a server's answer did not verify)
└── PublishFailed (502 IPFS_PUBLISH_FAILED; the Kubo node refused a block or MFS call)
"""

from __future__ import annotations

from typing import Any

from dukenet.errors import BadRequest, DukenetError, InvalidInput, NotFound


class InvalidCid(BadRequest):
    """A CID string that does not parse."""

    code = "INVALID_CID"
    title = "Invalid CID"


class BlockNotFound(NotFound):
    """No block with this CID is stored."""

    code = "BLOCK_NOT_FOUND"
    title = "Block not found"


class AuditPathNotFound(NotFound):
    """No record is stored at this path."""

    code = "AUDIT_PATH_NOT_FOUND"
    title = "Audit path not found"


class LeafNotFound(NotFound):
    """The CID is not (yet) a leaf of the log, or not within the requested tree size."""

    code = "LEAF_NOT_FOUND"
    title = "Leaf not found"


class CheckpointNotFound(NotFound):
    """No signed checkpoint exists yet (or none for the requested tree size)."""

    code = "CHECKPOINT_NOT_FOUND"
    title = "Checkpoint not found"


class InvalidTreeSize(InvalidInput):
    """A tree size or range outside the current log."""

    code = "INVALID_TREE_SIZE"
    title = "Invalid tree size"


class UnrecordableValue(InvalidInput):
    """A value that has no deterministic DAG-CBOR form (e.g. NaN, a non-string map key)."""

    code = "UNRECORDABLE_VALUE"
    title = "Value cannot be recorded"


class VerificationFailed(DukenetError):
    """Something fetched from a DukeNET server does not verify (CID, signature or proof)."""

    code = "AUDIT_VERIFICATION_FAILED"
    status = 502
    title = "Audit verification failed"
    report: Any = None  # the verifier's list of checks, when it has one


class PublishFailed(DukenetError):
    """The IPFS node refused or did not answer a publishing call (retried with backoff)."""

    code = "IPFS_PUBLISH_FAILED"
    status = 502
    title = "IPFS publishing failed"
