"""Comparisons, the baseline method and the report, on tiny real inputs."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from cluster_assets.defs.assets.clustering import clusters, coactivation, memberships, merge_history
from cluster_assets.defs.assets.comparisons import dataset_comparison, research_report, sweep_comparison
from cluster_assets.defs.assets.model_side import activations, prompts, sae
from cluster_assets.defs.checks import CHECKS

GRAPH = [prompts, activations, memberships, coactivation, merge_history, clusters, sae.to_source_asset()]
DATASETS = ["kjv", "kjv_again", "python_stdlib"]


@pytest.fixture(scope="module")
def setup(resources, instance):
    assert dg.materialize([sae], resources=resources, instance=instance).success
    for dataset in DATASETS:
        for point in ("base", "hdbscan_umap", "hdbscan_raw"):
            key = dg.MultiPartitionKey({"dataset": dataset, "hparams": point})
            res = dg.materialize([*GRAPH, *CHECKS], partition_key=key, resources=resources, instance=instance)
            assert all(c.passed for c in res.get_asset_check_evaluations())
    return resources, instance


def _md(result, asset):
    [mat] = result.asset_materializations_for_node(asset)
    return mat.metadata


def test_baseline_produces_valid_labels(setup):
    resources, instance = setup
    for point in ("hdbscan_umap", "hdbscan_raw"):
        key = dg.MultiPartitionKey({"dataset": "kjv", "hparams": point})
        res = dg.materialize([*GRAPH, *CHECKS], partition_key=key, resources=resources, instance=instance)
        md = _md(res, "clusters")
        assert md["method"].value == "umap_hdbscan"
        labels = pl.read_parquet(Path(md["path"].value) / "labels.parquet")["cluster"].to_numpy()
        kept = _md(res, "memberships")["kept_features"].value
        assert labels.size == kept and labels.min() >= -1
        assert md["noise_features"].value == int((labels == -1).sum())
        assert md["k"].value == len(set(labels[labels >= 0].tolist()))


def test_dataset_comparison_identical_datasets_and_missing(setup):
    resources, instance = setup
    res = dg.materialize([dataset_comparison, clusters.to_source_asset()], partition_key="base", resources=resources, instance=instance)
    md = _md(res, "dataset_comparison")
    assert md["missing"].value == ["json_docstrings", "pile10k"]
    folder = Path(md["path"].value)
    pairs = pl.read_parquet(folder / "pairs.parquet")
    same = pairs.filter((pl.col("a") == "kjv") & (pl.col("b") == "kjv_again"))
    assert same["ari"].item() == 1.0 and same["nmi"].item() == pytest.approx(1.0)
    # identical clusterings: every kjv cluster matches its twin with Jaccard 1
    matches = pl.read_parquet(folder / "matches.parquet").filter((pl.col("name") == "kjv") & (pl.col("other") == "kjv_again"))
    assert (matches["jaccard"] == 1.0).all()
    assert pairs.filter(pl.col("b") == "python_stdlib")["ari"].max() < 1.0


def test_comparison_with_fewer_than_two_partitions_says_so(setup):
    resources, instance = setup
    res = dg.materialize([dataset_comparison, clusters.to_source_asset()], partition_key="fixed_cut", resources=resources, instance=instance)
    md = _md(res, "dataset_comparison")
    assert res.success
    assert "fewer than two datasets" in md["summary"].value["note"]
    assert sorted(md["missing"].value) == sorted(["kjv", "kjv_again", "python_stdlib", "json_docstrings", "pile10k"])


def test_sweep_comparison_and_method_comparison(setup):
    resources, instance = setup
    res = dg.materialize([sweep_comparison, clusters.to_source_asset()], partition_key="kjv", resources=resources, instance=instance)
    md = _md(res, "sweep_comparison")
    folder = Path(md["path"].value)
    points = pl.read_parquet(folder / "points.parquet")
    assert set(points["point"]) == {"base", "hdbscan_umap", "hdbscan_raw"}
    assert points.filter(pl.col("point") == "base")["ari_vs_reference"].item() == 1.0
    assert "merge.method" in points.filter(pl.col("point") == "hdbscan_raw")["changes"].item()
    methods = pl.read_parquet(folder / "methods.parquet")
    assert {("mdl_merge", "umap_hdbscan")} <= set(zip(methods["method_a"], methods["method_b"]))
    assert methods["ari"].is_between(-1, 1).all()
    assert set(md["missing"].value) == {"other_seed", "alpha_low", "fixed_cut"}


def test_report_has_a_section_per_question(setup):
    resources, instance = setup
    for point in ("base", "hdbscan_umap", "hdbscan_raw"):
        dg.materialize([dataset_comparison, clusters.to_source_asset()], partition_key=point, resources=resources, instance=instance)
    for dataset in DATASETS:
        dg.materialize([sweep_comparison, clusters.to_source_asset()], partition_key=dataset, resources=resources, instance=instance)
    res = dg.materialize([research_report, dataset_comparison.to_source_asset(), sweep_comparison.to_source_asset()],
                         resources=resources, instance=instance)
    md = _md(res, "research_report")
    text = Path(md["report_path"].value).read_text()
    for i in range(1, 6):
        assert f"## Q{i}." in text
    assert "Missing or failed partitions" in text and "json_docstrings" in text
    figures = list((Path(md["report_path"].value).parent / "figures").glob("*.png"))
    assert len(figures) >= 4
    assert "data:image/png;base64" in md["report"].value
