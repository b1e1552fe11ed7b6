"""Bodies of the comparisons and the report: they read whatever ``clusters`` partitions exist
(every replicate of every point; :meth:`Lineage.across`) and list the missing ones."""

from __future__ import annotations

import functools

from cluster_assets.defs.stages import Across, Lineage, Output, StageContext
from cluster_assets.reporting.comparisons import (
    PartitionClustering,
    dataset_comparison_tables,
    partition_record,
    sweep_comparison_tables,
)
from cluster_assets.reporting.summaries import (
    dataset_comparison_summary,
    ground_truth_record,
    ground_truth_summary,
    sweep_comparison_summary,
)
from cluster_assets.storage import formats as fmt
from cluster_assets.storage.formats import SampleActivations


def _across(ctx: StageContext) -> Across:
    across = ctx.lineage.across(ctx.stage.name)
    if across.missing:
        ctx.log.info(f"{len(across.missing)} partitions have no clusters yet; comparing {len(across.have)}")
    return across


def _record(ctx: StageContext, lineage: Lineage) -> PartitionClustering:
    hashes = (lineage.artifact("clusters").hash, lineage.artifact("memberships").hash)
    return partition_record(
        lineage.dataset.name, lineage.point, ctx.project.reference, *hashes, ctx.read("clusters", fmt.ClustersFormat, lineage)
    )


def _activations(ctx: StageContext, dataset: str, point: str) -> SampleActivations:
    return ctx.read("activations", fmt.ActivationsFormat, ctx.lineage.lineage_of(dataset, point))


def _prompt_ids(ctx: StageContext, cache: dict[tuple[str, str], set[int]], dataset: str, point: str) -> set[int]:
    if (dataset, point) not in cache:
        cache[(dataset, point)] = set(ctx.read("prompts", fmt.PromptsFormat, ctx.lineage.lineage_of(dataset, point))["prompt_id"].to_list())
    return cache[(dataset, point)]


def dataset_comparison(ctx: StageContext) -> Output:
    across = _across(ctx)
    records = [_record(ctx, lin) for lin in across.have]
    tables = dataset_comparison_tables(ctx.key, records, across.missing, functools.partial(_activations, ctx))
    return Output(tables, **dataset_comparison_summary(tables, across.missing))


def sweep_comparison(ctx: StageContext) -> Output:
    across = _across(ctx)
    records = [_record(ctx, lin) for lin in across.have]
    pool = [lin.point.name for lin in across.pool]
    tables = sweep_comparison_tables(
        ctx.key,
        ctx.project.reference.point,
        records,
        across.missing,
        pool,
        functools.partial(_prompt_ids, ctx, {}),
        functools.partial(_activations, ctx),
    )
    return Output(tables, **sweep_comparison_summary(tables, across.missing))


def ground_truth(ctx: StageContext) -> Output:
    from cluster_assets.sources.synthetic import recovery_curve

    methods = {name: p.clustering for name, p in ctx.project.first_points_by("clustering").items()}
    ctx.log.info(f"recovering the planted structure with {len(methods)} clustering configs: {', '.join(methods)}")
    rows = recovery_curve(ctx.project.registry.ground_truth, methods)
    return Output(ground_truth_record(rows), **ground_truth_summary(rows))


def research_report(ctx: StageContext) -> Output:
    from cluster_assets.reporting.report import build_report, headlines

    found = ctx.lineage.found(ctx.stage.name)
    loaded = {stage: {key: ctx.read(stage, fmt.TablesFormat, sub) for key, sub in subs.items()} for stage, subs in found.items()}
    points = {p.point: p for p in ctx.project.sweep.values() if p.replicate == 0}
    evals, truth = loaded["sae_evals"].get(""), loaded["ground_truth"].get("")
    document = build_report(
        loaded["dataset_comparison"],
        loaded["sweep_comparison"],
        ctx.project.reference.point,
        points,
        evals.tables["evals"] if evals is not None else None,
        truth.tables["recovery"] if truth is not None else None,
    )
    summary = {"sections": document.markdown.count("\n## "), **headlines(document.markdown)}
    return Output(document, summary, markdown={"report": document.inline()})
