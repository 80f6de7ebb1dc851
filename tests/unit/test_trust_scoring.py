"""The trust score's math: neutral start, monotonicity, decay, the rating rules' weights,
penalties and the latency histogram."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dukenet.trust import scoring
from dukenet.trust.agent_scores import RatingEvidence, add_ratings, base_rating_weights
from dukenet.trust.parameters import DAY_SECONDS, TrustParameters, Weights

PARAMS = TrustParameters()
NOW = 1_800_000_000.0


def fresh(count: int = 1) -> scoring.AgentInputs:
    """Agents with a verified registration and no other evidence."""
    inputs = scoring.AgentInputs.empty(count)
    inputs.registration_verified[:] = True
    return inputs


def score(inputs: scoring.AgentInputs, params: TrustParameters = PARAMS) -> float:
    return float(scoring.compute_scores(inputs, params).trust[0])


def with_ratings(
    ratings: list[tuple[float, float]], *, rater_weight: float = 1.0, value: float = 1.0
) -> scoring.AgentInputs:
    """One agent rated (rating, age in days) by distinct raters."""
    inputs = fresh()
    count = len(ratings)
    evidence = RatingEvidence(
        agent=np.zeros(count, dtype=np.int64),
        rater=np.arange(count, dtype=np.int64),
        rating=np.array([r for r, _ in ratings]),
        at=np.array([NOW - age * DAY_SECONDS for _, age in ratings]),
        value=np.full(count, value),
        rater_weight=np.full(count, rater_weight),
    )
    add_ratings(inputs, evidence, base_rating_weights(evidence, NOW, PARAMS))
    return inputs


def test_new_agent_with_a_verified_registration_scores_fifty() -> None:
    assert score(fresh()) == 50.0
    scores = scoring.compute_scores(fresh(), PARAMS)
    for component in (scores.reputation, scores.delivery, scores.uptime, scores.latency):
        assert component[0] == 0.5
    assert scores.rating[0] == PARAMS.rating_prior_mean


def test_weights_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        Weights(reputation=0.5, delivery=0.5, uptime=0.1, latency=0.0, signer=0.0)


def test_more_successes_never_lower_the_score() -> None:
    previous = -1.0
    for successes in range(0, 200, 7):
        inputs = fresh()
        inputs.success_weight[0] = successes
        inputs.failure_weight[0] = 3.0
        current = score(inputs)
        assert current >= previous
        previous = current
    assert previous > 64.0  # delivery alone moves the score by at most 15 points


def test_more_failures_never_raise_the_score() -> None:
    previous = 101.0
    for failures in range(0, 100, 5):
        inputs = fresh()
        inputs.success_weight[0] = 20.0
        inputs.failure_weight[0] = failures
        current = score(inputs)
        assert current <= previous
        previous = current


@pytest.mark.parametrize("flags", [1, 2, 3])
def test_a_fraud_flag_lowers_the_score(flags: int) -> None:
    inputs = fresh()
    inputs.success_weight[0] = 50.0
    clean = score(inputs)
    inputs.open_flags[0] = flags
    assert score(inputs) == pytest.approx(clean - 15.0 * flags)


def test_flag_penalty_counts_at_most_three_and_the_score_stays_in_range() -> None:
    inputs = fresh()
    inputs.open_flags[0] = 9
    inputs.suspended[0] = True
    inputs.rate_limited[0] = True
    assert score(inputs) == 0.0  # 50 - 45 - 25 - 5 clamps at 0
    best = fresh()
    best.rating_weight[0], best.rating_weighted_sum[0] = 1e6, 5e6
    best.success_weight[0] = 1e6
    best.within_weight[0] = best.declared_weight[0] = 1e6
    best.up_30d[0] = best.observed_30d[0] = 1e9
    best.owner_given[0] = best.owner_proven[0] = True
    assert 99.9 < score(best) <= 100.0


def test_status_and_rate_limit_penalties() -> None:
    base = score(fresh())
    inactive = fresh()
    inactive.inactive[0] = True
    limited = fresh()
    limited.rate_limited[0] = True
    assert score(inactive) == base - 5.0
    assert score(limited) == base - 5.0


def test_higher_ratings_give_higher_scores_and_the_prior_is_neutral() -> None:
    scores = [score(with_ratings([(r, 0.0)] * 5)) for r in (0.0, 1.0, 3.0, 4.0, 5.0)]
    assert scores == sorted(scores)
    assert scores[2] == 50.0  # ratings at the prior mean change nothing
    assert scores[0] < 50.0 < scores[-1]


def test_bayesian_average_shrinks_few_ratings_toward_the_prior() -> None:
    one = scoring.compute_scores(with_ratings([(5.0, 0.0)]), PARAMS).rating[0]
    many = scoring.compute_scores(with_ratings([(5.0, 0.0)] * 50), PARAMS).rating[0]
    assert one == pytest.approx((3 * 3.0 + 5.0) / 4, abs=0.01)
    assert 4.8 < many < 5.0


def test_ratings_decay_with_a_half_life() -> None:
    fresh_rating = with_ratings([(5.0, 0.0)])
    half_life_old = with_ratings([(5.0, PARAMS.half_life_days)])
    assert half_life_old.rating_weight[0] == pytest.approx(fresh_rating.rating_weight[0] / 2)
    ancient = with_ratings([(5.0, 10 * PARAMS.half_life_days)])
    assert score(fresh_rating) > score(half_life_old) > score(ancient) > 50.0
    assert scoring.decay(np.array([-5.0]), PARAMS)[0] == 1.0  # clock skew counts fully


def test_rater_weight_and_task_value_scale_a_rating() -> None:
    full = with_ratings([(5.0, 0.0)])
    unknown_rater = with_ratings([(5.0, 0.0)], rater_weight=PARAMS.new_rater_weight)
    ignored_rater = with_ratings([(5.0, 0.0)], rater_weight=0.0)
    tiny_task = with_ratings([(5.0, 0.0)], value=0.001)
    assert unknown_rater.rating_weight[0] == pytest.approx(0.25)
    assert ignored_rater.rating_weight[0] == 0.0
    assert score(ignored_rater) == 50.0
    assert tiny_task.rating_weight[0] == pytest.approx(PARAMS.value_floor)
    assert score(full) > score(unknown_rater) > score(tiny_task) > 50.0


def test_value_weight_saturates_at_the_reference() -> None:
    weights = scoring.value_weight(np.array([0.0, 0.05, 0.5, 1.0, 250.0]), PARAMS)
    assert weights.tolist() == pytest.approx([0.1, 0.1, 0.5, 1.0, 1.0])


def test_one_rating_per_rater_and_agent_per_week_counts_fully() -> None:
    day = DAY_SECONDS
    # one pair rating at days 0, 1, 6.9, 7, 8, 14.5 plus another pair at day 1
    agent = np.array([0, 0, 0, 0, 0, 0, 0])
    rater = np.array([1, 1, 1, 1, 1, 1, 2])
    at = np.array([0.0, 1.0, 6.9, 7.0, 8.0, 14.5, 1.0]) * day
    factors = scoring.repeat_factors(agent, rater, at, PARAMS)
    assert factors.tolist() == [1.0, 0.1, 0.1, 1.0, 0.1, 1.0, 1.0]
    # order of the input does not matter
    shuffled = np.array([5, 3, 0, 6, 1, 4, 2])
    again = scoring.repeat_factors(agent[shuffled], rater[shuffled], at[shuffled], PARAMS)
    assert again.tolist() == factors[shuffled].tolist()


def test_uptime_counts_from_a_day_of_prior_and_rises_with_observation() -> None:
    inputs = fresh(3)
    inputs.observed_30d[:] = [3_600.0, 10 * DAY_SECONDS, 30 * DAY_SECONDS]
    inputs.up_30d[:] = inputs.observed_30d  # always up
    scores = scoring.compute_scores(inputs, PARAMS)
    assert list(scores.uptime) == sorted(scores.uptime)
    assert scores.uptime_30d.tolist() == [100.0, 100.0, 100.0]
    down = fresh()
    down.observed_30d[0] = 30 * DAY_SECONDS
    assert scoring.compute_scores(down, PARAMS).uptime_30d[0] == 0.0
    assert score(down) < 50.0


def test_latency_share_within_the_declared_p99() -> None:
    fast, slow = fresh(), fresh()
    fast.declared_weight[0], fast.within_weight[0] = 100.0, 100.0
    slow.declared_weight[0], slow.within_weight[0] = 100.0, 10.0
    assert score(fast) > 50.0 > score(slow)


def test_latency_histogram_quantiles() -> None:
    histogram = np.zeros((2, 48))
    for latency in [10] * 98 + [900, 1_000]:
        histogram[0, scoring.latency_bucket(latency) - 1] += 1
    p50 = scoring.histogram_quantile(histogram, 0.5)
    p99 = scoring.histogram_quantile(histogram, 0.99)
    assert p50[1] == p99[1] == 0.0  # empty histogram
    assert 10 / 1.3 <= p50[0] <= 10 * 1.3
    assert 900 / 1.3 <= p99[0] <= 900 * 1.3
    assert scoring.latency_bucket(0) == 1
    assert scoring.latency_bucket(10**9) == 48


def test_signer_component_and_verified_signer_flag() -> None:
    unverified = scoring.AgentInputs.empty(1)
    owner_unproven = fresh()
    owner_unproven.owner_given[0] = True
    owner_proven = fresh()
    owner_proven.owner_given[0] = owner_proven.owner_proven[0] = True
    results = [
        scoring.compute_scores(i, PARAMS) for i in (unverified, owner_unproven, owner_proven)
    ]
    assert [float(r.signer[0]) for r in results] == [0.0, 0.5, 1.0]
    assert [bool(r.verified_signer[0]) for r in results] == [False, False, True]
    assert [float(r.trust[0]) for r in results] == [45.0, 50.0, 55.0]


def test_epoch_anchored_sums_decay_like_direct_weights() -> None:
    epoch, half_life = 1_700_000_000.0, 180.0
    at = NOW - 45 * DAY_SECONDS
    stored = scoring.epoch_weight(at, epoch, half_life)
    decayed = stored * scoring.decay_factor(NOW, epoch, half_life)
    assert decayed == pytest.approx(math.pow(0.5, 45 / 180))


def test_explanation_adds_up() -> None:
    inputs = with_ratings([(4.0, 1.0)] * 4)
    inputs.success_weight[0] = 10.0
    scores = scoring.compute_scores(inputs, PARAMS)
    explained = scoring.explain(inputs, scores, PARAMS)
    points = sum(c["points"] for c in explained["components"].values())
    assert points == pytest.approx(explained["base_points"], abs=0.03)
    assert explained["trust_score"] == float(scores.trust[0])
    assert {c: v["weight"] for c, v in explained["components"].items()} == PARAMS.weights.as_dict()
    assert "0.35 R" in explained["formula"]
