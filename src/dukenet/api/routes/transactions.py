"""Transactions (SPEC 6): buy with an escrow hold, complete, fail, refund, read and list.

Money-moving POSTs accept an ``Idempotency-Key``. Errors: 402 ``INSUFFICIENT_FUNDS``,
403 ``FORBIDDEN`` for a non-party (or the wrong party), 404 ``TRANSACTION_NOT_FOUND``,
409 ``INVALID_STATE`` / ``REFUND_WINDOW_CLOSED``, 422 naming the field.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from dukenet.api.auth import CurrentAgent, rate_limit
from dukenet.api.deps import ServicesDep
from dukenet.api.routes.agents import problem_responses
from dukenet.api.routes.money import (
    AgentOrOperator,
    IdempotencyKey,
    json_response,
    request_key,
    run_transaction_action,
)
from dukenet.market import transactions
from dukenet.market.idempotency import Outcome
from dukenet.market.inputs import CompleteRequest, PurchaseRequest, ReasonRequest
from dukenet.market.models import Transaction, TransactionPage, TransactionStatus, TransactionType
from dukenet.runtime import Services
from dukenet.store.postgres import Connection

router = APIRouter(prefix="/v1/transactions", tags=["transactions"])


@router.post(
    "",
    status_code=201,
    response_model=Transaction,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 402, 403, 404, 409, 422, 429),
)
async def create_transaction(
    body: PurchaseRequest,
    request: Request,
    caller: CurrentAgent,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Buy from ``seller_agent_id``: a PENDING transaction holding ``amount`` from your
    available balance (402 ``INSUFFICIENT_FUNDS`` if it is not there)."""
    return await purchase(request, services, caller, body, idempotency_key)


async def purchase(
    request: Request,
    services: Services,
    caller: str,
    body: PurchaseRequest,
    idempotency_key: str | None,
) -> Response:
    """``create_transaction`` for an authenticated, counted caller and a validated body
    (``dukenet.api.hot`` serves purchases this way)."""
    key = request_key(request, f"agent:{caller}", idempotency_key, body)

    async def create(conn: Connection) -> Outcome:
        return await transactions.create(conn, caller, body, key=key)

    return await run_transaction_action(services, create, atomic=False)


@router.post(
    "/{transaction_id}/complete",
    response_model=Transaction,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def complete_transaction(
    transaction_id: UUID,
    request: Request,
    caller: CurrentAgent,
    services: ServicesDep,
    body: CompleteRequest | None = Body(None),
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The seller settles a PENDING transaction with its completion proof (e.g. a CID):
    the seller gets ``amount - platform_fee``, the fee goes to the platform."""
    return await settle(
        request, services, caller, transaction_id, body or CompleteRequest(), idempotency_key
    )


async def settle(
    request: Request,
    services: Services,
    caller: str,
    transaction_id: UUID,
    body: CompleteRequest,
    idempotency_key: str | None,
) -> Response:
    """``complete_transaction`` for an authenticated, counted caller and a validated body
    (``dukenet.api.hot`` serves completions this way)."""
    key = request_key(request, f"agent:{caller}", idempotency_key, body)

    async def complete(conn: Connection) -> Outcome:
        return await transactions.complete(
            conn,
            services.network_key,
            transaction_id,
            caller=caller,
            fee_rate=services.settings.platform_fee_rate,
            amount=body.amount,
            completion_proof=body.completion_proof,
            key=key,
        )

    return await run_transaction_action(services, complete)


@router.post(
    "/{transaction_id}/fail",
    response_model=Transaction,
    dependencies=[Depends(rate_limit("write", authenticated=True))],
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
async def fail_transaction(
    transaction_id: UUID,
    request: Request,
    caller: CurrentAgent,
    services: ServicesDep,
    body: ReasonRequest | None = Body(None),
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Either party fails a PENDING transaction; the hold returns to the buyer."""
    body = body or ReasonRequest()
    key = request_key(request, f"agent:{caller}", idempotency_key, body)

    async def fail(conn: Connection) -> Outcome:
        return await transactions.fail(
            conn, transaction_id, caller=caller, reason=body.reason, key=key
        )

    return await run_transaction_action(services, fail)


@router.post(
    "/{transaction_id}/refund",
    response_model=Transaction,
    responses=problem_responses(401, 402, 403, 404, 409, 422, 429),
)
async def refund_transaction(
    transaction_id: UUID,
    request: Request,
    caller: AgentOrOperator,
    services: ServicesDep,
    body: ReasonRequest | None = Body(None),
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The seller (or an operator) refunds a COMPLETED transaction within the refund window:
    the seller's share and the fee go back to the buyer (409 ``REFUND_WINDOW_CLOSED`` after
    the window, 402 if the seller has already spent its share)."""
    body = body or ReasonRequest()
    window = timedelta(seconds=services.settings.refund_window_seconds)
    key = request_key(request, caller.scope, idempotency_key, body)

    async def refund(conn: Connection) -> Outcome:
        return await transactions.refund(
            conn,
            services.network_key,
            transaction_id,
            caller=caller.agent_id,
            window=window,
            reason=body.reason,
            key=key,
        )

    return await run_transaction_action(services, refund)


@router.get(
    "/{transaction_id}",
    response_model=Transaction,
    responses=problem_responses(401, 403, 404, 422, 429),
)
async def get_transaction(
    transaction_id: UUID, caller: AgentOrOperator, services: ServicesDep
) -> Response:
    """One transaction, for its buyer, its seller or an operator."""
    async with services.db.acquire() as conn:
        found = await transactions.get(conn, transaction_id, caller=caller.agent_id)
    return json_response(Transaction.model_validate(found))


@router.get(
    "",
    response_model=TransactionPage,
    dependencies=[Depends(rate_limit("read", authenticated=True))],
    responses=problem_responses(401, 422, 429),
)
async def list_transactions(
    caller: CurrentAgent,
    services: ServicesDep,
    role: Annotated[
        Literal["buyer", "seller"] | None, Query(description="buyer or seller (default both)")
    ] = None,
    status: TransactionStatus | None = None,
    transaction_type: Annotated[TransactionType | None, Query(alias="type")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    """Your transactions, newest first, filtered by role, status and type; keyset-paginated."""
    async with services.db.acquire() as conn:
        items, next_cursor = await transactions.list_for(
            conn,
            caller,
            role=role,
            status=status,
            transaction_type=transaction_type,
            cursor=cursor,
            limit=limit,
        )
    page = TransactionPage(
        items=[Transaction.model_validate(item) for item in items], next_cursor=next_cursor
    )
    return json_response(page)
