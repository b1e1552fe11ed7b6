"""The one clustering entry point: each method's result through one type, against the method run directly."""

import numpy as np
import pytest
import scipy.sparse as sp

from cluster_assets.core import MembershipConfig, MergeConfig, build_memberships, cluster, coactivation, run_merge
from cluster_assets.core.analysis import cut_labels
from cluster_assets.core.baseline import BaselineConfig, activation_profiles, umap_hdbscan
from cluster_assets.core.clustering import Clustering


def _sample(seed=0, n=600, d=40):
    rng = np.random.default_rng(seed)
    values = np.where(rng.random((n, d)) < rng.uniform(0.02, 0.3, d), rng.exponential(1.0, (n, d)), 0.0).astype(np.float32)
    prompts = np.repeat(np.arange(n // 10), 10)
    members = build_memberships(sp.csr_array(values), prompts, MembershipConfig(min_firing_rate=0.01)).memberships
    return members, sp.csr_array(values), prompts


def test_mdl_merge_through_the_entry_point_is_run_merge():
    members, values, prompts = _sample()
    config = MergeConfig(alpha=0.5)
    result = cluster(members, config, activations=values, token_prompt=prompts, cofiring=coactivation(members.activity))
    direct = run_merge(members.activity, config, feature_ids=members.feature_ids)
    assert result.method == "mdl_merge" and result.labels is None and result.history == direct
    cut = result.at("mdl")
    k, labels = cut_labels(direct, "mdl")
    assert (cut.k, cut.noise) == (k, 0) and np.array_equal(cut.labels, labels)
    assert cut.mdl_at_cut == pytest.approx(direct.mdl.min())
    assert result.at(k + 2).k == k + 2
    assert result.problems(members.feature_ids) == []


def test_density_baseline_through_the_entry_point_is_hdbscan_on_the_profiles():
    members, values, prompts = _sample(1)
    config = BaselineConfig(umap=False, min_cluster_size=3)
    result = cluster(members, config, activations=values, token_prompt=prompts)
    direct = umap_hdbscan(activation_profiles(values, prompts, members.feature_ids), config)
    assert result.method == "umap_hdbscan" and result.history is None and np.array_equal(result.labels, direct)
    cut = result.at("mdl")  # fixed labels: every cut is the same
    assert cut.k == direct.max() + 1 and cut.noise == int((direct < 0).sum()) and cut.mdl_at_cut is None
    assert result.problems(members.feature_ids) == []
    assert result.problems(members.feature_ids[:-1])  # a clustered feature that was not kept


def test_a_clustering_holds_a_history_or_labels_not_both():
    with pytest.raises(ValueError, match="exactly one"):
        Clustering("mdl_merge", np.arange(3))


def test_raw_profiles_cluster_as_scikit_learns_tree_search_does():
    """The raw baseline computes all pairwise distances (fast at many dimensions): the labels of the default tree search."""
    from sklearn.cluster import HDBSCAN  # pyright: ignore[reportMissingTypeStubs]

    rng = np.random.default_rng(3)
    groups = np.where(rng.random((8, 300)) < 0.1, 1.0, 0.0)  # 8 planted prompt profiles, 6 noisy features each
    features = np.vstack([np.repeat(groups, 6, axis=0) * rng.uniform(0.5, 1.5, (48, 300)), rng.random((30, 300)) < 0.05])
    profiles = sp.csr_array(features / np.linalg.norm(features, axis=1, keepdims=True))
    tree = HDBSCAN(min_cluster_size=3, copy=True).fit_predict(profiles.toarray())  # pyright: ignore[reportArgumentType]
    assert tree.max() >= 1 and (tree < 0).any()  # clusters and noise both: the comparison has something to differ on
    assert np.array_equal(umap_hdbscan(profiles, BaselineConfig(umap=False, min_cluster_size=3)), tree)
