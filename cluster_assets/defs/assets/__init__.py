"""The assets, built from the stage table: one ``dg.asset`` per row, its body named by the row.

Every asset has the same shape (:func:`materialize`): resolve the partition, compute the
stage's content address, and hand :func:`~cluster_assets.defs.stages.run_stage` the body.
"""

from collections.abc import Mapping

import dagster as dg

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
    return run_stage(stage_context(context, project, stages, stage, source, artifacts), stage.body)


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
            answers_condition()
            if stage.group == "comparisons"
            else missing_condition(project)
            if stage.partitioning == "dataset_point"
            else None
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
