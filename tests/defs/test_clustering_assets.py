"""The clustering half on tiny real inputs: two datasets x two sweep points end to end,
incremental reuse, asset checks on good and corrupted data."""

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

import cluster_assets.defs.assets.clustering as clustering_mod
from cluster_assets.storage.formats import ClusteringFormat, ClustersFormat, MembershipsFormat


@pytest.fixture(scope="module")
def trained(graph):
    assert graph.sae().success
    return graph


def test_two_datasets_by_two_sweep_points_end_to_end(trained):
    graph = trained
    results = {(d, h): graph.partition(d, h) for d in ("kjv", "python_stdlib") for h in ("base", "other_seed")}
    for _key, res in results.items():
        assert res.success
        checks = res.get_asset_check_evaluations()
        assert len(checks) == 3 and all(c.passed for c in checks), [c.description for c in checks]
        cmd = graph.metadata(res, "clusters")
        stored = ClustersFormat().load(Path(cmd["path"].value))
        features = MembershipsFormat().load_features(Path(graph.metadata(res, "memberships")["path"].value))
        assert (
            stored.clusters["size"].sum()
            == stored.labels.height
            == features["kept"].sum()
            == graph.metadata(res, "memberships")["kept_features"].value
        )
        assert stored.clusters.height == cmd["k"].value == graph.metadata(res, "merge_history")["best_k"].value
        hist = ClusteringFormat().load(Path(graph.metadata(res, "merge_history")["path"].value)).history
        assert hist is not None
        assert np.argmin(hist.mdl) == hist.n_features - cmd["k"].value
        assert stored.top_prompts["span_starts"].list.len().min() >= 1  # every top prompt marks its active tokens
        assert set(features["quadrant"].unique()) >= {"flowing", "careful", "exploring", "resampling"}
        shares = stored.extra["descriptions"].select(pl.col("^share_.*$")).sum_horizontal()
        active = stored.clusters.sort("cluster")["active_tokens"].to_numpy() > 0
        np.testing.assert_allclose(shares.to_numpy()[active], 1.0)
    # different datasets and prompt seeds give different artifacts
    assert len({graph.metadata(r, "clusters")["artifact"].value for r in results.values()}) == 4


def test_alpha_only_point_recomputes_nothing_upstream(trained, monkeypatch):
    graph = trained
    graph.partition("kjv", "base")
    calls = {"build_memberships": 0, "count_coactivation": 0, "cluster": 0}
    for name in calls:
        original = getattr(clustering_mod, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(clustering_mod, name, counting)
    res = graph.partition("kjv", "alpha_low")
    assert res.success
    assert calls == {"build_memberships": 0, "count_coactivation": 0, "cluster": 1}
    for asset in ("prompts", "activations", "memberships", "coactivation"):
        assert graph.metadata(res, asset)["reused"].value, asset
    assert not graph.metadata(res, "merge_history")["reused"].value
    # same upstream data versions for both sweep points
    for asset in ("activations", "coactivation"):
        records = graph.instance.fetch_materializations(dg.AssetKey(asset), limit=50).records
        by_partition = {r.asset_materialization.partition: r.asset_materialization.tags["dagster/data_version"] for r in records}
        assert by_partition["kjv|base"] == by_partition["kjv|alpha_low"]


def test_fixed_cut_point(trained):
    res = trained.partition("python_stdlib", "fixed_cut")
    assert trained.metadata(res, "clusters")["k"].value == 5
    assert trained.metadata(res, "merge_history")["reused"].value  # the cut is downstream of the merge


def _check_on_corrupted(graph, asset, check, corrupt):
    """Corrupt an artifact *and* re-record its checksums (as a buggy writer would), then check it:
    the artifact verifies, so only the asset check can catch it."""
    from cluster_assets.storage.artifacts import MANIFEST
    from cluster_assets.storage.hashing import CHECKSUM, file_checksum

    res = graph.partition("kjv", "base")
    path = Path(graph.metadata(res, asset)["path"].value)
    backup = path.with_name(path.name + ".backup")
    shutil.copytree(path, backup)
    changed = corrupt(path)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"][changed] = {"bytes": (path / changed).stat().st_size, CHECKSUM: file_checksum(path / changed)}
    (path / MANIFEST).write_text(json.dumps(manifest))
    try:
        result = graph.partition("kjv", "base", raise_on_error=False)
        [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == check]
        return evaluation
    finally:
        shutil.rmtree(path)
        backup.rename(path)


def test_checks_fail_on_corrupted_coactivation(trained):
    def corrupt(path):
        pairs = sp.load_npz(path / "pairs.npz")
        pairs.data += 1  # every stored pair one more than its recount
        sp.save_npz(path / "pairs.npz", pairs, compressed=False)
        return "pairs.npz"

    evaluation = _check_on_corrupted(trained, "coactivation", "coactivation_is_exact", corrupt)
    assert not evaluation.passed and "a direct recount gives" in evaluation.description


def test_checks_fail_on_corrupted_history_and_clusters(trained):
    def corrupt_history(path):
        with np.load(path / "clustering.npz") as z:
            fields = dict(z)
        fields["history.pairs"][1] = fields["history.pairs"][0]  # merges groups that no longer exist
        np.savez(path / "clustering.npz", **fields)
        return "clustering.npz"

    evaluation = _check_on_corrupted(trained, "merge_history", "merge_history_is_valid", corrupt_history)
    assert not evaluation.passed and "live groups" in evaluation.description

    def corrupt_labels(path):
        labels = pl.read_parquet(path / "labels.parquet")
        pl.concat([labels, labels.head(1)]).write_parquet(path / "labels.parquet")
        return "labels.parquet"

    evaluation = _check_on_corrupted(trained, "clusters", "every_kept_feature_in_one_cluster", corrupt_labels)
    assert not evaluation.passed and "more than one cluster" in evaluation.description


def test_bad_threshold_names_point_and_field(trained, tmp_path):
    from tests.conftest import FIXTURES, Graph, fixture_project

    sweep = tmp_path / "sweep.yaml"
    text = (FIXTURES / "sweep.yaml").read_text()
    assert "  base:\n" in text
    sweep.write_text(text.replace("  base:\n", "  base:\n    memberships: {threshold: 1000.0}\n"))
    graph = Graph(fixture_project(sweep=sweep), trained.resources, trained.instance)
    res = graph.materialize(["prompts", "activations", "memberships"], graph.key("kjv", "base"), raise_on_error=False)
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "sweep point 'base', field memberships.threshold: 1000.0 leaves no active feature" in message
    assert message.count("threshold") == 1 and "np." not in message


def test_definitions_load_with_jobs_and_automation(project):
    from cluster_assets.defs.definitions import build_definitions

    repo = build_definitions(project).get_repository_def()
    assert {"model_side_job", "clustering_job", "sae_job", "partition_job"} <= {j.name for j in repo.get_all_jobs()}
    assert {"answers_automation", "missing_partitions_automation", "sweep_files_sensor", "dead_run_sensor"} <= {
        s.name for s in repo.sensor_defs
    }


def test_missing_partition_automation_never_requests_a_partition_its_point_does_not_run(project):
    from cluster_assets.defs.definitions import build_definitions

    assert ("kjv", "half_sample") in project.runs() and ("python_stdlib", "half_sample") not in project.runs()
    import datetime

    defs, selection = build_definitions(project), dg.AssetSelection.assets("prompts")
    before, after = (datetime.datetime(2026, 12, 2, 1, 59, tzinfo=datetime.UTC), datetime.datetime(2026, 12, 2, 2, 1, tzinfo=datetime.UTC))
    with dg.DagsterInstance.ephemeral() as instance:
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection, evaluation_time=before)
        assert first.total_requested == 0
        # the nightly tick: every missing partition is requested
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, evaluation_time=after, cursor=first.cursor
        )
    requested = {str(k) for k in result.get_requested_partitions(dg.AssetKey("prompts"))}
    assert "kjv|half_sample" in requested and "kjv|base" in requested  # every missing partition that runs
    assert not any(key.endswith("|half_sample") and not key.startswith("kjv|") for key in requested)
    assert len(requested) == len(project.runs())
