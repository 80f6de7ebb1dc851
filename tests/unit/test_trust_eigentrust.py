"""EigenTrust on hand-computed graphs, and the rating-ring candidates of the fraud scan."""

from __future__ import annotations

import numpy as np
import pytest

from dukenet.trust import fraud
from dukenet.trust.eigentrust import eigentrust, rater_weights
from dukenet.trust.parameters import DAY_SECONDS, TrustParameters

PARAMS = TrustParameters()


def test_three_agent_cycle_matches_the_hand_computed_vector() -> None:
    # 0 -> 1, 1 -> 2, 2 -> 0 and 2 -> 1 (equal weight); agent 0 pre-trusted; a = 0.2.
    # t0 = 0.8 * t2/2 + 0.2, t1 = 0.8 * (t0 + t2/2), t2 = 0.8 * t1
    # => t = (17, 20, 16) / 53
    result = eigentrust(
        3,
        np.array([0, 1, 2, 2]),
        np.array([1, 2, 0, 1]),
        np.array([1.0, 1.0, 3.0, 3.0]),  # only each rater's proportions matter
        np.array([True, False, False]),
        pretrust_weight=0.2,
    )
    assert result.trust == pytest.approx(np.array([17, 20, 16]) / 53, abs=1e-9)
    assert result.residual <= 1e-10
    assert result.pre_trusted == 1
    assert result.edges == 4


def test_dangling_trust_restarts_at_the_pre_trusted_agents() -> None:
    # 0 -> 1 only; agent 1 rates nobody; pre-trusted {0}; a = 0.5.
    # t0 = 0.5 * t1 + 0.5 (t1's trust goes back to p), t1 = 0.5 * t0 => t = (2/3, 1/3)
    result = eigentrust(
        2,
        np.array([0]),
        np.array([1]),
        np.array([1.0]),
        np.array([True, False]),
        pretrust_weight=0.5,
    )
    assert result.trust == pytest.approx([2 / 3, 1 / 3], abs=1e-9)


def test_without_pre_trusted_agents_trust_starts_uniform() -> None:
    result = eigentrust(
        4,
        np.array([], dtype=np.int64),
        np.array([], dtype=np.int64),
        np.array([]),
        np.zeros(4, dtype=bool),
        pretrust_weight=0.15,
    )
    assert result.trust == pytest.approx([0.25] * 4)
    assert result.iterations == 1


def test_a_clique_outside_the_trusted_region_gets_no_trust() -> None:
    # honest: 0 (pre-trusted) rates 1; sybils 2..6 rate each other densely, and self-loops
    # and non-positive weights are ignored
    sybils = range(2, 7)
    source = [0] + [a for a in sybils for b in sybils if a != b] + [3]
    target = [1] + [b for a in sybils for b in sybils if a != b] + [3]
    weight = [1.0] * (len(source) - 1) + [5.0]
    pre = np.zeros(7, dtype=bool)
    pre[0] = True
    result = eigentrust(
        7, np.array(source), np.array(target), np.array(weight), pre, pretrust_weight=0.15
    )
    assert result.trust[2:].sum() == pytest.approx(0.0, abs=1e-12)
    assert result.trust.sum() == pytest.approx(1.0)
    weights = rater_weights(result.trust, PARAMS.new_rater_weight)
    assert weights[2:] == pytest.approx([0.25] * 5)
    assert weights[0] == weights[1] == 1.0


def test_ring_candidates_find_a_mutual_high_rating_group() -> None:
    now = 1_800_000_000.0
    ring = [0, 1, 2]
    rater = [a for a in ring for b in ring if a != b] * 2 + [3, 4]
    agent = [b for a in ring for b in ring if a != b] * 2 + [5, 5]
    rating = [5.0] * 12 + [4.0, 4.5]
    at = np.full(len(rater), now - DAY_SECONDS)
    candidates = fraud.ring_candidates(
        6, np.array(rater), np.array(agent), np.array(rating), at, now, PARAMS
    )
    assert [c.members for c in candidates] == [ring]
    assert candidates[0].internal_ratings == {0: 4, 1: 4, 2: 4}
    # the same ratings long ago, or rated low, are no ring
    old = np.full(len(rater), now - 200 * DAY_SECONDS)
    assert (
        fraud.ring_candidates(
            6, np.array(rater), np.array(agent), np.array(rating), old, now, PARAMS
        )
        == []
    )
    low = np.full(len(rater), 2.0)
    assert fraud.ring_candidates(6, np.array(rater), np.array(agent), low, at, now, PARAMS) == []


def test_burst_estimate_slides_over_the_previous_window() -> None:
    counts = fraud.BurstCounts(
        window=10, failures=4, attempts=4, previous_failures=12, previous_attempts=12
    )
    start = 10 * PARAMS.burst_window_seconds
    failures, attempts = fraud.burst_estimate(
        counts, start + PARAMS.burst_window_seconds / 2, PARAMS
    )
    assert (failures, attempts) == (10.0, 10.0)
    assert fraud.is_burst(failures, attempts, PARAMS)
    late = fraud.burst_estimate(counts, start + PARAMS.burst_window_seconds * 0.99, PARAMS)
    assert not fraud.is_burst(*late, PARAMS)
