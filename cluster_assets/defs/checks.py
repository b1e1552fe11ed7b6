"""Asset checks; blocking where a downstream result would be wrong."""

import dagster as dg
import numpy as np
import polars as pl

from cluster_assets.core import Memberships
from cluster_assets.core.validation import coactivation_problems, history_problems, partition_problems
from cluster_assets.defs.assets.clustering import _stage, clusters, coactivation, load_clustering, merge_history
from cluster_assets.defs.partitions import partitions_def
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource


def _outcome(problems: list[str], **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else "ok",
        metadata={"problems": dg.MetadataValue.int(len(problems)), **metadata},
    )


def _artifact(context, source, artifacts, stage):
    _, _, _, artifact = _stage(context, source, artifacts, stage)
    return artifact


@dg.asset_check(partitions_def=partitions_def, asset=coactivation, blocking=True, description="Symmetric, diagonal = membership counts, sampled entries = direct recount.")
def coactivation_is_exact(context: dg.AssetCheckExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.AssetCheckResult:
    co = _artifact(context, source, artifacts, "coactivation")
    mem = _artifact(context, source, artifacts, "memberships")
    counts = np.load(co.path / "coactivation.npy")
    members = Memberships.load(mem.path / "memberships.npz")
    return _outcome(coactivation_problems(counts, members.activity), artifact=dg.MetadataValue.text(co.hash))


@dg.asset_check(partitions_def=partitions_def, asset=merge_history, blocking=True, description="MDL merge: k drops by one per step, pairs valid, MDL finite. Baseline: one label per kept feature.")
def merge_history_is_valid(context: dg.AssetCheckExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.AssetCheckResult:
    art = _artifact(context, source, artifacts, "merge_history")
    method, history, feature_ids, labels = load_clustering(art)
    if history is None:
        kept = Memberships.load(_artifact(context, source, artifacts, "memberships").path / "memberships.npz").feature_ids
        problems = partition_problems(labels, feature_ids, kept)
    else:
        problems = history_problems(history)
    return _outcome(problems, artifact=dg.MetadataValue.text(art.hash), method=dg.MetadataValue.text(method))


@dg.asset_check(partitions_def=partitions_def, asset=clusters, blocking=True, description="Every kept feature is in exactly one cluster.")
def every_kept_feature_in_one_cluster(context: dg.AssetCheckExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.AssetCheckResult:
    art = _artifact(context, source, artifacts, "clusters")
    mem = _artifact(context, source, artifacts, "memberships")
    labels = pl.read_parquet(art.path / "labels.parquet")
    kept = pl.read_parquet(mem.path / "features.parquet").filter(pl.col("kept"))["feature_id"].to_numpy()
    return _outcome(partition_problems(labels["cluster"].to_numpy(), labels["feature_id"].to_numpy(), kept), artifact=dg.MetadataValue.text(art.hash))


CHECKS = [coactivation_is_exact, merge_history_is_valid, every_kept_feature_in_one_cluster]
