"""What the trustworthy answers rest on: floors, held-out description length, planted structure."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from cluster_assets.core import MergeConfig, run_merge
from cluster_assets.core.analysis import cut_labels
from cluster_assets.core.comparison import adjusted_rand_index
from cluster_assets.core.heldout import description_length, heldout_score, with_singletons
from cluster_assets.core.replicates import Estimate, between, verdict, within
from cluster_assets.reporting.comparisons import PartitionClustering, floor_of


def planted(seed: int, n_samples: int = 4000, groups: int = 12, noise: int = 20):
    """Features in planted groups fire together (each group on its own random samples); noise
    features fire alone.  Returns (samples x features bool CSR, the planted labels)."""
    rng = np.random.default_rng(seed)
    sizes = np.random.default_rng(0).integers(3, 7, groups)  # the same structure for every seed
    labels = np.concatenate([np.full(s, g) for g, s in enumerate(sizes)] + [groups + np.arange(noise)])
    n_features = labels.size
    x = np.zeros((n_samples, n_features), bool)
    for g in range(groups):
        on = rng.random(n_samples) < 0.05
        x[np.ix_(on, np.flatnonzero(labels == g))] = True
    x[:, labels >= groups] = rng.random((n_samples, noise)) < 0.03
    return sp.csr_array(x), labels


def test_mdl_merge_recovers_planted_groups_and_compresses_held_out_data_better_than_random():
    x, truth = planted(1)
    history = run_merge(x, MergeConfig(alpha=1.0))
    _, labels = cut_labels(history, "mdl")
    assert adjusted_rand_index(truth, labels) >= 0.9
    held_out, _ = planted(2)  # a fresh sample of the same structure
    score = heldout_score(held_out, labels, alpha=1.0)
    assert score.mdl < score.random - 3 * score.random_std and score.mdl < score.singletons
    assert score.gain_vs_random > 0 and score.gain_vs_singletons > 0


def test_held_out_mdl_of_all_singletons_is_its_closed_form():
    x, _ = planted(3)
    n, f = x.shape
    closed_form = (math.log2(f) + 0.7) * x.sum() / n  # sum_f (s_f / N)(log2 F + alpha * 1)
    assert description_length(x, np.arange(f), alpha=0.7) == pytest.approx(closed_form, rel=1e-12)
    score = heldout_score(x, np.arange(f), alpha=0.7)
    assert score.mdl == pytest.approx(closed_form, rel=1e-12) and score.singletons == pytest.approx(closed_form, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_held_out_mdl_of_any_grouping_equals_the_dense_reference(seed):
    """Random groupings with noise (-1) on random activity: a group fires on a sample where any
    member does (counted once however many members fire), each noise feature is a group alone."""
    from tests.core.reference import mdl, random_activity

    rng = np.random.default_rng(seed)
    x = random_activity(rng, 300, 40, 0.15)
    labels = rng.integers(-1, 6, 40)
    groups = [frozenset(np.flatnonzero(labels == g).tolist()) for g in range(6) if (labels == g).any()]
    groups += [frozenset([int(f)]) for f in np.flatnonzero(labels < 0)]
    assert description_length(sp.csr_array(x), labels, alpha=0.6) == pytest.approx(mdl(x, groups, 0.6), rel=1e-12)


def test_noise_features_count_as_singletons():
    assert with_singletons(np.array([0, -1, 1, -1, 0])).tolist() == [0, 2, 1, 3, 0]


def _record(labels, replicate=0):
    labels = np.asarray(labels)
    return PartitionClustering(
        "d",
        "p",
        replicate,
        "p",
        "h",
        "m",
        "mdl_merge",
        np.arange(labels.size) * 2,
        labels,
        int(labels.max() + 1),
        0,
        None,
        labels.size,
        None,
        None,
    )


def test_the_floor_between_identical_clusterings_is_exactly_one():
    labels = np.random.default_rng(0).integers(0, 8, 60)
    floor = floor_of([_record(labels, r) for r in range(3)])
    for metric in ("ari", "nmi", "jaccard", "stable"):
        assert floor[metric].value == 1.0 and floor[metric].low == 1.0 and floor[metric].high == 1.0, metric
    assert floor["ari"].pairs == 3


def test_one_replicate_has_an_unknown_floor_and_says_so():
    floor = floor_of([_record([0, 0, 1, 1])])
    assert not floor["ari"].known and floor["ari"].text() == "unknown"
    effect = between({(0, 0): 0.1}, 1, 1)
    assert effect.low is None and "floor unknown" in verdict(effect, [floor["ari"]])


def test_verdict_against_the_floor():
    floor = within({(0, 1): 0.40, (0, 2): 0.45, (1, 2): 0.42}, 3)
    assert floor.low is not None and 0.40 <= floor.low <= floor.value <= floor.high <= 0.45
    far = between({(i, j): 0.02 + 0.001 * (i + j) for i in range(3) for j in range(3)}, 3, 3)
    assert verdict(far, [floor]) == "differ beyond sampling noise"
    near = Estimate(0.43, 0.39, 0.46, 9)
    assert verdict(near, [floor]) == "within sampling noise"


def test_a_point_that_keeps_fewer_features_is_read_against_the_references_floor_on_those_features():
    import dataclasses

    import polars as pl

    from cluster_assets.reporting.comparisons import compare_points, floor_on

    def record(labels, replicate, **changes):
        return dataclasses.replace(_record(labels, replicate), clusters=pl.DataFrame({"size": [1]}), **changes)

    rng = np.random.default_rng(1)
    agreed = np.repeat(np.arange(6), 5)  # features 0..29 (ids 0..58): the same six groups in every replicate
    reference = [record(np.concatenate([agreed, rng.integers(0, 30, 30) + 6]), r) for r in range(3)]  # the rest: noise
    ids = reference[0].feature_ids[:30]
    changes = {"memberships.min_entropy": 5.0}
    filtered = [record(agreed, r, point="q", partition=f"q{r}", feature_ids=ids, changes=changes) for r in range(3)]
    # on every feature the reference's replicates disagree on half of them; on the filtered point's features they agree
    assert floor_of(reference)["ari"].value < 0.9
    on_kept = floor_on(reference, filtered)
    assert all(on_kept[m].value == 1.0 for m in ("ari", "nmi", "jaccard", "stable"))
    tables = compare_points("d", "p", {"p": reference, "q": filtered}, [])
    row = tables.tables["effects"].filter(pl.col("metric") == "ari").row(0, named=True)
    assert (row["a"], row["b"], row["floor_b"], row["value"]) == ("q", "p", 1.0, 1.0)
    # a point that changes no filter (another merge alpha on the same memberships) keeps the reference's own floor
    same = [dataclasses.replace(r, changes={"clustering.alpha": 0.5}) for r in filtered]
    row = compare_points("d", "p", {"p": reference, "q": same}, []).tables["effects"].filter(pl.col("metric") == "ari").row(0, named=True)
    assert row["floor_b"] == floor_of(reference)["ari"].value
    # the floors table keeps each condition's own floor, on its own features
    floors = tables.tables["floors"].filter((pl.col("metric") == "ari") & (pl.col("condition") == "p"))
    assert floors["value"].item() == floor_of(reference)["ari"].value
