"""The research report: its scale first, then one section per research question, each led by
the figure to look at first and one-line statements that set every effect against its noise
floor (the agreement between replicates).

Input: the comparison tables (``dataset_comparison`` per sweep point, ``sweep_comparison``
per dataset) and the project's sweep; output: a :class:`~cluster_assets.storage.formats.Document`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from cluster_assets.core.replicates import Estimate, between, verdict
from cluster_assets.core.tokens import CLASSES
from cluster_assets.reporting import plots
from cluster_assets.storage.formats import Document, Tables

QUESTIONS = [
    "How do entropy and activation preprocessing change the clustering? How do the number of prompts and their length change it?",
    "Is a UMAP projection useful before density clustering, and with which parameters?",
    "How does HDBSCAN perform on these features, and with which parameters?",
    "How does the clustering change across datasets?",
    "What do the clusters have in common? Does that vary by dataset, by hyperparameter?",
]


def _est(row: dict, prefix: str) -> Estimate:
    return Estimate(row.get(prefix), row.get(f"{prefix}_low"), row.get(f"{prefix}_high"), 0)


def _md_table(frame: pl.DataFrame, width: int = 60) -> str:
    if frame.height == 0:
        return "_(no rows)_\n"

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.3g}"
        text = ", ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else str(v))
        text = " ".join(text.split()).replace("|", "/")
        return text if len(text) <= width else text[: width - 1] + "…"

    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in frame.iter_rows())


def _gain_estimate(values: list[float]) -> Estimate:
    """Mean over replicates with a bootstrap interval over them."""
    return between({(i, 0): v for i, v in enumerate(values)}, len(values), 1)


class _Builder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.figures: dict[str, bytes] = {}

    def section(self, i: int, figure: bytes | None, statements: list[str], table: pl.DataFrame | None = None, note: str = "") -> None:
        self.lines += [f"## Q{i + 1}. {QUESTIONS[i]}", ""]
        if figure is not None:
            self.figures[f"q{i + 1}.png"] = figure
            self.lines += [f"![Q{i + 1}](figures/q{i + 1}.png)", ""]
        self.lines += [f"- {s}" for s in statements] or ["- _Nothing to answer with yet._"]
        self.lines.append("")
        if note:
            self.lines += [note, ""]
        if table is not None and table.height:
            self.lines += [_md_table(table), ""]


def _sweep_effects(sweeps: dict[str, Tables], points: list[str]) -> list[dict]:
    rows = []
    for dataset, t in sweeps.items():
        effects = t.tables.get("effects", pl.DataFrame())
        if not effects.height:
            continue
        for r in effects.filter((pl.col("metric") == "ari") & pl.col("a").is_in(points)).iter_rows(named=True):
            rows.append({**r, "dataset": dataset})
    return rows


def _statement(a: str, b: str, row: dict, metric: str = "ARI") -> str:
    effect, floor_a, floor_b = _est(row, "value"), _est(row, "floor_a"), _est(row, "floor_b")
    return (
        f"{a} vs {b}: {metric} {effect.text()}; two samples of {row['a']}: {floor_a.text()}; of {row['b']}: {floor_b.text()} "
        f"— {verdict(effect, [floor_a, floor_b])}."
    )


def build_report(datasets: dict[str, Tables], sweeps: dict[str, Tables], project: Any) -> Document:
    """The report from whatever comparisons exist (``datasets``: per sweep point; ``sweeps``: per dataset)."""
    reference = project.reference.point
    points = {p.point: p for p in project.sweep.values() if p.replicate == 0}
    b = _Builder()
    b.lines += ["# cluster_assets research report", ""]
    scale = datasets.get(reference) or next(iter(datasets.values()), None)
    if scale is not None:
        tokens, reps, kept = scale.summary.get("tokens", {}), scale.summary.get("replicates", {}), scale.summary.get("kept", {})
        b.lines += [
            f"**Scale:** {len(tokens)} datasets ({', '.join(tokens)}); tokens per sample (point `{reference}`): "
            + ", ".join(f"{d} {n:,}" for d, n in tokens.items())
            + "; replicates: "
            + ", ".join(f"{d} {n}" for d, n in reps.items())
            + "; kept features: "
            + ", ".join(f"{d} {n:,}" for d, n in kept.items())
            + ".",
            "",
        ]
    b.lines += [
        f"Reference point: `{reference}`. Agreement (ARI, NMI, best-match Jaccard) is measured on the SAE features both "
        "clusterings kept. Each number is a mean over replicate pairs with a 95% bootstrap interval over replicates; a "
        "*floor* is the same number between two replicates of one condition (independent prompt samples), i.e. what "
        "sampling noise alone gives.",
        "",
    ]
    missing = sorted({m for t in (*datasets.values(), *sweeps.values()) for m in t.summary.get("missing", [])})
    if missing:
        b.lines += [
            f"**Not in these numbers** ({len(missing)} partitions without clusters yet): "
            + ", ".join(missing[:12])
            + (" …" if len(missing) > 12 else ""),
            "",
        ]

    # Q1: preprocessing and prompts, against the reference's replicate floor
    pre = [
        n
        for n, p in points.items()
        if n != reference
        and p.merge.method == "mdl_merge"
        and p.changes_from(points[reference])
        and all(k.split(".")[0] in ("memberships", "prompts") for k in p.changes_from(points[reference]))
    ]
    rows = _sweep_effects(sweeps, pre)
    figure = (
        plots.effect_vs_floor(
            [
                {
                    "label": f"{r['a']} ({r['dataset']})",
                    "value": r["value"],
                    "low": r["value_low"] or r["value"],
                    "high": r["value_high"] or r["value"],
                    **_floor_band(r),
                }
                for r in rows
            ],
            f"ARI vs `{reference}`",
            "Each preprocessing / prompt point vs the reference, against the replicate floor",
        )
        if rows
        else None
    )
    b.section(0, figure, [_statement(f"`{r['a']}` ({r['dataset']})", f"`{reference}`", r) for r in rows])

    # Q2 and Q3: the density baseline, scored by held-out description length
    heldout = (
        pl.concat(
            [t.tables["heldout"].with_columns(dataset=pl.lit(d)) for d, t in sweeps.items() if "heldout" in t.tables],
            how="diagonal_relaxed",
        )
        if any("heldout" in t.tables for t in sweeps.values())
        else pl.DataFrame()
    )
    same = heldout.filter(pl.col("kind") == "same dataset") if heldout.height else heldout
    gains = {}
    if same.height:
        for (point, dataset), group in same.group_by(["point", "dataset"], maintain_order=True):
            gains[(point, dataset)] = (
                _gain_estimate(group["gain_vs_singletons"].to_list()),
                _gain_estimate(group["gain_vs_random"].to_list()),
            )
    base_points = [n for n, p in points.items() if p.merge.method == "umap_hdbscan"]
    umap_pts = [n for n in base_points if points[n].baseline.umap]
    raw_pts = [n for n in base_points if not points[n].baseline.umap]
    q2 = []
    for dataset in sweeps:
        for u in umap_pts:
            for r in raw_pts:
                if (u, dataset) in gains and (r, dataset) in gains:
                    gu, gr = gains[(u, dataset)][0], gains[(r, dataset)][0]
                    q2.append(
                        f"{dataset}: with UMAP (`{u}`) the clustering saves {_pct(gu)} of the held-out description length of "
                        f"every feature alone; without (`{r}`) {_pct(gr)} — {_compare(gu, gr, 'UMAP helps', 'UMAP hurts')}."
                    )
    b.section(
        1,
        _gain_figure(gains, [*base_points, reference], "Held-out MDL saved vs every feature alone: baselines and the MDL merge"),
        q2,
        note="Held-out description length: a clustering found on one sample, scored by the MDL (bits per sample, same "
        "alpha) on a disjoint sample of the same dataset; noise features count as singletons.",
    )
    q3 = []
    for dataset in sweeps:
        best = max((n for n in base_points if (n, dataset) in gains), key=lambda n: gains[(n, dataset)][1].value or -1, default=None)
        if best is None:
            continue
        merge = gains.get((reference, dataset))
        noise = _points_value(sweeps[dataset], best, "noise_fraction")
        line = (
            f"{dataset}: the best baseline is `{best}` ({_pct(gains[(best, dataset)][1])} saved vs a random partition of the same "
            f"sizes, noise {noise:.0%})"
            if noise is not None
            else f"{dataset}: the best baseline is `{best}`"
        )
        if merge is not None:
            line += f"; the MDL merge `{reference}` saves {_pct(merge[1])} — {_compare(merge[1], gains[(best, dataset)][1], 'the MDL merge describes held-out data better', 'the baseline describes held-out data better')}"
        q3.append(line + ".")
    table = (
        pl.DataFrame(
            [
                {
                    "point": p,
                    "dataset": d,
                    "gain_vs_singletons": g[0].value,
                    "gain_vs_random": g[1].value,
                    "noise_fraction": _points_value(sweeps[d], p, "noise_fraction"),
                    "k": _points_value(sweeps[d], p, "k"),
                }
                for (p, d), g in gains.items()
                if p in base_points or p == reference
            ]
        )
        if gains
        else None
    )
    b.section(
        2, _gain_figure(gains, [*base_points, reference], "Held-out MDL saved vs a random partition of the same sizes", index=1), q3, table
    )

    # Q4: across datasets at the reference point
    ref_cmp = datasets.get(reference)
    effects = (
        ref_cmp.tables["effects"].filter(pl.col("metric") == "ari")
        if ref_cmp is not None and "effects" in ref_cmp.tables and ref_cmp.tables["effects"].height
        else pl.DataFrame()
    )
    q4 = [_statement(r["a"], r["b"], r) for r in effects.iter_rows(named=True)] if effects.height else []
    transfer = heldout.filter(pl.col("kind") == "transfer") if heldout.height else heldout
    for r in transfer.iter_rows(named=True) if transfer.height else []:
        own = gains.get((r["point"], r["dataset"]))
        q4.append(
            f"clusters of {r['dataset']} saved {r['gain_vs_singletons']:.1%} of {r['measured_on']}'s description length "
            f"(vs {_pct(own[0]) if own else 'unknown'} on held-out {r['dataset']})."
        )
    figure = (
        plots.effect_vs_floor(_rows_for_plot(effects), "ARI", f"ARI between datasets at `{reference}` vs replicate floors")
        if effects.height
        else None
    )
    b.section(3, figure, q4)

    # Q5: what clusters have in common
    q5, shares = [], {}
    for point, t in datasets.items():
        stable, specific = t.tables.get("stable", pl.DataFrame()), t.tables.get("specific", pl.DataFrame())
        floors = t.tables.get("floors", pl.DataFrame())
        stable_floor = floors.filter(pl.col("metric") == "stable") if floors.height else floors
        if point == reference:
            for name, frame in (("stable", stable), ("dataset-specific", specific)):
                if frame.height and "class" in frame.columns:
                    shares[name] = {c: float(np.mean(frame["class"].to_numpy() == c)) for c in CLASSES}
                    kinds = frame["kind"].value_counts().sort("count", descending=True) if "kind" in frame.columns else pl.DataFrame()
                    top_class = max(shares[name], key=lambda c: shares[name][c])
                    kind_text = f"; {kinds.row(0)[1]} of {frame.height} are {kinds.row(0)[0]}" if kinds.height else ""
                    q5.append(
                        f"At `{point}`, {frame.height} {name} clusters: mostly {top_class} tokens ({shares[name][top_class]:.0%}){kind_text}."
                    )
        floor_text = (
            ", ".join(f"{r['condition']} {_est(r, 'value').text()}" for r in stable_floor.iter_rows(named=True))
            if stable_floor.height
            else "unknown"
        )
        q5.append(
            f"`{point}`: {t.summary.get('stable', 0)} clusters of {t.summary['available'][0] if t.summary.get('available') else '?'} "
            f"matched (Jaccard >= 0.5) in every other dataset; stable fraction between replicates: {floor_text}."
        )
    figure = (
        plots.grouped_bars(
            list(CLASSES),
            {k: [v[c] for c in CLASSES] for k, v in shares.items()},
            "share of clusters (dominant token class)",
            f"What stable and dataset-specific clusters fire on (`{reference}`)",
        )
        if shares
        else None
    )
    stable_table = (
        ref_cmp.tables["stable"].drop([c for c in ref_cmp.tables["stable"].columns if c.startswith("top_prompt")]).head(15)
        if ref_cmp is not None and "stable" in ref_cmp.tables and ref_cmp.tables["stable"].height
        else None
    )
    b.section(
        4,
        figure,
        q5,
        stable_table,
        note="Stable clusters with their top tokens per dataset side by side (top prompts are in "
        "`dataset_comparison/<hash>/stable.parquet`); each cluster's activity on every dataset is in `activity.parquet`.",
    )
    b.lines.append(f"_Numbers from {len(sweeps)} datasets and {len(datasets)} sweep points._")
    return Document("\n".join(b.lines) + "\n", b.figures)


def _floor_band(row: dict) -> dict:
    floors = [(row[f"floor_{s}"], row[f"floor_{s}_low"], row[f"floor_{s}_high"]) for s in ("a", "b") if row.get(f"floor_{s}") is not None]
    if not floors:
        return {}
    f = min(floors, key=lambda x: x[0])
    return {"floor": f[0], "floor_low": f[1] if f[1] is not None else f[0], "floor_high": f[2] if f[2] is not None else f[0]}


def _rows_for_plot(effects: pl.DataFrame) -> list[dict]:
    return [
        {
            "label": f"{r['a']} ~ {r['b']}",
            "value": r["value"],
            "low": r["value_low"] if r["value_low"] is not None else r["value"],
            "high": r["value_high"] if r["value_high"] is not None else r["value"],
            **_floor_band(r),
        }
        for r in effects.iter_rows(named=True)
    ]


def _pct(e: Estimate) -> str:
    if e.value is None:
        return "unknown"
    if e.low is None or e.high is None:
        return f"{e.value:.1%} (one replicate)"
    return f"{e.value:.1%} [{e.low:.1%}, {e.high:.1%}]"


def _compare(a: Estimate, b: Estimate, better: str, worse: str) -> str:
    """Whether ``a`` exceeds ``b`` beyond their replicate intervals."""
    if a.value is None or b.value is None:
        return "not measured"
    if a.low is None or a.high is None or b.low is None or b.high is None:
        return "one replicate: cannot be told from sampling noise"
    if a.low > b.high:
        return f"{better}, beyond sampling noise"
    if a.high < b.low:
        return f"{worse}, beyond sampling noise"
    return "no difference beyond sampling noise"


def _points_value(t: Tables, point: str, column: str):
    rows = t.tables["points"].filter(pl.col("point") == point) if "points" in t.tables else pl.DataFrame()
    return rows[column][0] if rows.height and column in rows.columns else None


def _gain_figure(gains: dict, points: list[str], title: str, index: int = 0) -> bytes | None:
    rows = [
        {
            "label": f"{p} ({d})",
            "value": g[index].value,
            "low": g[index].low if g[index].low is not None else g[index].value,
            "high": g[index].high if g[index].high is not None else g[index].value,
        }
        for (p, d), g in gains.items()
        if p in points and g[index].value is not None
    ]
    return plots.effect_vs_floor(rows, "fraction of held-out description length saved", title) if rows else None
