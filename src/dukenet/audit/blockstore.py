"""Blocks in PostgreSQL (immutable, keyed by CID) and the path index.

Blocks are written in the caller's transaction, so an event and its record commit
together or not at all; the database itself refuses to update or delete a block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime

from dukenet.audit.codec import Block, canonical_cid
from dukenet.audit.errors import AuditPathNotFound, BlockNotFound
from dukenet.errors import InvalidInput
from dukenet.store.postgres import Connection, translate_errors
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.audit", "queries.sql")
PATH_PREFIX = "/dukenet/"


@dataclass(frozen=True)
class PathEntry:
    """Where a path points now."""

    path: str
    cid: str
    updated_at: datetime


def check_path(path: str) -> str:
    """``path`` if it is a DukeNET audit path (``/dukenet/...``), else ``InvalidInput``."""
    if not path.startswith(PATH_PREFIX) or "//" in path or path.endswith("/") or len(path) > 512:
        raise InvalidInput(
            "audit paths look like /dukenet/agents/{agent_id}/registration", field="path"
        )
    return path


async def put_block(conn: Connection, block: Block) -> None:
    """Store a block (a no-op when it is already stored: content addressing)."""
    with translate_errors():
        await conn.execute(QUERIES["store_block"], block.cid, block.data, list(block.links))


async def get_block(conn: Connection, cid: str) -> bytes:
    """The bytes of block ``cid``; ``BlockNotFound`` if none is stored."""
    with translate_errors():
        data: bytes | None = await conn.fetchval(QUERIES["get_block"], canonical_cid(cid))
    if data is None:
        raise BlockNotFound(f"no block {cid}")
    return data


async def get_blocks(conn: Connection, cids: Iterable[str]) -> dict[str, Block]:
    """The stored blocks among ``cids`` (missing ones are absent from the result)."""
    with translate_errors():
        rows = await conn.fetch(QUERIES["get_blocks"], list(cids))
    return {r["cid"]: Block(r["cid"], r["data"], tuple(r["links"])) for r in rows}


async def resolve_path(conn: Connection, path: str) -> PathEntry:
    """The newest record at ``path``; ``AuditPathNotFound`` if nothing was recorded there."""
    with translate_errors():
        row = await conn.fetchrow(QUERIES["resolve_path"], check_path(path))
    if row is None:
        raise AuditPathNotFound(f"nothing is recorded at {path}")
    return PathEntry(row["path"], row["cid"], row["updated_at"])


async def paths_with_prefix(conn: Connection, prefix: str) -> list[PathEntry]:
    """Every path starting with ``prefix`` and where it points, in path order."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with translate_errors():
        rows = await conn.fetch(QUERIES["paths_with_prefix"], pattern)
    return [PathEntry(r["path"], r["cid"], datetime.min) for r in rows]


async def walk(
    conn: Connection, roots: Iterable[str], *, follow_links: bool = True
) -> AsyncIterator[Block]:
    """Blocks reachable from ``roots``, depth first, each once (the CAR ``dfs`` order)."""
    seen: set[str] = set()
    fetched: dict[str, Block] = {}
    stack = list(reversed([canonical_cid(c) for c in roots]))
    while stack:
        cid = stack.pop()
        if cid in seen:
            continue
        if cid not in fetched:
            # Fetch this block and a batch of what waits on the stack in one query.
            wanted = [cid, *(c for c in stack[-255:] if c not in fetched and c not in seen)]
            fetched.update(await get_blocks(conn, wanted))
        block = fetched.pop(cid, None)
        if block is None:
            raise BlockNotFound(f"block {cid} is linked but not stored")
        seen.add(cid)
        yield block
        if follow_links:
            stack.extend(reversed([link for link in block.links if link not in seen]))
