"""Body of the cluster explorer: every partition with clusters, its comparisons and the report, as a static site."""

from __future__ import annotations

import polars as pl

from cluster_assets.defs.stages import Lineage, Output, StageContext
from cluster_assets.reporting.explorer import Partition, PartitionInputs, build_site
from cluster_assets.storage import formats as fmt


def cluster_explorer(ctx: StageContext) -> Output:
    found = ctx.lineage.found(ctx.stage.name)
    lineages: dict[str, Lineage] = found["clusters"]
    partitions = [
        Partition(lin.dataset.name, lin.point.name, lin.point.point, lin.point.replicate, ctx.read("clusters", fmt.ClustersFormat, lin))
        for lin in lineages.values()
    ]
    ctx.log.info(f"cluster explorer: {len(partitions)} partitions with clusters")

    def inputs(p: Partition) -> PartitionInputs:
        lin = lineages[p.key]
        clustering = ctx.read("merge_history", fmt.ClusteringFormat, lin)
        stats = ctx.read("memberships", fmt.MembershipsFormat, lin).stats
        return PartitionInputs(
            ctx.read("activations", fmt.ActivationsFormat, lin),
            pl.DataFrame(stats.columns()),
            ctx.read("coactivation", fmt.CoactivationFormat, lin),
            clustering.feature_ids,
            clustering.history,
            lin.point.memberships.threshold,
        )

    comparisons = {key: ctx.read("dataset_comparison", fmt.TablesFormat, sub).tables for key, sub in found["dataset_comparison"].items()}
    evals = ctx.read("sae_evals", fmt.TablesFormat).tables["evals"] if found["sae_evals"] else None
    figures = ctx.read("research_report", fmt.DocumentFormat).figures if found["research_report"] else {}
    site = build_site(partitions, inputs, comparisons, evals, figures, ctx.source.neuronpedia_id() is not None, ctx.log.info)
    return Output(site, site.summary)
