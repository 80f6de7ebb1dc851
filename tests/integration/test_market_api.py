"""The marketplace over HTTP: funding, purchases, completion, failure, refunds, who may do
what, idempotency, listing and balances, on real PostgreSQL and Redis."""

# The fixtures come from market_support; their names are reused as test parameters.
# ruff: noqa: F811

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import httpx
import pytest

from dukenet.runtime import Services
from dukenet.sdk import AsyncClient, errors
from dukenet.sdk.market import InsufficientFunds, RefundWindowClosed
from tests.integration.market_support import (  # noqa: F401
    ADMIN,
    MakeAgent,
    http,
    ledger_balanced_after_each_test,
    make_agent_client,
    market_app,
    operator,
)


def _auth(client: AsyncClient) -> dict[str, str]:
    assert client.session is not None
    return {"authorization": f"Bearer {client.session.token}"}


async def _buy(
    http: httpx.AsyncClient, buyer: AsyncClient, seller: AsyncClient, amount: str, **extra: str
) -> httpx.Response:
    await buyer.login()
    body = {"seller_agent_id": seller.agent_id, "transaction_type": "DATA_PURCHASE"}
    return await http.post(
        "/v1/transactions", json={**body, "amount": amount}, headers=_auth(buyer) | extra
    )


async def test_purchase_complete_pays_the_seller_and_money_is_decimal_strings(
    http: httpx.AsyncClient, make_agent_client: MakeAgent, operator: AsyncClient
) -> None:
    buyer, seller = await make_agent_client("50"), await make_agent_client()
    created = await _buy(http, buyer, seller, "19.99")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "PENDING"
    assert (body["amount"], body["held_amount"], body["platform_fee"]) == (
        "19.9900",
        "19.9900",
        None,
    )
    assert (await buyer.get_balance()).balances[0].model_dump() == {
        "currency": "USD",
        "available": Decimal("30.0100"),
        "held": Decimal("19.9900"),
    }

    await seller.login()
    completed = await http.post(
        f"/v1/transactions/{body['transaction_id']}/complete",
        json={
            "completion_proof": {
                "cid": "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
            }
        },
        headers=_auth(seller),
    )
    assert completed.status_code == 200, completed.text
    done = completed.json()
    # 19.99 x 0.025 = 0.49975 -> 0.4998 (half-even)
    assert (done["status"], done["platform_fee"]) == ("COMPLETED", "0.4998")
    assert done["audit_cid"].startswith("b")
    assert done["completion_proof"]["cid"].startswith("bafy")
    assert (await seller.get_balance()).balances[0].available == Decimal("19.4902")
    summary = await operator.ledger_summary()
    assert summary.balanced
    # Anyone can find and read the transaction's audit record.
    path = f"/dukenet/transactions/{done['transaction_id']}"
    resolved = await http.get("/v1/audit/resolve", params={"path": path})
    assert resolved.json()["cid"] == done["audit_cid"]
    record = (await http.get(f"/v1/audit/records/{done['audit_cid']}")).json()
    assert record["transaction"]["seller_agent_id"] == seller.agent_id
    assert record["completion_proof"] == done["completion_proof"]
    assert "metadata" not in record["transaction"]


async def test_insufficient_funds_is_402_with_the_available_balance(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    buyer, seller = await make_agent_client("5"), await make_agent_client()
    response = await _buy(http, buyer, seller, "5.0001")
    assert response.status_code == 402
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["code"], problem["field"], problem["available"]) == (
        "INSUFFICIENT_FUNDS",
        "/amount",
        "5.0000",
    )
    with pytest.raises(InsufficientFunds):
        await buyer.create_transaction(seller.agent_id, "6")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "1.00001"}, "/amount"),
        ({"amount": "-1"}, "/amount"),
        ({"amount": "0"}, "/amount"),
        ({"amount": "abc"}, "/amount"),
        ({"amount": True}, "/amount"),
        ({"currency": "usd"}, "/currency"),
        ({"transaction_type": "GIFT"}, "/transaction_type"),
        ({"seller_agent_id": "nope"}, "/seller_agent_id"),
        ({"surprise": 1}, "/surprise"),
    ],
)
async def test_bad_purchase_fields_are_422_with_a_json_pointer(
    http: httpx.AsyncClient, make_agent_client: MakeAgent, change: dict[str, object], field: str
) -> None:
    buyer, seller = await make_agent_client("5"), await make_agent_client()
    await buyer.login()
    body = {
        "seller_agent_id": seller.agent_id,
        "transaction_type": "DATA_PURCHASE",
        "amount": "1",
        **change,
    }
    response = await http.post("/v1/transactions", json=body, headers=_auth(buyer))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_json_number_amounts_are_read_exactly(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    buyer, seller = await make_agent_client("5"), await make_agent_client()
    response = await _buy(http, buyer, seller, 0.1)  # type: ignore[arg-type]
    assert response.status_code == 201
    assert response.json()["amount"] == "0.1000"


async def test_buying_from_unknown_self_or_suspended_sellers_is_refused(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    buyer, seller = await make_agent_client("5"), await make_agent_client()
    await buyer.login()
    unknown = await http.post(
        "/v1/transactions",
        json={"seller_agent_id": "ab" * 32, "transaction_type": "COMPUTE_TIME", "amount": "1"},
        headers=_auth(buyer),
    )
    assert (unknown.status_code, unknown.json()["code"], unknown.json()["field"]) == (
        404,
        "AGENT_NOT_FOUND",
        "/seller_agent_id",
    )
    itself = await _buy(http, buyer, buyer, "1")
    assert (itself.status_code, itself.json()["field"]) == (422, "/seller_agent_id")
    suspended = await http.post(
        f"/v1/admin/agents/{seller.agent_id}/suspend", json={"reason": "fraud"}, headers=ADMIN
    )
    assert suspended.status_code == 200
    refused = await _buy(http, buyer, seller, "1")
    assert (refused.status_code, refused.json()["code"]) == (409, "SELLER_UNAVAILABLE")


async def test_only_the_right_party_may_act(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    buyer, seller, stranger = (
        await make_agent_client("20"),
        await make_agent_client(),
        await make_agent_client(),
    )
    transaction = await buyer.create_transaction(seller.agent_id, "10")
    tid = transaction.transaction_id
    for client in (buyer, stranger):
        with pytest.raises(errors.Forbidden):
            await client.complete_transaction(tid)
    with pytest.raises(errors.Forbidden):
        await stranger.fail_transaction(tid)
    with pytest.raises(errors.Forbidden):
        await stranger.get_transaction(tid)
    assert (await seller.get_transaction(tid)).status == "PENDING"
    await seller.complete_transaction(tid)
    for client in (buyer, stranger):
        with pytest.raises(errors.Forbidden):
            await client.refund_transaction(tid)
    await stranger.login()
    response = await http.post(f"/v1/transactions/{tid}/refund", headers=_auth(stranger))
    assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN")


async def test_either_party_fails_a_pending_transaction_and_the_hold_returns(
    make_agent_client: MakeAgent,
) -> None:
    buyer, seller = await make_agent_client("20"), await make_agent_client()
    first = await buyer.create_transaction(seller.agent_id, "10")
    second = await buyer.create_transaction(seller.agent_id, "10")
    failed = await buyer.fail_transaction(first.transaction_id, reason="changed my mind")
    assert (failed.status, failed.status_reason) == ("FAILED", "changed my mind")
    failed = await seller.fail_transaction(second.transaction_id)
    assert (failed.status, failed.status_reason) == ("FAILED", "failed by the seller")
    balance = (await buyer.get_balance()).balances[0]
    assert (balance.available, balance.held) == (Decimal("20.0000"), Decimal("0.0000"))
    with pytest.raises(errors.InvalidState):
        await seller.complete_transaction(second.transaction_id)


async def test_illegal_transitions_over_http_are_409_invalid_state(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    buyer, seller = await make_agent_client("20"), await make_agent_client()
    transaction = await buyer.create_transaction(seller.agent_id, "10")
    tid = transaction.transaction_id
    await seller.login()
    refund_pending = await http.post(f"/v1/transactions/{tid}/refund", headers=_auth(seller))
    assert (refund_pending.status_code, refund_pending.json()["code"]) == (409, "INVALID_STATE")
    assert refund_pending.json()["status"] == "PENDING"
    await seller.complete_transaction(tid)
    for action in ("complete", "fail"):
        response = await http.post(f"/v1/transactions/{tid}/{action}", headers=_auth(seller))
        assert (response.status_code, response.json()["code"]) == (409, "INVALID_STATE")
    await seller.refund_transaction(tid)
    again = await http.post(f"/v1/transactions/{tid}/refund", headers=_auth(seller))
    assert (again.status_code, again.json()["status"]) == (409, "REFUNDED")


async def test_unknown_transaction_is_404(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    agent = await make_agent_client()
    await agent.login()
    response = await http.post(f"/v1/transactions/{uuid.uuid4()}/fail", headers=_auth(agent))
    assert (response.status_code, response.json()["code"]) == (404, "TRANSACTION_NOT_FOUND")
    malformed = await http.get("/v1/transactions/not-a-uuid", headers=_auth(agent))
    assert malformed.status_code == 422


async def test_refund_by_seller_or_operator_reverses_everything(
    make_agent_client: MakeAgent, operator: AsyncClient
) -> None:
    buyer, seller = await make_agent_client("100"), await make_agent_client()
    first = await buyer.create_transaction(seller.agent_id, "40")
    second = await buyer.create_transaction(seller.agent_id, "60")
    await seller.complete_transaction(first.transaction_id)
    await seller.complete_transaction(second.transaction_id)
    refunded = await seller.refund_transaction(first.transaction_id, reason="defective")
    assert (refunded.status, refunded.status_reason) == ("REFUNDED", "defective")
    by_operator = await operator.refund_transaction(second.transaction_id, as_operator=True)
    assert by_operator.status_reason == "refunded by the operator"
    assert (await buyer.get_balance()).balances[0].available == Decimal("100.0000")
    assert (await seller.get_balance()).balances[0].available == Decimal("0.0000")
    assert (await operator.get_transaction(second.transaction_id, as_operator=True)).status == (
        "REFUNDED"
    )


async def test_refund_window_closes(
    make_agent_client: MakeAgent, services: Services, settings: object
) -> None:
    buyer, seller = await make_agent_client("10"), await make_agent_client()
    transaction = await buyer.create_transaction(seller.agent_id, "10")
    await seller.complete_transaction(transaction.transaction_id)
    async with services.db.acquire() as conn:
        # Completed just over the default 7-day window ago.
        await conn.execute(
            "UPDATE transactions SET completed_at = NOW() - interval '7 days 1 second'"
            " WHERE transaction_id = $1",
            transaction.transaction_id,
        )
    with pytest.raises(RefundWindowClosed) as raised:
        await seller.refund_transaction(transaction.transaction_id)
    assert (raised.value.status, raised.value.code) == (409, "REFUND_WINDOW_CLOSED")
    assert (await seller.get_transaction(transaction.transaction_id)).status == "COMPLETED"


async def test_idempotent_repeat_returns_the_original_response(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    buyer, seller = await make_agent_client("10"), await make_agent_client()
    key = {"Idempotency-Key": "order-42"}
    first = await _buy(http, buyer, seller, "3", **key)
    repeat = await _buy(http, buyer, seller, "3.0000", **key)  # the same amount, written longer
    assert (first.status_code, repeat.status_code) == (201, 201)
    assert repeat.content == first.content
    assert repeat.headers["idempotent-replayed"] == "true"
    different = await _buy(http, buyer, seller, "4", **key)
    assert (different.status_code, different.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert (await buyer.get_balance()).balances[0].held == Decimal("3.0000")
    # Keys belong to their caller: the seller may use the same key for its own request.
    await seller.login()
    tid = first.json()["transaction_id"]
    completed = await http.post(
        f"/v1/transactions/{tid}/complete", headers=_auth(seller) | key, json={}
    )
    assert completed.status_code == 200
    again = await http.post(
        f"/v1/transactions/{tid}/complete", headers=_auth(seller) | key, json={}
    )
    assert (again.status_code, again.content) == (200, completed.content)


async def test_responses_are_the_transaction_as_stored_and_repeats_outlive_later_changes(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    # The response of each change is the transaction as the database then holds it (JSON
    # objects in JSONB's key order and numbers), and a purchase repeated after the
    # transaction moved on still answers with the transaction as it was created.
    buyer, seller = await make_agent_client("10"), await make_agent_client()
    await seller.login()
    key = {"Idempotency-Key": "order-after-completion"}
    body = {
        "seller_agent_id": seller.agent_id,
        "transaction_type": "DATA_PURCHASE",
        "amount": "2",
        "metadata": {"zeta": 1.50, "a": [1, 2.0], "b": {"y": 1e20, "x": "\u00e9\n"}},
    }
    await buyer.login()
    first = await http.post("/v1/transactions", json=body, headers=_auth(buyer) | key)
    assert first.status_code == 201, first.text
    tid = first.json()["transaction_id"]
    assert (
        first.content == (await http.get(f"/v1/transactions/{tid}", headers=_auth(buyer))).content
    )
    proof = {
        "completion_proof": {"z": {"b": 2, "a": 1.0}, "cid": "bafyproof", "n": 12345678901234567890}
    }
    completed = await http.post(
        f"/v1/transactions/{tid}/complete", json=proof, headers=_auth(seller) | key
    )
    assert completed.status_code == 200, completed.text
    read = await http.get(f"/v1/transactions/{tid}", headers=_auth(seller))
    assert completed.content == read.content
    repeat = await http.post("/v1/transactions", json=body, headers=_auth(buyer) | key)
    assert (repeat.status_code, repeat.content) == (201, first.content)
    assert repeat.headers["idempotent-replayed"] == "true"
    again = await http.post(
        f"/v1/transactions/{tid}/complete", json=proof, headers=_auth(seller) | key
    )
    assert (again.status_code, again.content) == (200, completed.content)
    refunded = await http.post(f"/v1/transactions/{tid}/refund", headers=_auth(seller))
    assert refunded.status_code == 200, refunded.text
    read = await http.get(f"/v1/transactions/{tid}", headers=_auth(seller))
    assert refunded.content == read.content
    late = await http.post("/v1/transactions", json=body, headers=_auth(buyer) | key)
    assert (late.status_code, late.content) == (201, first.content)


async def test_a_failed_request_does_not_use_up_its_key(
    http: httpx.AsyncClient, make_agent_client: MakeAgent, operator: AsyncClient
) -> None:
    buyer, seller = await make_agent_client("1"), await make_agent_client()
    key = {"Idempotency-Key": "retry-after-top-up"}
    assert (await _buy(http, buyer, seller, "2", **key)).status_code == 402
    await operator.deposit(buyer.agent_id, "1")
    assert (await _buy(http, buyer, seller, "2", **key)).status_code == 201


async def test_bad_idempotency_key_is_422(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    buyer, seller = await make_agent_client("1"), await make_agent_client()
    response = await _buy(http, buyer, seller, "1", **{"Idempotency-Key": "x" * 256})
    assert (response.status_code, response.json()["header"]) == (422, "Idempotency-Key")


async def test_deposits_and_payouts(
    http: httpx.AsyncClient, make_agent_client: MakeAgent, operator: AsyncClient
) -> None:
    agent = await make_agent_client()
    deposited = await operator.deposit(
        agent.agent_id, "125.5", payment_method="wire", payment_reference="WIRE-1"
    )
    assert (deposited.kind, deposited.amount, deposited.balance.available) == (
        "DEPOSIT",
        Decimal("125.5000"),
        Decimal("125.5000"),
    )
    await operator.deposit(agent.agent_id, "7", currency="EUR")
    paid = await operator.payout(agent.agent_id, "25.5", payment_reference="PAYOUT-1")
    assert paid.balance.available == Decimal("100.0000")
    with pytest.raises(InsufficientFunds):
        await operator.payout(agent.agent_id, "100.0001")
    balances = await agent.get_balance()
    assert [(b.currency, b.available) for b in balances.balances] == [
        ("EUR", Decimal("7.0000")),
        ("USD", Decimal("100.0000")),
    ]
    as_operator = await operator.get_balance(agent.agent_id, as_operator=True)
    assert as_operator == balances
    # Agents cannot fund themselves or read others' balances.
    await agent.login()
    own = await http.post(
        f"/v1/admin/agents/{agent.agent_id}/deposits",
        json={"amount": "1", "payment_method": "x"},
        headers=_auth(agent),
    )
    assert own.status_code == 403
    other = await make_agent_client()
    with pytest.raises(errors.Forbidden):
        await other.get_balance(agent.agent_id)
    unknown = await http.post(
        f"/v1/admin/agents/{'cd' * 32}/deposits",
        json={"amount": "1", "payment_method": "x"},
        headers=ADMIN,
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "AGENT_NOT_FOUND")
    missing_method = await http.post(
        f"/v1/admin/agents/{agent.agent_id}/deposits", json={"amount": "1"}, headers=ADMIN
    )
    assert (missing_method.status_code, missing_method.json()["field"]) == (
        422,
        "/payment_method",
    )


async def test_listing_filters_and_keyset_pagination(
    http: httpx.AsyncClient, make_agent_client: MakeAgent
) -> None:
    me, other = await make_agent_client("100"), await make_agent_client("100")
    bought = [await me.create_transaction(other.agent_id, "1") for _ in range(5)]
    sold = [
        await other.create_transaction(me.agent_id, "2", transaction_type="COMPUTE_TIME")
        for _ in range(3)
    ]
    await me.complete_transaction(sold[0].transaction_id)

    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await me.list_transactions(limit=3, cursor=cursor)
        seen += [t.transaction_id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [t.transaction_id for t in reversed(bought + sold)]
    assert sorted(seen) == sorted(expected) and len(seen) == 8
    as_buyer = await me.list_transactions(role="buyer")
    assert {t.transaction_id for t in as_buyer.items} == {t.transaction_id for t in bought}
    completed = await me.list_transactions(role="seller", status="COMPLETED")
    assert [t.transaction_id for t in completed.items] == [sold[0].transaction_id]
    compute = await me.list_transactions(transaction_type="COMPUTE_TIME")
    assert len(compute.items) == 3
    await me.login()
    bad = await http.get("/v1/transactions?cursor=garbage", headers=_auth(me))
    assert (bad.status_code, bad.json()["field"]) == (422, "cursor")
    bad_role = await http.get("/v1/transactions?role=thief", headers=_auth(me))
    assert bad_role.status_code == 422
    anonymous = await http.get("/v1/transactions")
    assert anonymous.status_code == 401


async def test_the_operator_ledger_summary_balances(
    http: httpx.AsyncClient, make_agent_client: MakeAgent, database_url: str
) -> None:
    buyer, seller = await make_agent_client("10"), await make_agent_client()
    transaction = await buyer.create_transaction(seller.agent_id, "10")
    await seller.complete_transaction(transaction.transaction_id)
    response = await http.get("/v1/admin/ledger", headers=ADMIN)
    assert response.status_code == 200
    usd = next(item for item in response.json()["items"] if item["currency"] == "USD")
    assert usd["balanced"] is True and response.json()["balanced"] is True
    available, held, fees = (Decimal(usd[k]) for k in ("available", "held", "platform_fees"))
    assert available + held + fees == Decimal(usd["deposits"]) - Decimal(usd["payouts"])
    assert (await http.get("/v1/admin/ledger")).status_code == 401
    # The database refuses to edit a balance directly: money only moves through the ledger.
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "UPDATE balances SET available = available + 1 WHERE agent_id = $1",
                buyer.agent_id,
            )
    finally:
        await conn.close()
