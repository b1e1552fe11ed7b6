"""The research report: one markdown section per research question, each with a table,
a figure and a one-line statement of what the numbers show.

Input: the comparison tables (``sweep_comparison`` per dataset, ``dataset_comparison``
per sweep point) and the sweep points; output: markdown text and PNG figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from cluster_assets.plotting import render_png
from cluster_assets.sweep import SweepPoint

QUESTIONS = [
    "How do entropy and activation preprocessing change the clustering? How do the number of prompts and their length change it?",
    "Is a UMAP projection useful before density clustering, and with which parameters?",
    "How does HDBSCAN perform on these features, and with which parameters?",
    "How does the clustering change across datasets?",
    "What do the clusters have in common? Does that vary by dataset, by hyperparameter?",
]


@dataclass
class Report:
    markdown: str
    figures: dict[str, bytes] = field(default_factory=dict)


def _figure(draw, size=(6.0, 3.2)) -> bytes:
    return render_png(draw, size, dpi=80)


def _md_table(frame: pl.DataFrame, width: int = 70) -> str:
    if frame.height == 0:
        return "_(no rows)_\n"

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.3f}"
        text = ", ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else str(v))
        return " ".join(text.split())[:width].replace("|", "/")

    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in frame.iter_rows())


def _grouped_bars(frame: pl.DataFrame, x: str, y: str, group: str, ylabel: str):
    def draw(ax):
        xs = frame[x].unique(maintain_order=True).to_list()
        groups = frame[group].unique(maintain_order=True).to_list()
        width = 0.8 / max(len(groups), 1)
        for gi, g in enumerate(groups):
            sub = frame.filter(pl.col(group) == g)
            values = [sub.filter(pl.col(x) == v)[y].fill_null(np.nan).to_list() for v in xs]
            ax.bar(np.arange(len(xs)) + gi * width, [v[0] if v else np.nan for v in values], width, label=str(g))
        ax.set_xticks(np.arange(len(xs)) + width * (len(groups) - 1) / 2, xs, rotation=20, ha="right", fontsize=7)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.legend(fontsize=7)

    return draw


def _agreement(ari: float) -> str:
    """Plain words for an adjusted Rand index."""
    return "hardly" if ari < 0.1 else "weakly" if ari < 0.4 else "moderately" if ari < 0.7 else "strongly"


def _summarise_missing(missing: list[str], points: list[str]) -> str:
    """'clusters[d|p]' entries collapsed to 'd (all sweep points)' where a dataset misses every point."""
    by_dataset: dict[str, set[str]] = {}
    other = []
    for item in missing:
        if item.startswith("clusters[") and "|" in item:
            dataset, point = item[len("clusters["):-1].split("|", 1)
            by_dataset.setdefault(dataset, set()).add(point)
        else:
            other.append(item)
    parts = [f"{d} (no clusters at any sweep point)" if pts >= set(points) else f"{d} at {', '.join(sorted(pts))}"
             for d, pts in by_dataset.items()]
    return "; ".join(parts + other)


def build_report(points_by_dataset: dict[str, pl.DataFrame], pairs_by_point: dict[str, pl.DataFrame],
                 summaries_by_point: dict[str, dict], sweep: dict[str, SweepPoint], missing: list[str]) -> Report:
    """Assemble the report from the comparison tables (datasets and points in registry/sweep order)."""
    reference = next(iter(sweep))
    figures: dict[str, bytes] = {}
    all_points = pl.concat([f.with_columns(dataset=pl.lit(d)) for d, f in points_by_dataset.items() if f.height], how="diagonal_relaxed") \
        if any(f.height for f in points_by_dataset.values()) else pl.DataFrame()
    n_datasets, n_points = len(points_by_dataset), len(pairs_by_point)
    lines = ["# cluster_assets research report", "",
             f"Datasets compared: {', '.join(points_by_dataset) or 'none'}. Sweep points: {', '.join(pairs_by_point) or 'none'}. "
             f"Reference point: `{reference}`. ARI/NMI are computed on the SAE features both clusterings kept.", ""]
    if missing:
        lines += ["**Missing or failed partitions** (not in these numbers): " + _summarise_missing(missing, list(sweep)), ""]

    def section(i: int, table: pl.DataFrame, figure: bytes | None, statement: str) -> None:
        lines.extend([f"## Q{i + 1}. {QUESTIONS[i]}", "", f"**{statement}**", ""])
        if figure is not None:
            figures[f"q{i + 1}.png"] = figure
            lines.extend([f"![Q{i + 1}](figures/q{i + 1}.png)", ""])
        lines.extend([_md_table(table), ""])

    def changed(point: str) -> set[str]:
        ref = sweep[reference]
        return {f"{s}.{k}" for s in ("prompts", "activations", "memberships", "merge", "baseline", "clusters")
                for k, v in getattr(sweep[point], s).digest().items() if getattr(ref, s).digest()[k] != v
                and (s != "baseline" or sweep[point].merge.method == "umap_hdbscan")}

    # Q1: preprocessing and prompts
    pre = [p for p in sweep if p != reference and changed(p) and all(c.split(".")[0] in ("memberships", "prompts") for c in changed(p))]
    q1 = all_points.filter(pl.col("point").is_in(pre + [reference])).select("point", "dataset", "changes", "kept", "k", "ari_vs_reference", "nmi_vs_reference") \
        if all_points.height else pl.DataFrame()
    if q1.height and q1.filter(pl.col("point") != reference).height:
        means = q1.filter(pl.col("point") != reference).group_by("point").agg(pl.col("ari_vs_reference").mean().alias("ari")).sort("ari")
        most, least = means.row(0), means.row(-1)
        stmt = (f"Across {q1['dataset'].n_unique()} datasets, `{most[0]}` changes the clustering most (mean ARI vs `{reference}` "
                f"{most[1]:.2f}) and `{least[0]}` least ({least[1]:.2f}); kept features range {q1['kept'].min()}–{q1['kept'].max()}.")
        section(0, q1, _figure(_grouped_bars(q1.filter(pl.col("point") != reference), "point", "ari_vs_reference", "dataset", f"ARI vs {reference}")), stmt)
    else:
        section(0, q1, None, "No sweep point varying preprocessing or prompts has clusters yet.")

    # Q2 and Q3: the density baseline
    base_points = [p for p in sweep if sweep[p].merge.method == "umap_hdbscan"]
    q23 = all_points.filter(pl.col("point").is_in(base_points)) if all_points.height else pl.DataFrame()
    if q23.height:
        params = pl.DataFrame([{"point": p, "umap": sweep[p].baseline.umap, "n_components": sweep[p].baseline.n_components,
                                "n_neighbors": sweep[p].baseline.n_neighbors, "min_cluster_size": sweep[p].baseline.min_cluster_size,
                                "min_samples": sweep[p].baseline.min_samples, "epsilon": sweep[p].baseline.epsilon} for p in base_points],
                              schema_overrides={"min_samples": pl.Int64})
        q23 = q23.join(params, on="point").select("point", "dataset", "umap", "n_components", "n_neighbors", "min_cluster_size",
                                                  "min_samples", "k", "noise_fraction", "ari_vs_reference")
        by_umap = q23.group_by("umap").agg(pl.col("noise_fraction").mean(), pl.col("ari_vs_reference").mean(), pl.col("k").mean()).sort("umap")
        parts = [f"{'with' if u else 'without'} UMAP: noise {n:.0%}, {k:.1f} clusters, ARI vs MDL `{reference}` {a:.2f}"
                 for u, n, a, k in by_umap.iter_rows()]
        section(1, q23, _figure(_grouped_bars(q23, "point", "noise_fraction", "dataset", "noise fraction")),
                f"Mean over {q23['dataset'].n_unique()} datasets — " + "; ".join(parts) + ".")
        best = q23.group_by("point").agg(pl.col("ari_vs_reference").mean(), pl.col("noise_fraction").mean(), pl.col("k").mean()).sort("ari_vs_reference", descending=True)
        b = best.row(0)
        section(2, best, _figure(_grouped_bars(q23, "point", "k", "dataset", "clusters found")),
                f"HDBSCAN's best agreement with the MDL clustering is `{b[0]}` (mean ARI {b[1]:.2f}, noise {b[2]:.0%}, {b[3]:.1f} clusters); "
                f"across its parameters noise ranges {q23['noise_fraction'].min():.0%}–{q23['noise_fraction'].max():.0%}.")
    else:
        section(1, q23, None, "No sweep point uses the umap_hdbscan method yet.")
        section(2, q23, None, "No sweep point uses the umap_hdbscan method yet.")

    # Q4: across datasets
    pair_rows = [f.with_columns(point=pl.lit(p)) for p, f in pairs_by_point.items() if f.height]
    q4 = pl.concat(pair_rows, how="diagonal_relaxed").select("point", "a", "b", "common", "ari", "nmi") if pair_rows else pl.DataFrame()
    if q4.height:
        per_point = q4.group_by("point", maintain_order=True).agg(pl.col("ari").mean(), pl.col("nmi").mean())
        lo, hi = per_point.sort("ari").row(0), per_point.sort("ari").row(-1)
        worst = q4.sort("ari").row(0)
        section(3, q4, _figure(_grouped_bars(q4.with_columns(pair=pl.col("a") + "~" + pl.col("b")), "point", "ari", "pair", "ARI between datasets")),
                f"Clusterings of different datasets agree {_agreement(hi[1])} at best: mean ARI per point from {lo[1]:.2f} (`{lo[0]}`) to {hi[1]:.2f} "
                f"(`{hi[0]}`); the least similar pair is {worst[1]}~{worst[2]} at `{worst[0]}` (ARI {worst[4]:.2f}).")
    else:
        section(3, q4, None, "Fewer than two datasets have clusters for any sweep point yet.")

    # Q5: what clusters share
    q5 = pl.DataFrame([{"point": p, "stable_clusters": s.get("stable", 0),
                        **{f"specific[{d}]": n for d, n in (s.get("specific") or {}).items()}} for p, s in summaries_by_point.items()])
    if q5.height:
        top = q5.sort("stable_clusters", descending=True).row(0)
        section(4, q5, _figure(lambda ax: (ax.bar(q5["point"].to_list(), q5["stable_clusters"].to_list(), color="tab:green"),
                                           ax.set_ylabel("clusters stable in every dataset", fontsize=8),
                                           ax.tick_params(axis="x", rotation=20))),
                f"{top[1]} clusters (at `{top[0]}`) are matched with Jaccard >= 0.5 in every dataset; the rest are dataset-specific "
                f"(counts per dataset in the table), so what clusters share depends on both the dataset and the sweep point.")
        lines.append("Stable clusters of each point, with their top prompts side by side, are in `dataset_comparison/<hash>/stable.parquet`.\n")
    else:
        section(4, q5, None, "No dataset comparison has been materialised yet.")
    lines.append(f"_Numbers from {n_datasets} datasets and {n_points} sweep points._")
    return Report("\n".join(lines) + "\n", figures)
