"""EigenTrust (Kamvar, Schlosser, Garcia-Molina 2003) over the rating graph.

Local trust ``s_ij`` of rater i in agent j sums i's ratings of j, each counting how far it is
above the midpoint (``max(0, rating - 2.5) / 2.5``) times the rating's task-value, decay and
pair-rule weight. Rows are normalized into ``C`` (``c_ij = s_ij / sum_j s_ij``) and the global
trust vector is the fixed point of

    t = (1 - a) * (C^T t + d(t) p) + a p

where ``p`` is uniform over the pre-trusted agents (verified signers with a long clean
record; over every agent while none qualifies), ``a`` the pre-trust weight (damping) and
``d(t)`` the trust held by agents that rated nobody, handed to ``p``. It is computed by sparse
power iteration (scipy CSR) until the L1 change is below the tolerance. ``t`` sums to 1;
a group that only rates itself receives trust only through ratings from outside it, which is
what makes it Sybil-resistant once pre-trusted agents exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dukenet.trust.scoring import Bools, Floats, Ints


@dataclass(frozen=True)
class EigenTrustResult:
    """The global trust vector and how the iteration went."""

    trust: Floats
    iterations: int
    residual: float
    pre_trusted: int
    edges: int


def eigentrust(
    count: int,
    source: Ints,
    target: Ints,
    weight: Floats,
    pre_trusted: Bools,
    *,
    pretrust_weight: float,
    tolerance: float = 1e-10,
    max_iterations: int = 200,
) -> EigenTrustResult:
    """The EigenTrust vector of ``count`` agents from weighted edges ``source -> target``."""
    if count == 0:
        return EigenTrustResult(np.zeros(0), 0, 0.0, 0, 0)
    keep = (source != target) & (weight > 0)
    source, target, weight = source[keep], target[keep], weight[keep]
    from scipy.sparse import csr_matrix  # heavy import: only for the full recomputation

    local = csr_matrix((weight, (source, target)), shape=(count, count))
    local.sum_duplicates()
    row_sums = np.asarray(local.sum(axis=1)).ravel()
    scale = np.divide(1.0, row_sums, out=np.zeros(count), where=row_sums > 0)
    normalized = csr_matrix(local.multiply(scale[:, None]))
    transposed = normalized.T.tocsr()
    dangling = row_sums == 0
    trusted = int(pre_trusted.sum())
    prior = pre_trusted / trusted if trusted else np.full(count, 1.0 / count)
    prior = np.asarray(prior, dtype=np.float64)
    vector = prior.copy()
    residual = float("inf")
    iterations = 0
    while iterations < max_iterations and residual > tolerance:
        iterations += 1
        spread = transposed @ vector + vector[dangling].sum() * prior
        updated = (1.0 - pretrust_weight) * spread + pretrust_weight * prior
        updated /= updated.sum()
        residual = float(np.abs(updated - vector).sum())
        vector = updated
    return EigenTrustResult(vector, iterations, residual, trusted, int(local.nnz))


def rater_weights(trust: Floats, new_rater_weight: float) -> Floats:
    """The weight of each agent's ratings: ``new_rater_weight`` for an agent the network does
    not trust at all, rising linearly to 1 at the average global trust (1/N) and above."""
    count = len(trust)
    if count == 0:
        return np.zeros(0)
    relative = np.minimum(1.0, trust * count)
    return new_rater_weight + (1.0 - new_rater_weight) * relative
