"""Publishing audit blocks to an IPFS node through the Kubo RPC API (``DUKENET_IPFS_API``).

A background job walks the log in leaf order from a cursor stored per target: for each
record it puts the blocks the record links to and then the record itself
(``/api/v0/block/put`` with ``cid-codec=dag-cbor``, pinned; the CID Kubo reports must be
ours), and points the MFS path (``/dukenet/...``) at the newest record. Failures are
retried with exponential backoff; they never touch the events that produced the records,
which committed long before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import random
from typing import Any, Protocol

import httpx
import libipld

from dukenet.audit import blockstore, codec
from dukenet.audit.codec import Block
from dukenet.audit.errors import PublishFailed
from dukenet.config import Settings
from dukenet.errors import DukenetError
from dukenet.store.postgres import Connection, Database, translate_errors
from dukenet.store.sql import load_queries

QUERIES = load_queries("dukenet.audit", "queries.sql")
log = logging.getLogger(__name__)


class PublisherServices(Protocol):
    """What the publisher job needs from the process (``dukenet.runtime.Services`` fits)."""

    db: Database
    settings: Settings


def api_base(url: str) -> str:
    """The Kubo RPC base URL without a trailing ``/`` or ``/api/v0``."""
    base = url.rstrip("/")
    return base[: -len("/api/v0")] if base.endswith("/api/v0") else base


class KuboClient:
    """The few Kubo RPC calls the publisher makes (all RPC calls are POST)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _call(
        self, command: str, params: list[tuple[str, str | int | float | bool | None]], **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self.http.post(f"/api/v0/{command}", params=params, **kwargs)
        except httpx.HTTPError as exc:
            raise PublishFailed(f"IPFS node unreachable ({command}): {exc}") from exc
        if response.status_code != 200:
            raise PublishFailed(
                f"IPFS {command} answered {response.status_code}: {response.text[:200]}"
            )
        return response

    async def put_block(self, block: Block) -> None:
        """Store and pin one DAG-CBOR block; the node must report the same CID."""
        response = await self._call(
            "block/put",
            [("cid-codec", "dag-cbor"), ("mhtype", "sha2-256"), ("pin", "true")],
            files={"file": ("block", block.data, "application/octet-stream")},
        )
        try:
            key = codec.canonical_cid(str(response.json()["Key"]))
        except (ValueError, KeyError, TypeError, DukenetError) as exc:
            raise PublishFailed(f"unexpected block/put answer: {response.text[:200]}") from exc
        if key != block.cid:
            raise PublishFailed(f"IPFS node stored {block.cid} as {key}")

    async def point_path(self, path: str, cid: str) -> None:
        """Make MFS ``path`` refer to ``cid`` (creating parent directories)."""
        await self._call("files/mkdir", [("arg", posixpath.dirname(path)), ("parents", "true")])
        with contextlib.suppress(PublishFailed):  # nothing there yet
            await self._call("files/rm", [("arg", path), ("force", "true")])
        # `force` lets Kubo >= 0.34 copy a non-UnixFS (dag-cbor) node into MFS.
        await self._call("files/cp", [("arg", f"/ipfs/{cid}"), ("arg", path), ("force", "true")])


def _previous(block: Block) -> str | None:
    record = codec.decode(block.data)
    previous = record.get("previous") if isinstance(record, dict) else None
    return libipld.encode_cid(previous) if isinstance(previous, bytes) else None


async def _blocks_of(conn: Connection, record: Block) -> list[Block]:
    """The record's own linked blocks (children first) then the record; earlier records
    reached through ``previous`` were published as their own leaves."""
    previous = _previous(record)
    children = [link for link in record.links if link != previous]
    found = [block async for block in blockstore.walk(conn, children)] if children else []
    return [*reversed(found), record]


async def publish_pending(db: Database, kubo: KuboClient, target: str, batch: int = 100) -> int:
    """Publish up to ``batch`` records after the target's cursor; return how many."""
    async with db.transaction() as conn:
        with translate_errors():
            await conn.execute(QUERIES["publish_cursor"], target)
            cursor = await conn.fetchval(QUERIES["lock_publish_cursor"], target)
        if cursor is None:
            return 0  # another process is publishing to this target
        cursor = int(cursor)
        rows = await conn.fetch(QUERIES["entries"], cursor, cursor + batch)
        if not rows:
            return 0
        cids = [r["cid"] for r in rows]
        records = await blockstore.get_blocks(conn, cids)
        heads = {r["path"]: r["cid"] for r in await conn.fetch(QUERIES["paths_for_cids"], cids)}
        done, failure = cursor, None
        try:
            for row in rows:
                for block in await _blocks_of(conn, records[row["cid"]]):
                    await kubo.put_block(block)
                for path, head in heads.items():
                    if head == row["cid"]:
                        await kubo.point_path(path, head)
                done = row["leaf_index"] + 1
        except PublishFailed as exc:
            failure = exc  # keep the progress made so far, then report
        if done > cursor:
            await conn.execute(QUERIES["advance_publish_cursor"], target, done)
    if failure is not None:
        raise failure
    return done - cursor


async def _note_failure(db: Database, target: str, error: str) -> None:
    try:
        async with db.acquire() as conn:
            await conn.execute(QUERIES["publish_failed"], target, error[:1000])
    except DukenetError:
        pass


async def run_publisher(
    services: PublisherServices,
    *,
    interval: float = 1.0,
    base_backoff: float = 1.0,
    max_backoff: float = 60.0,
    batch: int = 100,
) -> None:
    """Background job: publish new records to ``settings.ipfs_api`` until cancelled."""
    target = services.settings.ipfs_api
    if not target:
        return
    failures = 0
    async with httpx.AsyncClient(base_url=api_base(target), timeout=30.0) as http:
        kubo = KuboClient(http)
        while True:
            try:
                published = await publish_pending(services.db, kubo, target, batch)
                failures = 0
                if published >= batch:
                    continue
                delay = interval
            except DukenetError as exc:
                failures += 1
                delay = min(max_backoff, base_backoff * 2 ** (failures - 1))
                delay *= random.uniform(0.8, 1.2)
                log.warning("IPFS publishing failed (%s); retrying in %.1fs", exc.detail, delay)
                await _note_failure(services.db, target, exc.detail)
            except Exception:  # a bug must not stop publishing for good: log it and go on
                failures += 1
                delay = min(max_backoff, base_backoff * 2 ** (failures - 1))
                log.exception("IPFS publishing crashed; retrying in %.1fs", delay)
            await asyncio.sleep(delay)
