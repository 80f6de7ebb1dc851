"""Audit records end to end on real PostgreSQL: written in the caller's transaction,
content-addressed, signed, indexed by path, included in the signed log, immutable."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest

from dukenet import crypto
from dukenet.audit import codec, merkle, records, trail
from dukenet.audit.checkpoint import origin_for, verify_checkpoint
from dukenet.audit.verify import WitnessState, verify_record_on_server
from dukenet.runtime import Services
from dukenet.sdk import build_registration
from tests.integration.audit_helpers import signed_registration, wait_included


class Rollback(Exception):
    pass


async def test_registration_record_verifies(
    services: Services, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    agent_id, payload = signed_registration("Verifier Test")
    async with services.db.transaction() as conn:
        cid = await trail.record_registration(
            conn, services.network_key, agent_id=agent_id, registration=payload
        )
    assert cid.startswith("bafyrei")
    path = f"/dukenet/agents/{agent_id}/registration"

    resolved = await client.get("/v1/audit/resolve", params={"path": path})
    assert resolved.status_code == 200
    assert resolved.json()["cid"] == cid

    raw = await client.get(f"/ipfs/{cid}", headers={"Accept": "application/vnd.ipld.raw"})
    assert codec.cid_for(raw.content) == cid
    record = records.verify_record(
        raw.content, expected_cid=cid, network_key=services.network_key.public_key()
    ).record
    assert record["type"] == "dukenet/agent-registration"
    assert record["version"] == 1
    assert record["public_key"] == payload["public_key"]
    assert record["registration"] == payload  # exactly as received, agent signature included
    crypto.verify_payload(crypto.load_public_key(payload["public_key"]), record["registration"])
    assert record["initial_metadata"]["tags"] == ["nlp", "summaries"]
    assert record["initial_metadata"]["capabilities"][0]["name"] == "text.summarize"
    assert record["initial_metadata"]["profile"]["display_name"] == "Verifier Test"

    proof = await wait_included(client, cid)
    note = (await client.get("/v1/audit/checkpoint", params={"format": "note"})).text
    checkpoint = verify_checkpoint(
        note, origin_for(services.network_id), services.network_key.public_key()
    )
    assert proof["tree_size"] <= checkpoint.tree_size
    proof = (
        await client.get(
            "/v1/audit/proof/inclusion", params={"cid": cid, "tree_size": checkpoint.tree_size}
        )
    ).json()
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    leaf = merkle.leaf_hash(codec.cid_bytes(cid))
    assert base64.b64decode(proof["leaf_hash"]) == leaf
    assert merkle.verify_inclusion(
        proof["leaf_index"], checkpoint.tree_size, leaf, hashes, checkpoint.root_hash
    )

    # The client-side verifier (what `dukenet audit verify` runs) agrees.
    state = WitnessState(tmp_path / "witness.json")
    report = await verify_record_on_server(client, path, state=state)
    assert report.ok
    assert report.cid == cid


async def test_a_rolled_back_event_leaves_no_record(services: Services) -> None:
    count = (
        "SELECT (SELECT count(*) FROM audit_blocks) + (SELECT count(*) FROM audit_paths)"
        " + (SELECT count(*) FROM audit_log_queue) + (SELECT count(*) FROM audit_log_leaves)"
    )
    async with services.db.acquire() as conn:
        before = await conn.fetchval(count)
    agent_id, payload = signed_registration()
    with pytest.raises(Rollback):
        async with services.db.transaction() as conn:
            await trail.record_registration(
                conn, services.network_key, agent_id=agent_id, registration=payload
            )
            raise Rollback
    async with services.db.acquire() as conn:
        assert await conn.fetchval(count) == before


async def test_a_badly_signed_registration_is_refused(services: Services) -> None:
    agent_id, payload = signed_registration()
    payload["display_name"] = "changed after signing"
    async with services.db.transaction() as conn:
        with pytest.raises(Exception, match="does not verify"):
            await trail.record_registration(
                conn, services.network_key, agent_id=agent_id, registration=payload
            )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_blocks SET data = '\\x00'::bytea",
        "DELETE FROM audit_blocks",
        "TRUNCATE audit_blocks CASCADE",
        "UPDATE audit_log_leaves SET cid = 'bafyreiforged'",
        "DELETE FROM audit_log_nodes",
        "DELETE FROM audit_checkpoints",
    ],
)
async def test_the_database_refuses_to_change_stored_audit_data(
    services: Services, statement: str
) -> None:
    agent_id, payload = signed_registration()
    async with services.db.transaction() as conn:
        await trail.record_registration(
            conn, services.network_key, agent_id=agent_id, registration=payload
        )
    conn = await asyncpg.connect(services.settings.database_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM audit_blocks")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM audit_blocks") == before
    finally:
        await conn.close()


async def test_rewriting_a_path_keeps_history(
    services: Services, client: httpx.AsyncClient
) -> None:
    transaction_id = uuid.uuid4()
    transaction = {
        "transaction_id": transaction_id,
        "buyer_agent_id": "a" * 64,
        "seller_agent_id": "b" * 64,
        "transaction_type": "SKILL_RENTAL",
        "amount": Decimal("2.5000"),
        "platform_fee": Decimal("0.0625"),
        "currency": "USD",
        "status": "COMPLETED",
        "completed_at": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
    }
    history = [{"status": "PENDING", "at": datetime(2025, 3, 1, 11, 59, tzinfo=UTC)}]
    async with services.db.transaction() as conn:
        output = await trail.store_value(conn, {"summary": "done"})
        first = await trail.record_transaction(
            conn,
            services.network_key,
            transaction=transaction,
            status_history=[*history, {"status": "COMPLETED"}],
            payment_proof={"method": "ledger", "reference": "entry-1"},
            completion_proof={"subtask_output": output},
        )
    async with services.db.transaction() as conn:
        second = await trail.record_transaction(
            conn,
            services.network_key,
            transaction={**transaction, "status": "REFUNDED"},
            status_history=[*history, {"status": "COMPLETED"}, {"status": "REFUNDED"}],
            payment_proof={"method": "ledger", "reference": "entry-2"},
            completion_proof=None,
        )
    assert first != second
    path = f"/dukenet/transactions/{transaction_id}"
    assert (await client.get("/v1/audit/resolve", params={"path": path})).json()["cid"] == second

    newest = (await client.get(f"/v1/audit/records/{second}")).json()
    assert newest["previous"] == {"/": first}
    assert newest["transaction"]["status"] == "REFUNDED"
    assert newest["transaction"]["amount"] == "2.5000"
    assert newest["transaction"]["transaction_id"] == str(transaction_id)
    assert newest["completion_proof"] is None
    oldest = (await client.get(f"/v1/audit/records/{first}")).json()
    assert "previous" not in oldest
    assert oldest["completion_proof"] == {"subtask_output": {"/": output.cid}}
    assert oldest["transaction"]["completed_at"] == "2025-03-01T12:00:00Z"
    # Both versions are leaves of the log.
    await wait_included(client, first)
    await wait_included(client, second)


async def test_task_execution_links_large_values(
    services: Services, client: httpx.AsyncClient
) -> None:
    task_id = uuid.uuid4()
    big_output = {"text": "x" * 5000}
    async with services.db.transaction() as conn:
        cid = await trail.record_task_execution(
            conn,
            services.network_key,
            task={"task_id": task_id, "name": "summarize", "actual_input": {"url": "u"}},
            subtasks=[
                {
                    "subtask_id": uuid.uuid4(),
                    "name": "s1",
                    "assigned_agent_id": "c" * 64,
                    "input": {"n": 1},
                    "output": big_output,
                    "cost": Decimal("0.0100"),
                }
            ],
            log=[{"event_type": "SUBMITTED", "timestamp": datetime.now(UTC)}],
        )
    record = (await client.get(f"/v1/audit/records/{cid}")).json()
    assert record["path"] == f"/dukenet/tasks/{task_id}/execution"
    assert record["task"]["actual_input"] == {"url": "u"}  # small: inline
    subtask = record["subtasks"][0]
    assert subtask["input"] == {"n": 1}
    link = subtask["output"]["/"]  # large: its own block
    linked = await client.get(f"/ipfs/{link}", params={"format": "raw"})
    assert codec.decode(linked.content) == big_output
    assert codec.cid_for(linked.content) == link
    assert record["log"][0]["event_type"] == "SUBMITTED"


async def test_task_executions_recorded_together(
    services: Services, client: httpx.AsyncClient
) -> None:
    # A worker's batch ends several tasks in one transaction: each gets its own record at
    # its own path, in the order given; one that had a record before links it.
    earlier, fresh = uuid.uuid4(), uuid.uuid4()
    log = [{"event_type": "COMPLETED", "timestamp": datetime.now(UTC)}]
    async with services.db.transaction() as conn:
        first = await trail.record_task_execution(
            conn, services.network_key, task={"task_id": earlier}, subtasks=[], log=log
        )
    async with services.db.transaction() as conn:
        cids = await trail.record_task_executions(
            conn,
            services.network_key,
            [
                ({"task_id": earlier, "status": "FAILED"}, [], log),
                (
                    {"task_id": fresh, "status": "COMPLETED"},
                    [{"name": "s1", "output": {"text": "y" * 3000}}],
                    log,
                ),
            ],
        )
        queued = await conn.fetch(
            "SELECT cid FROM audit_log_queue WHERE cid = ANY($1::text[]) ORDER BY queue_id", cids
        )
    assert len(set(cids)) == 2 and first not in cids
    assert [row["cid"] for row in queued] == cids
    for task_id, cid, status in [(earlier, cids[0], "FAILED"), (fresh, cids[1], "COMPLETED")]:
        path = f"/dukenet/tasks/{task_id}/execution"
        resolved = (await client.get("/v1/audit/resolve", params={"path": path})).json()
        assert resolved["cid"] == cid
        record = (await client.get(f"/v1/audit/records/{cid}")).json()
        assert record["path"] == path
        assert record["task"]["status"] == status
    replaced = (await client.get(f"/v1/audit/records/{cids[0]}")).json()
    assert replaced["previous"] == {"/": first}
    fresh_record = (await client.get(f"/v1/audit/records/{cids[1]}")).json()
    assert "previous" not in fresh_record
    assert "/" in fresh_record["subtasks"][0]["output"]  # large: its own block
    await wait_included(client, cids[0])
    await wait_included(client, cids[1])


async def test_audit_errors_are_problem_json(client: httpx.AsyncClient) -> None:
    cases = [
        ("/v1/audit/resolve?path=/dukenet/agents/none/registration", 404, "AUDIT_PATH_NOT_FOUND"),
        ("/v1/audit/resolve?path=/etc/passwd", 422, "VALIDATION_FAILED"),
        ("/v1/audit/proof/inclusion?cid=not-a-cid&tree_size=1", 400, "INVALID_CID"),
        ("/v1/audit/proof/consistency?first=5&second=2", 422, "INVALID_TREE_SIZE"),
        ("/v1/audit/proof/consistency?first=1&second=999999", 422, "INVALID_TREE_SIZE"),
        ("/v1/audit/checkpoint?tree_size=999999", 404, "CHECKPOINT_NOT_FOUND"),
        (
            "/v1/audit/records/bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae",
            404,
            "BLOCK_NOT_FOUND",
        ),
    ]
    for url, status, code in cases:
        response = await client.get(url)
        assert response.status_code == status, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code
    unknown = codec.make_block({"never": "stored"}).cid
    response = await client.get("/v1/audit/proof/inclusion", params={"cid": unknown})
    assert response.json()["code"] == "LEAF_NOT_FOUND"


async def test_entries_list_the_log_in_order(services: Services, client: httpx.AsyncClient) -> None:
    cids = []
    for _ in range(3):
        agent_id, payload = signed_registration()
        async with services.db.transaction() as conn:
            cids.append(
                await trail.record_registration(
                    conn, services.network_key, agent_id=agent_id, registration=payload
                )
            )
    for cid in cids:
        await wait_included(client, cid)
    everything = (await client.get("/v1/audit/entries")).json()
    indexes = [e["leaf_index"] for e in everything["items"]]
    assert indexes == list(range(everything["tree_size"]))
    assert [e["cid"] for e in everything["items"]][-3:] == cids
    page = (await client.get("/v1/audit/entries", params={"start": 0, "end": 2})).json()
    assert [e["leaf_index"] for e in page["items"]] == [0, 1]
    assert page["next_cursor"] is None or page["next_cursor"] == "2"
    checkpoint = (await client.get("/v1/audit/checkpoint")).json()
    assert checkpoint["origin"] == origin_for(
        crypto.agent_id_for(services.network_key.public_key())
    )
    assert checkpoint["note"].startswith(checkpoint["origin"] + "\n")


async def test_registering_through_the_api_writes_a_verifiable_record(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    key = crypto.generate_private_key()
    payload = build_registration(
        key,
        "Via API",
        tags=["audit"],
        metadata={"weights": [1, 2.5], "nested": {"ok": True}},
    )
    response = await client.post("/v1/agents", json=payload)
    assert response.status_code == 201, response.text
    agent = response.json()
    path = f"/dukenet/agents/{agent['agent_id']}/registration"
    resolved = (await client.get("/v1/audit/resolve", params={"path": path})).json()
    assert resolved["cid"] == agent["audit_cid"]
    state = WitnessState(tmp_path / "witness.json")
    report = await verify_record_on_server(client, path, state=state)
    assert report.ok, report.checks
    assert report.record is not None
    assert report.record["registration"] == payload


async def test_a_writer_that_waited_for_the_path_links_the_record_written_meanwhile(
    services: Services, client: httpx.AsyncClient
) -> None:
    # Two transactions write one path at once: the second waits for the path lock and must
    # then link the record the first committed, not the one before it.
    rating_id = uuid.uuid4()
    rating = {"rating_id": rating_id, "agent_id": "d" * 64, "rating": 4}
    async with services.db.transaction() as conn:
        oldest = await trail.record_rating(conn, services.network_key, rating=rating, task_cid=None)
    first_written = asyncio.Event()
    release_first = asyncio.Event()

    async def first_writer() -> str:
        async with services.db.transaction() as conn:
            cid = await trail.record_rating(
                conn, services.network_key, rating={**rating, "rating": 5}, task_cid=None
            )
            first_written.set()
            await release_first.wait()
        return cid

    async def second_writer() -> str:
        await first_written.wait()
        async with services.db.transaction() as conn:
            return await trail.record_rating(
                conn, services.network_key, rating={**rating, "rating": 1}, task_cid=None
            )

    first_task = asyncio.create_task(first_writer())
    second_task = asyncio.create_task(second_writer())
    await first_written.wait()
    await asyncio.sleep(0.3)  # the second writer is waiting for the path lock
    assert not second_task.done()
    release_first.set()
    first, second = await first_task, await second_task
    middle = (await client.get(f"/v1/audit/records/{first}")).json()
    assert middle["previous"] == {"/": oldest}
    newest = (await client.get(f"/v1/audit/records/{second}")).json()
    assert newest["previous"] == {"/": first}
    path = f"/dukenet/agents/{'d' * 64}/ratings/{rating_id}"
    assert (await client.get("/v1/audit/resolve", params={"path": path})).json()["cid"] == second
