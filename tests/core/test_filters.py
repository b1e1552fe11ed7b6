import numpy as np
import pytest
import scipy.sparse as sp

from cluster_assets.core import MembershipConfig, ParameterError, apply_filters, feature_statistics


def _dense_case(seed=0):
    rng = np.random.default_rng(seed)
    n_tok, n_feat = 240, 16
    dense = np.where(rng.random((n_tok, n_feat)) < rng.uniform(0, 0.4, n_feat), rng.exponential(1.0, (n_tok, n_feat)), 0.0)
    dense[:, 3] = 0.0  # a dead feature
    prompts = np.sort(rng.integers(0, 20, size=n_tok))
    return dense, prompts


def _numpy_stats(dense, prompts, threshold):
    ids = np.unique(prompts)
    mass = np.stack([np.abs(dense[prompts == p]).sum(axis=0) for p in ids])
    entropy, varentropy = [], []
    for j in range(dense.shape[1]):
        if mass[:, j].sum() == 0:
            entropy.append(np.nan)
            varentropy.append(np.nan)
            continue
        p = mass[:, j] / mass[:, j].sum()
        h = np.array([-q * np.log(q) if q > 0 else 0.0 for q in p])
        entropy.append(h.sum())
        varentropy.append(h.var())
    return {
        "firing_rate": (dense > threshold).mean(axis=0),
        "max": dense.max(axis=0),
        "mean": dense.mean(axis=0),
        "entropy": np.array(entropy),
        "varentropy": np.array(varentropy),
    }


@pytest.mark.parametrize("seed", range(4))
def test_statistics_match_direct_numpy(seed):
    dense, prompts = _dense_case(seed)
    stats = feature_statistics(sp.csr_array(dense), prompts, threshold=0.2)
    want = _numpy_stats(dense, prompts, 0.2)
    assert stats.n_tokens == len(dense) and stats.n_prompts == len(np.unique(prompts))
    for name, value in want.items():
        np.testing.assert_allclose(getattr(stats, name), value, rtol=1e-12, atol=1e-15, equal_nan=True, err_msg=name)


def test_filters_record_first_failing_reason():
    dense, prompts = _dense_case(1)
    stats = feature_statistics(sp.csr_array(dense), prompts, threshold=0.0)
    config = MembershipConfig(dead_stat="mean", dead_threshold=0.01, min_firing_rate=0.05, max_entropy=2.5, max_varentropy=0.02)
    kept, reason = apply_filters(stats, config)
    want = _numpy_stats(dense, prompts, 0.0)
    for j in range(dense.shape[1]):
        if want["mean"][j] < 0.01 or want["max"][j] <= 0:
            expected = "dead"
        elif want["firing_rate"][j] < 0.05:
            expected = "firing_rate"
        elif want["entropy"][j] > 2.5:
            expected = "entropy"
        elif want["varentropy"][j] > 0.02:
            expected = "varentropy"
        else:
            expected = "kept"
        assert reason[j] == expected, j
    assert reason[3] == "dead"
    np.testing.assert_array_equal(kept, reason == "kept")


def test_filter_config_validation_and_empty_input():
    with pytest.raises(ParameterError, match="dead_stat"):
        MembershipConfig(dead_stat="median")
    with pytest.raises(ParameterError, match="above"):
        MembershipConfig(min_entropy=2.0, max_entropy=1.0)
    with pytest.raises(ParameterError, match="firing_rate"):
        MembershipConfig(max_firing_rate=1.5)
    with pytest.raises(ValueError, match="empty corpus"):
        feature_statistics(sp.csr_array((0, 4)), np.zeros(0), 0.0)
    with pytest.raises(ValueError, match="threshold"):
        feature_statistics(sp.csr_array((0, 4)), np.zeros(0), -0.5)


def test_statistics_of_activations_that_never_fire():
    stats = feature_statistics(sp.csr_array((5, 3)), np.array([0, 0, 1, 1, 2]), 0.0)
    assert (stats.firing_count == 0).all() and np.isnan(stats.entropy).all() and np.isnan(stats.varentropy).all()
