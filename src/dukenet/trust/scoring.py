"""The trust score: pure, vectorized math shared by every recomputation.

A per-event recomputation scores one agent and the full recomputation scores all of them
with these same functions (arrays of length 1 or N), so both always agree::

    trust = clamp(100 * (0.35 R + 0.30 D + 0.10 U + 0.15 L + 0.10 S) - penalties, 0, 100)

* R, reputation: Bayesian average of ratings, r = (C*m + sum(w*rating)) / (C + sum(w)) with
  prior mean m = 3.0 and prior weight C = 3, mapped so that m is neutral (0.5), 5 is 1, 0 is 0.
  Each rating's w = rater weight (EigenTrust) * task value weight * time decay * pair rule.
* D, delivery: Beta posterior mean (2 + successes) / (4 + successes + failures), both
  counts value-weighted and time-decayed; only failures the agent caused count.
* U, uptime: (seconds up in the last 30 days + half a day) / (seconds observed + one day).
* L, latency: share of measured calls within the capability's declared p99, with five prior
  calls at one half, time-decayed.
* S, verified signer: 0.5 for a verified registration signature plus 0.5 for an
  EIP-191-proven owner address.
* penalties (points): 15 per open fraud flag (at most 3 count), 5 if rate limited in the
  last 24 h, 5 while INACTIVE, 25 while SUSPENDED.

With no evidence every component is 0.5, so a new agent with a verified registration scores
50.0, the designed starting score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dukenet.trust.parameters import (
    LATENCY_BUCKETS,
    LATENCY_GROWTH,
    WEEK_SECONDS,
    TrustParameters,
)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def value_weight(value: Floats, params: TrustParameters) -> Floats:
    """How much a rating or attempt worth ``value`` counts: value/reference in [floor, 1]."""
    ratio = np.asarray(value, dtype=np.float64) / params.value_reference
    return np.clip(ratio, params.value_floor, 1.0)


def decay(age_seconds: Floats, params: TrustParameters) -> Floats:
    """Time decay with the configured half-life (future timestamps count fully)."""
    age = np.maximum(np.asarray(age_seconds, dtype=np.float64), 0.0)
    return np.power(0.5, age / params.half_life_seconds)


def decay_factor(now: float, epoch: float, half_life_days: float) -> float:
    """Turns an epoch-anchored sum (``w * 2^((t - epoch)/h)``) into its value at ``now``."""
    return math.pow(2.0, -(now - epoch) / (half_life_days * 86_400.0))


def epoch_weight(at: float, epoch: float, half_life_days: float) -> float:
    """The epoch-anchored weight of an event at ``at`` (see ``decay_factor``)."""
    return math.pow(2.0, (at - epoch) / (half_life_days * 86_400.0))


def repeat_factors(agent: Ints, rater: Ints, at: Floats, params: TrustParameters) -> Floats:
    """The pair rule: at most one rating per rater and agent per week counts fully.

    Walking each pair's ratings in time order, a rating counts fully when at least a week
    has passed since the last one that counted fully; the others count
    ``repeat_rating_weight``.
    """
    count = len(at)
    factors = np.ones(count, dtype=np.float64)
    if count < 2:
        return factors
    order = np.lexsort((at, rater, agent))
    same_pair = (agent[order][1:] == agent[order][:-1]) & (rater[order][1:] == rater[order][:-1])
    repeated = np.flatnonzero(same_pair) + 1  # positions (in order) with an earlier rating
    if repeated.size == 0:
        return factors
    sorted_at = at[order]
    # Only pairs with several ratings need the sequential walk.
    last_full = -math.inf
    previous_position = -2
    for position in repeated.tolist():
        if position - 1 != previous_position:  # a new pair: its first rating counts fully
            last_full = sorted_at[position - 1]
        if sorted_at[position] - last_full >= WEEK_SECONDS:
            last_full = sorted_at[position]
        else:
            factors[order[position]] = params.repeat_rating_weight
        previous_position = position
    return factors


def satisfaction(rating: Floats) -> Floats:
    """EigenTrust local satisfaction of a rating: how far above the midpoint 2.5 it is."""
    return np.maximum(np.asarray(rating, dtype=np.float64) - 2.5, 0.0) / 2.5


def latency_bucket(latency_ms: int) -> int:
    """The histogram bucket (1-based, as stored in PostgreSQL arrays) of a latency."""
    index = int(math.log(max(latency_ms, 1)) / math.log(LATENCY_GROWTH))
    return min(index, LATENCY_BUCKETS - 1) + 1


def histogram_quantile(histogram: Floats, quantile: float) -> Floats:
    """Per row, the latency (ms, geometric middle of its bucket) at ``quantile``; 0 if empty."""
    hist = np.atleast_2d(np.asarray(histogram, dtype=np.float64))
    cumulative = np.cumsum(hist, axis=1)
    total = cumulative[:, -1]
    reached = cumulative >= (quantile * total)[:, None] - 1e-12 * total[:, None]
    index = np.argmax(reached, axis=1)
    value = np.power(LATENCY_GROWTH, index + 0.5)
    return np.where(total > 0, value, 0.0)


@dataclass
class AgentInputs:
    """The evidence about N agents, one array element per agent."""

    rating_weight: Floats  # sum of rating weights w
    rating_weighted_sum: Floats  # sum of w * rating
    total_ratings: Ints
    successful: Ints
    failed: Ints
    success_weight: Floats  # decayed, value-weighted
    failure_weight: Floats
    declared_weight: Floats  # decayed calls with a declared p99
    within_weight: Floats  # ... of which within it
    measured: Ints  # calls with a measured latency
    measured_weight: Floats
    latency_weighted: Floats  # decayed sum of latency_ms
    histogram: Floats  # N x LATENCY_BUCKETS decayed counts
    up_30d: Floats  # seconds
    observed_30d: Floats
    up_90d: Floats
    observed_90d: Floats
    up_all: Floats
    observed_all: Floats
    registration_verified: Bools
    owner_given: Bools
    owner_proven: Bools
    open_flags: Ints
    rate_limited: Bools
    inactive: Bools
    suspended: Bools

    @classmethod
    def empty(cls, count: int) -> AgentInputs:
        """N agents with no evidence at all."""

        def zeros() -> Floats:
            return np.zeros(count, dtype=np.float64)

        def izeros() -> Ints:
            return np.zeros(count, dtype=np.int64)

        def false() -> Bools:
            return np.zeros(count, dtype=np.bool_)

        return cls(
            rating_weight=zeros(),
            rating_weighted_sum=zeros(),
            total_ratings=izeros(),
            successful=izeros(),
            failed=izeros(),
            success_weight=zeros(),
            failure_weight=zeros(),
            declared_weight=zeros(),
            within_weight=zeros(),
            measured=izeros(),
            measured_weight=zeros(),
            latency_weighted=zeros(),
            histogram=np.zeros((count, LATENCY_BUCKETS), dtype=np.float64),
            up_30d=zeros(),
            observed_30d=zeros(),
            up_90d=zeros(),
            observed_90d=zeros(),
            up_all=zeros(),
            observed_all=zeros(),
            registration_verified=false(),
            owner_given=false(),
            owner_proven=false(),
            open_flags=izeros(),
            rate_limited=false(),
            inactive=false(),
            suspended=false(),
        )


@dataclass
class Scores:
    """Components, penalties, the trust score and the reported figures for N agents."""

    reputation: Floats  # components in [0, 1]
    delivery: Floats
    uptime: Floats
    latency: Floats
    signer: Floats
    base: Floats  # 100 * weighted sum of the components
    fraud_penalty: Floats  # points
    rate_limit_penalty: Floats
    status_penalty: Floats
    trust: Floats  # final score, 0..100 (two decimals)
    rating: Floats  # Bayesian average rating, 0..5
    uptime_30d: Floats  # percent
    uptime_90d: Floats
    uptime_all_time: Floats
    avg_latency_ms: Floats
    p99_latency_ms: Floats
    verified_signer: Bools


def _percent(up: Floats, observed: Floats) -> Floats:
    share = np.divide(up, observed, out=np.ones_like(up), where=observed > 0)
    return np.round(np.clip(share, 0.0, 1.0) * 100.0, 2)


def compute_scores(inputs: AgentInputs, params: TrustParameters) -> Scores:
    """Score N agents from their evidence."""
    weights = params.weights
    prior_mean, prior_weight = params.rating_prior_mean, params.rating_prior_weight
    rating = (prior_weight * prior_mean + inputs.rating_weighted_sum) / (
        prior_weight + inputs.rating_weight
    )
    rating = np.clip(rating, 0.0, 5.0)
    reputation = np.where(
        rating <= prior_mean,
        0.5 * rating / prior_mean,
        0.5 + 0.5 * (rating - prior_mean) / (5.0 - prior_mean),
    )
    alpha, beta = params.delivery_prior_successes, params.delivery_prior_failures
    delivery = (alpha + inputs.success_weight) / (
        alpha + beta + inputs.success_weight + inputs.failure_weight
    )
    prior_seconds = params.uptime_prior_seconds
    uptime = (inputs.up_30d + prior_seconds / 2) / (inputs.observed_30d + prior_seconds)
    uptime = np.clip(uptime, 0.0, 1.0)
    prior_calls = params.latency_prior_calls
    latency = (inputs.within_weight + prior_calls / 2) / (inputs.declared_weight + prior_calls)
    signer = 0.5 * inputs.registration_verified + 0.5 * (inputs.owner_given & inputs.owner_proven)
    base = 100.0 * (
        weights.reputation * reputation
        + weights.delivery * delivery
        + weights.uptime * uptime
        + weights.latency * latency
        + weights.signer * signer
    )
    fraud_penalty = params.fraud_flag_penalty * np.minimum(
        inputs.open_flags, params.max_counted_flags
    ).astype(np.float64)
    rate_limit_penalty = params.rate_limited_penalty * inputs.rate_limited
    status_penalty = np.where(
        inputs.suspended,
        params.suspended_penalty,
        np.where(inputs.inactive, params.inactive_penalty, 0.0),
    )
    trust = np.round(
        np.clip(base - fraud_penalty - rate_limit_penalty - status_penalty, 0.0, 100.0), 2
    )
    avg_latency = np.divide(
        inputs.latency_weighted,
        inputs.measured_weight,
        out=np.zeros_like(inputs.latency_weighted),
        where=inputs.measured_weight > 0,
    )
    return Scores(
        reputation=reputation,
        delivery=delivery,
        uptime=uptime,
        latency=latency,
        signer=signer,
        base=base,
        fraud_penalty=fraud_penalty,
        rate_limit_penalty=rate_limit_penalty.astype(np.float64),
        status_penalty=status_penalty,
        trust=trust,
        rating=np.round(rating, 2),
        uptime_30d=_percent(inputs.up_30d, inputs.observed_30d),
        uptime_90d=_percent(inputs.up_90d, inputs.observed_90d),
        uptime_all_time=_percent(inputs.up_all, inputs.observed_all),
        avg_latency_ms=np.round(avg_latency).astype(np.float64),
        p99_latency_ms=np.round(histogram_quantile(inputs.histogram, 0.99)),
        verified_signer=inputs.registration_verified & (~inputs.owner_given | inputs.owner_proven),
    )


def explain(
    inputs: AgentInputs, scores: Scores, params: TrustParameters, index: int = 0
) -> dict[str, Any]:
    """One agent's breakdown: each component with its weight, value, points and inputs."""
    i = index
    weights = params.weights

    def component(name: str, value: float, details: dict[str, Any]) -> dict[str, Any]:
        weight = weights.as_dict()[name]
        return {
            "weight": weight,
            "value": round(value, 4),
            "points": round(100.0 * weight * value, 2),
            "inputs": details,
        }

    return {
        "trust_score": float(scores.trust[i]),
        "formula": (
            f"trust = clamp(100 * ({weights.reputation:g} R + {weights.delivery:g} D"
            f" + {weights.uptime:g} U + {weights.latency:g} L + {weights.signer:g} S)"
            " - penalties, 0, 100)"
        ),
        "base_points": round(float(scores.base[i]), 2),
        "components": {
            "reputation": component(
                "reputation",
                float(scores.reputation[i]),
                {
                    "rating": float(scores.rating[i]),
                    "total_ratings": int(inputs.total_ratings[i]),
                    "effective_weight": round(float(inputs.rating_weight[i]), 4),
                    "prior_mean": params.rating_prior_mean,
                    "prior_weight": params.rating_prior_weight,
                    "half_life_days": params.half_life_days,
                },
            ),
            "delivery": component(
                "delivery",
                float(scores.delivery[i]),
                {
                    "successful_attempts": int(inputs.successful[i]),
                    "failed_attempts": int(inputs.failed[i]),
                    "weighted_successes": round(float(inputs.success_weight[i]), 4),
                    "weighted_failures": round(float(inputs.failure_weight[i]), 4),
                    "prior": [params.delivery_prior_successes, params.delivery_prior_failures],
                    "half_life_days": params.half_life_days,
                },
            ),
            "uptime": component(
                "uptime",
                float(scores.uptime[i]),
                {
                    "uptime_30d": float(scores.uptime_30d[i]),
                    "uptime_90d": float(scores.uptime_90d[i]),
                    "uptime_all_time": float(scores.uptime_all_time[i]),
                    "observed_seconds_30d": round(float(inputs.observed_30d[i])),
                },
            ),
            "latency": component(
                "latency",
                float(scores.latency[i]),
                {
                    "measured_calls": int(inputs.measured[i]),
                    "within_declared_p99_share": (
                        round(float(inputs.within_weight[i] / inputs.declared_weight[i]), 4)
                        if inputs.declared_weight[i] > 0
                        else None
                    ),
                    "avg_latency_ms": int(scores.avg_latency_ms[i]),
                    "p99_latency_ms": int(scores.p99_latency_ms[i]),
                    "prior_calls": params.latency_prior_calls,
                },
            ),
            "signer": component(
                "signer",
                float(scores.signer[i]),
                {
                    "registration_verified": bool(inputs.registration_verified[i]),
                    "owner_address_given": bool(inputs.owner_given[i]),
                    "owner_address_proven": bool(inputs.owner_proven[i]),
                    "verified_signer": bool(scores.verified_signer[i]),
                },
            ),
        },
        "penalties": {
            "fraud_flags": {
                "open_flags": int(inputs.open_flags[i]),
                "points": float(scores.fraud_penalty[i]),
                "per_flag": params.fraud_flag_penalty,
            },
            "rate_limited": {
                "rate_limited": bool(inputs.rate_limited[i]),
                "points": float(scores.rate_limit_penalty[i]),
                "window_hours": params.rate_limited_window_hours,
            },
            "status": {
                "inactive": bool(inputs.inactive[i]),
                "suspended": bool(inputs.suspended[i]),
                "points": float(scores.status_penalty[i]),
            },
        },
    }
