"""Helpers of the marketplace tests: agents made with SQL, funding, and the ledger invariant
checked independently of the code under test (plain SQL over the tables)."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from dukenet import crypto
from dukenet.api.app import create_app
from dukenet.config import Settings
from dukenet.market import ledger
from dukenet.sdk import AsyncClient
from dukenet.store.postgres import Connection
from tests.conftest import ADMIN_TOKEN

BASE_URL = "http://dukenet.test"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
MakeAgent = Callable[..., Awaitable[AsyncClient]]

ZERO = Decimal("0")


async def make_agent(conn: Connection, *, status: str = "ACTIVE") -> str:
    """An agent row (no key: for tests of the domain layer only)."""
    agent_id = secrets.token_hex(32)
    await conn.execute(
        "INSERT INTO agents (agent_id, public_key, display_name, status) VALUES ($1, $2, $3, $4)",
        agent_id,
        secrets.token_urlsafe(32),
        f"agent {agent_id[:8]}",
        status,
    )
    return agent_id


async def fund(conn: Connection, agent_id: str, amount: str, currency: str = "USD") -> None:
    """Deposit ``amount`` through the ledger (the only way balances change)."""
    await ledger.deposit(
        conn, agent_id, amount=Decimal(amount), currency=currency, payment_method="test"
    )


async def balance(
    conn: Connection, agent_id: str, currency: str = "USD"
) -> tuple[Decimal, Decimal]:
    """(available, held) of an agent, zeros when it has no row."""
    row = await conn.fetchrow(
        "SELECT available, held FROM balances WHERE agent_id = $1 AND currency = $2",
        agent_id,
        currency,
    )
    return (row["available"], row["held"]) if row else (ZERO, ZERO)


async def platform_fees(conn: Connection, currency: str = "USD") -> Decimal:
    """The platform fee account's balance."""
    total = await conn.fetchval(
        "SELECT SUM(amount) FROM ledger_entries WHERE account = 'PLATFORM_FEES' AND currency = $1",
        currency,
    )
    return total or ZERO


async def assert_ledger_invariant(conn: Connection) -> dict[str, Any]:
    """Sum of balances + fees = deposits - payouts per currency; every movement sums to zero;
    each balance row equals its entries; held money equals the PENDING holds."""
    funding: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in await conn.fetch(
        "SELECT currency, kind, SUM(amount) AS total FROM ledger_movements"
        " WHERE kind IN ('DEPOSIT', 'PAYOUT') GROUP BY currency, kind"
    ):
        funding[row["currency"]] += row["total"] if row["kind"] == "DEPOSIT" else -row["total"]
    held_by_rows: dict[str, Decimal] = defaultdict(lambda: ZERO)
    money: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for row in await conn.fetch(
        "SELECT currency, SUM(available) AS available, SUM(held) AS held FROM balances"
        " GROUP BY currency"
    ):
        money[row["currency"]] += row["available"] + row["held"]
        held_by_rows[row["currency"]] = row["held"]
        assert row["available"] >= 0 and row["held"] >= 0
    for row in await conn.fetch(
        "SELECT currency, SUM(amount) AS total FROM ledger_entries"
        " WHERE account = 'PLATFORM_FEES' GROUP BY currency"
    ):
        money[row["currency"]] += row["total"]
    for currency in set(money) | set(funding):
        assert money[currency] == funding[currency], (currency, money, funding)
    unbalanced = await conn.fetch(
        "SELECT movement_id FROM ledger_entries GROUP BY movement_id HAVING SUM(amount) <> 0"
    )
    assert unbalanced == []
    drifted = await conn.fetch(
        """
        SELECT b.agent_id FROM balances b
        LEFT JOIN (SELECT agent_id, currency,
                          SUM(amount) FILTER (WHERE account = 'AVAILABLE') AS available,
                          SUM(amount) FILTER (WHERE account = 'HELD') AS held
                   FROM ledger_entries WHERE agent_id IS NOT NULL
                   GROUP BY agent_id, currency) e USING (agent_id, currency)
        WHERE b.available <> COALESCE(e.available, 0) OR b.held <> COALESCE(e.held, 0)
        """
    )
    assert drifted == []
    for row in await conn.fetch(
        "SELECT currency, SUM(held_amount) AS held FROM transactions"
        " WHERE status = 'PENDING' GROUP BY currency"
    ):
        assert held_by_rows[row["currency"]] == row["held"]
    for currency, held in held_by_rows.items():
        if held:
            pending = await conn.fetchval(
                "SELECT SUM(held_amount) FROM transactions WHERE status = 'PENDING'"
                " AND currency = $1",
                currency,
            )
            assert pending == held
    return dict(funding)


async def check_ledger(database_url: str) -> None:
    """Open a connection and assert the invariant (used after every test)."""
    conn = await asyncpg.connect(database_url)
    try:
        await assert_ledger_invariant(conn)
    finally:
        await conn.close()


# Fixtures: import them into a test module to use them there.


@pytest.fixture(autouse=True)
async def ledger_balanced_after_each_test(database_url: str) -> AsyncIterator[None]:
    """After every test: the ledger invariant holds over the module's whole database."""
    yield
    await check_ledger(database_url)


@pytest.fixture
async def market_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running (background jobs included)."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(market_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client on the app, in process."""
    transport = httpx.ASGITransport(app=market_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def operator(market_app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An SDK client holding the operator token."""
    async with AsyncClient(
        BASE_URL, admin_token=ADMIN_TOKEN, transport=httpx.ASGITransport(app=market_app)
    ) as client:
        yield client


@pytest.fixture
async def make_agent_client(market_app: FastAPI, operator: AsyncClient) -> AsyncIterator[MakeAgent]:
    """Register an agent (optionally funded by an operator deposit); an SDK client as it."""
    opened: list[AsyncClient] = []

    async def make(deposit: str | None = None, currency: str = "USD") -> AsyncClient:
        client = AsyncClient(
            BASE_URL,
            key=crypto.generate_private_key(),
            transport=httpx.ASGITransport(app=market_app),
        )
        opened.append(client)
        await client.register(f"Agent {len(opened)}")
        if deposit is not None:
            await operator.deposit(client.agent_id, deposit, currency=currency)
        return client

    yield make
    for client in opened:
        await client.aclose()
