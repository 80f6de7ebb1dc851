"""Ratings bound to real completed work (SPEC 5).

A rating is accepted only when the rater created the task, the task is COMPLETED, the rated
agent completed at least one of its subtasks, the rater is not the agent, the task completed
within the rating window (30 days), and the rater has not rated this agent for this task
before. The rating, its audit record (``/dukenet/agents/{id}/ratings/{rating_id}``), the
rated agent's recomputed score and its trust record commit together.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dukenet.audit.trail import record_rating
from dukenet.errors import InvalidInput
from dukenet.store.cache import Cache
from dukenet.store.postgres import Connection, Database, Record, translate_errors
from dukenet.store.sql import load_queries
from dukenet.trust import events, fraud
from dukenet.trust.errors import (
    AgentNotFound,
    AgentNotInTask,
    NotTaskCreator,
    RatingExists,
    RatingWindowClosed,
    SelfRating,
    TaskNotCompleted,
    TaskNotFound,
)
from dukenet.trust.models import Rating, RatingPage
from dukenet.trust.parameters import TrustParameters

QUERIES = load_queries("dukenet.trust", "queries.sql")
MAX_REVIEW_CHARS = 2000


def rating_from_row(row: Record) -> Rating:
    """The API resource of an ``agent_ratings`` row."""
    value = row["task_value"]
    return Rating(
        rating_id=row["rating_id"],
        agent_id=row["agent_id"],
        rater_agent_id=row["rater_agent_id"],
        task_id=row["task_id"],
        rating=float(row["rating"]),
        review=row["review"],
        created_at=row["created_at"],
        task_value=None if value is None else f"{value:.4f}",
        audit_cid=row["audit_cid"],
    )


def check_rating_value(rating: Decimal) -> Decimal:
    """0 to 5 with at most two decimals (422 naming ``/rating`` otherwise)."""
    if not rating.is_finite() or rating < 0 or rating > 5:
        raise InvalidInput("rating must be between 0 and 5", field="/rating")
    rounded = rating.quantize(Decimal("0.01"))
    if rounded != rating:
        raise InvalidInput("rating has at most two decimals", field="/rating")
    return rounded


async def _check_rules(
    conn: Connection, agent_id: str, rater_id: str, task_id: UUID, params: TrustParameters
) -> Record:
    with translate_errors():
        status = await conn.fetchval(QUERIES["agent_exists"], agent_id)
        if status is None:
            raise AgentNotFound(f"no registered agent {agent_id}")
        context = await conn.fetchrow(QUERIES["rating_context"], agent_id, rater_id, task_id)
    if context is None:
        raise TaskNotFound(f"no task {task_id}", field="/task_id")
    if context["created_by"] != rater_id:
        raise NotTaskCreator("only the task's creator may rate its agents", field="/task_id")
    if context["status"] != "COMPLETED":
        raise TaskNotCompleted(
            f"the task is {context['status']}; only COMPLETED tasks can be rated",
            field="/task_id",
        )
    if context["completed_subtasks"] == 0:
        raise AgentNotInTask("the rated agent completed no subtask of this task", field="/task_id")
    completed: datetime = context["completed_at"] or context["now"]
    if context["now"] - completed > timedelta(days=params.rating_window_days):
        raise RatingWindowClosed(
            f"the task completed more than {params.rating_window_days} days ago",
            field="/task_id",
        )
    return context


async def submit_rating(
    db: Database,
    cache: Cache,
    network_key: Ed25519PrivateKey,
    *,
    agent_id: str,
    rater_id: str,
    task_id: UUID,
    rating: Decimal,
    review: str | None,
    params: TrustParameters,
) -> Rating:
    """Accept a rating under the rules above, record it in the audit trail (linking the
    task's execution record) and recompute the agent's trust with it."""
    if agent_id == rater_id:
        raise SelfRating("an agent cannot rate itself", field="/agent_id")
    value = check_rating_value(rating)
    if review is not None and len(review) > MAX_REVIEW_CHARS:
        raise InvalidInput(f"review is longer than {MAX_REVIEW_CHARS} characters", field="/review")
    async with db.transaction() as conn:
        context = await _check_rules(conn, agent_id, rater_id, task_id, params)
        with translate_errors():
            row = await conn.fetchrow(
                QUERIES["insert_rating"],
                agent_id,
                rater_id,
                task_id,
                value,
                review,
                context["task_value"],
            )
        if row is None:
            raise RatingExists(
                "this rater already rated this agent for this task", field="/task_id"
            )
        accepted = rating_from_row(row)
        cid = await record_rating(
            conn,
            network_key,
            rating=accepted.model_dump(exclude={"audit_cid"}),
            task_cid=context["audit_cid"],
        )
        await conn.execute(QUERIES["set_rating_audit_cid"], accepted.rating_id, cid)
        owner = context["agent_owner"]
        if owner is not None and owner == context["rater_owner"]:
            await fraud.flag_self_dealing(conn, agent_id, rater_id, owner)
        await events.recompute_trust(conn, cache, agent_id, reason="rating", params=params)
    await events.after_commit_invalidate(cache, [agent_id])
    return accepted.model_copy(update={"audit_cid": cid})


def _encode_cursor(created_at: datetime, rating_id: int) -> str:
    raw = json.dumps([created_at.isoformat(), rating_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, rating_id = json.loads(raw)
        return datetime.fromisoformat(created), int(rating_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput("cursor is not one this API returned", field="cursor") from exc


async def list_ratings(
    db: Database, agent_id: str, *, cursor: str | None = None, limit: int = 50
) -> RatingPage:
    """An agent's ratings, newest first, keyset-paginated."""
    after: tuple[Any, Any] = _decode_cursor(cursor) if cursor else (None, None)
    async with db.read() as conn:
        if await conn.fetchval(QUERIES["agent_exists"], agent_id) is None:
            raise AgentNotFound(f"no registered agent {agent_id}")
        rows = await conn.fetch(QUERIES["list_ratings"], agent_id, after[0], after[1], limit + 1)
    items = [rating_from_row(row) for row in rows[:limit]]
    next_cursor = (
        _encode_cursor(items[-1].created_at, items[-1].rating_id) if len(rows) > limit else None
    )
    return RatingPage(items=items, next_cursor=next_cursor)
