"""Every materialised partition's results as tidy polars tables, for notebooks.

    from cluster_assets.results import Results
    results = Results()                 # the code location and instance of the environment ($DAGSTER_HOME ...)
    clusters = results.clusters()       # one row per cluster of every materialised partition
    record = results.value("clusters", "kjv", "base")   # one stage's stored record, as defs.load_asset_value returns it

Each table has one row per feature / cluster / comparison statistic and is keyed by ``dataset``,
``point`` (the sweep point), ``replicate`` (0-based) and ``partition`` (the hparams key), with
every scalar sweep parameter as a ``section.field`` column, so it can be grouped and plotted
without joins.  Values are found as the Dagster IO manager finds them
(:mod:`cluster_assets.defs.io_manager`): the latest materialisation of each partition, verified.
``current`` says whether that record is what the present settings address; False where the sweep
or registry changed since and the partition was not materialised again (its parameter columns
are then the present ones, not those it was made with).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from cluster_assets.config import SweepPoint
from cluster_assets.core.comparison import best_matches
from cluster_assets.defs.definitions import build_definitions
from cluster_assets.defs.io_manager import latest_artifact
from cluster_assets.defs.pipeline import STAGES
from cluster_assets.defs.project import Project
from cluster_assets.defs.stages import Lineage
from cluster_assets.storage import Artifact
from cluster_assets.storage.formats import ClustersFormat, MembershipsFormat, TablesFormat

#: Key columns of every table, first.
KEYS = ("dataset", "point", "replicate", "partition", "current")


class Results:
    """The results of ``project`` (default: the environment's) in ``instance`` (default: the one at
    ``$DAGSTER_HOME``); ``resources`` as for :func:`~cluster_assets.defs.definitions.build_definitions`."""

    def __init__(self, project: Project | None = None, instance: dg.DagsterInstance | None = None, resources: dict | None = None):
        self.project = project or Project.load()
        self.defs = build_definitions(self.project, resources)
        self.instance = instance or dg.DagsterInstance.get()
        self._artifacts = self.defs.resources["artifacts"]
        self._root = Lineage(STAGES, self.project, self._artifacts.store(), self.defs.resources["source"])

    # -- one record ---------------------------------------------------------------------------

    def value(self, asset: str, dataset: str | None = None, point: str | None = None) -> Any:
        """The stored record of ``asset`` (its format's value) at a 2-D partition (``dataset`` and
        ``point``), a one-dimension partition (either), or unpartitioned (neither)."""
        # what defs.load_asset_value returns (the same lookup as the IO manager's), without its value loader,
        # which leaves an ephemeral instance per call to the garbage collector
        return STAGES[asset].format.load(self._artifact(asset, dataset, point).path)

    # -- tables -------------------------------------------------------------------------------

    def features(self) -> pl.DataFrame:
        """Every SAE feature's statistics in every materialised ``memberships`` partition: firing
        count and rate, max, mean, entropy, varentropy, kept or why dropped, quadrant."""
        frames = []
        for dataset, name in self._partitions("memberships"):
            artifact = self._artifact("memberships", dataset, name)
            frames.append(self._keyed(MembershipsFormat().load_features(artifact.path), dataset, name, artifact))
        return _concat(frames)

    def clusters(self) -> pl.DataFrame:
        """Every cluster of every materialised ``clusters`` partition: members (``feature_ids``),
        size, activity, kind, token classes, top tokens; ``replicate_jaccard``, the best-match
        Jaccard of its members in another replicate of the same point (stability; null without
        one); and ``match[<dataset>]`` / ``match_jaccard[<dataset>]``, its best match on each other
        dataset from the point's ``dataset_comparison`` (null where that is not materialised)."""
        artifacts = {(d, p): self._artifact("clusters", d, p) for d, p in self._partitions("clusters")}
        records = {part: ClustersFormat().load(artifact.path) for part, artifact in artifacts.items()}
        compared = self._materialised("dataset_comparison")
        matches = {
            p: TablesFormat().load(self._artifact("dataset_comparison", None, p).path).tables["matches"]
            for p in {p for _, p in records}
            if p in compared
        }
        frames = []
        for (dataset, name), record in records.items():
            frame = (
                record.clusters.join(record.extra["descriptions"], on="cluster", how="left")
                if "descriptions" in record.extra
                else record.clusters
            )
            frame = frame.join(self._replicate_stability(records, dataset, name), on="cluster", how="left")
            if name in matches and "name" in matches[name].columns:  # no matches where one dataset was compared
                frame = frame.join(_match_columns(matches[name], dataset), on="cluster", how="left")
            frames.append(self._keyed(frame, dataset, name, artifacts[(dataset, name)]))
        return _concat(frames)

    def comparisons(self) -> pl.DataFrame:
        """Every comparison statistic (``metric`` between ``a`` and ``b``) with its interval
        (``value_low``, ``value_high``), the replicate floors of both sides and the verdict:
        between datasets at each sweep point (``comparison`` = ``dataset_comparison``, keyed by the
        point and its parameters) and between sweep points on each dataset (``sweep_comparison``,
        keyed by the dataset)."""
        frames = []
        for comparison, keys in (("dataset_comparison", self.project.sweep), ("sweep_comparison", [d.name for d in self.project.datasets])):
            compared = self._materialised(comparison)
            for key in (k for k in keys if k in compared):
                dataset, name = (None, key) if comparison == "dataset_comparison" else (key, None)
                artifact = self._artifact(comparison, dataset, name)
                effects = TablesFormat().load(artifact.path).tables["effects"]
                frames.append(self._keyed(effects, dataset, name, artifact).with_columns(pl.lit(comparison).alias("comparison")))
        return _concat(frames)

    # -- helpers ------------------------------------------------------------------------------

    def _artifact(self, asset: str, dataset: str | None, point: str | None) -> Artifact:
        """The verified artifact of ``asset``'s latest materialisation at that partition."""
        return latest_artifact(self.instance, self._artifacts, asset, _key(dataset, point))

    def _current(self, artifact: Artifact, dataset: str | None, point: str | None) -> bool:
        """Whether ``artifact`` (a latest materialisation) is at the address the present settings give."""
        if dataset is not None and point is not None:
            lineage = self._root.lineage_of(dataset, point)
        else:
            lineage = self._root.keyed(str(dataset if dataset is not None else point))
        return artifact.address == lineage.artifact(artifact.stage).address

    def _materialised(self, asset: str) -> set[str]:
        """The partition keys of ``asset`` the instance has materialised."""
        return set(self.instance.get_materialized_partitions(dg.AssetKey(asset)))

    def _partitions(self, asset: str) -> list[tuple[str, str]]:
        """(dataset, hparams) of the materialised 2-D partitions of ``asset`` that the project still has."""
        pairs = [tuple(key.split("|", 1)) for key in self._materialised(asset)]  # MultiPartitionKey: dimensions in name order
        datasets = {e.name for e in self.project.datasets}
        return sorted((d, p) for d, p in pairs if d in datasets and p in self.project.sweep)

    def _keyed(self, frame: pl.DataFrame, dataset: str | None, name: str | None, artifact: Artifact) -> pl.DataFrame:
        """``frame`` with the key columns first: dataset, point, replicate, partition, whether
        ``artifact`` (the record it came from) is current, and the point's parameters."""
        current = self._current(artifact, dataset, name)
        point: SweepPoint | None = self.project.sweep[name] if name is not None else None
        keys = {
            "dataset": dataset,
            "point": point.point if point else None,
            "replicate": point.replicate if point else None,
            "partition": name,
            "current": current,
            **(point.parameters() if point else {}),
        }
        return frame.with_columns(pl.lit(v).alias(k) for k, v in keys.items()).select(*keys, *frame.columns)

    def _replicate_stability(self, records: dict, dataset: str, name: str) -> pl.DataFrame:
        point = self.project.sweep[name]
        others = [p for p in self.project.sweep.values() if p.point == point.point and p.name != name and (dataset, p.name) in records]
        if not others:
            return pl.DataFrame({"cluster": [], "replicate_jaccard": []}, schema={"cluster": pl.Int64, "replicate_jaccard": pl.Float64})
        other = min(others, key=lambda p: p.replicate)
        a, b = records[(dataset, name)].labels, records[(dataset, other.name)].labels
        m = best_matches(a["feature_id"].to_numpy(), a["cluster"].to_numpy(), b["feature_id"].to_numpy(), b["cluster"].to_numpy())
        return pl.DataFrame({"cluster": m.cluster.astype(np.int64), "replicate_jaccard": m.jaccard})


def _key(dataset: str | None, point: str | None) -> str | None:
    if dataset is not None and point is not None:
        return dg.MultiPartitionKey({"dataset": dataset, "hparams": point})
    return dataset if dataset is not None else point


def _match_columns(matches: pl.DataFrame, dataset: str) -> pl.DataFrame:
    """One row per cluster of ``dataset``: its best match and Jaccard on each other dataset."""
    mine = matches.filter(pl.col("name") == dataset)
    out = pl.DataFrame({"cluster": mine["cluster"].unique().sort()})
    for other in sorted(mine["other"].unique()):
        part = mine.filter(pl.col("other") == other).select(
            "cluster", pl.col("best").alias(f"match[{other}]"), pl.col("jaccard").alias(f"match_jaccard[{other}]")
        )
        out = out.join(part, on="cluster", how="left")
    return out


def _concat(frames: Any) -> pl.DataFrame:
    frames = list(frames)
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
