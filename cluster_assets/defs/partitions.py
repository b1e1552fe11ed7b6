"""Partitions: dataset (the corpus registry) x hparams (the sweep file).

Static partitions read from the two files when the code location loads; after editing
a file, reload the code location (UI: Deployment -> Reload, or restart ``dagster dev``)
and the new partitions appear.  Existing partitions keep their materialisations.
"""

from __future__ import annotations

import dagster as dg

from cluster_assets.sweep import DatasetEntry, SweepPoint, load_registry, load_sweep


def build_partitions(registry: dict[str, DatasetEntry], sweep: dict[str, SweepPoint]) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            "dataset": dg.StaticPartitionsDefinition(list(registry)),
            "hparams": dg.StaticPartitionsDefinition(list(sweep)),
        }
    )


REGISTRY = load_registry()
SWEEP = load_sweep()
partitions_def = build_partitions(REGISTRY, SWEEP)


def partition_names(context: dg.AssetExecutionContext) -> tuple[str, str]:
    key = context.partition_key.keys_by_dimension
    return key["dataset"], key["hparams"]
