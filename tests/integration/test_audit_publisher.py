"""Publishing to IPFS through the Kubo RPC API, against a local test double of Kubo
(see ``kubo_double.py``): the exact bytes arrive and hash to our CIDs, MFS paths follow
the newest records, failures are retried, and events are never blocked by publishing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from dukenet.api.app import background_jobs, create_app
from dukenet.audit import codec, trail
from dukenet.audit import publisher as audit_publisher
from dukenet.config import Settings
from dukenet.runtime import Services
from tests.integration.audit_helpers import signed_registration, wait_included
from tests.integration.kubo_double import kubo_double


async def _wait(condition: object, patience: float = 20.0) -> None:
    deadline = time.monotonic() + patience
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def _cursor(services: Services, node: str) -> dict[str, Any]:
    """The publisher's cursor for the node (leaf 0 before its first commit)."""
    async with services.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT next_leaf, last_error FROM audit_publish_cursors WHERE target = $1",
            node + "/api/v0/",
        )
    return dict(row) if row is not None else {"next_leaf": 0, "last_error": None}


async def test_records_are_published_with_retries(settings: Settings, services: Services) -> None:
    with kubo_double() as kubo:
        kubo.fail_next = 2  # the node is down for the first calls
        app = create_app(settings.model_copy(update={"ipfs_api": kubo.url + "/api/v0/"}))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                agent_id, payload = signed_registration("Published")
                started = time.monotonic()
                async with services.db.transaction() as conn:
                    first = await trail.record_registration(
                        conn, services.network_key, agent_id=agent_id, registration=payload
                    )
                assert time.monotonic() - started < 1.0  # the event did not wait for IPFS
                await wait_included(http, first)
                task = {"task_id": "0b9e8a3e-1c41-4a57-9e4f-0c2f5d3f6a11"}
                async with services.db.transaction() as conn:
                    execution = await trail.record_task_execution(
                        conn,
                        services.network_key,
                        task={**task, "actual_output": {"text": "z" * 3000}},
                        subtasks=[],
                        log=[],
                    )
                async with services.db.transaction() as conn:
                    second = await trail.record_registration(
                        conn, services.network_key, agent_id=agent_id, registration=payload
                    )
                await _wait(lambda: second in kubo.blocks and execution in kubo.blocks)
                path = f"/dukenet/agents/{agent_id}/registration"
                await _wait(lambda: kubo.mfs.get(path) == second)
                # The cursor is committed after the node got the records (publisher running).
                cursor = await _cursor(services, kubo.url)
                deadline = time.monotonic() + 10
                while cursor["next_leaf"] < 3 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    cursor = await _cursor(services, kubo.url)

    # Exactly our bytes arrived, and each hashes to the CID it was published under.
    for cid, data in kubo.blocks.items():
        assert codec.cid_for(data) == cid
    assert {first, second, execution, codec.make_block({"text": "z" * 3000}).cid} <= set(
        kubo.blocks
    )
    assert kubo.mfs[f"/dukenet/tasks/{task['task_id']}/execution"] == execution
    # The injected failures were retried.
    commands = [command for command, _ in kubo.calls]
    assert commands.count("block/put") > len(kubo.blocks)
    puts = [dict(params) for command, params in kubo.calls if command == "block/put"]
    assert all(p["cid-codec"] == "dag-cbor" and p["pin"] == "true" for p in puts)
    assert cursor["next_leaf"] >= 3
    assert cursor["last_error"] is None


async def test_without_an_ipfs_api_nothing_is_published(settings: Settings) -> None:
    assert settings.ipfs_api is None
    assert audit_publisher.run_publisher not in background_jobs(settings)
    configured = settings.model_copy(update={"ipfs_api": "http://127.0.0.1:5001"})
    assert audit_publisher.run_publisher in background_jobs(configured)
