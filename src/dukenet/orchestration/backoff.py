"""Retry delays and per-attempt timeouts (pure functions)."""

from __future__ import annotations

import random
from datetime import datetime

JITTER = 0.2  # delays are spread ±20 % so retries of many subtasks do not arrive together


def retry_delay(
    strategy: str,
    retry_number: int,
    *,
    base: float,
    maximum: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds before retry ``retry_number`` (1 for the first retry), with jitter.

    ``exponential``: base·2^(n-1); ``linear``: base·n; ``fixed``: base; capped at
    ``maximum`` before the ±20 % jitter is applied.
    """
    n = max(1, retry_number)
    if strategy == "exponential":
        delay = base * 2 ** min(n - 1, 30)
    elif strategy == "linear":
        delay = base * n
    elif strategy == "fixed":
        delay = base
    else:
        raise ValueError(f"unknown backoff strategy {strategy!r}")
    delay = min(delay, maximum)
    spread: float = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return max(0.0, float(delay * spread))


def attempt_timeout(
    latency_p99_ms: int | None,
    *,
    floor: float,
    cap: float,
    timeout_seconds: int | None,
    deadline: datetime | None,
    now: datetime,
) -> float:
    """Seconds one call may take: twice the declared p99, at least ``floor``, at most the
    task's ``timeout_seconds`` (or ``cap``), and never past the task's deadline."""
    upper = float(timeout_seconds) if timeout_seconds else cap
    wanted = upper if latency_p99_ms is None else 2 * latency_p99_ms / 1000
    timeout = min(upper, max(floor, wanted))
    if deadline is not None:
        timeout = min(timeout, (deadline - now).total_seconds())
    return max(0.0, timeout)
