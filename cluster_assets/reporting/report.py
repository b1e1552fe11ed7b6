"""The research report: its scale first, then one section per research question, each led by
the figure to look at first and one-line statements that set every effect against its noise
floor (the agreement between replicates).

Input: the comparison tables (``dataset_comparison`` per sweep point, ``sweep_comparison``
per dataset), the reference point's name and the sweep's points; output: a
:class:`~cluster_assets.storage.formats.Document`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from cluster_assets.config.models import SweepPoint
from cluster_assets.core.replicates import UNKNOWN, Estimate, LearningCurve, between, learning_curve, verdict
from cluster_assets.core.tokens import CLASSES
from cluster_assets.reporting import plots
from cluster_assets.reporting.comparisons import effect_plot_rows, estimate, plot_row
from cluster_assets.reporting.text import markdown_table
from cluster_assets.storage.formats import Document, Tables

QUESTIONS = [
    "How do entropy and activation preprocessing change the clustering? How do the number of prompts and their length change it?",
    "Is a UMAP projection useful before density clustering, and with which parameters?",
    "How does HDBSCAN perform on these features, and with which parameters?",
    "How does the clustering change across datasets?",
    "What do the clusters have in common? Does that vary by dataset, by hyperparameter?",
]

#: The floor ARI (agreement of two independent samples) at which a clustering is called stable.
STABLE_FLOOR = 0.8
#: The learning curve's section heading (before Q1).
CURVE_HEADING = "How many tokens does a stable clustering need?"

#: Held-out gains of one (point, dataset): vs every feature alone, vs a random partition of the same sizes.
Gains = dict[tuple[str, str], tuple[Estimate, Estimate]]


class _Builder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.figures: dict[str, bytes] = {}

    def section(self, i: int, figure: bytes | None, statements: list[str], table: pl.DataFrame | None = None, note: str = "") -> None:
        self.block(f"Q{i + 1}. {QUESTIONS[i]}", (f"q{i + 1}", f"Q{i + 1}"), figure, statements, table, note)

    def block(
        self,
        heading: str,
        figure_name: tuple[str, str],
        figure: bytes | None,
        statements: list[str],
        table: pl.DataFrame | None = None,
        note: str = "",
        empty: str = "_Nothing to answer with yet._",
    ) -> None:
        """A section: its heading, its figure (``figure_name``: file stem and alt text), one line per
        statement (``empty`` where there is none), a note, a table."""
        name, alt = figure_name
        self.lines += [f"## {heading}", ""]
        if figure is not None:
            self.figures[f"{name}.png"] = figure
            self.lines += [f"![{alt}](figures/{name}.png)", ""]
        self.lines += [f"- {s}" for s in statements] or [f"- {empty}"]
        self.lines.append("")
        if note:
            self.lines += [note, ""]
        if table is not None and table.height:
            self.lines += [markdown_table(table), ""]


def _statement(a: str, b: str, row: dict, metric: str = "ARI") -> str:
    effect, floor_a, floor_b = estimate(row, "value"), estimate(row, "floor_a"), estimate(row, "floor_b")
    return (
        f"{a} vs {b}: {metric} {effect.text()}; two samples of {row['a']}: {floor_a.text()}; of {row['b']}: {floor_b.text()} "
        f"— {verdict(effect, [floor_a, floor_b])}."
    )


def _pct(e: Estimate) -> str:
    if e.value is None:
        return "unknown"
    if e.low is None or e.high is None:
        return f"{e.value:.1%} (one replicate)"
    return f"{e.value:.1%} [{e.low:.1%}, {e.high:.1%}]"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _saves(e: Estimate, of: str = "") -> str:
    """A description-length gain in words: "saves 17% of X", or "costs 24% more than X" when it
    is below zero throughout its interval."""
    if e.known and e.upper < 0:
        flipped = Estimate(
            -e.value if e.value is not None else None,
            -e.high if e.high is not None else None,
            -e.low if e.low is not None else None,
            e.pairs,
        )
        return f"costs {_pct(flipped)} more" + (f" than {of}" if of else "")
    return f"saves {_pct(e)}" + (f" of {of}" if of else "")


def _compare(a: Estimate, b: Estimate, names: tuple[str, str], better: str, worse: str) -> str:
    """Whether ``a`` lies above or below ``b`` beyond their intervals.  Where only one side has
    an interval the other's value is set against it, and the statement says whose noise is unmeasured."""
    if not (a.known and b.known):
        return "not measured"
    single = [n for n, e in zip(names, (a, b)) if e.low is None or e.high is None]
    if len(single) == 2:
        return "one replicate each: cannot be told from sampling noise"
    if a.lower > b.upper:
        text = f"{better}, beyond sampling noise"
    elif a.upper < b.lower:
        text = f"{worse}, beyond sampling noise"
    else:
        return "no difference beyond sampling noise"
    return text + (f" (as far as one interval shows: `{single[0]}` has one replicate, its own noise is unmeasured)" if single else "")


def _gain_estimate(values: list[float]) -> Estimate:
    """Mean over replicates with a bootstrap interval over them."""
    return between({(i, 0): v for i, v in enumerate(values)}, len(values), 1)


def heldout_gains(sweeps: Mapping[str, Tables]) -> Gains:
    """Each (point, dataset)'s held-out description length saved, over its replicates."""
    gains: Gains = {}
    for dataset, t in sweeps.items():
        heldout = t.tables.get("heldout")
        if heldout is None or not heldout.height:
            continue
        for (point,), group in heldout.filter(pl.col("kind") == "same dataset").group_by(["point"], maintain_order=True):
            gains[(str(point), dataset)] = (
                _gain_estimate(group["gain_vs_singletons"].to_list()),
                _gain_estimate(group["gain_vs_random"].to_list()),
            )
    return gains


def _sweep_effects(sweeps: Mapping[str, Tables], points: list[str]) -> pl.DataFrame:
    """The ARI effects of ``points`` against the reference, every dataset's, with a ``dataset`` column."""
    frames = [
        t.tables["effects"].filter((pl.col("metric") == "ari") & pl.col("a").is_in(points)).with_columns(dataset=pl.lit(d))
        for d, t in sweeps.items()
        if "effects" in t.tables and t.tables["effects"].height
    ]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def _points_value(t: Tables, point: str, column: str):
    rows = t.tables["points"].filter(pl.col("point") == point) if "points" in t.tables else pl.DataFrame()
    return rows[column][0] if rows.height and column in rows.columns else None


def _gain_figure(gains: Gains, points: list[str], title: str, index: int) -> bytes | None:
    rows = [plot_row(f"{p} ({d})", g[index]) for (p, d), g in gains.items() if p in points and g[index].known]
    return plots.effect_vs_floor(rows, "fraction of held-out description length saved", title) if rows else None


def _ground_truth_statements(recovery: pl.DataFrame | None, reference: str) -> list[str]:
    """Q3's ground-truth row: at the most and the fewest samples, how well the MDL merge (the
    reference point) and the best config of another method recover the planted groups."""
    if recovery is None or not recovery.height:
        return ["Ground truth: not run yet (materialise `ground_truth`)."]
    out = []
    sizes = sorted(set(recovery["samples"].to_list()))
    for n in sorted({sizes[-1], sizes[0]}, reverse=True):
        at = recovery.filter(pl.col("samples") == n)
        merge = at.filter(pl.col("point") == reference)
        if not merge.height:
            continue
        m = merge.row(0, named=True)
        others = at.filter(pl.col("method") != m["method"]).sort("ari", descending=True)
        if not others.height:
            continue
        o = others.row(0, named=True)
        out.append(
            f"Ground truth, {n:,} samples of a planted structure: the MDL merge `{reference}` recovers it with ARI "
            f"{m['ari']:.2f} (best-match Jaccard {m['jaccard']:.2f}); the best other method, `{o['point']}` ({o['method']}), "
            f"ARI {o['ari']:.2f} (Jaccard {o['jaccard']:.2f})."
        )
    return out


def _scale(datasets: Mapping[str, Tables], reference: str, sae_evals: pl.DataFrame | None) -> list[str]:
    scale = datasets.get(reference) or next(iter(datasets.values()), None)
    if scale is None:
        return []
    tokens, reps, kept = scale.summary.get("tokens", {}), scale.summary.get("replicates", {}), scale.summary.get("kept", {})
    quality = "; SAE quality: not measured yet (materialise `sae_evals`)"
    if sae_evals is not None and sae_evals.height:
        rows = sae_evals.filter(pl.col("dataset").is_in(list(tokens))) if tokens else sae_evals
        quality = "; SAE quality (CE loss recovered / explained variance / dead features, sae-lens' evals): " + ", ".join(
            f"{r['dataset']} {r['loss_recovered']:.3f} / {r['explained_variance']:.3f} / {r['dead_fraction']:.1%}"
            for r in rows.iter_rows(named=True)
        )
    return [
        f"**Scale:** {len(tokens)} datasets ({', '.join(tokens)}); tokens per sample (point `{scale.summary.get('point', reference)}`): "
        + ", ".join(f"{d} {n:,}" for d, n in tokens.items())
        + "; replicates: "
        + ", ".join(f"{d} {n}" for d, n in reps.items())
        + "; kept features: "
        + ", ".join(f"{d} {n:,}" for d, n in kept.items())
        + quality
        + ".",
        "",
    ]


def headlines(markdown: str) -> dict[str, str]:
    """The report at a glance, for the asset's metadata: its scale line, and each section's first
    statement under ``Q1`` … ``Q5`` and under the learning curve (``tokens_needed``), markdown as
    :func:`build_report` writes it."""
    out: dict[str, str] = {}
    section = None
    for line in markdown.splitlines():
        if line.startswith("**Scale:**"):
            out["scale"] = line.removeprefix("**Scale:**").strip().replace("`", "")
        elif line.startswith("## Q"):
            section = line[3:].split(".", 1)[0]
        elif line == f"## {CURVE_HEADING}":
            section = "tokens_needed"
        elif section and line.startswith("- "):
            out[section] = line[2:].replace("`", "")
            section = None
    return out


def build_report(
    datasets: Mapping[str, Tables],
    sweeps: Mapping[str, Tables],
    reference: str,
    points: Mapping[str, SweepPoint],
    sae_evals: pl.DataFrame | None = None,
    ground_truth: pl.DataFrame | None = None,
) -> Document:
    """The report from whatever comparisons exist.

    ``datasets``: the dataset comparison per sweep point; ``sweeps``: the sweep comparison per
    dataset; ``reference``: the reference point; ``points``: the sweep's points by name (one
    entry per point, not per replicate); ``sae_evals``: the SAE's evals, one row per dataset;
    ``ground_truth``: each method's recovery of a planted structure, one row per (point, samples).
    """
    b = _Builder()
    b.lines += ["# cluster_assets research report", "", *_scale(datasets, reference, sae_evals)]
    b.lines += [
        (
            f"Reference point: `{reference}`. Agreement (ARI, NMI, best-match Jaccard) is measured on the SAE features both "
            "clusterings kept. Each number is a mean over replicate pairs with a 95% bootstrap interval over replicates; a "
            "*floor* is the same number between two replicates of one condition (independent prompt samples), i.e. what "
            "sampling noise alone gives."
        ),
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
    gains = heldout_gains(sweeps)
    _learning_curve(b, datasets, sweeps, reference, points, gains)
    _preprocessing(b, sweeps, reference, points)
    _baselines(b, sweeps, reference, points, gains, ground_truth)
    _datasets(b, datasets.get(reference), reference, gains)
    _in_common(b, datasets, reference)
    b.lines.append(f"_Numbers from {len(sweeps)} datasets and {len(datasets)} sweep points._")
    return Document("\n".join(b.lines) + "\n", b.figures)


def size_points(reference: str, points: Mapping[str, SweepPoint]) -> list[str]:
    """The reference and the points that differ from it only in the sample size (the learning curve)."""
    return [n for n, p in points.items() if n == reference or p.resizes(points[reference])]


def _tokens(n: float) -> str:
    if not np.isfinite(n) or n >= 1e10:
        return "beyond 10 billion"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def curve_statement(dataset: str, curve: LearningCurve, metric: str = "floor ARI") -> str:
    """One dataset's verdict: where its floor reaches the stable level, or how fast it still grows."""
    (first, f0), (last, f1) = (curve.sizes[0], curve.floors[0]), (curve.sizes[-1], curve.floors[-1])
    span = f"{metric} {f0.text()} at {_tokens(first)} tokens per sample, {f1.text()} at {_tokens(last)}"
    if curve.reached is not None:
        return f"{dataset}: {span} — stable ({metric} ≥ {curve.target}, interval included) from {_tokens(curve.reached)} tokens."
    if not curve.gain.known:
        return f"{dataset}: {span} — one size with a floor: no curve yet."
    gain = f"the last doubling gains {curve.gain.text()}"
    if curve.flattens or curve.projected is None:
        return f"{dataset}: {span} — not stable, and {gain}: the curve flattens below {curve.target} within noise."
    value, fast, slow = curve.projected
    return (
        f"{dataset}: {span} — not stable yet; {gain}; at that rate {metric} reaches {curve.target} at about {_tokens(value)} "
        f"tokens per sample ({_tokens(fast)} to {_tokens(slow)} from the intervals' ends)."
    )


def _learning_curve(
    b: _Builder,
    datasets: Mapping[str, Tables],
    sweeps: Mapping[str, Tables],
    reference: str,
    points: Mapping[str, SweepPoint],
    gains: Gains,
) -> None:
    """Before Q1: the replicate floor against the tokens per sample, per dataset, with its verdict;
    the datasets' differences restated at the largest size more than one dataset has."""
    sizes = size_points(reference, points)
    statements, series, rows = [], {}, []
    for dataset, t in sweeps.items():
        table = t.tables.get("points", pl.DataFrame())
        if not table.height or "tokens" not in table.columns:
            continue
        floors = t.tables.get("floors", pl.DataFrame())
        at = table.filter(pl.col("point").is_in(sizes)).sort("tokens")
        curve_points, curve_floors = [], []
        for r in at.iter_rows(named=True):
            of = floors.filter(pl.col("condition") == r["point"]) if floors.height else floors
            metric = {row["metric"]: estimate(row, "value") for row in of.iter_rows(named=True)}
            ari = metric.get("ari", UNKNOWN)
            curve_points.append(r["tokens"])
            curve_floors.append(ari)
            held = gains.get((r["point"], dataset), (UNKNOWN,))[0]
            rows.append(
                {
                    "dataset": dataset,
                    "point": r["point"],
                    "tokens": r["tokens"],
                    "replicates": r["replicates"],
                    "floor ARI": ari.text(),
                    "floor Jaccard": metric.get("jaccard", UNKNOWN).text(),
                    "floor matched": metric.get("stable", UNKNOWN).text(),
                    "held-out saved": held.text(3),
                    "kept": r["kept"],
                }
            )
        curve = learning_curve(curve_points, curve_floors, STABLE_FLOOR)
        if curve.sizes:
            statements.append(curve_statement(dataset, curve))
            series[dataset] = [{"tokens": x, "value": f.value, "low": f.lower, "high": f.upper} for x, f in zip(curve.sizes, curve.floors)]
    by_size = sorted(
        ((int(np.mean(list(t.summary.get("tokens", {}).values()) or [0])), p) for p, t in datasets.items() if p in sizes),
        reverse=True,
    )
    largest = next((p for _, p in by_size if len(datasets[p].summary.get("tokens", {})) > 1), None)
    if largest is not None and largest != reference:
        effects = datasets[largest].tables.get("effects", pl.DataFrame())
        ari = effects.filter(pl.col("metric") == "ari") if effects.height else effects
        statements += [_statement(f"At `{largest}`: {r['a']}", r["b"], r) for r in ari.iter_rows(named=True)]
    figure = (
        plots.learning_curves(series, STABLE_FLOOR, "floor ARI (two independent samples)", "Replicate floor vs tokens per sample")
        if series
        else None
    )
    note = (
        f"The floor is the agreement of independent samples of one corpus; a clustering is called stable when the whole "
        f"95% interval of its floor ARI is at least {STABLE_FLOOR}. Points `{'`, `'.join(sizes)}` differ only in the sample size."
    )
    b.block(
        CURVE_HEADING,
        ("learning_curve", "learning curve"),
        figure,
        statements,
        pl.DataFrame(rows),
        note,
        "_No sample size has two replicates yet._",
    )


def _preprocessing(b: _Builder, sweeps: Mapping[str, Tables], reference: str, points: Mapping[str, SweepPoint]) -> None:
    """Q1: each preprocessing or prompt point against the reference, and the replicate floor."""
    ref = points[reference]
    changed = [
        n
        for n, p in points.items()
        if n != reference
        and p.density_baseline is None
        and p.changes_from(ref)
        and all(k.split(".")[0] in ("memberships", "prompts") for k in p.changes_from(ref))
    ]
    effects = _sweep_effects(sweeps, changed)
    rows = list(effects.iter_rows(named=True)) if effects.height else []
    figure = (
        plots.effect_vs_floor(
            effect_plot_rows(effects, lambda r: f"{r['a']} ({r['dataset']})"),
            f"ARI vs `{reference}`",
            "Each preprocessing / prompt point vs the reference, against the replicate floor",
        )
        if rows
        else None
    )
    b.section(0, figure, [_statement(f"`{r['a']}` ({r['dataset']})", f"`{reference}`", r) for r in rows])


def _baselines(
    b: _Builder,
    sweeps: Mapping[str, Tables],
    reference: str,
    points: Mapping[str, SweepPoint],
    gains: Gains,
    ground_truth: pl.DataFrame | None = None,
) -> None:
    """Q2 and Q3: the density baseline, scored by held-out description length and against a planted structure."""
    baselines = {n: c for n, p in points.items() if (c := p.density_baseline) is not None}
    base_points = list(baselines)
    umap_points = [n for n, c in baselines.items() if c.umap]
    raw_points = [n for n, c in baselines.items() if not c.umap]
    q2 = []
    for dataset in sweeps:
        for u in umap_points:
            for r in raw_points:
                if (u, dataset) in gains and (r, dataset) in gains:
                    gu, gr = gains[(u, dataset)][0], gains[(r, dataset)][0]
                    q2.append(
                        f"{dataset}: with UMAP (`{u}`) the clustering {_saves(gu, 'the held-out description length of every feature alone')}; "
                        f"without (`{r}`) it {_saves(gr)} — {_compare(gu, gr, (u, r), 'UMAP helps', 'UMAP hurts')}."
                    )
    shown = [*base_points, reference]
    b.section(
        1,
        _gain_figure(gains, shown, "Held-out MDL saved vs every feature alone: baselines and the MDL merge", 0),
        q2,
        note="Held-out description length: a clustering found on one sample, scored by the MDL (bits per sample, same "
        "alpha) on a disjoint sample of the same dataset; noise features count as singletons.",
    )
    q3 = []
    for dataset, t in sweeps.items():
        scored = [n for n in base_points if (n, dataset) in gains and gains[(n, dataset)][1].known]
        if not scored:
            continue
        best = max(scored, key=lambda n: gains[(n, dataset)][1].lower)
        noise = _points_value(t, best, "noise_fraction")
        line = f"{dataset}: the best baseline is `{best}` ({_pct(gains[(best, dataset)][1])} saved vs a random partition of the same sizes"
        line += f", noise {noise:.0%})" if noise is not None else ")"
        merge = gains.get((reference, dataset))
        if merge is not None:
            line += f"; the MDL merge `{reference}` saves {_pct(merge[1])} — " + _compare(
                merge[1],
                gains[(best, dataset)][1],
                (reference, best),
                "the MDL merge describes held-out data better",
                "the baseline describes held-out data better",
            )
        q3.append(line + ".")
    table = pl.DataFrame(
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
            if p in shown
        ]
    )
    q3 += _ground_truth_statements(ground_truth, reference)
    b.section(2, _gain_figure(gains, shown, "Held-out MDL saved vs a random partition of the same sizes", 1), q3, table)
    if ground_truth is not None and ground_truth.height:
        b.lines += [
            "Ground truth (sae-lens' synthetic activations with planted co-firing groups, hierarchies and frequent "
            "features; ARI against the plant, noise counted as singletons):",
            "",
            markdown_table(ground_truth.select("point", "method", "samples", "ari", "jaccard", "clusters", "noise"), width=40),
            "",
        ]


def _datasets(b: _Builder, ref_cmp: Tables | None, reference: str, gains: Gains) -> None:
    """Q4: across datasets at the reference point, and how each dataset's clusters transfer."""
    tables = ref_cmp.tables if ref_cmp is not None else {}
    effects = tables.get("effects", pl.DataFrame())
    ari = effects.filter(pl.col("metric") == "ari") if effects.height else effects
    q4 = [_statement(r["a"], r["b"], r) for r in ari.iter_rows(named=True)]
    transfer = tables.get("transfer", pl.DataFrame())
    for r in transfer.iter_rows(named=True):
        own = gains.get((r["point"], r["clustered_on"]), (UNKNOWN,))[0]
        moved = Estimate(r["gain_vs_singletons"], None, None, 1)
        q4.append(
            f"clusters of {r['clustered_on']} on {r['measured_on']}: {_saves(moved, 'its description length with every feature alone')}, "
            f"vs {_pct(own)} saved on a held-out sample of {r['clustered_on']} — "
            + _compare(
                moved,
                own,
                (f"{r['clustered_on']} on {r['measured_on']}", f"{r['clustered_on']} held out"),
                "transfer fully",
                "partly dataset-specific",
            )
            + "."
        )
    figure = (
        plots.effect_vs_floor(effect_plot_rows(ari), "ARI", f"ARI between datasets at `{reference}` vs replicate floors")
        if ari.height
        else None
    )
    b.section(3, figure, q4)


def _in_common(b: _Builder, datasets: Mapping[str, Tables], reference: str) -> None:
    """Q5: what stable and dataset-specific clusters fire on, and whether their number stands out of noise."""
    q5, shares = [], {}
    for point, t in datasets.items():
        if point == reference:
            for name, frame in (
                ("stable", t.tables.get("stable", pl.DataFrame())),
                ("dataset-specific", t.tables.get("specific", pl.DataFrame())),
            ):
                if frame.height and "class" in frame.columns:
                    shares[name] = {c: float(np.mean(frame["class"].to_numpy() == c)) for c in CLASSES}
                    kinds = frame["kind"].value_counts().sort("count", descending=True) if "kind" in frame.columns else pl.DataFrame()
                    top_class = max(shares[name], key=lambda c: shares[name][c])
                    kind_text = f"; {kinds.row(0)[1]} of {frame.height} are {kinds.row(0)[0]}" if kinds.height else ""
                    q5.append(
                        f"At `{point}`, {_count(frame.height, name + ' cluster')}: mostly {top_class} tokens ({shares[name][top_class]:.0%}){kind_text}."
                    )
            effects = t.tables.get("effects", pl.DataFrame())
            stable = effects.filter(pl.col("metric") == "stable") if effects.height else effects
            q5 += [
                _statement(f"`{point}`: {r['a']}", r["b"], r, "fraction of clusters matched (Jaccard >= 0.5)")
                for r in stable.iter_rows(named=True)
            ]
        if t.summary.get("available"):
            q5.append(
                f"`{point}`: {_count(t.summary.get('stable', 0), 'cluster')} of {t.summary['available'][0]} matched in every other dataset."
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
    stable_table = datasets[reference].tables.get("stable") if reference in datasets else None
    b.section(
        4,
        figure,
        q5,
        stable_table.drop([c for c in stable_table.columns if c.startswith("top_prompt")]).head(15) if stable_table is not None else None,
        note="Stable clusters with their top tokens per dataset side by side (top prompts are in "
        "`dataset_comparison/<hash>/stable.parquet`); each cluster's activity on every dataset is in `activity.parquet`.",
    )
