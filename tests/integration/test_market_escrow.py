"""The escrow contract other domains rely on: hold, settle, release and refund inside the
caller's transaction, on real PostgreSQL, with the ledger invariant checked after each test."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from dukenet.audit.codec import decode, to_json
from dukenet.errors import InvalidInput, InvalidState, PaymentRequired
from dukenet.market import escrow, ledger
from dukenet.market.errors import RefundWindowClosed, TransactionNotFound
from dukenet.runtime import Services
from tests.integration.market_support import (
    balance,
    fund,
    ledger_balanced_after_each_test,  # noqa: F401
    make_agent,
    platform_fees,
)

RATE = Decimal("0.025")


async def _parties(services: Services, deposit: str = "100") -> tuple[str, str]:
    async with services.db.transaction() as conn:
        buyer, seller = await make_agent(conn), await make_agent(conn)
        await fund(conn, buyer, deposit)
    return buyer, seller


async def _hold(services: Services, buyer: str, seller: str, amount: str) -> UUID:
    async with services.db.transaction() as conn:
        return await escrow.hold(
            conn,
            buyer_agent_id=buyer,
            seller_agent_id=seller,
            amount=Decimal(amount),
            currency="USD",
            item_id="cap-1",
        )


async def _status(services: Services, transaction_id: UUID) -> str:
    async with services.db.acquire() as conn:
        status: str = await conn.fetchval(
            "SELECT status FROM transactions WHERE transaction_id = $1", transaction_id
        )
    return status


async def test_hold_moves_the_amount_from_available_to_held(services: Services) -> None:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "12.3456")
    async with services.db.acquire() as conn:
        assert await balance(conn, buyer) == (Decimal("87.6544"), Decimal("12.3456"))
        row = await conn.fetchrow(
            "SELECT * FROM transactions WHERE transaction_id = $1", transaction_id
        )
        history = await conn.fetch(
            "SELECT status, actor FROM transaction_status_history WHERE transaction_id = $1",
            transaction_id,
        )
    assert (row["status"], row["amount"], row["held_amount"]) == (
        "PENDING",
        Decimal("12.3456"),
        Decimal("12.3456"),
    )
    assert (row["transaction_type"], row["payment_method"]) == ("SKILL_RENTAL", "escrow")
    assert [tuple(h) for h in history] == [("PENDING", "system")]


async def test_insufficient_funds_writes_nothing_and_keeps_the_callers_transaction_usable(
    services: Services,
) -> None:
    buyer, seller = await _parties(services, "10")
    async with services.db.transaction() as conn:
        with pytest.raises(PaymentRequired) as raised:
            await escrow.hold(
                conn,
                buyer_agent_id=buyer,
                seller_agent_id=seller,
                amount=Decimal("10.0001"),
                currency="USD",
            )
        # Orchestration keeps working in the same transaction after a refused hold.
        assert await conn.fetchval("SELECT 1") == 1
        assert await balance(conn, buyer) == (Decimal("10.0000"), Decimal("0"))
    assert raised.value.code == "INSUFFICIENT_FUNDS" and raised.value.status == 402
    assert raised.value.extra["available"] == "10.0000"
    async with services.db.acquire() as conn:
        count = await conn.fetchval(
            "SELECT COUNT(*) FROM transactions WHERE buyer_agent_id = $1", buyer
        )
    assert count == 0


async def test_hold_in_a_currency_without_a_balance_is_insufficient(services: Services) -> None:
    buyer, seller = await _parties(services)
    async with services.db.transaction() as conn:
        with pytest.raises(PaymentRequired):
            await escrow.hold(
                conn,
                buyer_agent_id=buyer,
                seller_agent_id=seller,
                amount=Decimal(1),
                currency="EUR",
            )


@pytest.mark.parametrize(
    ("amount", "field"),
    [("0", "/amount"), ("-1", "/amount"), ("0.00001", "/amount"), ("1000000", "/amount")],
)
async def test_hold_refuses_bad_amounts(services: Services, amount: str, field: str) -> None:
    buyer, seller = await _parties(services)
    async with services.db.transaction() as conn:
        with pytest.raises(InvalidInput) as raised:
            await escrow.hold(
                conn,
                buyer_agent_id=buyer,
                seller_agent_id=seller,
                amount=Decimal(amount),
                currency="USD",
            )
    assert raised.value.field == field


async def test_hold_refuses_buying_from_oneself(services: Services) -> None:
    buyer, _ = await _parties(services)
    async with services.db.transaction() as conn:
        with pytest.raises(InvalidInput) as raised:
            await escrow.hold(
                conn, buyer_agent_id=buyer, seller_agent_id=buyer, amount=Decimal(1), currency="USD"
            )
    assert raised.value.field == "/seller_agent_id"


async def test_settle_pays_the_seller_minus_the_fee_and_writes_the_audit_record(
    services: Services,
) -> None:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "10.01")
    async with services.db.acquire() as conn:
        fees_before = await platform_fees(conn)
    async with services.db.transaction() as conn:
        settled = await escrow.settle(
            conn,
            services.network_key,
            transaction_id,
            fee_rate=RATE,
            completion_proof={"cid": "bafyproof"},
        )
    # 10.01 x 2.5 % = 0.25025, half-even -> 0.2502
    assert settled["status"] == "COMPLETED"
    assert (settled["amount"], settled["platform_fee"]) == (Decimal("10.0100"), Decimal("0.2502"))
    assert settled["completed_at"] is not None
    async with services.db.acquire() as conn:
        assert await balance(conn, buyer) == (Decimal("89.9900"), Decimal("0"))
        assert await balance(conn, seller) == (Decimal("9.7598"), Decimal("0"))
        assert await platform_fees(conn) - fees_before == Decimal("0.2502")
        path = await conn.fetchrow(
            "SELECT cid FROM audit_paths WHERE path = $1", f"/dukenet/transactions/{transaction_id}"
        )
        block = await conn.fetchval("SELECT data FROM audit_blocks WHERE cid = $1", path["cid"])
    assert settled["audit_cid"] == path["cid"]
    record = to_json(decode(block))
    assert record["transaction_id"] == str(transaction_id)
    assert record["transaction"]["status"] == "COMPLETED"
    assert record["transaction"]["platform_fee"] == "0.2502"
    assert record["completion_proof"] == {"cid": "bafyproof"}
    assert [h["status"] for h in record["status_history"]] == ["PENDING", "COMPLETED"]
    ledger = record["payment_proof"]["ledger"]
    assert [m["kind"] for m in ledger] == ["HOLD", "SETTLE"]
    assert sum(Decimal(e["amount"]) for m in ledger for e in m["entries"]) == 0


async def test_a_change_returns_the_transaction_as_the_database_holds_it(
    services: Services,
) -> None:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "10")
    proof = {"zz": [1.50, 1e20], "a": {"b": 1, "a": 2}}
    async with services.db.transaction() as conn:
        locked = await escrow.lock_transaction(conn, transaction_id)
        settled = await escrow.settle_locked(
            conn, services.network_key, locked, fee_rate=RATE, completion_proof=proof
        )
    async with services.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT * FROM transactions WHERE transaction_id = $1", transaction_id
        )
    assert settled == {name: row[name] for name in settled}
    assert list(settled["completion_proof"]) == ["a", "zz"]  # JSONB's order, as read back


async def test_settle_a_smaller_amount_returns_the_rest_to_the_buyer(services: Services) -> None:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "10")
    async with services.db.transaction() as conn:
        settled = await escrow.settle(
            conn, services.network_key, transaction_id, fee_rate=RATE, amount=Decimal("4")
        )
    assert (settled["amount"], settled["held_amount"], settled["platform_fee"]) == (
        Decimal("4.0000"),
        Decimal("10.0000"),
        Decimal("0.1000"),
    )
    async with services.db.acquire() as conn:
        assert await balance(conn, buyer) == (Decimal("96.0000"), Decimal("0"))
        assert await balance(conn, seller) == (Decimal("3.9000"), Decimal("0"))


async def test_settle_cannot_charge_more_than_was_held(services: Services) -> None:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "10")
    async with services.db.transaction() as conn:
        with pytest.raises(InvalidInput) as raised:
            await escrow.settle(
                conn, services.network_key, transaction_id, fee_rate=RATE, amount=Decimal("10.01")
            )
    assert raised.value.field == "/amount"
    assert await _status(services, transaction_id) == "PENDING"


async def test_release_returns_the_hold(services: Services) -> None:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "40")
    async with services.db.transaction() as conn:
        await escrow.release(conn, transaction_id, reason="attempt failed")
    async with services.db.acquire() as conn:
        assert await balance(conn, buyer) == (Decimal("100.0000"), Decimal("0"))
        row = await conn.fetchrow(
            "SELECT status, status_reason, audit_cid FROM transactions WHERE transaction_id = $1",
            transaction_id,
        )
    assert tuple(row) == ("FAILED", "attempt failed", None)


async def test_refund_reverses_the_settlement_and_links_the_new_audit_record(
    services: Services,
) -> None:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "20")
    async with services.db.transaction() as conn:
        settled = await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)
    async with services.db.acquire() as conn:
        fees_before = await platform_fees(conn)
    async with services.db.transaction() as conn:
        await escrow.refund(conn, services.network_key, transaction_id, reason="not delivered")
    async with services.db.acquire() as conn:
        assert await balance(conn, buyer) == (Decimal("100.0000"), Decimal("0"))
        assert await balance(conn, seller) == (Decimal("0.0000"), Decimal("0"))
        assert fees_before - await platform_fees(conn) == Decimal("0.5000")
        row = await conn.fetchrow(
            "SELECT status, audit_cid, refunded_at FROM transactions WHERE transaction_id = $1",
            transaction_id,
        )
        block = await conn.fetchval(
            "SELECT data FROM audit_blocks WHERE cid = $1", row["audit_cid"]
        )
    assert row["status"] == "REFUNDED" and row["refunded_at"] is not None
    record = to_json(decode(block))
    assert record["previous"] == {"/": settled["audit_cid"]}  # the completion record stays linked
    assert [h["status"] for h in record["status_history"]] == ["PENDING", "COMPLETED", "REFUNDED"]
    assert [m["kind"] for m in record["payment_proof"]["ledger"]] == ["HOLD", "SETTLE", "REFUND"]


async def test_refund_is_refused_when_the_seller_already_spent_its_share(
    services: Services,
) -> None:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "20")
    async with services.db.transaction() as conn:
        await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)
        # The seller then pays its share out.
        await ledger.payout(
            conn, seller, amount=Decimal("19.5"), currency="USD", payment_method="wire"
        )
    async with services.db.transaction() as conn:
        with pytest.raises(PaymentRequired):
            await escrow.refund(conn, services.network_key, transaction_id, reason="late")
    assert await _status(services, transaction_id) == "COMPLETED"


async def test_refund_window(services: Services) -> None:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "5")
    async with services.db.transaction() as conn:
        await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)
    async with services.db.transaction() as conn:
        await conn.execute(
            "UPDATE transactions SET completed_at = completed_at - interval '2 hours'"
            " WHERE transaction_id = $1",
            transaction_id,
        )
    async with services.db.transaction() as conn:
        locked = await escrow.lock_transaction(conn, transaction_id)
        with pytest.raises(RefundWindowClosed) as raised:
            await escrow.refund_locked(
                conn, services.network_key, locked, reason="late", window=timedelta(hours=1)
            )
    assert raised.value.status == 409
    async with services.db.transaction() as conn:
        locked = await escrow.lock_transaction(conn, transaction_id)
        await escrow.refund_locked(
            conn, services.network_key, locked, reason="in time", window=timedelta(hours=3)
        )
    assert await _status(services, transaction_id) == "REFUNDED"


async def _into(services: Services, status: str) -> UUID:
    buyer, seller = await _parties(services)
    transaction_id = await _hold(services, buyer, seller, "3")
    async with services.db.transaction() as conn:
        if status in ("COMPLETED", "REFUNDED"):
            await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)
        if status == "REFUNDED":
            await escrow.refund(conn, services.network_key, transaction_id, reason="r")
        if status == "FAILED":
            await escrow.release(conn, transaction_id, reason="f")
    return transaction_id


@pytest.mark.parametrize(
    ("status", "action"),
    [
        ("COMPLETED", "settle"),
        ("FAILED", "settle"),
        ("REFUNDED", "settle"),
        ("COMPLETED", "release"),
        ("FAILED", "release"),
        ("REFUNDED", "release"),
        ("PENDING", "refund"),
        ("FAILED", "refund"),
        ("REFUNDED", "refund"),
    ],
)
async def test_illegal_transitions_are_invalid_state(
    services: Services, status: str, action: str
) -> None:
    transaction_id = await _into(services, status)
    async with services.db.transaction() as conn:
        with pytest.raises(InvalidState) as raised:
            if action == "settle":
                await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)
            elif action == "release":
                await escrow.release(conn, transaction_id, reason="x")
            else:
                await escrow.refund(conn, services.network_key, transaction_id, reason="x")
    assert (raised.value.code, raised.value.status) == ("INVALID_STATE", 409)
    assert raised.value.extra["status"] == status
    assert await _status(services, transaction_id) == status


async def test_unknown_transaction(services: Services) -> None:
    async with services.db.transaction() as conn:
        with pytest.raises(TransactionNotFound):
            await escrow.release(conn, uuid4(), reason="x")


async def test_the_callers_rollback_undoes_every_movement(services: Services) -> None:
    buyer, seller = await _parties(services)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with services.db.transaction() as conn:
            transaction_id = await escrow.hold(
                conn,
                buyer_agent_id=buyer,
                seller_agent_id=seller,
                amount=Decimal(7),
                currency="USD",
            )
            await escrow.settle(conn, services.network_key, transaction_id, fee_rate=RATE)
            raise Abort
    async with services.db.acquire() as conn:
        assert await balance(conn, buyer) == (Decimal("100.0000"), Decimal("0"))
        assert await balance(conn, seller) == (Decimal("0"), Decimal("0"))
        assert (
            await conn.fetchval(
                "SELECT COUNT(*) FROM transactions WHERE buyer_agent_id = $1", buyer
            )
            == 0
        )
