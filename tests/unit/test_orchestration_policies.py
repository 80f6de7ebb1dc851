"""Policies: backoff and per-attempt timeouts, agent ranking and eligibility, and what an
agent's HTTP answer means."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from dukenet.orchestration import backoff, selection
from dukenet.orchestration.errors import FailureCode
from dukenet.orchestration.invoker import Accepted, Success, interpret
from dukenet.orchestration.outcomes import Failure

pytestmark = pytest.mark.timeout(10)


def delays(strategy: str, n: int) -> list[float]:
    rng = random.Random(1)
    return [
        backoff.retry_delay(strategy, i, base=1.0, maximum=10.0, rng=rng) for i in range(1, n + 1)
    ]


def test_backoff_strategies_grow_as_named_with_bounded_jitter() -> None:
    for strategy, nominal in (
        ("exponential", [1, 2, 4, 8, 10, 10]),
        ("linear", [1, 2, 3, 4, 5, 6]),
        ("fixed", [1, 1, 1, 1, 1, 1]),
    ):
        got = delays(strategy, 6)
        for value, expected in zip(got, nominal, strict=True):
            assert expected * 0.8 <= value <= expected * 1.2, (strategy, got)
    spread = {round(backoff.retry_delay("fixed", 1, base=1, maximum=9), 6) for _ in range(50)}
    assert len(spread) > 1  # jittered
    with pytest.raises(ValueError):
        backoff.retry_delay("random", 1, base=1, maximum=1)


def test_attempt_timeout_follows_the_declared_latency_within_floor_cap_and_deadline() -> None:
    now = datetime.now(UTC)
    common: dict[str, Any] = {"floor": 2.0, "cap": 300.0, "now": now}
    assert backoff.attempt_timeout(5000, timeout_seconds=None, deadline=None, **common) == 10.0
    assert backoff.attempt_timeout(100, timeout_seconds=None, deadline=None, **common) == 2.0
    assert backoff.attempt_timeout(None, timeout_seconds=None, deadline=None, **common) == 300.0
    assert backoff.attempt_timeout(60_000, timeout_seconds=30, deadline=None, **common) == 30.0
    soon = now + timedelta(seconds=4)
    assert backoff.attempt_timeout(60_000, timeout_seconds=None, deadline=soon, **common) == 4.0


def candidate(
    agent: str,
    *,
    trust: str,
    price: str = "0",
    latency: int | None = 100,
    currency: str = "USD",
    schema: Any = True,
) -> selection.Candidate:
    return selection.Candidate(
        capability_id=agent * 2,
        agent_id=agent,
        name="text.summarize",
        price=Decimal(price),
        currency=currency,
        latency_p99_ms=latency,
        trust_score=Decimal(trust),
        endpoint_url=f"http://{agent}",
        input_schema=schema,
    )


def ranked(candidates: list[selection.Candidate], **requirements: Any) -> list[str]:
    ordered = sorted(candidates, key=selection.Candidate.rank)
    wanted = selection.Requirements(
        capability="text.summarize", buyer_agent_id="buyer", currency="USD", **requirements
    )
    return [c.agent_id for c in selection.eligible(ordered, wanted)]


def test_ranking_is_trust_then_price_then_latency() -> None:
    agents = [
        candidate("slow", trust="80", price="0.1", latency=900),
        candidate("fast", trust="80", price="0.1", latency=100),
        candidate("cheap", trust="80", price="0.05", latency=5000),
        candidate("trusted", trust="95", price="9", latency=None),
        candidate("unknown-latency", trust="80", price="0.1", latency=None),
    ]
    assert ranked(agents) == ["trusted", "cheap", "fast", "slow", "unknown-latency"]


def test_constraints_budget_pinning_currency_and_input_schema_filter_agents() -> None:
    agents = [
        candidate("a", trust="90", price="0.50", latency=3000),
        candidate("b", trust="70", price="0.10", latency=800),
        candidate("c", trust="40", price="0.00", latency=200),
        candidate("eur", trust="99", price="0.01", currency="EUR"),
        candidate("picky", trust="98", schema={"type": "object", "required": ["text"]}),
    ]
    assert ranked(agents, input={"other": 1}) == ["a", "b", "c"]
    assert ranked(agents, input={"text": "x"})[0] == "picky"
    assert ranked(agents, constraints={"min_trust": 60}) == ["picky", "a", "b"]
    assert ranked(agents, constraints={"max_price": "0.10"}) == ["picky", "b", "c"]
    assert ranked(agents, constraints={"max_latency_ms": 1000}) == ["picky", "b", "c"]
    assert ranked(agents, budget=Decimal("0.20")) == ["picky", "b", "c"]
    assert ranked(agents, pinned_agent_id="c") == ["c"]
    # Failover: the agent that just failed is avoided while another is eligible.
    assert ranked(agents, avoid_agent_id="picky")[0] == "a"
    assert ranked(agents, pinned_agent_id="c", avoid_agent_id="c") == ["c"]


def test_an_agent_does_not_pay_itself() -> None:
    own = candidate("buyer", trust="50", price="1.00")
    assert own.charge_for("buyer") == 0
    assert own.charge_for("someone") == Decimal("1.00")
    assert ranked([own], budget=Decimal("0")) == ["buyer"]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, b'{"output": {"a": 1}}', Success({"a": 1}, None)),
        (200, b'{"output": null, "cost": "0.0100"}', Success(None, Decimal("0.0100"))),
        (202, b"", Accepted()),
    ],
)
def test_successful_answers(status: int, body: bytes, expected: object) -> None:
    assert interpret(status, body, None) == expected


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (200, b"not json", FailureCode.INVALID_AGENT_RESPONSE, True),
        (200, b'{"result": 1}', FailureCode.INVALID_AGENT_RESPONSE, True),
        (200, b'{"output": 1, "cost": "-1"}', FailureCode.INVALID_AGENT_RESPONSE, True),
        (500, b'{"detail": "boom"}', FailureCode.AGENT_ERROR, True),
        (503, b"", FailureCode.AGENT_ERROR, True),
        (408, b"", FailureCode.AGENT_ERROR, True),
        (429, b"", FailureCode.AGENT_RATE_LIMITED, True),
        (400, b'{"detail": "bad input"}', FailureCode.AGENT_REJECTED, False),
        (404, b"", FailureCode.AGENT_REJECTED, False),
        (422, b"", FailureCode.AGENT_REJECTED, False),
    ],
)
def test_failed_answers(status: int, body: bytes, code: str, retryable: bool) -> None:
    outcome = interpret(status, body, "3")
    assert isinstance(outcome, Failure)
    assert (outcome.code, outcome.retryable) == (code, retryable)
    if status in (429, 503):
        assert outcome.retry_after == 3.0
    if status == 400:
        assert "bad input" in outcome.message
