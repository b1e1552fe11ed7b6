"""Every materialised partition's results as tidy polars tables, for notebooks.

    from cluster_assets.results import Results
    results = Results()                 # the code location and instance of the environment ($DAGSTER_HOME ...)
    clusters = results.clusters()       # one row per cluster of every materialised partition
    record = results.value("clusters", "kjv", "base")   # one stage's stored record (defs.load_asset_value)

Each table has one row per feature / cluster / comparison statistic and is keyed by ``dataset``,
``point`` (the sweep point), ``replicate`` (0-based) and ``partition`` (the hparams key), with
every scalar sweep parameter as a ``section.field`` column, so it can be grouped and plotted
without joins.  Values come through the Dagster IO manager (:mod:`cluster_assets.defs.io_manager`):
the latest materialisation of each partition, verified.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from cluster_assets.config import SweepPoint
from cluster_assets.core.comparison import best_matches
from cluster_assets.defs.definitions import build_definitions
from cluster_assets.defs.project import Project
from cluster_assets.storage.formats import features_table

#: Key columns of every table, first.
KEYS = ("dataset", "point", "replicate", "partition")


class Results:
    """The results of ``project`` (default: the environment's) in ``instance`` (default: the one at
    ``$DAGSTER_HOME``); ``resources`` as for :func:`~cluster_assets.defs.definitions.build_definitions`."""

    def __init__(self, project: Project | None = None, instance: dg.DagsterInstance | None = None, resources: dict | None = None):
        self.project = project or Project.load()
        self.defs = build_definitions(self.project, resources)
        self.instance = instance or dg.DagsterInstance.get()

    # -- one record ---------------------------------------------------------------------------

    def value(self, asset: str, dataset: str | None = None, point: str | None = None) -> Any:
        """The stored record of ``asset`` (its format's value) at a 2-D partition (``dataset`` and
        ``point``), a one-dimension partition (either), or unpartitioned (neither)."""
        return self.defs.load_asset_value(asset, instance=self.instance, partition_key=_key(dataset, point))

    # -- tables -------------------------------------------------------------------------------

    def features(self) -> pl.DataFrame:
        """Every SAE feature's statistics in every materialised ``memberships`` partition: firing
        count and rate, max, mean, entropy, varentropy, kept or why dropped, quadrant."""
        with self._loader() as load:
            return _concat(self._keyed(features_table(load("memberships", d, p)), d, p) for d, p in self._partitions("memberships"))

    def clusters(self) -> pl.DataFrame:
        """Every cluster of every materialised ``clusters`` partition: members (``feature_ids``),
        size, activity, kind, token classes, top tokens; ``replicate_jaccard``, the best-match
        Jaccard of its members in another replicate of the same point (stability; null without
        one); and ``match[<dataset>]`` / ``match_jaccard[<dataset>]``, its best match on each other
        dataset from the point's ``dataset_comparison`` (null where that is not materialised)."""
        parts = self._partitions("clusters")
        with self._loader() as load:
            records = {(d, p): load("clusters", d, p) for d, p in parts}
            matches = {
                p: load("dataset_comparison", None, p).tables["matches"]
                for p in {p for _, p in parts}
                if self._has("dataset_comparison", p)
            }
        frames = []
        for (dataset, name), record in records.items():
            frame = (
                record.clusters.join(record.extra["descriptions"], on="cluster", how="left")
                if "descriptions" in record.extra
                else record.clusters
            )
            frame = frame.join(self._replicate_stability(records, dataset, name), on="cluster", how="left")
            if name in matches:
                frame = frame.join(_match_columns(matches[name], dataset), on="cluster", how="left")
            frames.append(self._keyed(frame, dataset, name))
        return _concat(frames)

    def comparisons(self) -> pl.DataFrame:
        """Every comparison statistic (``metric`` between ``a`` and ``b``) with its interval
        (``value_low``, ``value_high``), the replicate floors of both sides and the verdict:
        between datasets at each sweep point (``comparison`` = ``dataset_comparison``, keyed by the
        point and its parameters) and between sweep points on each dataset (``sweep_comparison``,
        keyed by the dataset)."""
        frames = []
        with self._loader() as load:
            for name in self.project.sweep:
                if self._has("dataset_comparison", name):
                    effects = load("dataset_comparison", None, name).tables["effects"]
                    frames.append(self._keyed(effects, None, name).with_columns(pl.lit("dataset_comparison").alias("comparison")))
            for entry in self.project.datasets:
                if self._has("sweep_comparison", entry.name):
                    effects = load("sweep_comparison", entry.name, None).tables["effects"]
                    frames.append(self._keyed(effects, entry.name, None).with_columns(pl.lit("sweep_comparison").alias("comparison")))
        return _concat(frames)

    # -- helpers ------------------------------------------------------------------------------

    @contextmanager
    def _loader(self) -> Iterator[Any]:
        with self.defs.get_asset_value_loader(self.instance) as loader:
            yield lambda asset, dataset, point: loader.load_asset_value(asset, partition_key=_key(dataset, point))

    def _partitions(self, asset: str) -> list[tuple[str, str]]:
        """(dataset, hparams) of the materialised 2-D partitions of ``asset`` that the project still has."""
        keys = self.instance.get_materialized_partitions(dg.AssetKey(asset))
        pairs = [tuple(key.split("|", 1)) for key in keys]  # MultiPartitionKey: dimensions in name order
        datasets = {e.name for e in self.project.datasets}
        return sorted((d, p) for d, p in pairs if d in datasets and p in self.project.sweep)

    def _has(self, asset: str, key: str) -> bool:
        return key in self.instance.get_materialized_partitions(dg.AssetKey(asset))

    def _keyed(self, frame: pl.DataFrame, dataset: str | None, name: str | None) -> pl.DataFrame:
        point: SweepPoint | None = self.project.sweep[name] if name is not None else None
        keys = {
            "dataset": dataset,
            "point": point.point if point else None,
            "replicate": point.replicate if point else None,
            "partition": name,
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
