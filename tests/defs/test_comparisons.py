"""Comparisons, the baseline method and the report, on tiny real inputs; and the results of that
run loaded from Python: each stage's record through the IO manager, the tidy tables, the notebook."""

import dataclasses
import gc
import hashlib
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from cluster_assets.defs.io_manager import NotMaterialisedError
from cluster_assets.defs.pipeline import STAGES
from cluster_assets.results import KEYS, Results
from cluster_assets.storage.formats import Clusters, ClustersFormat, DocumentFormat, TablesFormat
from tests.conftest import FIXTURES, ROOT

DATASETS = ["kjv", "kjv_again", "python_stdlib"]


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """A persistent instance (sqlite in a folder), so that a notebook in another process reads this run."""
    with dg.DagsterInstance.local_temp(str(tmp_path_factory.mktemp("dagster_home")), overrides={"telemetry": {"enabled": False}}) as inst:
        yield inst


@pytest.fixture(scope="module")
def setup(graph):
    assert graph.sae().success
    for dataset in DATASETS:
        for point in ("base", "base@2", "hdbscan_umap", "hdbscan_raw"):
            res = graph.partition(dataset, point)
            assert all(c.passed for c in res.get_asset_check_evaluations())
    for point in ("half_sample", "half_sample@2"):  # the learning curve's second size, on kjv alone
        assert graph.partition("kjv", point).success
    return graph


def test_a_point_runs_only_on_the_datasets_it_names(setup):
    graph = setup
    assert ("kjv", "half_sample") in graph.project.runs() and ("python_stdlib", "half_sample") not in graph.project.runs()
    with pytest.raises(dg.Failure, match=r"sweep point 'half_sample' runs on datasets kjv only .* not on 'python_stdlib'"):
        graph.partition("python_stdlib", "half_sample")


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
    assert set(points["point"]) == {"base", "hdbscan_umap", "hdbscan_raw", "half_sample"}
    assert points.filter(pl.col("point") == "base")["replicates"].item() == 2
    tokens = dict(zip(points["point"], points["tokens"]))
    assert 0 < tokens["half_sample"] < tokens["base"]
    heldout = tables.tables["heldout"]
    # every clustering scored on a sample of its own dataset it never saw: base's replicates on each
    # other, the baselines on a base replicate (scores on other datasets are the dataset comparison's)
    assert set(heldout["kind"]) == {"same dataset"} and set(heldout["measured_on"]) == {"kjv"}
    assert set(zip(heldout["point"], heldout["replicate"])) == {
        ("base", 1),
        ("base", 2),
        ("hdbscan_umap", 1),
        ("hdbscan_raw", 1),
        ("half_sample", 1),
        ("half_sample", 2),
    }
    effects = tables.tables["effects"].filter(pl.col("metric") == "ari")
    assert set(effects["a"]) == {"hdbscan_umap", "hdbscan_raw", "half_sample"} and set(effects["b"]) == {"base"}
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
    # a partition that never runs is not missing
    other = graph.metadata(graph.materialize(["sweep_comparison"], "python_stdlib"), "sweep_comparison")
    assert "half_sample" not in other["missing"].value and "alpha_low" in other["missing"].value


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
    curve = document.markdown.split("## How many tokens does a stable clustering need?")[1].split("## Q1")[0]
    # kjv has a floor at two sizes (base and half_sample, two replicates each): a verdict from the two; the others one size
    kjv = next(line for line in curve.splitlines() if line.startswith("- kjv:"))
    assert "floor ARI" in kjv and "at 6 prompts" not in kjv and ("stable" in kjv or "doubling" in kjv)
    assert next(line for line in curve.splitlines() if line.startswith("- python_stdlib:")).endswith("one size with a floor: no curve yet.")
    assert "learning_curve.png" in document.figures and "| kjv | half_sample |" in curve
    assert md["tokens_needed"].value.startswith("kjv: floor ARI")


# --- the run's results from Python ----------------------------------------------------------


@pytest.fixture(autouse=True)
def collect_value_loaders():
    """Dagster's value loader leaves an ephemeral instance per load to the garbage collector:
    collect it while its storage is open, not at some later compile or at exit."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def materialised(setup):
    """Everything the results read: two alphas of the merge on two datasets, both comparisons, the report."""
    graph = setup
    for dataset in ("kjv", "python_stdlib"):
        assert graph.partition(dataset, "alpha_low").success
        assert graph.materialize(["sweep_comparison"], dataset).success
    for point in ("base", "alpha_low"):
        assert graph.materialize(["dataset_comparison"], point).success
    assert graph.materialize(["sae_evals", "ground_truth"]).success
    assert graph.materialize(["research_report"]).success
    assert graph.materialize(["cluster_explorer"]).success
    return graph


def _files_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_load_asset_value_returns_each_stages_record(materialised, tmp_path):
    """For every stage: the value ``load_asset_value`` returns, saved again by the stage's format,
    is byte for byte the files the stage wrote (so it is the record, whole and typed)."""
    graph = materialised
    keys = {"dataset_point": graph.key("kjv", "base"), "hparams": "base", "dataset": "kjv", "none": None}
    with graph.defs.get_asset_value_loader(graph.instance) as loader:
        for name, stage in STAGES.items():
            key = keys[stage.partitioning]
            value = loader.load_asset_value(name, partition_key=key)
            assert value is not None, name
            [record] = graph.instance.fetch_materializations(dg.AssetRecordsFilter(dg.AssetKey(name), [key] if key else None), 1).records
            written = Path(str(record.asset_materialization.metadata["path"].value))
            again = tmp_path / name
            again.mkdir()
            stage.format.save(again, value)
            expected, got = _files_digest(written), _files_digest(again)
            # every file but the manifest and the metadata figures run_stage adds beside some formats
            assert {n for n in expected if n != "manifest.json" and not n.endswith(".png")} <= set(got), name
            assert got == {n: expected.get(n) for n in got}, name
    clusters = graph.defs.load_asset_value("clusters", instance=graph.instance, partition_key=graph.key("kjv", "base"))
    assert isinstance(clusters, Clusters) and clusters.cut.k == clusters.clusters.height  # typed: the format's value


def test_an_unmaterialised_partition_names_the_asset_partition_and_the_way_out(materialised):
    graph = materialised
    with pytest.raises(NotMaterialisedError) as err:
        graph.defs.load_asset_value("clusters", instance=graph.instance, partition_key=graph.key("kjv", "fixed_cut"))
    message = str(err.value)
    assert "clusters[kjv|fixed_cut] has not been materialised" in message
    assert "dagster asset materialize -m cluster_assets.definitions --select clusters --partition 'kjv|fixed_cut'" in message
    # a partitioned asset without its key is not "the latest of any partition", and the reverse is an error too
    with pytest.raises(ValueError, match="clusters is partitioned: pass partition_key"):
        graph.defs.load_asset_value("clusters", instance=graph.instance)
    with pytest.raises(ValueError, match="sae is not partitioned: load it without partition_key"):
        graph.defs.load_asset_value("sae", instance=graph.instance, partition_key="kjv")


def test_tidy_tables_have_one_row_per_feature_cluster_and_statistic(materialised):
    graph = materialised
    results = Results(graph.project, graph.instance, graph.resources)
    done = sorted(graph.instance.get_materialized_partitions(dg.AssetKey("clusters")))
    features, clusters, comparisons = results.features(), results.clusters(), results.comparisons()
    for table in (features, clusters, comparisons):
        assert list(table.columns[: len(KEYS)]) == list(KEYS)
    d_sae = graph.resources["source"].sae_training.d_sae
    assert features.height == d_sae * len(graph.instance.get_materialized_partitions(dg.AssetKey("memberships")))
    assert features.group_by("dataset", "partition").len()["len"].unique().to_list() == [d_sae]
    expected = 0
    for key in done:
        dataset, point = key.split("|")
        record = results.value("clusters", dataset, point)
        expected += record.clusters.height
        mine = clusters.filter((pl.col("dataset") == dataset) & (pl.col("partition") == point))
        assert mine["cluster"].to_list() == record.clusters["cluster"].to_list()
        assert mine["size"].to_list() == record.clusters["size"].to_list()
    assert clusters.height == expected
    # the sweep parameters are columns: two alphas of the merge side by side, replicates keyed
    alphas = clusters.filter(pl.col("clustering.method") == "mdl_merge")["clustering.alpha"].unique().sort().to_list()
    assert alphas == [0.25, 1.0]
    assert set(clusters.filter(pl.col("point") == "base")["replicate"].unique()) == {0, 1}
    stable = clusters.filter((pl.col("point") == "base") & (pl.col("dataset") == "kjv"))["replicate_jaccard"]
    assert stable.null_count() == 0 and 0 < stable.max() <= 1
    assert (
        clusters.filter(pl.col("point") == "alpha_low")["replicate_jaccard"].null_count()
        == clusters.filter(pl.col("point") == "alpha_low").height
    )
    # kjv and its copy: identical clusterings, so every cluster's best match on the copy is itself
    copy = clusters.filter((pl.col("dataset") == "kjv") & (pl.col("partition") == "base"))["match_jaccard[kjv_again]"]
    assert copy.min() == 1.0
    compared = {a: graph.instance.get_materialized_partitions(dg.AssetKey(a)) for a in ("dataset_comparison", "sweep_comparison")}
    assert {"base", "alpha_low"} <= compared["dataset_comparison"] and {"kjv", "python_stdlib"} <= compared["sweep_comparison"]
    effects = {
        ("dataset_comparison", p): results.value("dataset_comparison", None, p).tables["effects"].height
        for p in compared["dataset_comparison"]
    } | {("sweep_comparison", d): results.value("sweep_comparison", d, None).tables["effects"].height for d in compared["sweep_comparison"]}
    have = comparisons.group_by("comparison", pl.coalesce("point", "dataset")).len().rows()
    assert {(c, k): n for c, k, n in have} == {k: v for k, v in effects.items() if v}
    assert {"value", "value_low", "value_high", "floor_a", "floor_b", "verdict", "clustering.alpha"} <= set(comparisons.columns)
    assert clusters["current"].all() and features["current"].all() and comparisons["current"].all()
    # the same instance read with other settings for alpha_low: its records are no longer what those settings address
    moved = {**graph.project.sweep}
    for name, point in graph.project.sweep.items():
        if point.point == "alpha_low":
            moved[name] = point.model_copy(update={"clustering": dataclasses.replace(point.clustering, alpha=0.3)})
    changed = Results(dataclasses.replace(graph.project, sweep=moved), graph.instance, graph.resources).clusters()
    assert not changed.filter(pl.col("point") == "alpha_low")["current"].any()
    assert changed.filter(pl.col("point") == "base")["current"].all()


def test_the_example_notebook_runs_on_this_run(materialised, monkeypatch, cache_dir):
    import nbformat
    from nbclient import NotebookClient

    graph = materialised
    for name, value in {
        "DAGSTER_HOME": graph.instance.root_directory,
        "CLUSTER_ASSETS_SWEEP": str(FIXTURES / "sweep.yaml"),
        "CLUSTER_ASSETS_DATASETS": str(FIXTURES / "datasets.yaml"),
        "CLUSTER_ASSETS_ARTIFACTS": str(graph.resources["artifacts"].root),
        "CLUSTER_ASSETS_CACHE": str(cache_dir),
    }.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(ROOT / "examples" / "results.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "clusters," in text and "Clusters CutSummary" in text and "clustering.alpha" in text


# --- the cluster explorer, in headless Chromium ------------------------------------------------


@pytest.fixture(scope="module")
def site(materialised) -> Path:
    [mat] = materialised.materialize(["cluster_explorer"]).asset_materializations_for_node("cluster_explorer")
    assert mat.metadata["open"].value == (Path(mat.metadata["path"].value) / "site" / "index.html").as_uri()
    return Path(mat.metadata["path"].value) / "site"


@pytest.fixture(scope="module")
def browser():
    from tests.browser import Browser

    with Browser() as started:
        yield started


def _page(browser, site: Path, page: str, **query):
    from urllib.parse import urlencode

    tab = browser.open((site / page).as_uri() + ("?" + urlencode(query) if query else ""))
    assert tab.evaluate("document.body.dataset.ready") == "true", tab.evaluate("document.getElementById('main').innerText")
    return tab


def _stored(graph, asset: str, dataset: str, point: str) -> Path:
    return Path(graph.metadata(graph.materialize([asset], graph.key(dataset, point)), asset)["path"].value)


def test_explorer_pages_load_from_file_with_no_console_error_and_no_network(materialised, site, browser):
    graph = materialised
    pages = [("index.html", {}), ("partition.html", {"p": "kjv|base"}), ("cluster.html", {"p": "kjv|base", "c": 0})]
    pages += [("comparison.html", {"point": "base"}), ("cluster.html", {"p": "kjv|hdbscan_raw", "c": 0})]
    for page, query in pages:
        tab = _page(browser, site, page, **query)
        assert tab.errors() == [], (page, query)
        requested = tab.requests()
        assert any(u.endswith("/data/index.js") or "/data/" in u for u in requested)  # its data came as files
        outside = [u for u in requested if not (u.startswith(site.as_uri() + "/") or u.startswith("data:"))]
        assert outside == [], (page, outside)  # nothing but the site's own files (and plotly's inline images)
    index = _page(browser, site, "index.html")
    shown = index.evaluate(
        "[...document.querySelectorAll('#partitions tbody tr')].map(r => r.cells[0].innerText + '|' + r.cells[1].innerText)"
    )
    assert sorted(shown) == sorted(graph.instance.get_materialized_partitions(dg.AssetKey("clusters")))
    # a cluster that is not there is an error the page shows, not a blank page
    tab = browser.open((site / "cluster.html").as_uri() + "?p=kjv%7Cbase&c=99999")
    assert tab.evaluate("document.body.dataset.ready") == "error" and "no cluster 99999" in tab.evaluate(
        "document.getElementById('main').innerText"
    )


def test_searching_a_token_narrows_the_list_to_clusters_whose_top_tokens_contain_it(materialised, site, browser):
    record = ClustersFormat().load(_stored(materialised, "clusters", "kjv", "base"))
    tops = dict(record.extra["descriptions"].select("cluster", "top_tokens").iter_rows())
    largest = record.clusters.row(0, named=True)["cluster"]
    query = next(t.strip().lower() for t in tops[largest] if t.strip().isalpha())
    expected = {c for c, tokens in tops.items() if any(query in t.lower() for t in tokens[:8])}
    assert 0 < len(expected) < len(tops)
    tab = _page(browser, site, "partition.html", p="kjv|base")
    tab.evaluate(f"(() => {{ const s = document.getElementById('search'); s.value = {query!r}; s.dispatchEvent(new Event('input')); }})()")
    shown = tab.evaluate("[...document.querySelectorAll('#clusters .cluster-link')].map(a => Number(a.textContent))")
    assert set(shown) == expected and len(shown) == len(expected)
    assert tab.evaluate("document.getElementById('count').textContent").startswith(f"{len(expected)} of {len(tops)} clusters")
    assert tab.errors() == []


def test_a_cluster_page_shades_tokens_in_the_order_of_the_stored_activations(materialised, site, browser):
    import numpy as np

    from cluster_assets.storage.formats import ActivationsFormat

    graph = materialised
    record = ClustersFormat().load(_stored(graph, "clusters", "kjv", "base"))
    acts = ActivationsFormat().load(_stored(graph, "activations", "kjv", "base")).gather()
    cluster = record.clusters.row(0, named=True)["cluster"]
    members = record.labels.filter(pl.col("cluster") == cluster)["feature_id"].to_numpy()
    tab = _page(browser, site, "cluster.html", p="kjv|base", c=cluster)
    prompts = tab.evaluate(
        "[...document.querySelectorAll('#prompts .prompt')].map(p => [Number(p.dataset.prompt), "
        "[...p.querySelectorAll('.tok')].map(t => [t.textContent, Number(t.dataset.act), Number(t.dataset.alpha)])])"
    )
    assert [p for p, _ in prompts] == record.top_prompts.filter(pl.col("cluster") == cluster).sort("rank")["prompt_id"].to_list()
    for prompt, tokens in prompts:
        rows = acts.tokens.with_row_index("row").filter(pl.col("prompt_id") == prompt).sort("position")
        block = acts.values[rows["row"].to_numpy()][:, members].toarray()
        stored = np.where(block > 0, block, 0).sum(axis=1)  # the cluster's activation on each token: its active members summed
        assert [t for t, _, _ in tokens] == rows["token"].to_list()
        np.testing.assert_allclose([a for _, a, _ in tokens], stored, atol=1e-3)
        alpha = np.array([a for _, _, a in tokens])
        assert (alpha[stored == 0] == 0).all() and (alpha[stored > 0] > 0).all()
        order = np.argsort(stored, kind="stable")
        assert (np.diff(alpha[order]) >= 0).all()  # more activation, never lighter shading
        gaps = np.diff(stored[order]) > 1e-3
        assert (np.diff(alpha[order])[gaps] > 0).all()  # and darker wherever the stored values differ
    assert any((np.array([a for _, a, _ in t]) > 0).sum() >= 3 for _, t in prompts)  # something to order


def test_links_to_matched_clusters_on_other_datasets_resolve(materialised, site, browser):
    graph = materialised
    record = ClustersFormat().load(_stored(graph, "clusters", "kjv", "base"))
    cluster = record.clusters.row(0, named=True)["cluster"]
    matches = TablesFormat().load(
        Path(graph.metadata(graph.materialize(["dataset_comparison"], "base"), "dataset_comparison")["path"].value)
    )
    expected = dict(
        matches.tables["matches"].filter((pl.col("name") == "kjv") & (pl.col("cluster") == cluster)).select("other", "best").iter_rows()
    )
    assert set(expected) == {"kjv_again", "python_stdlib"}
    tab = _page(browser, site, "cluster.html", p="kjv|base", c=cluster)
    links = tab.evaluate("[...document.querySelectorAll('#matches .match-link')].map(a => [a.textContent, a.href])")
    for other, best in expected.items():
        [href] = [h for text, h in links if text == f"{other}|base · cluster {best}"]
        tab.goto(href)
        assert tab.evaluate("document.body.dataset.ready") == "true"
        assert tab.evaluate("document.querySelector('h1').innerText") == f"Cluster {best} · {other}|base"
        assert tab.errors() == []
    assert expected["kjv_again"] == cluster  # the same corpus under another name: the same cluster
