"""Jobs: one per half of the asset graph."""

from __future__ import annotations

import dagster as dg

from cluster_assets.defs.assets.model_side import activations, prompts, sae
from cluster_assets.defs.partitions import partitions_def

sae_job = dg.define_asset_job("sae_job", selection=[sae], description="Train (embedded) or fetch (hub) the shared SAE.")

model_side_job = dg.define_asset_job(
    "model_side_job",
    selection=[prompts, activations],
    partitions_def=partitions_def,
    description="Prompts and SAE activations of one dataset x sweep-point partition (needs the sae asset).",
)
