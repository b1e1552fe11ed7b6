"""Partitions: dataset (the registry's runnable datasets) x hparams (sweep points and their replicates).

Static partitions are read from the two files when the code location loads; after editing a
file, reload the code location (UI: Deployment -> Reload) and the new partitions appear.
Hub datasets are partitions only when the hub is reachable (``HF_HUB_OFFLINE`` unset), so an
offline instance never shows, requests or backfills work it cannot do.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from cluster_assets.defs.project import Project


@dataclass(frozen=True)
class Partitions:
    datasets: dg.StaticPartitionsDefinition
    hparams: dg.StaticPartitionsDefinition  # every partition key: points and their replicates
    points: dg.StaticPartitionsDefinition  # sweep points (what dataset comparisons are per)
    both: dg.MultiPartitionsDefinition

    @classmethod
    def of(cls, project: Project) -> Partitions:
        datasets = dg.StaticPartitionsDefinition([e.name for e in project.datasets])
        hparams = dg.StaticPartitionsDefinition(list(project.sweep))
        points = dg.StaticPartitionsDefinition(list(dict.fromkeys(p.point for p in project.sweep.values())))
        return cls(datasets, hparams, points, dg.MultiPartitionsDefinition({"dataset": datasets, "hparams": hparams}))


def partition_names(context) -> tuple[str, str]:
    """(dataset, hparams partition) of the 2-D partition an asset or check runs for."""
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension["dataset"], key.keys_by_dimension["hparams"]
    dataset, hparams = str(key).split("|")  # the string form orders dimensions by name: dataset|hparams
    return dataset, hparams
