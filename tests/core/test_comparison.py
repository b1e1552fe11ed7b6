import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from cluster_assets.core.comparison import adjusted_rand_index, best_matches, common_labels, normalized_mutual_info, stable_clusters


@pytest.mark.parametrize("seed", range(30))
def test_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    a = rng.integers(-1, int(rng.integers(1, 8)), n)
    b = rng.integers(-1, int(rng.integers(1, 8)), n) if seed % 3 else a.copy()
    assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
    assert normalized_mutual_info(a, b) == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-12)


@pytest.mark.parametrize("a, b", [([0, 0, 0], [1, 1, 1]), ([0, 1, 2], [5, 6, 7]), ([0, 0, 1, 1], [0, 1, 0, 1]), ([3], [4])])
def test_metrics_edge_cases_equal_sklearn(a, b):
    assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b))
    assert normalized_mutual_info(a, b) == pytest.approx(normalized_mutual_info_score(a, b))


def test_identical_and_relabelled_clusterings():
    ids = np.array([3, 5, 8, 13, 21, 34])
    labels = np.array([0, 0, 1, 1, 1, 2])
    relabelled = np.array([7, 7, 4, 4, 4, 9])
    assert adjusted_rand_index(labels, relabelled) == 1.0
    assert normalized_mutual_info(labels, relabelled) == pytest.approx(1.0)
    m = best_matches(ids, labels, ids, relabelled)
    assert m.jaccard.tolist() == [1.0, 1.0, 1.0] and m.best.tolist() == [7, 4, 9]
    stable = stable_clusters("a", {"a": (ids, labels), "b": (ids, relabelled), "c": (ids, labels)})
    assert sorted(stable) == [0, 1, 2]


def test_jaccard_uses_full_member_sets_and_common_labels():
    ids_a, la = np.array([1, 2, 3, 4]), np.array([0, 0, 0, 1])
    ids_b, lb = np.array([2, 3, 9]), np.array([5, 5, 5])
    m = best_matches(ids_a, la, ids_b, lb)
    assert m.jaccard[0] == pytest.approx(2 / 4)  # {1,2,3} vs {2,3,9}
    assert m.best[1] == -2 and m.jaccard[1] == 0.0
    common, a, b = common_labels(ids_a, la, ids_b, lb)
    assert common.tolist() == [2, 3] and a.tolist() == [0, 0] and b.tolist() == [5, 5]
    assert stable_clusters("a", {"a": (ids_a, la), "b": (ids_b, lb)}) == {0: {"b": (5, 0.5)}}


def test_dataset_comparison_identical_copies_are_all_stable():
    from cluster_assets.reporting.comparisons import PartitionClustering, compare_datasets

    ids = np.arange(10, 20)
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 3])

    def part(name, lab):
        no_prompts = pl.DataFrame({"cluster": []}, schema={"cluster": pl.Int64})
        return [
            PartitionClustering(
                name, "p", 0, "p", "h", "m", "mdl_merge", ids, lab, int(lab.max()) + 1, 0, None, 10, pl.DataFrame(), no_prompts
            )
        ]

    out = compare_datasets("p", {"x": part("x", labels), "y": part("y", labels.copy()), "z": part("z", (labels + 5) % 7)}, [])
    ari = out.tables["effects"].filter(out.tables["effects"]["metric"] == "ari")
    assert ari["value"].to_list() == [1.0, 1.0, 1.0]
    assert sorted(out.tables["stable"]["cluster"].to_list()) == [0, 1, 2, 3]
    assert out.tables["specific"].height == 0
    other = compare_datasets("p", {"x": part("x", labels), "w": part("w", np.zeros(10, dtype=int))}, [])
    # every cluster of x overlaps w's single cluster with Jaccard <= 0.4, and w's with at most 0.4
    assert other.tables["stable"].height == 0 and other.tables["specific"].height == 5
