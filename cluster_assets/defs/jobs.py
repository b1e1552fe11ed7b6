"""Jobs: one per part of the graph, for the launchpad, backfills and the demo.

Each job takes its partitioning from the assets it selects."""

from __future__ import annotations

import dagster as dg


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    return [
        dg.define_asset_job("sae_job", selection=["sae"], description="Train (embedded) or fetch (hub) the shared SAE."),
        dg.define_asset_job(
            "model_side_job",
            selection=["prompts", "activations"],
            description="Prompts and SAE activations of one dataset x sweep partition (model pool; needs sae).",
        ),
        dg.define_asset_job(
            "clustering_job",
            selection=["memberships", "coactivation", "merge_history", "clusters"],
            description="Memberships, exact coactivation, the clustering and its analysis for one partition.",
        ),
        dg.define_asset_job(
            "partition_job",
            selection=["prompts", "activations", "memberships", "coactivation", "merge_history", "clusters"],
            description="The whole chain of one partition (the sae must exist).",
        ),
        dg.define_asset_job(
            "comparison_job",
            selection=["dataset_comparison"],
            description="Compare the clusterings of all datasets at one sweep point.",
        ),
        dg.define_asset_job(
            "sweep_comparison_job",
            selection=["sweep_comparison"],
            description="Compare the clusterings of one dataset across all sweep points.",
        ),
        dg.define_asset_job("report_job", selection=["research_report"], description="The research report from the comparisons so far."),
    ]
