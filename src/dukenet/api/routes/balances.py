"""Balances and funding (SPEC 6): an agent's balances, operators' deposits and payouts, and
the ledger's totals with its invariant."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from dukenet.api.auth import AdminToken
from dukenet.api.deps import ServicesDep
from dukenet.api.routes.agents import AgentId, problem_responses
from dukenet.api.routes.money import (
    AgentOrOperator,
    IdempotencyKey,
    json_response,
    run_money_change,
)
from dukenet.errors import Forbidden
from dukenet.market import ledger
from dukenet.market.inputs import FundingRequest
from dukenet.market.models import AgentBalances, Balance, Funding, LedgerSummary, LedgerTotals
from dukenet.store.postgres import Connection

router = APIRouter(prefix="/v1", tags=["balances"])


@router.get(
    "/agents/{agent_id}/balance",
    response_model=AgentBalances,
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def get_balance(
    agent_id: AgentId, caller: AgentOrOperator, services: ServicesDep
) -> Response:
    """The agent's available and held balance per currency (the agent itself or an operator)."""
    if not caller.is_operator and caller.agent_id != agent_id:
        raise Forbidden("an agent may read only its own balance")
    async with services.db.acquire() as conn:
        rows = await ledger.balances_of(conn, agent_id)
    return json_response(
        AgentBalances(agent_id=agent_id, balances=[Balance.model_validate(r) for r in rows])
    )


async def _fund(
    kind: str,
    agent_id: str,
    body: FundingRequest,
    request: Request,
    services: ServicesDep,
    idempotency_key: str | None,
) -> Response:
    action = ledger.deposit if kind == "deposit" else ledger.payout

    async def change(conn: Connection) -> Funding:
        funding = await action(
            conn,
            agent_id,
            amount=body.amount,
            currency=body.currency,
            payment_method=body.payment_method,
            payment_reference=body.payment_reference,
        )
        return Funding.model_validate(funding)

    return await run_money_change(
        services,
        request,
        scope="operator",
        key=idempotency_key,
        payload=body.model_dump(mode="json"),
        change=change,
        status_code=201,
    )


@router.post(
    "/admin/agents/{agent_id}/deposits",
    status_code=201,
    response_model=Funding,
    tags=["operator"],
    responses=problem_responses(401, 403, 404, 422),
)
async def deposit(
    agent_id: AgentId,
    body: FundingRequest,
    request: Request,
    _: AdminToken,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record money entering the network for an agent (e.g. a wire, with its reference)."""
    return await _fund("deposit", agent_id, body, request, services, idempotency_key)


@router.post(
    "/admin/agents/{agent_id}/payouts",
    status_code=201,
    response_model=Funding,
    tags=["operator"],
    responses=problem_responses(401, 402, 403, 404, 422),
)
async def payout(
    agent_id: AgentId,
    body: FundingRequest,
    request: Request,
    _: AdminToken,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Record money leaving the network; 402 ``INSUFFICIENT_FUNDS`` beyond the available."""
    return await _fund("payout", agent_id, body, request, services, idempotency_key)


@router.get(
    "/admin/ledger",
    response_model=LedgerSummary,
    tags=["operator"],
    responses=problem_responses(401, 403),
)
async def ledger_summary(_: AdminToken, services: ServicesDep) -> Response:
    """Per currency: totals of every account, deposits and payouts, and whether the ledger
    balances (available + held + platform fees = deposits - payouts)."""
    async with services.db.transaction(isolation="repeatable_read") as conn:
        rows = await ledger.summary(conn)
    items = [LedgerTotals.model_validate(row) for row in rows]
    return json_response(LedgerSummary(items=items, balanced=all(i.balanced for i in items)))
