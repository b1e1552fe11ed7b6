"""The assets, built from the stage table: one ``dg.asset`` per stage, its body from this package.

Every asset has the same shape (:func:`materialize`): resolve the partition, compute the
stage's content address, and hand :func:`~cluster_assets.defs.stages.run_stage` the body.
"""

import functools
from collections.abc import Callable

import dagster as dg

from cluster_assets.defs.assets import clustering, comparisons, model
from cluster_assets.defs.automation import answers_condition, missing_condition
from cluster_assets.defs.dask import model_step_tags
from cluster_assets.defs.partitions import Partitions, partition_names
from cluster_assets.defs.project import Project
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
from cluster_assets.defs.stages import MODEL_POOL, STAGES, Output, Stage, StageContext, run_stage

BODIES: dict[str, Callable[..., Output]] = {
    "prompts": model.prompts,
    "sae": model.sae,
    "activations": model.activations,
    "memberships": clustering.memberships,
    "coactivation": clustering.coactivation,
    "merge_history": clustering.merge_history,
    "clusters": clustering.clusters,
    "dataset_comparison": comparisons.dataset_comparison,
    "sweep_comparison": comparisons.sweep_comparison,
    "research_report": comparisons.research_report,
}


def stage_context(context, project: Project, stage: Stage, source: ActivationSource, artifacts: ArtifactStoreResource) -> StageContext:
    """The body's context for the partition being materialised (or checked)."""
    store = artifacts.store()
    if stage.partitioning == "dataset_point":
        dataset, hparams = partition_names(context)
        return StageContext(stage, project, source, store, context.log, project.dataset(dataset), project.point(hparams))
    key = context.partition_key if stage.partitioning in ("hparams", "dataset") else None
    return StageContext(stage, project, source, store, context.log, key=key)


def materialize(
    context, project: Project, stage: Stage, source: ActivationSource, artifacts: ArtifactStoreResource
) -> dg.MaterializeResult:
    ctx = stage_context(context, project, stage, source, artifacts)
    body = BODIES[stage.name]
    if stage.partitioning in ("dataset_point", "none") and stage.name != "research_report":
        return run_stage(ctx, ctx.lineage.artifact(stage.name), body)
    if stage.name == "research_report":
        found, inputs = report_inputs(ctx)
        artifact = ctx.store.artifact(stage.name, f"format-v{stage.format.version}", sorted(inputs))
        return run_stage(ctx, artifact, functools.partial(body, comparisons=found), inputs={"comparisons": sorted(inputs)})
    have, missing = comparison_inputs(ctx, stage.name, ctx.key)
    if missing:
        ctx.log.info(f"{len(missing)} partitions have no clusters yet; comparing {len(have)}")
    artifact = comparisons.comparison_artifact(ctx, have)
    inputs = {"clusters": sorted(lin.artifact("clusters").hash for lin in have)}
    return run_stage(ctx, artifact, functools.partial(body, have=have, missing=missing), inputs=inputs)


def comparison_inputs(ctx: StageContext, stage: str, key: str):
    """The clusters partitions a comparison reads: every replicate of a point over the datasets,
    or every partition of one dataset."""
    project = ctx.project
    if stage == "dataset_comparison":
        pairs = [(d.name, p) for d in project.datasets for p in project.replicates_of(key)]
    else:
        pairs = [(key, p) for p in project.sweep.values()]
    return comparisons.inputs_of(ctx, pairs)


def report_inputs(ctx: StageContext):
    """The comparison artifacts that exist for the current partitions, by stage and key."""
    found: dict[str, dict] = {"dataset_comparison": {}, "sweep_comparison": {}}
    keys = {
        "dataset_comparison": list(dict.fromkeys(p.point for p in ctx.project.sweep.values())),
        "sweep_comparison": [d.name for d in ctx.project.datasets],
    }
    for stage, stage_keys in keys.items():
        for key in stage_keys:
            sub = StageContext(STAGES[stage], ctx.project, ctx.source, ctx.store, ctx.log, key=key)
            have, _ = comparison_inputs(sub, stage, key)
            artifact = comparisons.comparison_artifact(sub, have)
            if have and artifact.exists:
                found[stage][key] = ctx.require(artifact, f"{stage}[{key}]")
    return found, [a.hash for arts in found.values() for a in arts.values()]


def build_assets(project: Project, partitions: Partitions) -> list[dg.AssetsDefinition]:
    """One asset per row of the stage table."""
    deps: dict[str, list] = {
        "prompts": [],
        "sae": [],
        "activations": ["prompts", "sae"],
        "memberships": ["activations"],
        "coactivation": ["memberships"],
        "merge_history": ["coactivation"],
        "clusters": ["merge_history"],
        "dataset_comparison": [dg.AssetDep("clusters", partition_mapping=dg.AllPartitionMapping())],
        "sweep_comparison": [
            dg.AssetDep("clusters", partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="dataset"))
        ],
        "research_report": ["dataset_comparison", "sweep_comparison"],
    }
    partitions_of = {"dataset_point": partitions.both, "hparams": partitions.points, "dataset": partitions.datasets, "none": None}

    def make(stage: Stage) -> dg.AssetsDefinition:
        automation = (
            answers_condition() if stage.group == "comparisons" else missing_condition() if stage.partitioning == "dataset_point" else None
        )

        @dg.asset(
            name=stage.name,
            partitions_def=partitions_of[stage.partitioning],
            deps=deps[stage.name],
            group_name=stage.group,
            kinds=set(stage.kinds) or None,
            pool=stage.pool,
            description=stage.description,
            automation_condition=automation,
            op_tags=model_step_tags() if stage.pool == MODEL_POOL else None,
        )
        def asset(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
            return materialize(context, project, stage, source, artifacts)

        return asset

    return [make(stage) for stage in STAGES.values()]
