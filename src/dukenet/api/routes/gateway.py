"""A trustless IPFS gateway (IPFS Trustless Gateway spec) for the audit blocks.

``GET /ipfs/{cid}`` returns the raw block (``application/vnd.ipld.raw`` or
``?format=raw``) or a CARv1 holding the block and every block it links to
(``application/vnd.ipld.car`` or ``?format=car``; ``dag-scope=block`` for the block only).
Responses are verifiable by hashing, so they are cached as immutable.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from dukenet.api.deps import ServicesDep
from dukenet.api.problems import problem_response
from dukenet.audit import blockstore, car, codec
from dukenet.errors import BadRequest

router = APIRouter(tags=["gateway"])

RAW = "application/vnd.ipld.raw"
CAR = "application/vnd.ipld.car"
IMMUTABLE = "public, max-age=29030400, immutable"


def _negotiate(request: Request, format_: str | None) -> str | None:
    """``raw``, ``car``, or None when the client accepts neither."""
    if format_ is not None:
        if format_ not in ("raw", "car"):
            raise BadRequest("format must be raw or car", field="format")
        return format_
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return "raw"
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media == RAW:
            return "raw"
        if media == CAR:
            return "car"
        if media in ("*/*", "application/*"):
            return "raw"
    return None


@router.head("/ipfs/{cid}", include_in_schema=False)
@router.get(
    "/ipfs/{cid}",
    response_class=Response,
    responses={
        200: {"content": {RAW: {}, CAR: {}}},
        304: {"description": "not modified"},
        400: {"description": "malformed CID"},
        404: {"description": "unknown CID"},
        406: {"description": "neither raw nor CAR accepted"},
    },
)
async def get_block(
    request: Request,
    services: ServicesDep,
    cid: str,
    format_: Annotated[str | None, Query(alias="format", description="raw or car")] = None,
    dag_scope: Annotated[
        str, Query(alias="dag-scope", pattern="^(block|entity|all)$", description="CAR scope")
    ] = "all",
) -> Response:
    """The block ``cid`` as a raw block or a CARv1, verifiable by hashing."""
    canonical = codec.canonical_cid(cid)
    chosen = _negotiate(request, format_)
    if chosen is None:
        return problem_response(
            406,
            "NOT_ACCEPTABLE",
            "Not acceptable",
            f"this is a trustless gateway: accept {RAW} or {CAR}",
        )
    etag = f'"{canonical}.raw"' if chosen == "raw" else f'"{canonical}.car.{dag_scope}"'
    headers = {
        "X-Ipfs-Path": f"/ipfs/{cid}",
        "X-Ipfs-Roots": canonical,
        "Cache-Control": IMMUTABLE,
        "ETag": etag,
        "Vary": "Accept",
        "X-Content-Type-Options": "nosniff",
    }
    async with services.db.acquire() as conn:
        if chosen == "raw":
            body = await blockstore.get_block(conn, canonical)
            media_type = RAW
            headers["Content-Disposition"] = f'attachment; filename="{canonical}.bin"'
        else:
            chunks = [car.header([canonical])]
            follow = dag_scope != "block"
            async for block in blockstore.walk(conn, [canonical], follow_links=follow):
                chunks.append(car.section(block))
            body = b"".join(chunks)
            media_type = car.CAR_CONTENT_TYPE
            headers["Content-Disposition"] = f'attachment; filename="{canonical}.car"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    headers["Content-Length"] = str(len(body))
    content = b"" if request.method == "HEAD" else body
    return Response(content, media_type=media_type, headers=headers)
