"""The clustering half on tiny real inputs: two datasets x two sweep points end to end,
incremental reuse, asset checks on good and corrupted data."""

import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

import cluster_assets.defs.assets.clustering as clustering_mod
from cluster_assets.core import MergeHistory
from cluster_assets.definitions import defs as project_defs
from cluster_assets.defs.assets.clustering import clusters, coactivation, memberships, merge_history
from cluster_assets.defs.assets.model_side import activations, prompts, sae
from cluster_assets.defs.checks import CHECKS

GRAPH = [prompts, activations, memberships, coactivation, merge_history, clusters, sae.to_source_asset()]


@pytest.fixture(scope="module")
def trained(instance, resources):
    assert dg.materialize([sae], resources=resources, instance=instance).success
    return resources


def _key(dataset, hparams):
    return dg.MultiPartitionKey({"dataset": dataset, "hparams": hparams})


def _md(result, asset):
    [mat] = result.asset_materializations_for_node(asset)
    return mat.metadata


def _materialize(keys, resources, instance, assets=GRAPH, checks=CHECKS, **kw):
    out = {}
    for key in keys:
        out[key] = dg.materialize([*assets, *checks], partition_key=key, resources=resources, instance=instance, **kw)
    return out


def test_two_datasets_by_two_sweep_points_end_to_end(trained, instance):
    keys = [_key(d, h) for d in ("kjv", "python_stdlib") for h in ("base", "other_seed")]
    results = _materialize(keys, trained, instance)
    for key, res in results.items():
        assert res.success
        checks = res.get_asset_check_evaluations()
        assert len(checks) == 3 and all(c.passed for c in checks), [c.description for c in checks]
        cmd = _md(res, "clusters")
        table = pl.read_parquet(Path(cmd["path"].value) / "clusters.parquet")
        labels = pl.read_parquet(Path(cmd["path"].value) / "labels.parquet")
        features = pl.read_parquet(Path(_md(res, "memberships")["path"].value) / "features.parquet")
        assert table["size"].sum() == labels.height == features["kept"].sum() == _md(res, "memberships")["kept_features"].value
        assert table.height == cmd["k"].value == _md(res, "merge_history")["best_k"].value
        hist = MergeHistory.load(Path(_md(res, "merge_history")["path"].value) / "merge_history.npz")
        assert np.argmin(hist.mdl) == hist.n_features - cmd["k"].value
        top = pl.read_parquet(Path(cmd["path"].value) / "top_prompts.parquet")
        assert top["marked_text"].str.contains(r"\[\[").all()
        assert set(features["quadrant"].unique()) >= {"flowing", "careful", "exploring", "resampling"}
    # different datasets and prompt seeds give different artifacts
    assert len({_md(r, "clusters")["artifact"].value for r in results.values()}) == 4


def test_alpha_only_point_recomputes_nothing_upstream(trained, instance, monkeypatch):
    _materialize([_key("kjv", "base")], trained, instance)
    calls = {"build_memberships": 0, "count_coactivation": 0, "run_merge": 0}
    for name in calls:
        original = getattr(clustering_mod, name)

        def counting(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(clustering_mod, name, counting)
    res = _materialize([_key("kjv", "alpha_low")], trained, instance)[_key("kjv", "alpha_low")]
    assert res.success
    assert calls == {"build_memberships": 0, "count_coactivation": 0, "run_merge": 1}
    for asset in ("prompts", "activations", "memberships", "coactivation"):
        assert _md(res, asset)["reused"].value, asset
    assert not _md(res, "merge_history")["reused"].value
    # same upstream data versions for both sweep points
    for asset in ("activations", "coactivation"):
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=50).records
        by_partition = {r.asset_materialization.partition: r.asset_materialization.tags["dagster/data_version"] for r in records}
        assert by_partition["kjv|base"] == by_partition["kjv|alpha_low"]


def test_fixed_cut_point(trained, instance):
    res = _materialize([_key("python_stdlib", "fixed_cut")], trained, instance)[_key("python_stdlib", "fixed_cut")]
    assert _md(res, "clusters")["k"].value == 5
    assert _md(res, "merge_history")["reused"].value  # the cut is downstream of the merge


def _corrupt_and_check(instance, resources, asset, check, corrupt):
    key = _key("kjv", "base")
    res = _materialize([key], resources, instance)[key]
    path = Path(_md(res, asset)["path"].value)
    backup = path.with_name(path.name + ".backup")
    shutil.copytree(path, backup)
    corrupt(path)
    try:
        return _check_again(key, resources, instance, check)
    finally:
        shutil.rmtree(path)
        backup.rename(path)


def _check_again(key, resources, instance, check):
    # materialise again: every artifact is reused, so the checks read the corrupted one
    result = dg.materialize([*GRAPH, *CHECKS], partition_key=key, resources=resources, instance=instance, raise_on_error=False)
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == check.check_key.name]
    return evaluation


def test_checks_fail_on_corrupted_coactivation(trained, instance):
    def corrupt(path):
        counts = np.load(path / "coactivation.npy")
        counts[0, 1] += 1  # breaks symmetry and the recount
        np.save(path / "coactivation.npy", counts)

    evaluation = _corrupt_and_check(instance, trained, "coactivation", CHECKS[0], corrupt)
    assert not evaluation.passed and "symmetric" in evaluation.description


def test_checks_fail_on_corrupted_history_and_clusters(trained, instance):
    def corrupt_history(path):
        with np.load(path / "merge_history.npz") as z:
            fields = dict(z)
        fields["pairs"][1] = fields["pairs"][0]  # merges groups that no longer exist
        np.savez(path / "merge_history.npz", **fields)

    evaluation = _corrupt_and_check(instance, trained, "merge_history", CHECKS[1], corrupt_history)
    assert not evaluation.passed and "live groups" in evaluation.description

    def corrupt_labels(path):
        labels = pl.read_parquet(path / "labels.parquet")
        pl.concat([labels, labels.head(1)]).write_parquet(path / "labels.parquet")

    evaluation = _corrupt_and_check(instance, trained, "clusters", CHECKS[2], corrupt_labels)
    assert not evaluation.passed and "more than one cluster" in evaluation.description


def test_bad_threshold_names_point_and_field(trained, instance, monkeypatch):
    from cluster_assets.defs import partitions
    from cluster_assets.sweep import MembershipParams

    point = partitions.SWEEP["base"]
    broken = point.model_copy(update={"name": "base", "memberships": MembershipParams(threshold=1e9)})
    monkeypatch.setitem(partitions.SWEEP, "base", broken)
    key = _key("kjv", "base")
    res = dg.materialize(GRAPH, partition_key=key, resources=trained, instance=instance, raise_on_error=False)
    assert not res.success
    failure = [e for e in res.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "sweep point 'base', field memberships.threshold" in str(failure.event_specific_data.error)


def test_definitions_load_with_jobs_schedule_sensor():
    repo = project_defs.get_repository_def()
    assert {"model_side_job", "clustering_job", "sae_job"} <= {j.name for j in repo.get_all_jobs()}
    assert repo.has_schedule_def("nightly_missing_partitions")
    assert repo.has_sensor_def("sweep_files_sensor")
