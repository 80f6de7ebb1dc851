"""The trust model's parameters: weights, priors, decay, penalties and fraud thresholds.

The ones an operator is expected to tune are settings (``DUKENET_TRUST_*``); the rest are
documented constants here. ``TrustParameters.from_settings`` is the only way code gets
them, so the API, workers, the periodic job and the benchmark all score alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cache

from dukenet.config import Settings

DAY_SECONDS = 86_400.0
WEEK_SECONDS = 7 * DAY_SECONDS

# Latency histogram: bucket k holds calls with latency in [GROWTH**k, GROWTH**(k+1)) ms, so
# a reported p99 is within ±14 % of the measured one; slower calls land in the last bucket.
LATENCY_BUCKETS = 48
LATENCY_GROWTH = 1.3


@dataclass(frozen=True)
class Weights:
    """Weights of the five components; they sum to 1."""

    reputation: float = 0.35
    delivery: float = 0.30
    uptime: float = 0.10
    latency: float = 0.15
    signer: float = 0.10

    def __post_init__(self) -> None:
        total = self.reputation + self.delivery + self.uptime + self.latency + self.signer
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"trust weights must sum to 1, not {total:.4f}")

    def as_dict(self) -> dict[str, float]:
        """``{component: weight}``."""
        return {
            "reputation": self.reputation,
            "delivery": self.delivery,
            "uptime": self.uptime,
            "latency": self.latency,
            "signer": self.signer,
        }


@dataclass(frozen=True)
class TrustParameters:
    """Everything the score, EigenTrust and the fraud detectors depend on."""

    weights: Weights = field(default_factory=Weights)
    # reputation: Bayesian average of ratings; the prior mean is the neutral point (50)
    rating_prior_mean: float = 3.0
    rating_prior_weight: float = 3.0
    half_life_days: float = 180.0
    repeat_rating_weight: float = 0.1  # further ratings by one rater of one agent within a week
    new_rater_weight: float = 0.25  # the weight of a rater the network knows nothing about
    # task value: a rating or attempt worth value_reference or more counts fully
    value_reference: float = 1.0
    value_floor: float = 0.1
    # delivery: Beta(prior_successes, prior_failures) prior
    delivery_prior_successes: float = 2.0
    delivery_prior_failures: float = 2.0
    # uptime: one day of prior observation at 50 %
    uptime_prior_seconds: float = DAY_SECONDS
    # latency: five prior calls, half of them within the declared p99
    latency_prior_calls: float = 5.0
    # penalties in trust points
    fraud_flag_penalty: float = 15.0
    max_counted_flags: int = 3
    rate_limited_penalty: float = 5.0
    rate_limited_window_hours: float = 24.0
    inactive_penalty: float = 5.0
    suspended_penalty: float = 25.0
    # selection
    selection_threshold: Decimal = Decimal("25")
    # EigenTrust
    pretrust_weight: float = 0.15
    eigentrust_tolerance: float = 1e-10
    eigentrust_max_iterations: int = 200
    pretrust_min_age_days: float = 90.0
    pretrust_min_successes: int = 20
    pretrust_min_score: float = 60.0
    # fraud: rating rings
    ring_min_rating: float = 4.0
    ring_lookback_days: float = 90.0
    ring_max_size: int = 100
    ring_min_internal_ratings: int = 3
    ring_internal_share: float = 0.8
    # fraud: failure bursts
    burst_window_seconds: int = 600
    burst_min_failures: int = 10
    burst_failure_share: float = 0.5
    # ratings
    rating_window_days: int = 30
    # periodic job
    recompute_interval: int = 3600
    recompute_initial_delay: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustParameters:
        """Parameters with the operator's ``DUKENET_TRUST_*`` settings applied."""
        return cls(
            weights=Weights(
                reputation=settings.trust_weight_reputation,
                delivery=settings.trust_weight_delivery,
                uptime=settings.trust_weight_uptime,
                latency=settings.trust_weight_latency,
                signer=settings.trust_weight_signer,
            ),
            half_life_days=settings.trust_half_life_days,
            fraud_flag_penalty=settings.trust_fraud_flag_penalty,
            selection_threshold=settings.trust_selection_threshold,
            pretrust_weight=settings.trust_eigentrust_pretrust_weight,
            rating_window_days=settings.trust_rating_window_days,
            recompute_interval=settings.trust_recompute_interval,
        )

    def with_changes(self, **changes: object) -> TrustParameters:
        """A copy with some parameters changed (tests, benchmarks)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def half_life_seconds(self) -> float:
        """The decay half-life in seconds."""
        return self.half_life_days * DAY_SECONDS


@cache
def default_parameters() -> TrustParameters:
    """Parameters from the process environment (read once), for callers without settings."""
    return TrustParameters.from_settings(Settings())
