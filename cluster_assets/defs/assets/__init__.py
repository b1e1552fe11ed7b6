"""The assets, built from the stage table: one ``dg.asset`` per row, its body named by the row.

Every asset has the same shape (:func:`materialize`): resolve the partition, compute the
stage's content address, and hand :func:`~cluster_assets.defs.stages.run_stage` the body.
"""

import functools
from collections.abc import Mapping

import dagster as dg

from cluster_assets.defs.assets import comparisons
from cluster_assets.defs.automation import answers_condition, missing_condition
from cluster_assets.defs.dask import model_step_tags
from cluster_assets.defs.partitions import Partitions, partition_names
from cluster_assets.defs.project import Project
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
from cluster_assets.defs.stages import MODEL_POOL, Stage, StageContext, run_stage


def stage_context(
    context, project: Project, stages: Mapping[str, Stage], stage: Stage, source: ActivationSource, artifacts: ArtifactStoreResource
) -> StageContext:
    """The body's context for the partition being materialised (or checked)."""
    store = artifacts.store()
    if stage.partitioning == "dataset_point":
        dataset, hparams = partition_names(context)
        return StageContext(stages, stage, project, source, store, context.log, project.dataset(dataset), project.point(hparams))
    key = context.partition_key if stage.partitioning in ("hparams", "dataset") else None
    return StageContext(stages, stage, project, source, store, context.log, key=key)


def materialize(
    context, project: Project, stages: Mapping[str, Stage], stage: Stage, source: ActivationSource, artifacts: ArtifactStoreResource
) -> dg.MaterializeResult:
    ctx = stage_context(context, project, stages, stage, source, artifacts)
    body = stage.body
    if stage.name == "research_report":
        found, parts = report_inputs(ctx)
        artifact = ctx.store.artifact(stage.name, *parts)
        return run_stage(ctx, artifact, functools.partial(body, comparisons=found), inputs={"address": parts})
    if stage.partitioning in ("dataset_point", "none"):
        return run_stage(ctx, ctx.lineage.artifact(stage.name), body)
    inputs = comparisons.gather(ctx, stage.name, ctx.key)
    if inputs.missing:
        ctx.log.info(f"{len(inputs.missing)} partitions have no clusters yet; comparing {len(inputs.have)}")
    parts = comparisons.address_parts(ctx, stage.name, ctx.key, inputs)
    return run_stage(ctx, ctx.store.artifact(stage.name, *parts), functools.partial(body, inputs=inputs), inputs={"address": parts})


def report_inputs(ctx: StageContext) -> tuple[dict[str, dict], list]:
    """The comparison artifacts that exist for the current partitions (by stage and key), and the
    report's address parts: those artifacts and the sweep points the report reads."""
    found: dict[str, dict] = {"dataset_comparison": {}, "sweep_comparison": {}}
    keys = {
        "dataset_comparison": list(dict.fromkeys(p.point for p in ctx.project.sweep.values())),
        "sweep_comparison": [d.name for d in ctx.project.datasets],
    }
    for stage, stage_keys in keys.items():
        for key in stage_keys:
            sub = StageContext(ctx.stages, ctx.stages[stage], ctx.project, ctx.source, ctx.store, ctx.log, key=key)
            inputs = comparisons.gather(sub, stage, key)
            artifact = ctx.store.artifact(stage, *comparisons.address_parts(sub, stage, key, inputs))
            if inputs.have and artifact.exists:
                found[stage][key] = ctx.require(artifact, f"{stage}[{key}]")
    points = [p.model_dump(mode="json") for p in ctx.project.sweep.values() if p.replicate == 0]
    hashes = sorted(a.hash for arts in found.values() for a in arts.values())
    return found, [*ctx.stage.versions(), hashes, points]


def build_assets(project: Project, partitions: Partitions, stages: Mapping[str, Stage]) -> list[dg.AssetsDefinition]:
    """One asset per row of the stage table; its deps are the stages the row reads."""
    # how a comparison's partition reads the 2-D clusters partitions: a sweep point's comparison reads
    # every dataset and replicate of it (replicates are other hparams keys), a dataset's reads its own
    mappings = {
        "hparams": dg.AllPartitionMapping(),
        "dataset": dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="dataset"),
    }

    def deps(stage: Stage) -> list:
        return [
            dg.AssetDep(u, partition_mapping=mappings[stage.partitioning]) if stage.partitioning in mappings else u for u in stage.reads
        ]

    partitions_of = {"dataset_point": partitions.both, "hparams": partitions.points, "dataset": partitions.datasets, "none": None}

    def make(stage: Stage) -> dg.AssetsDefinition:
        automation = (
            answers_condition() if stage.group == "comparisons" else missing_condition() if stage.partitioning == "dataset_point" else None
        )

        @dg.asset(
            name=stage.name,
            partitions_def=partitions_of[stage.partitioning],
            deps=deps(stage),
            group_name=stage.group,
            kinds=set(stage.kinds) or None,
            pool=stage.pool,
            description=stage.description,
            code_version=stage.code_version,
            automation_condition=automation,
            op_tags=model_step_tags() if stage.pool == MODEL_POOL else None,
        )
        def asset(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
            return materialize(context, project, stages, stage, source, artifacts)

        return asset

    return [make(stage) for stage in stages.values()]
