"""Asset checks, blocking where a downstream result would be wrong."""

import dataclasses
import zlib
from collections.abc import Mapping

import dagster as dg

from cluster_assets.core.sae_quality import quality_problems
from cluster_assets.core.validation import coactivation_problems, partition_problems
from cluster_assets.defs.assets import stage_context
from cluster_assets.defs.partitions import Partitions
from cluster_assets.defs.project import Project
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
from cluster_assets.defs.stages import Stage
from cluster_assets.reporting.summaries import sae_evals_from
from cluster_assets.storage import formats as fmt


def _outcome(problems: list[str], severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) if problems else "ok",
        metadata={"problems": len(problems), **metadata},
        severity=severity,
    )


def build_checks(project: Project, partitions: Partitions, stages: Mapping[str, Stage]) -> list[dg.AssetChecksDefinition]:
    def ctx_for(context, stage: str, source, artifacts):
        return stage_context(context, project, stages, stages[stage], source, artifacts)

    @dg.asset_check(
        asset="coactivation",
        partitions_def=partitions.both,
        blocking=True,
        description="Firing counts = membership counts, 200 pairs (other ones each run) = a direct recount.",
    )
    def coactivation_is_exact(
        context: dg.AssetCheckExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource
    ) -> dg.AssetCheckResult:
        ctx = ctx_for(context, "coactivation", source, artifacts)
        counts, members = ctx.read("coactivation", fmt.CoactivationFormat), ctx.read("memberships", fmt.MembershipsFormat).memberships
        seed = zlib.crc32(context.run.run_id.encode())  # each run samples other entries
        return _outcome(
            coactivation_problems(counts, members.activity, seed=seed), artifact=ctx.lineage.artifact("coactivation").address, seed=seed
        )

    @dg.asset_check(
        asset="merge_history",
        partitions_def=partitions.both,
        blocking=True,
        description="MDL merge: k drops by one per step, pairs valid, MDL finite. Baseline: one label per kept feature.",
    )
    def merge_history_is_valid(
        context: dg.AssetCheckExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource
    ) -> dg.AssetCheckResult:
        ctx = ctx_for(context, "merge_history", source, artifacts)
        clustering = ctx.read("merge_history", fmt.ClusteringFormat)
        return _outcome(
            clustering.problems(ctx.read("memberships", fmt.MembershipsFormat).memberships.feature_ids), method=clustering.method
        )

    @dg.asset_check(
        asset="clusters", partitions_def=partitions.both, blocking=True, description="Every kept feature is in exactly one cluster."
    )
    def every_kept_feature_in_one_cluster(
        context: dg.AssetCheckExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource
    ) -> dg.AssetCheckResult:
        labels = ctx_for(context, "clusters", source, artifacts).read("clusters", fmt.ClustersFormat).labels
        kept = ctx_for(context, "memberships", source, artifacts).read("memberships", fmt.MembershipsFormat).memberships.feature_ids
        return _outcome(partition_problems(labels["cluster"].to_numpy(), labels["feature_id"].to_numpy(), kept))

    @dg.asset_check(
        asset="sae_evals",
        blocking=False,
        description="The SAE meets the registry's sae_quality thresholds (CE loss recovered, dead features, ...) on every dataset.",
    )
    def sae_quality(
        context: dg.AssetCheckExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource
    ) -> dg.AssetCheckResult:
        record = ctx_for(context, "sae_evals", source, artifacts).read("sae_evals", fmt.TablesFormat)
        thresholds = project.registry.sae_quality
        problems = quality_problems(sae_evals_from(record), thresholds)
        limits = {k: v for k, v in dataclasses.asdict(thresholds).items() if v is not None}
        return _outcome(problems, dg.AssetCheckSeverity.WARN, **limits)  # a weak SAE is worth a warning, not a stopped pipeline

    return [coactivation_is_exact, merge_history_is_valid, every_kept_feature_in_one_cluster, sae_quality]
