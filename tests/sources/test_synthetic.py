"""The method against planted ground truth (sae-lens' synthetic activations): recovered on an easy
instance, less well from fewer samples; the plant is what it says it is."""

import numpy as np

from cluster_assets.config.models import GroundTruth
from cluster_assets.core.baseline import BaselineConfig
from cluster_assets.core.merge import MergeConfig
from cluster_assets.sources.synthetic import recovery, recovery_curve, sample, truth

PLANT = GroundTruth(groups=8, group_size=4, hierarchies=2, noise_features=8, frequent_noise=1, sample_sizes=(300, 6000))


def test_the_plant_co_fires_within_groups_and_children_need_their_parent():
    values, prompts = sample(PLANT, 4000)
    active = values.toarray() > 0
    labels = truth(PLANT)
    assert active.shape == (4000, PLANT.n_features) and np.array_equal(prompts[:20], np.arange(20) // PLANT.tokens_per_prompt)
    corr = np.corrcoef(active.T)
    same = (labels[:, None] == labels[None, :]) & ~np.eye(labels.size, dtype=bool)
    assert np.nanmean(corr[same]) > 0.5 > np.nanmean(np.abs(corr[~same & ~np.eye(labels.size, dtype=bool)])) + 0.4
    parent, children = 0, [1, 2, 3]  # the first group is a tree
    assert not (active[:, children].any(axis=1) & ~active[:, parent]).any()
    assert active[:, PLANT.groups * PLANT.group_size].mean() > 0.4  # the frequent noise feature fires on about half


def test_the_mdl_merge_recovers_an_easy_plant_and_less_of_it_from_fewer_samples():
    easy = recovery(PLANT, 6000, MergeConfig())
    hard = recovery(PLANT, 300, MergeConfig())
    assert easy["ari"] >= 0.9 and easy["jaccard"] >= 0.9
    assert hard["ari"] < easy["ari"]


def test_the_curve_has_a_row_per_method_and_size():
    rows = recovery_curve(PLANT, {"merge": MergeConfig(), "raw": BaselineConfig(umap=False, min_cluster_size=3)})
    assert [(r["point"], r["samples"]) for r in rows] == [("merge", 300), ("merge", 6000), ("raw", 300), ("raw", 6000)]
    assert {r["method"] for r in rows} == {"mdl_merge", "umap_hdbscan"} and all(-1 <= r["ari"] <= 1 for r in rows)
