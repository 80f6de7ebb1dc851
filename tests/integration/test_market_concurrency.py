"""Money under pressure: concurrent purchases against one balance, racing idempotent repeats,
racing parties, crossed settlements, a backend killed in the middle of a settlement, the
database's own guards, and the expiry sweeper."""

# The fixtures come from market_support; their names are reused as test parameters.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from decimal import Decimal
from uuid import UUID

import asyncpg
import httpx
import pytest

from dukenet.errors import DatabaseUnavailable
from dukenet.market import escrow, sweeper
from dukenet.runtime import Services
from dukenet.sdk import AsyncClient
from tests.integration.market_support import (  # noqa: F401
    MakeAgent,
    balance,
    fund,
    http,
    ledger_balanced_after_each_test,
    make_agent,
    make_agent_client,
    market_app,
    operator,
)

RATE = Decimal("0.025")
pytestmark = pytest.mark.slow


def _auth(client: AsyncClient) -> dict[str, str]:
    assert client.session is not None
    return {"authorization": f"Bearer {client.session.token}"}


async def test_fifty_concurrent_purchases_covering_twenty_make_exactly_twenty(
    http: httpx.AsyncClient, make_agent_client: MakeAgent, services: Services
) -> None:
    buyer, seller = await make_agent_client("20.0000"), await make_agent_client()
    await buyer.login()
    body = {"seller_agent_id": seller.agent_id, "transaction_type": "DATA_PURCHASE", "amount": "1"}

    responses = await asyncio.gather(
        *(http.post("/v1/transactions", json=body, headers=_auth(buyer)) for _ in range(50))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 20 + [402] * 30
    async with services.db.acquire() as conn:
        assert await balance(conn, buyer.agent_id) == (Decimal("0.0000"), Decimal("20.0000"))
        count = await conn.fetchval(
            "SELECT COUNT(*) FROM transactions WHERE buyer_agent_id = $1", buyer.agent_id
        )
    assert count == 20


async def test_twenty_concurrent_repeats_of_one_key_make_one_transaction(
    http: httpx.AsyncClient, make_agent_client: MakeAgent, services: Services
) -> None:
    buyer, seller = await make_agent_client("100"), await make_agent_client()
    await buyer.login()
    body = {"seller_agent_id": seller.agent_id, "transaction_type": "SKILL_RENTAL", "amount": "7"}
    headers = _auth(buyer) | {"Idempotency-Key": "one-and-only"}

    responses = await asyncio.gather(
        *(http.post("/v1/transactions", json=body, headers=headers) for _ in range(20))
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    async with services.db.acquire() as conn:
        count = await conn.fetchval(
            "SELECT COUNT(*) FROM transactions WHERE buyer_agent_id = $1", buyer.agent_id
        )
        assert await balance(conn, buyer.agent_id) == (Decimal("93.0000"), Decimal("7.0000"))
    assert count == 1


async def test_racing_complete_and_fail_let_exactly_one_win(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    buyer, seller = await make_agent_client("100"), await make_agent_client()
    await buyer.login()
    await seller.login()
    for _ in range(10):
        transaction = await buyer.create_transaction(seller.agent_id, "5")
        path = f"/v1/transactions/{transaction.transaction_id}"
        complete, fail = await asyncio.gather(
            http.post(f"{path}/complete", headers=_auth(seller)),
            http.post(f"{path}/fail", headers=_auth(buyer)),
        )
        assert sorted([complete.status_code, fail.status_code]) == [200, 409]


async def test_crossed_settlements_never_deadlock(services: Services) -> None:
    # A buys from B while B buys from A; settling both at once takes both balance rows in
    # opposite roles. The ledger locks rows in one order, so none of them deadlocks.
    async with services.db.transaction() as conn:
        a, b = await make_agent(conn), await make_agent(conn)
        await fund(conn, a, "1000")
        await fund(conn, b, "1000")

    async def hold(buyer: str, seller: str) -> UUID:
        async with services.db.transaction() as conn:
            return await escrow.hold(
                conn,
                buyer_agent_id=buyer,
                seller_agent_id=seller,
                amount=Decimal(1),
                currency="USD",
            )

    async def settle(transaction_id: UUID) -> None:
        async with services.db.transaction() as conn:
            await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)

    pairs = [(await hold(a, b), await hold(b, a)) for _ in range(30)]
    await asyncio.gather(*(settle(t) for pair in pairs for t in pair))
    async with services.db.acquire() as conn:
        # Each side paid 30 x 1 and received 30 x (1 - 0.025 fee).
        assert await balance(conn, a) == (Decimal("999.2500"), Decimal("0"))
        assert await balance(conn, b) == (Decimal("999.2500"), Decimal("0"))


async def _snapshot(conn: asyncpg.Connection, transaction_id: UUID) -> dict[str, object]:
    row = await conn.fetchrow(
        "SELECT status, platform_fee, audit_cid FROM transactions WHERE transaction_id = $1",
        transaction_id,
    )
    kinds = await conn.fetch(
        "SELECT kind FROM ledger_movements WHERE transaction_id = $1 ORDER BY movement_id",
        transaction_id,
    )
    path = await conn.fetchval(
        "SELECT cid FROM audit_paths WHERE path = $1", f"/dukenet/transactions/{transaction_id}"
    )
    history = await conn.fetch(
        "SELECT status FROM transaction_status_history WHERE transaction_id = $1"
        " ORDER BY history_id",
        transaction_id,
    )
    return {
        "status": row["status"],
        "fee": row["platform_fee"],
        "audit_cid": row["audit_cid"],
        "path": path,
        "movements": [k["kind"] for k in kinds],
        "history": [h["status"] for h in history],
    }


def _is_old(state: dict[str, object]) -> bool:
    return state == {
        "status": "PENDING",
        "fee": None,
        "audit_cid": None,
        "path": None,
        "movements": ["HOLD"],
        "history": ["PENDING"],
    }


def _is_new(state: dict[str, object]) -> bool:
    return (
        state["status"] == "COMPLETED"
        and state["fee"] is not None
        and state["audit_cid"] is not None
        and state["path"] == state["audit_cid"]
        and state["movements"] == ["HOLD", "SETTLE"]
        and state["history"] == ["PENDING", "COMPLETED"]
    )


async def _settle_and_report_pid(
    services: Services, transaction_id: UUID, pid: asyncio.Future[int]
) -> None:
    async with services.db.transaction() as conn:
        pid.set_result(conn.get_server_pid())
        await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)


async def test_a_backend_killed_mid_settlement_leaves_the_old_state(
    services: Services, database_url: str
) -> None:
    async with services.db.transaction() as conn:
        buyer, seller = await make_agent(conn), await make_agent(conn)
        await fund(conn, buyer, "10")
        await fund(conn, seller, "1")
        transaction_id = await escrow.hold(
            conn, buyer_agent_id=buyer, seller_agent_id=seller, amount=Decimal(4), currency="USD"
        )
    admin = await asyncpg.connect(database_url)
    blocker = await asyncpg.connect(database_url)
    try:
        # Hold the seller's balance row: the settlement writes its audit record, the new
        # status and its movement, then waits here for the row, half done.
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute("SELECT 1 FROM balances WHERE agent_id = $1 FOR UPDATE", seller)
        pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        settling = asyncio.create_task(_settle_and_report_pid(services, transaction_id, pid))
        backend = await pid
        for _ in range(200):
            waiting = await admin.fetchval(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", backend
            )
            if waiting == "Lock":
                break
            await asyncio.sleep(0.01)
        assert waiting == "Lock"
        await admin.execute("SELECT pg_terminate_backend($1)", backend)
        with pytest.raises(DatabaseUnavailable):
            await settling
        await blocking.rollback()
        state = await _snapshot(admin, transaction_id)
        assert _is_old(state), state
        async with services.db.acquire() as conn:
            assert await balance(conn, buyer) == (Decimal("6.0000"), Decimal("4.0000"))
            assert await balance(conn, seller) == (Decimal("1.0000"), Decimal("0.0000"))
        # Nothing is stuck: the same settlement now goes through.
        async with services.db.transaction() as conn:
            await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)
        assert _is_new(await _snapshot(admin, transaction_id))
    finally:
        await blocker.close()
        await admin.close()


async def test_backends_killed_at_random_moments_leave_old_or_new_never_half(
    services: Services, database_url: str
) -> None:
    async with services.db.transaction() as conn:
        buyer, seller = await make_agent(conn), await make_agent(conn)
        await fund(conn, buyer, "1000")
    holds = []
    for _ in range(30):
        async with services.db.transaction() as conn:
            holds.append(
                await escrow.hold(
                    conn,
                    buyer_agent_id=buyer,
                    seller_agent_id=seller,
                    amount=Decimal("3.3333"),
                    currency="USD",
                )
            )
    admin = await asyncpg.connect(database_url)
    rng = random.Random(6)
    outcomes = {"old": 0, "new": 0}
    try:
        # How long one settlement takes here: the kills land anywhere from its first
        # statement to just after its commit.
        started = time.perf_counter()
        for transaction_id in holds[:3]:
            async with services.db.transaction() as conn:
                await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)
        duration = (time.perf_counter() - started) / 3
        outcomes["new"] += 3
        for transaction_id in holds[3:]:
            pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            settling = asyncio.create_task(_settle_and_report_pid(services, transaction_id, pid))
            await asyncio.wait({pid, settling}, return_when=asyncio.FIRST_COMPLETED)
            if not pid.done():
                await settling  # it failed before it began: raise why
            backend = pid.result()
            await asyncio.sleep(rng.uniform(0, 1.2 * duration))
            if not settling.done():
                await admin.execute("SELECT pg_terminate_backend($1)", backend)
            with contextlib.suppress(DatabaseUnavailable):
                await settling
            # A kill that lands just after the commit hits a connection already back in the
            # pool; start the next round on fresh connections.
            await services.db.primary.expire_connections()
            state = await _snapshot(admin, transaction_id)
            assert _is_old(state) or _is_new(state), state
            outcomes["old" if _is_old(state) else "new"] += 1
        # The seller holds exactly the settled transactions' shares, nothing of the others.
        completed = outcomes["new"]
        async with services.db.acquire() as conn:
            share = Decimal("3.3333") - Decimal("0.0833")  # fee 0.0833325 -> 0.0833
            assert (await balance(conn, seller))[0] == completed * share
            assert (await balance(conn, buyer))[1] == outcomes["old"] * Decimal("3.3333")
    finally:
        await admin.close()


async def test_the_database_refuses_unbalanced_or_edited_ledgers(
    services: Services, database_url: str
) -> None:
    async with services.db.transaction() as conn:
        agent = await make_agent(conn)
        await fund(conn, agent, "5")
    conn = await asyncpg.connect(database_url)
    try:
        # Money from nowhere: one entry without its counterpart fails at commit.
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
            async with conn.transaction():
                movement = await conn.fetchval(
                    "INSERT INTO ledger_movements (kind, currency, amount, agent_id)"
                    " VALUES ('DEPOSIT', 'USD', 1, $1) RETURNING movement_id",
                    agent,
                )
                await conn.execute(
                    "INSERT INTO ledger_entries (movement_id, account, agent_id, currency, amount)"
                    " VALUES ($1, 'AVAILABLE', $2, 'USD', 1)",
                    movement,
                    agent,
                )
        # Nor can an entry be slipped into an old, balanced movement.
        deposit = await conn.fetchval(
            "SELECT movement_id FROM ledger_movements WHERE agent_id = $1 AND kind = 'DEPOSIT'",
            agent,
        )
        with pytest.raises(asyncpg.CheckViolationError, match="unbalanced"):
            await conn.execute(
                "INSERT INTO ledger_entries (movement_id, account, agent_id, currency, amount)"
                " VALUES ($1, 'AVAILABLE', $2, 'USD', 100)",
                deposit,
                agent,
            )
        # Spending more than is there: balanced entries, but the balance would go negative.
        with pytest.raises(asyncpg.CheckViolationError):
            async with conn.transaction():
                movement = await conn.fetchval(
                    "INSERT INTO ledger_movements (kind, currency, amount, agent_id)"
                    " VALUES ('PAYOUT', 'USD', 6, $1) RETURNING movement_id",
                    agent,
                )
                await conn.execute(
                    "INSERT INTO ledger_entries (movement_id, account, agent_id, currency, amount)"
                    " VALUES ($1, 'AVAILABLE', $2, 'USD', -6), ($1, 'EXTERNAL', NULL, 'USD', 6)",
                    movement,
                    agent,
                )
        for statement in (
            "UPDATE ledger_entries SET amount = amount * 2",
            "DELETE FROM ledger_entries",
            "DELETE FROM ledger_movements",
            "UPDATE balances SET available = 1000",
            "DELETE FROM balances",
            "INSERT INTO balances (agent_id, currency, available) VALUES ($1, 'EUR', 9)",
        ):
            args = [agent] if "$1" in statement else []
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement, *args)
    finally:
        await conn.close()
    async with services.db.acquire() as pooled:
        assert await balance(pooled, agent) == (Decimal("5.0000"), Decimal("0.0000"))


async def test_the_sweeper_fails_expired_holds_once_even_when_two_sweep(
    services: Services,
) -> None:
    async with services.db.transaction() as conn:
        buyer, seller = await make_agent(conn), await make_agent(conn)
        await fund(conn, buyer, "100")
    expired, fresh = [], []
    for target in (expired, expired, expired, expired, fresh):
        async with services.db.transaction() as conn:
            target.append(
                await escrow.hold(
                    conn,
                    buyer_agent_id=buyer,
                    seller_agent_id=seller,
                    amount=Decimal(10),
                    currency="USD",
                )
            )
    async with services.db.acquire() as conn:
        await conn.execute(
            "UPDATE transactions SET created_at = NOW() - interval '2 days'"
            " WHERE transaction_id = ANY($1::uuid[])",
            expired,
        )
    counts = await asyncio.gather(
        sweeper.expire_pending(services.db, expiry_seconds=86_400),
        sweeper.expire_pending(services.db, expiry_seconds=86_400),
    )
    assert sum(counts) == 4
    async with services.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT t.transaction_id, t.status, h.actor FROM transactions t"
            " JOIN transaction_status_history h USING (transaction_id)"
            " WHERE t.transaction_id = ANY($1::uuid[]) AND h.status = t.status",
            expired + fresh,
        )
        assert await balance(conn, buyer) == (Decimal("90.0000"), Decimal("10.0000"))
    states = {row["transaction_id"]: (row["status"], row["actor"]) for row in rows}
    assert all(states[t] == ("FAILED", "sweeper") for t in expired)
    assert states[fresh[0]] == ("PENDING", "system")
