"""Comparisons, the baseline method and the report, on tiny real inputs."""

from pathlib import Path

import polars as pl
import pytest

from cluster_assets.storage.formats import ClustersFormat, DocumentFormat, TablesFormat

DATASETS = ["kjv", "kjv_again", "python_stdlib"]


@pytest.fixture(scope="module")
def setup(graph):
    assert graph.sae().success
    for dataset in DATASETS:
        for point in ("base", "base@2", "hdbscan_umap", "hdbscan_raw"):
            res = graph.partition(dataset, point)
            assert all(c.passed for c in res.get_asset_check_evaluations())
    return graph


def test_baseline_produces_valid_labels(setup):
    graph = setup
    for point in ("hdbscan_umap", "hdbscan_raw"):
        res = graph.partition("kjv", point)
        md = graph.metadata(res, "clusters")
        assert md["method"].value == "umap_hdbscan"
        assert "cut" not in md and "mdl_at_cut" not in md  # what does not apply to the method is not shown
        labels = ClustersFormat().load_labels(Path(md["path"].value))["cluster"].to_numpy()
        kept = graph.metadata(res, "memberships")["kept_features"].value
        assert labels.size == kept and labels.min() >= -1
        assert md["noise_features"].value == int((labels == -1).sum())
        assert md["k"].value == len(set(labels[labels >= 0].tolist()))


def test_dataset_comparison_identical_datasets_and_missing(setup):
    graph = setup
    res = graph.materialize(["dataset_comparison"], "base")
    md = graph.metadata(res, "dataset_comparison")
    assert "json_docstrings|base" in md["missing"].value and "pile10k" not in md["missing"].value  # hub datasets are not partitions offline
    tables = TablesFormat().load(Path(md["path"].value))
    ari = tables.tables["effects"].filter(pl.col("metric") == "ari")
    # the same corpus under two names: replicate i of one equals replicate i of the other (ARI 1), so
    # their agreement is (1 + floor) / 2 -- never "different beyond sampling noise"
    same = ari.filter((pl.col("a") == "kjv") & (pl.col("b") == "kjv_again")).row(0, named=True)
    assert same["value"] == pytest.approx((1 + same["floor_a"]) / 2) and same["floor_a"] == pytest.approx(same["floor_b"])
    assert same["verdict"] != "differ beyond sampling noise"
    # identical clusterings: every kjv cluster matches its twin with Jaccard 1
    matches = tables.tables["matches"].filter((pl.col("name") == "kjv") & (pl.col("other") == "kjv_again"))
    assert (matches["jaccard"] == 1.0).all()
    assert ari.filter(pl.col("b") == "python_stdlib")["value"].max() < 1.0
    # two replicates each: a floor, and a verdict against it
    assert ari["floor_a"].is_not_null().all() and not ari["verdict"].str.contains("floor unknown").any()
    floors = tables.tables["floors"].filter(pl.col("metric") == "ari")
    assert floors["replicates"].to_list() == [2, 2, 2]
    # every dataset's clusters measured on every dataset
    activity = tables.tables["activity"]
    assert set(activity["measured_on"]) == set(DATASETS) and set(activity["clustered_on"]) == set(DATASETS)
    # each dataset's first-replicate clusters scored on every other dataset's first sample
    transfer = tables.tables["transfer"]
    assert set(zip(transfer["clustered_on"], transfer["measured_on"])) == {(a, b) for a in DATASETS for b in DATASETS if a != b}
    # kjv_again is the same corpus: kjv's clusters describe it exactly as they describe kjv's own first sample
    twin = transfer.filter((pl.col("clustered_on") == "kjv") & (pl.col("measured_on") == "kjv_again"))
    other = transfer.filter((pl.col("clustered_on") == "kjv") & (pl.col("measured_on") == "python_stdlib"))
    assert twin["gain_vs_singletons"].item() > other["gain_vs_singletons"].item()


def test_comparison_with_fewer_than_two_partitions_says_so(setup):
    graph = setup
    res = graph.materialize(["dataset_comparison"], "fixed_cut")
    md = graph.metadata(res, "dataset_comparison")
    assert res.success
    assert "fewer than two datasets" in md["note"].value
    res = graph.materialize(["dataset_comparison"], "hdbscan_umap")
    ari = (
        TablesFormat()
        .load(Path(graph.metadata(res, "dataset_comparison")["path"].value))
        .tables["effects"]
        .filter(pl.col("metric") == "ari")
    )
    # one replicate each: the floor is unknown and the verdict says so rather than inventing one
    assert ari["floor_a"].is_null().all() and ari["verdict"].str.contains("floor unknown").all()
    assert md["missing_partitions"].value == 4


def test_sweep_comparison_and_method_comparison(setup):
    graph = setup
    res = graph.materialize(["sweep_comparison"], "kjv")
    md = graph.metadata(res, "sweep_comparison")
    tables = TablesFormat().load(Path(md["path"].value))
    points = tables.tables["points"]
    assert set(points["point"]) == {"base", "hdbscan_umap", "hdbscan_raw"}
    assert points.filter(pl.col("point") == "base")["replicates"].item() == 2
    heldout = tables.tables["heldout"]
    # every clustering scored on a sample of its own dataset it never saw: base's replicates on each
    # other, the baselines on a base replicate (scores on other datasets are the dataset comparison's)
    assert set(heldout["kind"]) == {"same dataset"} and set(heldout["measured_on"]) == {"kjv"}
    assert set(zip(heldout["point"], heldout["replicate"])) == {("base", 1), ("base", 2), ("hdbscan_umap", 1), ("hdbscan_raw", 1)}
    effects = tables.tables["effects"].filter(pl.col("metric") == "ari")
    assert set(effects["a"]) == {"hdbscan_umap", "hdbscan_raw"} and set(effects["b"]) == {"base"}
    assert "clustering.method=umap_hdbscan" in points.filter(pl.col("point") == "hdbscan_raw")["changes"].item()
    # the changes column keeps the parameter that tells the two baseline points apart
    assert (
        points.filter(pl.col("point") == "hdbscan_raw")["changes"].item()
        != points.filter(pl.col("point") == "hdbscan_umap")["changes"].item()
    )
    methods = tables.tables["methods"]
    assert {("mdl_merge", "umap_hdbscan")} <= set(zip(methods["method_a"], methods["method_b"]))
    assert methods["ari"].is_between(-1, 1).all()
    assert {"other_seed", "alpha_low", "fixed_cut"} <= {m.split("|")[1] for m in md["missing"].value.split(", ")}


def test_report_has_a_section_per_question(setup):
    graph = setup
    for point in ("base", "hdbscan_umap", "hdbscan_raw"):
        graph.materialize(["dataset_comparison"], point)
    for dataset in DATASETS:
        graph.materialize(["sweep_comparison"], dataset)
    evals = graph.materialize(["sae_evals"], checks=True)
    quality = graph.metadata(evals, "sae_evals")
    offline = [d.name for d in graph.project.datasets]
    assert quality["datasets"].value == offline and set(quality["loss_recovered"].value) == set(offline)
    [check] = evals.get_asset_check_evaluations()
    # the fixture's tiny SAE (256 features, 6,144 training tokens) is far below the default thresholds: a warning that says so
    assert check.check_name == "sae_quality" and not check.passed and check.severity.value == "WARN"
    assert "kjv: loss_recovered" in check.description and "(sae_quality.min_loss_recovered)" in check.description
    truth = graph.metadata(graph.materialize(["ground_truth"]), "ground_truth")
    # every distinct clustering config of the fixture sweep, at each sample size of the fixture's plant
    assert set(truth["ari_at_most_samples"].value) == {"base", "alpha_low", "hdbscan_umap", "hdbscan_raw"}
    assert truth["samples"].value == [300, 3000] and truth["ari_at_most_samples"].value["base"] >= 0.9
    res = graph.materialize(["research_report"])
    md = graph.metadata(res, "research_report")
    document = DocumentFormat().load(Path(md["path"].value))
    for i in range(1, 6):
        assert f"## Q{i}." in document.markdown
    assert "**Scale:**" in document.markdown and "json_docstrings" in document.markdown
    scale = next(line for line in document.markdown.splitlines() if line.startswith("**Scale:**"))
    assert "SAE quality (CE loss recovered" in scale
    assert f"kjv {quality['loss_recovered'].value['kjv']:.3f} / " in scale
    q3 = document.markdown.split("## Q3")[1].split("## Q4")[0]
    assert "Ground truth, 3,000 samples of a planted structure: the MDL merge `base` recovers it with ARI" in q3
    assert "Ground truth, 300 samples" in q3 and "| point | method | samples | ari |" in q3
    assert len(document.figures) >= 4
    assert "two samples of kjv:" in document.markdown and "floor unknown" not in document.markdown.split("## Q4")[1].split("## Q5")[0]
    assert "data:image/png;base64" in md["report"].value
