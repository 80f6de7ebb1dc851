"""The audit log over HTTP: checkpoints, entries, inclusion and consistency proofs, paths."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel

from dukenet import crypto
from dukenet.api.deps import ServicesDep
from dukenet.audit import blockstore, codec, merkle
from dukenet.audit import log as audit_log
from dukenet.audit.checkpoint import origin_for, verifier_key

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class CheckpointOut(BaseModel):
    """A signed checkpoint: the C2SP signed note plus its fields, for convenience."""

    origin: str
    tree_size: int
    root_hash: str
    note: str
    created_at: datetime
    verifier_key: str


class Entry(BaseModel):
    """One leaf of the log."""

    leaf_index: int
    cid: str
    integrated_at: datetime


class EntriesOut(BaseModel):
    """Leaves ``[start, end)``; ``next_cursor`` is the next ``start`` when more follow."""

    items: list[Entry]
    tree_size: int
    next_cursor: str | None


class InclusionProofOut(BaseModel):
    """RFC 9162 inclusion proof; leaf data is the binary CID, hashes are standard base64."""

    cid: str
    leaf_index: int
    tree_size: int
    leaf_hash: str
    hashes: list[str]


class ConsistencyProofOut(BaseModel):
    """RFC 9162 consistency proof between two tree sizes (hashes in standard base64)."""

    first: int
    second: int
    hashes: list[str]


class PathOut(BaseModel):
    """The record a path points at now."""

    path: str
    cid: str
    updated_at: datetime


def _wants_note(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "note"
    accept = request.headers.get("accept", "")
    return "text/plain" in accept and "application/json" not in accept


@router.get(
    "/checkpoint",
    response_model=CheckpointOut,
    responses={200: {"content": {"text/plain": {}}}, 404: {"description": "no checkpoint yet"}},
)
async def get_checkpoint(
    request: Request,
    services: ServicesDep,
    tree_size: Annotated[int | None, Query(ge=0, description="a past checkpoint's size")] = None,
    format_: Annotated[
        str | None, Query(alias="format", pattern="^(json|note)$", description="json or note")
    ] = None,
) -> Any:
    """The newest signed checkpoint (or the one at ``tree_size``), as JSON or, with
    ``Accept: text/plain`` or ``format=note``, as the bare C2SP signed note."""
    async with services.db.acquire() as conn:
        if tree_size is None:
            stored = await audit_log.latest_checkpoint(conn)
        else:
            stored = await audit_log.checkpoint_at(conn, tree_size)
    if _wants_note(request, format_):
        return PlainTextResponse(stored.note, headers={"Cache-Control": "no-cache"})
    origin = origin_for(services.network_id)
    return CheckpointOut(
        origin=origin,
        tree_size=stored.tree_size,
        root_hash=_b64(stored.root_hash),
        note=stored.note,
        created_at=stored.created_at,
        verifier_key=verifier_key(origin, services.network_key.public_key()),
    )


@router.get("/entries", response_model=EntriesOut)
async def get_entries(
    services: ServicesDep,
    start: Annotated[int, Query(ge=0)] = 0,
    end: Annotated[int | None, Query(ge=0, description="exclusive; at most start + 1000")] = None,
) -> EntriesOut:
    """Leaves ``[start, end)`` of the log in order: leaf index and record CID."""
    async with services.db.acquire() as conn:
        size = await audit_log.tree_size(conn)
        wanted_stop = size if end is None else min(end, size)
        stop = max(start, min(wanted_stop, start + audit_log.MAX_ENTRIES))
        rows = await audit_log.entries(conn, start, stop)
    return EntriesOut(
        items=[
            Entry(leaf_index=r["leaf_index"], cid=r["cid"], integrated_at=r["integrated_at"])
            for r in rows
        ],
        tree_size=size,
        next_cursor=str(stop) if stop < wanted_stop else None,
    )


@router.get("/proof/inclusion", response_model=InclusionProofOut)
async def get_inclusion_proof(
    services: ServicesDep,
    cid: Annotated[str, Query(min_length=1, max_length=200)],
    tree_size: Annotated[int | None, Query(ge=1, description="default: latest checkpoint")] = None,
) -> InclusionProofOut:
    """The inclusion proof of a record CID in the tree of ``tree_size`` leaves."""
    async with services.db.acquire() as conn:
        proof = await audit_log.inclusion_proof(conn, cid, tree_size)
    return InclusionProofOut(
        cid=proof.cid,
        leaf_index=proof.leaf_index,
        tree_size=proof.tree_size,
        leaf_hash=_b64(merkle.leaf_hash(audit_log.leaf_data(proof.cid))),
        hashes=[_b64(h) for h in proof.hashes],
    )


@router.get("/proof/consistency", response_model=ConsistencyProofOut)
async def get_consistency_proof(
    services: ServicesDep,
    first: Annotated[int, Query(ge=1)],
    second: Annotated[int, Query(ge=1)],
) -> ConsistencyProofOut:
    """The proof that the tree of ``second`` leaves extends the tree of ``first`` leaves."""
    async with services.db.acquire() as conn:
        hashes = await audit_log.consistency_proof(conn, first, second)
    return ConsistencyProofOut(first=first, second=second, hashes=[_b64(h) for h in hashes])


@router.get("/resolve", response_model=PathOut)
async def resolve(
    services: ServicesDep, path: Annotated[str, Query(min_length=1, max_length=512)]
) -> PathOut:
    """The CID of the newest record at a path such as ``/dukenet/agents/{id}/registration``."""
    async with services.db.acquire() as conn:
        entry = await blockstore.resolve_path(conn, path)
    return PathOut(path=entry.path, cid=entry.cid, updated_at=entry.updated_at)


@router.get("/records/{cid}")
async def get_record(services: ServicesDep, cid: str) -> Response:
    """A block decoded to JSON (links as ``{"/": cid}``), for reading; verify the raw block."""
    async with services.db.acquire() as conn:
        data = await blockstore.get_block(conn, cid)
    return Response(
        crypto.canonical_bytes(codec.to_json(codec.decode(data))),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=29030400, immutable"},
    )
