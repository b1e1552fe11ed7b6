import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from cluster_assets.core import MergeConfig, comembership_disagreement, ensemble_distances, hamming_distance, run_ensemble
from tests.core.reference import random_activity


def _brute_hamming(a, b):
    best = 0
    la, lb = np.unique(a), np.unique(b)
    size = max(len(la), len(lb))
    for perm in itertools.permutations(range(size), len(la)):
        mapping = {la[i]: (lb[perm[i]] if perm[i] < len(lb) else None) for i in range(len(la))}
        best = max(best, sum(mapping[x] == y for x, y in zip(a, b)))
    return 1 - best / len(a)


def _brute_comembership(a, b):
    pairs = list(itertools.combinations(range(len(a)), 2))
    return sum((a[i] == a[j]) != (b[i] == b[j]) for i, j in pairs) / len(pairs)


@pytest.mark.parametrize("seed", range(20))
def test_distances_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    a, b = rng.integers(0, 4, n), rng.integers(0, 5, n)
    assert hamming_distance(a, b) == pytest.approx(_brute_hamming(a, b))
    assert comembership_disagreement(a, b) == pytest.approx(_brute_comembership(a, b))


def test_relabelled_copy_is_identical():
    a = np.array([0, 0, 1, 2, 2, 2, 3])
    perm = np.array([7, 3, 9, 1])
    assert hamming_distance(a, perm[a]) == 0.0
    assert comembership_disagreement(a, perm[a]) == 0.0
    assert hamming_distance(a, np.zeros_like(a)) > 0


def test_ensemble_distances():
    x = random_activity(np.random.default_rng(3), 300, 20, 0.2)
    hs = run_ensemble(sp.csr_array(x), MergeConfig(sampler="mcmc", temperature=0.02), seeds=[0, 1, 2])
    d = ensemble_distances(hs, k=6)
    assert d.shape == (3, 3) and np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    assert np.all((d >= 0) & (d <= 1))
    with pytest.raises(ValueError, match="metric"):
        ensemble_distances(hs, 6, metric="nope")
