"""Jobs: one per part of the graph, for the launchpad, backfills and the demo, derived from the stage table.

Each job takes its partitioning from the assets it selects."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from cluster_assets.defs.pipeline import partition_chain
from cluster_assets.defs.stages import Stage


def build_jobs(stages: Mapping[str, Stage]) -> list[dg.UnresolvedAssetJobDefinition]:
    chain = list(partition_chain(stages))
    of_group = {group: [name for name in chain if stages[name].group == group] for group in ("model_side", "clustering")}
    alone = {name: stage for name, stage in stages.items() if name not in chain}
    return [
        dg.define_asset_job(
            "model_side_job",
            selection=of_group["model_side"],
            description="The model side of one dataset x sweep partition (model pool; needs sae).",
        ),
        dg.define_asset_job(
            "clustering_job",
            selection=of_group["clustering"],
            description="Memberships to clusters of one partition: the clustering side.",
        ),
        dg.define_asset_job("partition_job", selection=chain, description="The whole chain of one partition (the sae must exist)."),
        *(dg.define_asset_job(f"{name}_job", selection=[name], description=stage.description) for name, stage in alone.items()),
    ]
