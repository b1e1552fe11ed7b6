"""Partitions: dataset (the corpus registry) x hparams (the sweep file).

Static partitions read from the two files when the code location loads; after editing
a file, reload the code location (UI: Deployment -> Reload, or restart ``dagster dev``)
and the new partitions appear.  Existing partitions keep their materialisations.
"""

from __future__ import annotations

import dagster as dg

from cluster_assets.sweep import DatasetEntry, SweepPoint, content_hash, datasets_path, load_registry, load_sweep, sweep_path


def build_partitions(registry: dict[str, DatasetEntry], sweep: dict[str, SweepPoint]) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            "dataset": dg.StaticPartitionsDefinition(list(registry)),
            "hparams": dg.StaticPartitionsDefinition(list(sweep)),
        }
    )


def sweep_files_digest() -> str:
    """Hash of the sweep and registry files' contents (to notice edits that need a reload)."""
    return content_hash(sweep_path().read_text(), datasets_path().read_text())


SWEEP_FILES_DIGEST = sweep_files_digest()
REGISTRY = load_registry()
SWEEP = load_sweep()
partitions_def = build_partitions(REGISTRY, SWEEP)


def partition_names(context) -> tuple[str, str]:
    """(dataset, sweep point) of the partition an asset or check runs for."""
    key = context.partition_key
    if not isinstance(key, dg.MultiPartitionKey):
        key = partitions_def.get_partition_key_from_str(key)
    dims = key.keys_by_dimension
    return dims["dataset"], dims["hparams"]

#: Comparison assets: one per sweep point (across datasets) and one per dataset (across sweep points).
hparams_partitions = dg.StaticPartitionsDefinition(list(SWEEP))
dataset_partitions = dg.StaticPartitionsDefinition(list(REGISTRY))
