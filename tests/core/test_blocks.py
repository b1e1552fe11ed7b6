"""Streaming over row blocks (one activation shard at a time) gives the same bytes as the whole matrix."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from cluster_assets.core import MembershipConfig, build_memberships
from cluster_assets.core.analysis import TokenColumns, analyse_clusters, cluster_activity, describe_clusters
from cluster_assets.core.baseline import activation_profiles
from cluster_assets.core.features import feature_statistics


def _sample(seed: int, n_prompts: int = 30, d_sae: int = 48):
    """Activations of prompts in a shuffled (draw) order, each prompt's tokens contiguous, and
    row blocks cut at random prompt boundaries (as activation shards cut a sample)."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(1000)[:n_prompts]
    lengths = rng.integers(1, 15, n_prompts)
    prompts = np.repeat(ids, lengths)
    n = prompts.size
    rate = rng.uniform(0, 0.35, d_sae)
    rate[:3] = 0.95  # always-on features, as real SAEs have
    rate[-1] = 0.0  # and a dead one
    dense = np.where(rng.random((n, d_sae)) < rate, rng.exponential(1.0, (n, d_sae)), 0.0).astype(np.float32)
    bounds = np.cumsum(lengths)[:-1]
    cuts = np.sort(rng.choice(bounds, size=min(5, bounds.size), replace=False))
    edges = [0, *cuts.tolist(), n]
    whole = sp.csr_array(dense)
    blocks = [sp.csr_array(dense[a:b]) for a, b in itertools.pairwise(edges)]
    blocks.insert(1, sp.csr_array(dense[:0]))  # a shard may hold none of a sample's rows
    return whole, blocks, prompts


def _same_csr(a, b) -> None:
    a, b = sp.csr_array(a), sp.csr_array(b)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_feature_statistics_over_blocks_equal_the_whole_matrix(seed):
    whole, blocks, prompts = _sample(seed)
    assert len(blocks) > 2
    ref, got = feature_statistics(whole, prompts, 0.3), feature_statistics(blocks, prompts, 0.3)
    for name, value in ref.columns().items():
        np.testing.assert_array_equal(got.columns()[name], value, err_msg=name)  # the same bytes, NaNs included
    assert (got.n_tokens, got.n_prompts) == (ref.n_tokens, ref.n_prompts)


@pytest.mark.parametrize(
    "config",
    [
        MembershipConfig(threshold=0.2),
        MembershipConfig(threshold=0.2, unit="prompt"),
        MembershipConfig(threshold=0.1, unit="prompt", prompt_reduce="mean"),
        MembershipConfig(threshold=0.2, min_entropy=0.5),
    ],
)
def test_memberships_over_blocks_equal_the_whole_matrix(config):
    whole, blocks, prompts = _sample(3)
    ref, got = build_memberships(whole, prompts, config), build_memberships(blocks, prompts, config)
    np.testing.assert_array_equal(got.kept, ref.kept)
    np.testing.assert_array_equal(got.reason, ref.reason)
    np.testing.assert_array_equal(got.sample_prompt, ref.sample_prompt)
    _same_csr(got.memberships.activity, ref.memberships.activity)
    if config.unit == "prompt":  # prompts in id order, whatever order the blocks hold them in
        assert np.all(np.diff(got.sample_prompt) > 0)
        assert got.memberships.n_samples == np.unique(prompts).size


def test_cluster_analysis_over_blocks_equals_the_whole_matrix():
    whole, blocks, prompts = _sample(4)
    feature_ids = np.array([0, 3, 5, 8, 13, 21, 34, 40, 47])
    labels = np.array([0, 1, 1, 2, 0, 2, 3, -1, 4])  # cluster 4: the dead feature, active nowhere
    text = [f"t{i} " for i in range(whole.shape[0])]
    rng = np.random.default_rng(7)
    columns = TokenColumns(rng.integers(0, 30, whole.shape[0]), rng.integers(0, 20, whole.shape[0]), rng.integers(0, 7, whole.shape[0]))
    ref = analyse_clusters(labels, feature_ids, whole, prompts, text, threshold=0.4, top_n=3, columns=columns)
    got = analyse_clusters(labels, feature_ids, blocks, prompts, text, threshold=0.4, top_n=3, columns=columns)
    np.testing.assert_equal(got.clusters, ref.clusters)
    assert got.top_prompts == ref.top_prompts and len(got.top_prompts["prompt_id"]) == 4 * 3  # none for the inactive cluster
    np.testing.assert_equal(got.descriptions, ref.descriptions)  # NaN mean position of the inactive cluster included
    assert got.clusters["active_tokens"][4] == 0
    # and the tally is what each cluster fired on: recounted from the dense activity
    dense = whole.toarray()
    active = np.stack([(dense[:, feature_ids[labels == c]] > 0.4).any(axis=1) for c in range(5)], axis=1)
    recount = describe_clusters(sp.csr_array(active), columns.token_ids, columns.positions, columns.token_class)
    np.testing.assert_equal(got.descriptions, recount)
    np.testing.assert_array_equal(got.correlation, ref.correlation)
    np.testing.assert_array_equal(cluster_activity(blocks, feature_ids, labels, 0.4), cluster_activity(whole, feature_ids, labels, 0.4))
    # and the counts are right: tokens where any member is above the threshold
    dense = whole.toarray()
    for c in range(5):
        assert cluster_activity(blocks, feature_ids, labels, 0.4)[c] == (dense[:, feature_ids[labels == c]] > 0.4).any(axis=1).sum()


def test_baseline_profiles_over_blocks_equal_the_whole_matrix():
    whole, blocks, prompts = _sample(5)
    feature_ids = np.arange(2, 40, 3)
    _same_csr(activation_profiles(blocks, prompts, feature_ids), activation_profiles(whole, prompts, feature_ids))


def test_a_prompt_split_between_blocks_is_refused():
    dense = np.random.default_rng(6).exponential(1.0, (6, 4))
    prompts = np.array([7, 7, 3, 3, 3, 9])
    with pytest.raises(ValueError, match="split between two activation blocks"):
        feature_statistics([sp.csr_array(dense[:3]), sp.csr_array(dense[3:])], prompts, 0.3)
    with pytest.raises(ValueError, match="token_prompt has"):
        feature_statistics([sp.csr_array(dense[:-1])], prompts, 0.3)
    feature_statistics([sp.csr_array(dense[:2]), sp.csr_array(dense[2:])], prompts, 0.3)  # cut between prompts: fine
