"""What each stage shows beside its files: a typed summary, markdown previews and figures.

Each function takes a stage's result and returns the keyword arguments of the stage's output
(``summary``, ``markdown``, ``figures``), so an asset body ends with
``Output(value, **<stage>_summary(...))``.  A summary is a dataclass of plain values (one per
stage); :func:`summary_values` renders any of them to the metadata dict, in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from cluster_assets.core.analysis import Cut
from cluster_assets.core.clustering import Clustering
from cluster_assets.core.coactivation import CoFiring
from cluster_assets.core.memberships import MembershipResult
from cluster_assets.core.sae_quality import SAEEval, SAEEvals
from cluster_assets.reporting import plots
from cluster_assets.reporting.comparisons import effect_plot_rows, effects_markdown
from cluster_assets.reporting.text import highlight, markdown_table
from cluster_assets.storage.formats import Clusters, Tables, features_table

Shown = dict[str, Any]  # {"summary": <a summary dataclass>, "markdown": {...}, "figures": {...}}


def summary_values(summary: Any) -> dict[str, Any]:
    """A summary's metadata: its fields by name (a field's ``metadata["key"]`` renames it), the
    fields of a nested dataclass inlined, None fields left out.  A mapping passes through."""
    if not dataclasses.is_dataclass(summary) or isinstance(summary, type):
        return dict(summary) if isinstance(summary, Mapping) else {}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(summary):
        value = getattr(summary, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out |= summary_values(value)
        elif value is not None:
            out[f.metadata.get("key", f.name)] = value
    return out


@dataclass(frozen=True)
class PromptsSummary:
    row_count: int = field(metadata={"key": "dagster/row_count"})
    tokens: int
    tokens_per_prompt_median: float
    truncated: int
    empty_dropped: int
    duplicates_dropped: int
    usable_texts: int


@dataclass(frozen=True)
class SAESummary:
    mode: str
    quality: Any  # SAEQuality (sources): its fields are shown inline
    training_tokens: int  # distinct tokens the trainer streamed from
    samples_seen: int
    tokens_per_dataset: dict[str, int]
    train_seconds: float


@dataclass(frozen=True)
class SAEEvalsSummary:
    """Each metric by dataset (the full table is the artifact's ``evals`` table)."""

    datasets: list[str]
    loss_recovered: dict[str, float]
    explained_variance: dict[str, float]
    kl_div_with_sae: dict[str, float]
    l0: dict[str, float]
    dead_fraction: dict[str, float]
    dense_fraction: dict[str, float]
    tokens: dict[str, int]
    dead_everywhere: float  # features that fire on no dataset (dead_fraction: silent on that dataset)


@dataclass(frozen=True)
class GroundTruthSummary:
    ari_at_most_samples: dict[str, float]  # by sweep point (each distinct clustering config)
    samples: list[int]


@dataclass(frozen=True)
class ActivationsSummary:
    tokens: int
    nonzeros: int
    mean_l0: float
    d_sae: int
    shards: int  # activation shards the sample's prompts lie in
    shards_extracted: int  # of which this run extracted (the rest were reused)
    shard_prompts: int
    shard_artifacts: list[str]  # their addresses in the artifact store
    tokens_per_second: float  # of the extracted shards' tokens
    timing: Any  # ExtractionTimings (sources), summed over the extracted shards: its fields are shown inline
    shard_workers: dict[str, str] | None = None  # shard -> the Dask worker that extracted it, when shards ran as Dask tasks


@dataclass(frozen=True)
class MembershipsSummary:
    samples: int
    unit: str
    kept_features: int
    dropped: dict[str, int]
    quadrants: dict[str, int]


@dataclass(frozen=True)
class CoactivationSummary:
    features: int
    samples: int
    cofiring_pairs: int  # pairs of features that fire together at least once
    megabytes: float  # the stored counts (the pairs that co-fire, 8 bytes each, and the firing counts)


@dataclass(frozen=True)
class ClusteringSummary:
    """A merge history's figures (merges .. initial_mdl) or fixed labels' (clusters, noise_fraction)."""

    method: str
    features: int
    merges: int | None = None
    best_k: int | None = None
    min_mdl: float | None = None
    initial_mdl: float | None = None
    clusters: int | None = None
    noise_fraction: float | None = None


@dataclass(frozen=True)
class ClustersSummary:
    """``cut`` and ``mdl_at_cut`` for a merge history's cut, ``noise_features`` for fixed labels."""

    method: str
    k: int
    features: int
    singletons: int
    size_median: float
    size_max: int
    cut: str | None = None
    mdl_at_cut: float | None = None
    noise_features: int | None = None


def prompts_summary(frame: pl.DataFrame, report: Any) -> Shown:
    """``frame``: the sampled prompts; ``report``: the sampler's :class:`SamplingReport`."""
    lengths = frame["n_tokens"]
    preview = "\n".join(
        f"- `{pid}` ({n} tokens): {highlight(text, [], [], width=140)}"
        for pid, n, text in frame.head(5).select("prompt_id", "n_tokens", "text").iter_rows()
    )
    summary = PromptsSummary(
        frame.height,
        int(lengths.sum()),
        float(np.median(lengths.to_numpy())),
        int(frame["truncated"].sum()),
        report.n_empty,
        report.n_duplicates,
        report.n_usable,
    )
    return {"summary": summary, "markdown": {"preview": preview}}


def sae_summary(prepared: Any, mode: str) -> Shown:
    """``prepared``: a :class:`~cluster_assets.sources.sae_training.TrainedSAE`."""
    return {
        "summary": SAESummary(
            mode,
            prepared.quality,
            prepared.training_tokens_collected,
            prepared.samples_seen,
            prepared.tokens_per_dataset,
            prepared.train_seconds,
        )
    }


def _evals_table(result: SAEEvals) -> pl.DataFrame:
    return pl.DataFrame([e.row() for e in result.evals])


def sae_evals_record(result: SAEEvals) -> Tables:
    """The stored evals: ``evals`` (one row per dataset) and ``density`` (feature, then each
    dataset's firing density of it)."""
    names = [e.dataset for e in result.evals]
    density = pl.DataFrame({"feature": np.arange(result.density.shape[1]), **dict(zip(names, result.density))})
    return Tables({"evals": _evals_table(result), "density": density}, {"datasets": names, "dead_everywhere": result.dead_everywhere})


def sae_evals_from(record: Tables) -> SAEEvals:
    """Inverse of :func:`sae_evals_record`."""
    names = record.summary["datasets"]
    evals = [SAEEval(**row) for row in record.tables["evals"].iter_rows(named=True)]
    return SAEEvals(evals, record.tables["density"].select(names).to_numpy().T.astype(np.float64))


def sae_evals_summary(result: SAEEvals) -> Shown:
    evals = result.evals

    def by(metric: str) -> dict[str, Any]:
        return {e.dataset: getattr(e, metric) for e in evals}

    summary = SAEEvalsSummary(
        datasets=[e.dataset for e in evals],
        loss_recovered=by("loss_recovered"),
        explained_variance=by("explained_variance"),
        kl_div_with_sae=by("kl_div_with_sae"),
        l0=by("l0"),
        dead_fraction=by("dead_fraction"),
        dense_fraction=by("dense_fraction"),
        tokens=by("tokens"),
        dead_everywhere=result.dead_everywhere,
    )
    table = _evals_table(result).select(
        "dataset",
        "loss_recovered",
        "explained_variance",
        "kl_div_with_sae",
        "l0",
        "dead_fraction",
        "dense_fraction",
        "ce_loss_clean",
        "ce_loss_with_sae",
        "ce_loss_zero_ablation",
        "tokens",
    )
    return {"summary": summary, "markdown": {"evals": markdown_table(table, width=80)}}


def ground_truth_record(rows: Sequence[Mapping[str, Any]]) -> Tables:
    """The recovery of the planted structure, one row per (point, samples)."""
    return Tables({"recovery": pl.DataFrame(list(rows))}, {"points": list(dict.fromkeys(r["point"] for r in rows))})


def ground_truth_summary(rows: Sequence[Mapping[str, Any]]) -> Shown:
    """ARI against the plant by point at the largest sample size, and the whole curve as a table."""
    table = pl.DataFrame(list(rows))
    largest = table.filter(pl.col("samples") == table["samples"].max())
    summary = GroundTruthSummary(dict(zip(largest["point"], largest["ari"])), sorted(set(table["samples"])))
    return {"summary": summary, "markdown": {"recovery": markdown_table(table, width=40)}}


def activations_summary(
    n: int, nnz: int, d_sae: int, timings: list[Any], shards: list[str], shard_prompts: int, workers: dict[str, str] | None = None
) -> Shown:
    """``n`` tokens with ``nnz`` non-zero activations of ``d_sae`` features; ``timings``: the
    :class:`ExtractionTimings` of each shard extracted; ``shards``: the addresses of every shard read;
    ``workers``: the Dask worker that extracted each shard (by shard number), when they ran as tasks."""
    from cluster_assets.sources.extraction import ExtractionTimings

    timing = ExtractionTimings(*(sum(getattr(t, f.name) for t in timings) for f in dataclasses.fields(ExtractionTimings)))
    seconds = timing.forward_seconds + timing.encode_seconds + timing.assemble_seconds
    rate = timing.extracted_tokens / seconds if seconds > 0 else 0.0
    summary = ActivationsSummary(n, nnz, nnz / max(n, 1), d_sae, len(shards), len(timings), shard_prompts, shards, rate, timing, workers)
    return {"summary": summary}


def memberships_summary(result: MembershipResult, unit: str) -> Shown:
    table = features_table(result)
    kept = table.filter(pl.col("kept"))
    rate, entropy = table["firing_rate"].to_numpy(), table["entropy"].to_numpy()
    return {
        "summary": MembershipsSummary(
            result.memberships.n_samples,
            unit,
            int(result.kept.sum()),
            dict(table.filter(~pl.col("kept")).group_by("reason").len().sort("reason").iter_rows()),
            dict(kept.group_by("quadrant").len().sort("quadrant").iter_rows()),
        ),
        "figures": {
            "entropy_vs_rate": plots.entropy_vs_rate(rate, entropy, result.kept),
            "rate_histogram": plots.rate_histogram(rate),
            "quadrant_plot": plots.quadrant_plot(kept["entropy"].to_numpy(), kept["varentropy"].to_numpy(), kept["quadrant"].to_numpy()),
        },
    }


def coactivation_summary(cofiring: CoFiring, n_samples: int) -> Shown:
    """``cofiring``: the co-firing counts of the kept features."""
    return {"summary": CoactivationSummary(cofiring.n_features, n_samples, cofiring.nonzero_pairs(), round(cofiring.nbytes / 1e6, 1))}


def clustering_summary(result: Clustering) -> Shown:
    """The merge history's MDL curve and best k, or the fixed labels' clusters and noise."""
    features = int(result.feature_ids.size)
    if result.history is None:
        cut = result.at("mdl")
        noise = cut.noise / cut.labels.size if cut.labels.size else 0.0
        return {"summary": ClusteringSummary(result.method, features, clusters=cut.k, noise_fraction=float(noise))}
    history = result.history
    summary = ClusteringSummary(
        result.method, features, history.n_merges, history.best_k(), float(history.mdl.min()), float(history.mdl[0])
    )
    return {"summary": summary, "figures": {"mdl_curve": plots.mdl_curve(history.ks, history.mdl, history.best_k())}}


def clusters_summary(record: Clusters, cut: Cut, cut_setting: Any) -> Shown:
    """``cut_setting``: the sweep point's ``clusters.cut`` (``mdl`` or a number of clusters)."""
    sizes = record.clusters["size"].to_numpy()
    summary = ClustersSummary(
        cut.method,
        cut.k,
        int(cut.labels.size),
        int((sizes == 1).sum()),
        float(np.median(sizes)) if sizes.size else 0.0,
        int(sizes.max(initial=0)),
        cut=None if cut.mdl_at_cut is None else str(cut_setting),
        mdl_at_cut=cut.mdl_at_cut,
        noise_features=cut.noise if cut.mdl_at_cut is None else None,
    )
    heatmap_labels = [f"cluster {c}" for c in record.heatmap_clusters]
    return {
        "summary": summary,
        "markdown": {"top_clusters": top_clusters_markdown(record)},
        "figures": {
            "size_distribution": plots.size_distribution(sizes),
            "coactivation_heatmap": plots.cofiring_heatmap(record.heatmap, record.heatmap_bounds, heatmap_labels),
        },
    }


def top_clusters_markdown(record: Clusters, n: int = 5, features: int = 8) -> str:
    """The largest clusters: size, activity, features (linked to Neuronpedia when there are links), top prompt."""
    top = record.clusters.head(n).join(record.top_prompts.filter(pl.col("rank") == 0), on="cluster", how="left")
    lines = []
    for row in top.iter_rows(named=True):
        ids = row["feature_ids"][:features]
        links = row.get("feature_links")
        shown = ", ".join(f"[{f}]({u})" for f, u in zip(ids, links)) if links else ", ".join(map(str, ids))
        more = " …" if row["size"] > features else ""
        lines.append(
            f"- **cluster {row['cluster']}** ({row['size']} features: {shown}{more}; active on {row['active_tokens']} tokens): "
            f"{highlight(row['text'] or '', row['span_starts'] or [], row['span_ends'] or [], width=160)}"
        )
    return "\n".join(lines)


def _comparison_summary(tables: Tables, missing: list[str]) -> dict:
    return {k: v for k, v in tables.summary.items() if k != "missing"} | {"missing_partitions": len(missing)}


def dataset_comparison_summary(tables: Tables, missing: list[str]) -> Shown:
    """The ARI between datasets as a matrix (the diagonal: each dataset's replicate floor) and against the floors."""
    point, names, effects = tables.summary["point"], tables.summary["available"], tables.tables["effects"]
    figures = {}
    if len(names) >= 2:
        ari = effects.filter(pl.col("metric") == "ari")
        matrix = np.eye(len(names))
        for a, b, v in ari.select("a", "b", "value").iter_rows():
            matrix[names.index(a), names.index(b)] = matrix[names.index(b), names.index(a)] = v
        floors = tables.tables["floors"].filter(pl.col("metric") == "ari")
        for name, v in floors.select("condition", "value").iter_rows():
            matrix[names.index(name), names.index(name)] = v if v is not None else np.nan
        figures["ari_heatmap"] = plots.labelled_heatmap(
            matrix, names, f"ARI between datasets at {point} (diagonal: replicate floor)", "ARI"
        )
        figures["ari_vs_floor"] = plots.effect_vs_floor(effect_plot_rows(ari), "ARI", f"ARI between datasets vs replicate floors ({point})")
    return {
        "summary": _comparison_summary(tables, missing),
        "markdown": {"effects": effects_markdown(effects), "missing": ", ".join(missing) or "none"},
        "figures": figures,
    }


def sweep_comparison_summary(tables: Tables, missing: list[str]) -> Shown:
    """Each point's held-out gain, and its ARI to the reference against the replicate floors."""
    dataset, reference = tables.summary["dataset"], tables.summary["reference"]
    figures = {}
    heldout = tables.tables.get("heldout")
    if heldout is not None and heldout.height:
        by_point = heldout.group_by("point", maintain_order=True).agg(pl.col("gain_vs_singletons").mean(), pl.col("gain_vs_random").mean())
        figures["heldout_gain"] = plots.grouped_bars(
            by_point["point"].to_list(),
            {
                "vs every feature alone": by_point["gain_vs_singletons"].to_list(),
                "vs random partition, same sizes": by_point["gain_vs_random"].to_list(),
            },
            "held-out description length saved",
            f"Held-out MDL gain per sweep point ({dataset})",
        )
    effects = tables.tables["effects"]
    if effects.height:
        figures["ari_vs_floor"] = plots.effect_vs_floor(
            effect_plot_rows(effects.filter(pl.col("metric") == "ari")),
            f"ARI vs {reference}",
            f"Each sweep point vs the reference, against replicate floors ({dataset})",
        )
    points = tables.tables["points"].select("point", "changes", "method", "replicates", "kept", "k", "noise_fraction")
    return {
        "summary": _comparison_summary(tables, missing),
        "markdown": {
            "points": markdown_table(points, width=80),
            "effects": effects_markdown(effects),
            "missing": ", ".join(missing) or "none",
        },
        "figures": figures,
    }
