"""The hot routes (``dukenet.api.hot``) answer exactly as the FastAPI routes they shortcut."""

# The market fixtures come from market_support; their names are reused as test parameters.
# ruff: noqa: F811

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dukenet import crypto
from dukenet.api.app import DukenetAPI, create_app
from dukenet.config import Settings
from dukenet.sdk import build_registration
from tests.integration.market_support import (  # noqa: F401
    BASE_URL,
    MakeAgent,
    ledger_balanced_after_each_test,
    make_agent_client,
    market_app,
    operator,
)

Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]
JSON_TYPE = {"content-type": "application/json"}


@pytest.fixture
async def both(settings: Settings) -> AsyncIterator[Clients]:
    """One client through the whole app (hot routes first), one straight into FastAPI."""
    app: DukenetAPI = create_app(settings)
    async with app.router.lifespan_context(app):
        hot = httpx.ASGITransport(app=app)
        plain = httpx.ASGITransport(app=app.stack)
        async with (
            httpx.AsyncClient(transport=hot, base_url="http://dukenet.test") as via_hot,
            httpx.AsyncClient(transport=plain, base_url="http://dukenet.test") as via_fastapi,
        ):
            yield via_hot, via_fastapi


def registration(**overrides: Any) -> dict[str, Any]:
    return build_registration(crypto.generate_private_key(), "Hot path", **overrides)


def answer(response: httpx.Response) -> tuple[int, str, Any]:
    return response.status_code, response.headers["content-type"], response.json()


async def test_registrations_get_the_same_answers_either_way(both: Clients) -> None:
    via_hot, via_fastapi = both
    first, second = registration(tags=["x"]), registration(tags=["x"])
    created = await via_hot.post("/v1/agents", json=first)
    created_plain = await via_fastapi.post("/v1/agents", json=second)
    assert (created.status_code, created_plain.status_code) == (201, 201)
    assert created.headers["location"] == f"/v1/agents/{created.json()['agent_id']}"
    assert created.json().keys() == created_plain.json().keys()

    stale = registration(timestamp=datetime.now(UTC) - timedelta(minutes=10))
    bad_key = registration() | {"public_key": "c2hvcnQ="}
    missing = {k: v for k, v in registration().items() if k != "display_name"}
    requests: list[dict[str, Any]] = [
        {"json": first},  # 409 AGENT_EXISTS
        {"json": stale},  # 401 INVALID_SIGNATURE (valid shape: the hot path answers it)
        {"json": bad_key},  # 422 /public_key (a validator's own error)
        {"json": missing},  # 422 /display_name
        {"json": [1, 2]},  # 422: not an object
        {"content": b"{not json", "headers": {"content-type": "application/json"}},  # 400
        {"content": b"", "headers": {"content-type": "application/json"}},  # 422 missing body
        {"content": b"x=1", "headers": {"content-type": "text/plain"}},  # 422
        {"content": json.dumps(registration()).encode()},  # 422: no content type
    ]
    statuses = []
    for request in requests:
        hot_answer = answer(await via_hot.post("/v1/agents", **request))
        plain_answer = answer(await via_fastapi.post("/v1/agents", **request))
        assert hot_answer == plain_answer, request
        statuses.append(hot_answer[0])
    assert statuses == [409, 401, 422, 422, 422, 400, 422, 422, 422]


async def test_agent_reads_get_the_same_bytes_either_way(both: Clients) -> None:
    via_hot, via_fastapi = both
    agent_id = (await via_hot.post("/v1/agents", json=registration())).json()["agent_id"]
    for path in (f"/v1/agents/{agent_id}", f"/v1/agents/{'a' * 64}", "/v1/agents/not-an-id"):
        hot, plain = await via_hot.get(path), await via_fastapi.get(path)
        assert (hot.status_code, hot.headers["content-type"], hot.content) == (
            plain.status_code,
            plain.headers["content-type"],
            plain.content,
        ), path
    assert (await via_hot.get(f"/v1/agents/{'a' * 64}")).json()["code"] == "AGENT_NOT_FOUND"


def _count(metrics: str, method: str, route: str, status: int) -> float:
    prefix = f'dukenet_http_requests_total{{method="{method}",route="{route}",status="{status}"}}'
    found = [ln for ln in metrics.splitlines() if ln.startswith(prefix)]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


async def test_hot_routes_are_counted_once_under_their_route_template(both: Clients) -> None:
    via_hot, _ = both
    before = (await via_hot.get("/metrics")).text
    agent_id = (await via_hot.post("/v1/agents", json=registration())).json()["agent_id"]
    await via_hot.get(f"/v1/agents/{agent_id}")
    await via_hot.get(f"/v1/agents/{agent_id}")
    after = (await via_hot.get("/metrics")).text
    template = "/v1/agents/{agent_id}"
    assert _count(after, "POST", "/v1/agents", 201) - _count(before, "POST", "/v1/agents", 201) == 1
    assert _count(after, "GET", template, 200) - _count(before, "GET", template, 200) == 2


async def test_the_body_limit_still_guards_registration(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"max_body_bytes": 2048}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dukenet.test") as http:
            big = registration(description="d" * 900, metadata={"pad": "p" * 1500})
            response = await http.post("/v1/agents", json=big)
            assert (response.status_code, response.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
            assert (await http.post("/v1/agents", json=registration())).status_code == 201

            # A valid registration streamed, then more bytes past the limit: 413, and the
            # part that arrived in time (valid on its own) registers nobody.
            payload = registration()
            agent_id = crypto.agent_id_for(payload["public_key"])

            async def chunks() -> AsyncIterator[bytes]:
                yield json.dumps(payload).encode()
                for _ in range(4):
                    yield b" " * 1000

            streamed = await http.post("/v1/agents", content=chunks(), headers=JSON_TYPE)
            assert (streamed.status_code, streamed.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
            missing = await http.get(f"/v1/agents/{agent_id}")
            assert (missing.status_code, missing.json()["code"]) == (404, "AGENT_NOT_FOUND")


async def test_purchases_and_completions_get_the_same_answers_either_way(
    market_app: DukenetAPI, make_agent_client: MakeAgent
) -> None:
    buyer, seller = await make_agent_client("10"), await make_agent_client()
    await buyer.login()
    await seller.login()
    assert buyer.session is not None and seller.session is not None
    as_buyer = {"authorization": f"Bearer {buyer.session.token}"}
    as_seller = {"authorization": f"Bearer {seller.session.token}"}
    purchase = {"seller_agent_id": seller.agent_id, "transaction_type": "DATA_PURCHASE"}
    hot_transport = httpx.ASGITransport(app=market_app)
    plain_transport = httpx.ASGITransport(app=market_app.stack)
    async with (
        httpx.AsyncClient(transport=hot_transport, base_url=BASE_URL) as via_hot,
        httpx.AsyncClient(transport=plain_transport, base_url=BASE_URL) as via_fastapi,
    ):

        async def both(path: str, **request: Any) -> tuple[Any, Any]:
            hot = await via_hot.post(path, **request)
            plain = await via_fastapi.post(path, **request)
            return hot, plain

        created = await both("/v1/transactions", json=purchase | {"amount": "1"}, headers=as_buyer)
        assert [r.status_code for r in created] == [201, 201]
        hot_id, plain_id = (r.json()["transaction_id"] for r in created)
        assert created[0].json().keys() == created[1].json().keys()

        keyed = {**as_buyer, "Idempotency-Key": "hot-1"}
        first, repeat = await both(
            "/v1/transactions", json=purchase | {"amount": "2"}, headers=keyed
        )
        assert (first.status_code, repeat.status_code) == (201, 201)
        assert repeat.content == first.content and repeat.headers["idempotent-replayed"] == "true"

        refusals: list[tuple[str, dict[str, Any]]] = [
            ("/v1/transactions", {"json": purchase | {"amount": "1"}}),  # 401
            ("/v1/transactions", {"json": purchase | {"amount": "100"}, "headers": as_buyer}),
            ("/v1/transactions", {"json": purchase | {"amount": "x"}, "headers": as_buyer}),
            ("/v1/transactions", {"json": {"amount": "1"}, "headers": as_buyer}),  # 422
            ("/v1/transactions", {"content": b"{", "headers": as_buyer | JSON_TYPE}),  # 400
            (f"/v1/transactions/{hot_id}/complete", {"json": {}, "headers": as_buyer}),  # 403
            (f"/v1/transactions/{uuid.uuid4()}/complete", {"json": {}, "headers": as_seller}),
            (
                f"/v1/transactions/{hot_id}/complete",
                {"json": {"amount": "-1"}, "headers": as_seller},
            ),
        ]
        statuses = []
        for path, request in refusals:
            hot, plain = await both(path, **request)
            assert answer(hot) == answer(plain), (path, request)
            statuses.append(hot.status_code)
        assert statuses == [401, 402, 422, 422, 400, 403, 404, 422]

        done_hot = await via_hot.post(
            f"/v1/transactions/{hot_id}/complete",
            json={"completion_proof": {"cid": "bafkqaaa"}},
            headers=as_seller,
        )
        done_plain = await via_fastapi.post(
            f"/v1/transactions/{plain_id.upper()}/complete", json={}, headers=as_seller
        )
        assert (done_hot.status_code, done_plain.status_code) == (200, 200)
        assert done_hot.json()["status"] == done_plain.json()["status"] == "COMPLETED"
        again = await both(f"/v1/transactions/{hot_id}/complete", json={}, headers=as_seller)
        assert answer(again[0]) == answer(again[1])
        assert again[0].json()["code"] == "INVALID_STATE"
