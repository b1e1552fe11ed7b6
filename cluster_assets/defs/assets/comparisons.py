"""Bodies of the comparisons and the report: they read whatever ``clusters`` partitions exist
(every replicate of every point) and list the missing ones."""

from __future__ import annotations

import numpy as np
import polars as pl

from cluster_assets.config import SweepPoint
from cluster_assets.core.analysis import cluster_activity
from cluster_assets.core.heldout import heldout_score
from cluster_assets.core.memberships import activity_of
from cluster_assets.defs.stages import STAGES, Lineage, Output, StageContext
from cluster_assets.reporting import plots
from cluster_assets.reporting.comparisons import METRIC_NAMES, PartitionClustering, compare_datasets, compare_points
from cluster_assets.storage import Artifact


def partition_clustering(ctx: StageContext, lineage: Lineage) -> PartitionClustering:
    """The comparison record of one existing ``clusters`` partition."""
    clusters, manifest = ctx.read("clusters", lineage), lineage.artifact("clusters").manifest()["summary"]
    point = lineage.point
    changes = point.changes_from(ctx.project.reference)
    return PartitionClustering(
        lineage.dataset.name,
        point.point,
        point.replicate,
        point.name,
        lineage.artifact("clusters").hash,
        lineage.artifact("memberships").hash,
        manifest["method"],
        clusters.labels["feature_id"].to_numpy(),
        clusters.labels["cluster"].to_numpy(),
        manifest["k"],
        manifest.get("noise_features", 0),
        manifest.get("mdl_at_cut"),
        int(clusters.labels.height),
        clusters.clusters,
        clusters.top_prompts,
        clusters.extra.get("descriptions"),
        {k: v for k, v in changes.items() if not k.startswith("merge.seed") and not k.startswith("baseline.seed")},
        lineage.artifact("activations").manifest()["summary"]["tokens"],
    )


def inputs_of(ctx: StageContext, pairs: list[tuple[str, SweepPoint]]) -> tuple[list[Lineage], list[str]]:
    """The lineages of the given (dataset, partition) pairs that have clusters, and the missing ones."""
    lineages = [ctx.lineage_of(d, p.name) for d, p in pairs]
    have = [lin for lin in lineages if lin.artifact("clusters").exists]
    return have, [f"{lin.dataset.name}|{lin.point.name}" for lin in lineages if not lin.artifact("clusters").exists]


def comparison_artifact(ctx: StageContext, have: list[Lineage]) -> Artifact:
    """Content address of a comparison: its stage, key and the clusters artifacts it reads."""
    return ctx.store.artifact(
        ctx.stage.name, f"format-v{ctx.stage.format.version}", ctx.key, sorted(lin.artifact("clusters").hash for lin in have)
    )


def _by(records: list[PartitionClustering], attr: str) -> dict[str, list[PartitionClustering]]:
    out: dict[str, list[PartitionClustering]] = {}
    for r in sorted(records, key=lambda r: r.replicate):
        out.setdefault(getattr(r, attr), []).append(r)
    return out


def dataset_comparison(ctx: StageContext, have: list[Lineage], missing: list[str]) -> Output:
    records = [partition_clustering(ctx, lin) for lin in have]
    firsts = {lin.dataset.name: lin for lin in have if lin.point.replicate == 0}
    activity = []  # each dataset's clusters, active on every dataset's sample (replicate 1)
    for name, lin in firsts.items():
        rec = next(r for r in records if r.dataset == name and r.replicate == 0)
        for other, olin in firsts.items():
            acts = ctx.read("activations", olin)
            rates = cluster_activity(acts.values, rec.feature_ids, rec.labels, lin.point.memberships.threshold) / max(
                acts.values.shape[0], 1
            )
            activity += [{"clustered_on": name, "cluster": c, "measured_on": other, "firing_rate": float(v)} for c, v in enumerate(rates)]
    tables = compare_datasets(ctx.key, _by(records, "dataset"), missing, pl.DataFrame(activity) if activity else None)
    effects = tables.tables["effects"]
    summary = {k: v for k, v in tables.summary.items() if k != "missing"} | {"missing_partitions": len(missing)}
    figures = {}
    names = tables.summary["available"]
    if len(names) >= 2:
        ari = effects.filter(pl.col("metric") == "ari")
        matrix = np.eye(len(names))
        for a, b, v in ari.select("a", "b", "value").iter_rows():
            matrix[names.index(a), names.index(b)] = matrix[names.index(b), names.index(a)] = v
        floors = tables.tables["floors"].filter(pl.col("metric") == "ari")
        for name, v in floors.select("condition", "value").iter_rows():
            matrix[names.index(name), names.index(name)] = v if v is not None else np.nan
        figures["ari_heatmap"] = plots.labelled_heatmap(
            matrix, names, f"ARI between datasets at {ctx.key} (diagonal: replicate floor)", "ARI"
        )
        figures["ari_vs_floor"] = plots.effect_vs_floor(
            _floor_rows(ari, "ari"), "ARI", f"ARI between datasets vs replicate floors ({ctx.key})"
        )
    return Output(
        tables, summary, markdown={"effects": _effects_markdown(effects), "missing": ", ".join(missing) or "none"}, figures=figures
    )


def _floor_rows(effects: pl.DataFrame, metric: str) -> list[dict]:
    rows = []
    for r in effects.filter(pl.col("metric") == metric).iter_rows(named=True):
        floor = [
            f
            for f in ((r["floor_a"], r["floor_a_low"], r["floor_a_high"]), (r["floor_b"], r["floor_b_low"], r["floor_b_high"]))
            if f[0] is not None
        ]
        low_floor = min(floor, key=lambda f: f[0]) if floor else None
        rows.append(
            {
                "label": f"{r['a']} ~ {r['b']}",
                "value": r["value"],
                "low": r["value_low"] if r["value_low"] is not None else r["value"],
                "high": r["value_high"] if r["value_high"] is not None else r["value"],
                **(
                    {
                        "floor": low_floor[0],
                        "floor_low": low_floor[1] if low_floor[1] is not None else low_floor[0],
                        "floor_high": low_floor[2] if low_floor[2] is not None else low_floor[0],
                    }
                    if low_floor
                    else {}
                ),
            }
        )
    return rows


def _fmt(v, lo, hi) -> str:
    if v is None:
        return "unknown"
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")


def _effects_markdown(effects: pl.DataFrame) -> str:
    if not effects.height:
        return "_nothing to compare yet_"
    lines = ["| a | b | metric | between | floor a | floor b | verdict |", "|---|---|---|---|---|---|---|"]
    for r in effects.iter_rows(named=True):
        lines.append(
            f"| {r['a']} | {r['b']} | {METRIC_NAMES[r['metric']]} | {_fmt(r['value'], r['value_low'], r['value_high'])} | "
            f"{_fmt(r['floor_a'], r['floor_a_low'], r['floor_a_high'])} | {_fmt(r['floor_b'], r['floor_b_low'], r['floor_b_high'])} | {r['verdict']} |"
        )
    return "\n".join(lines)


def heldout_rows(ctx: StageContext, have: list[Lineage], records: list[PartitionClustering]) -> list[dict]:
    """Each clustering scored on a held-out sample of its dataset (a reference-point replicate
    with none of its prompts) and, for the reference point, on every other dataset (transfer)."""
    reference = ctx.project.reference.point
    dataset = ctx.key
    pool = [ctx.lineage_of(dataset, p.name) for p in ctx.project.replicates_of(reference)]
    pool = [lin for lin in pool if lin.artifact("activations").exists]
    prompt_ids = {}

    def prompts_of(lin: Lineage) -> set[int]:
        if lin.point.name not in prompt_ids:
            prompt_ids[lin.point.name] = set(ctx.read("prompts", lin)["prompt_id"].to_list())
        return prompt_ids[lin.point.name]

    rows = []
    for lin, rec in zip(have, records):
        targets = [(t, "same dataset") for t in pool if t.point.name != lin.point.name and not (prompts_of(t) & prompts_of(lin))][:1]
        if rec.point == reference and rec.replicate == 0:
            targets += [(ctx.lineage_of(e.name, lin.point.name), "transfer") for e in ctx.project.datasets if e.name != dataset]
        for target, kind in targets:
            if not target.artifact("activations").exists:
                continue
            acts = ctx.read("activations", target)
            activity, _ = activity_of(acts.values, acts.token_prompt, rec.feature_ids, lin.point.memberships)
            score = heldout_score(activity, rec.labels, lin.point.merge.alpha)
            rows.append(
                {
                    "point": rec.point,
                    "replicate": rec.replicate + 1,
                    "method": rec.method,
                    "measured_on": target.dataset.name,
                    "sample": target.point.name,
                    "kind": kind,
                    "mdl": score.mdl,
                    "singletons": score.singletons,
                    "random": score.random,
                    "gain_vs_singletons": score.gain_vs_singletons,
                    "gain_vs_random": score.gain_vs_random,
                    "samples": score.samples,
                }
            )
    return rows


def sweep_comparison(ctx: StageContext, have: list[Lineage], missing: list[str]) -> Output:
    records = [partition_clustering(ctx, lin) for lin in have]
    heldout = heldout_rows(ctx, have, records)
    tables = compare_points(
        ctx.key, ctx.project.reference.point, _by(records, "point"), missing, pl.DataFrame(heldout) if heldout else None
    )
    summary = {k: v for k, v in tables.summary.items() if k != "missing"} | {"missing_partitions": len(missing)}
    figures = {}
    same = pl.DataFrame(heldout).filter(pl.col("kind") == "same dataset") if heldout else pl.DataFrame()
    if same.height:
        by_point = same.group_by("point", maintain_order=True).agg(pl.col("gain_vs_singletons").mean(), pl.col("gain_vs_random").mean())
        figures["heldout_gain"] = plots.grouped_bars(
            by_point["point"].to_list(),
            {
                "vs every feature alone": by_point["gain_vs_singletons"].to_list(),
                "vs random partition, same sizes": by_point["gain_vs_random"].to_list(),
            },
            "held-out description length saved",
            f"Held-out MDL gain per sweep point ({ctx.key})",
        )
    effects = tables.tables["effects"]
    if effects.height:
        figures["ari_vs_floor"] = plots.effect_vs_floor(
            _floor_rows(effects, "ari"),
            f"ARI vs {ctx.project.reference.point}",
            f"Each sweep point vs the reference, against replicate floors ({ctx.key})",
        )
    points = tables.tables["points"].select("point", "changes", "method", "replicates", "kept", "k", "noise_fraction")
    return Output(
        tables,
        summary,
        markdown={"points": _table_md(points), "effects": _effects_markdown(effects), "missing": ", ".join(missing) or "none"},
        figures=figures,
    )


def _table_md(frame: pl.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"

    def cell(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v).replace("|", "/")

    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in frame.iter_rows())


def research_report(ctx: StageContext, comparisons: dict[str, dict[str, Artifact]]) -> Output:
    from cluster_assets.reporting.report import build_report

    loaded = {stage: {key: STAGES[stage].format.load(art.path) for key, art in arts.items()} for stage, arts in comparisons.items()}
    document = build_report(loaded.get("dataset_comparison", {}), loaded.get("sweep_comparison", {}), ctx.project)
    return Output(document, {"sections": document.markdown.count("\n## ")}, markdown={"report": document.inline()})
