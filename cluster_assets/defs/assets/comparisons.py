"""Bodies of the comparisons and the report: they read whatever ``clusters`` partitions exist
(every replicate of every point) and list the missing ones."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from cluster_assets.core.analysis import cluster_activity
from cluster_assets.core.heldout import heldout_score
from cluster_assets.core.memberships import activity_of
from cluster_assets.defs.stages import Lineage, Output, StageContext
from cluster_assets.reporting.comparisons import PartitionClustering, compare_datasets, compare_points
from cluster_assets.reporting.summaries import dataset_comparison_summary, sweep_comparison_summary
from cluster_assets.storage import Artifact
from cluster_assets.storage.formats import Activations


def partition_clustering(ctx: StageContext, lineage: Lineage) -> PartitionClustering:
    """The comparison record of one existing ``clusters`` partition."""
    clusters, manifest = ctx.read("clusters", lineage), lineage.artifact("clusters").manifest()["summary"]
    tokens = ctx.require(lineage.artifact("activations"), ctx.describe("activations", lineage)).manifest()["summary"]["tokens"]
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
        tokens,
    )


@dataclass(frozen=True)
class ComparisonInputs:
    """What a comparison reads: the ``clusters`` partitions that exist (and the names of those
    that do not), and for a sweep comparison the held-out pool (the reference point's
    replicates of the dataset that have activations)."""

    have: list[Lineage]
    missing: list[str]
    pool: list[Lineage] = field(default_factory=list)


def gather(ctx: StageContext, stage: str, key: str) -> ComparisonInputs:
    """The inputs of ``stage`` (``dataset_comparison`` or ``sweep_comparison``) for ``key``."""
    project = ctx.project
    if stage == "dataset_comparison":
        pairs = [(d.name, p.name) for d in project.datasets for p in project.replicates_of(key)]
        pool = []
    else:
        pairs = [(key, p.name) for p in project.sweep.values()]
        pool = [ctx.lineage_of(key, p.name) for p in project.replicates_of(project.reference.point)]
    lineages = [ctx.lineage_of(d, p) for d, p in pairs]
    have = [lin for lin in lineages if lin.artifact("clusters").exists]
    missing = [f"{lin.dataset.name}|{lin.point.name}" for lin in lineages if not lin.artifact("clusters").exists]
    return ComparisonInputs(have, missing, [lin for lin in pool if lin.artifact("activations").exists])


def address_parts(ctx: StageContext, stage: str, key: str, inputs: ComparisonInputs) -> list:
    """Everything a comparison's output depends on: each clusters partition by name and content
    (which covers its samples and parameters), and for a sweep comparison the reference point's
    parameters and the held-out samples."""
    parts: list = [
        *ctx.stages[stage].versions(),
        key,
        sorted((lin.dataset.name, lin.point.name, lin.artifact("clusters").hash) for lin in inputs.have),
    ]
    if stage == "sweep_comparison":
        parts += [
            ctx.project.reference.model_dump(mode="json"),
            sorted((lin.point.name, lin.artifact("prompts").hash, lin.artifact("activations").hash) for lin in inputs.pool),
        ]
    return parts


def _by(records: list[PartitionClustering], attr: str) -> dict[str, list[PartitionClustering]]:
    out: dict[str, list[PartitionClustering]] = {}
    for r in sorted(records, key=lambda r: r.replicate):
        out.setdefault(getattr(r, attr), []).append(r)
    return out


def cross_dataset_rows(ctx: StageContext, firsts: dict[str, tuple[Lineage, PartitionClustering]]) -> tuple[list[dict], list[dict]]:
    """Each dataset's clusters measured on every dataset's first sample: firing rates
    (``activity``), and description length on the other datasets (``transfer``)."""
    activity, transfer = [], []
    for name, (lin, rec) in firsts.items():
        for other, (olin, _) in firsts.items():
            acts = ctx.read("activations", olin)
            counts = cluster_activity(acts.values, rec.feature_ids, rec.labels, lin.point.memberships.threshold)
            rates = counts / max(acts.values.shape[0], 1)
            activity += [{"clustered_on": name, "cluster": c, "measured_on": other, "firing_rate": float(v)} for c, v in enumerate(rates)]
            if other != name:
                transfer.append(score_row(rec, lin, olin, acts, "transfer"))
    return activity, transfer


def dataset_comparison(ctx: StageContext, inputs: ComparisonInputs) -> Output:
    records = [partition_clustering(ctx, lin) for lin in inputs.have]
    firsts = {lin.dataset.name: (lin, rec) for lin, rec in zip(inputs.have, records) if lin.point.replicate == 0}
    activity, transfer = cross_dataset_rows(ctx, firsts)
    tables = compare_datasets(ctx.key, _by(records, "dataset"), inputs.missing, pl.DataFrame(activity) if activity else None)
    if transfer:
        tables.tables["transfer"] = pl.DataFrame(transfer)
    return Output(tables, **dataset_comparison_summary(tables, inputs.missing))


def score_row(rec: PartitionClustering, lin: Lineage, target: Lineage, acts: Activations, kind: str) -> dict:
    """A clustering scored by its description length on another sample (``acts``, of ``target``)."""
    activity, _ = activity_of(acts.values, acts.token_prompt, rec.feature_ids, lin.point.memberships)
    score = heldout_score(activity, rec.labels, lin.point.merge.alpha)
    return {
        "point": rec.point,
        "replicate": rec.replicate + 1,
        "method": rec.method,
        "clustered_on": rec.dataset,
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


def heldout_rows(ctx: StageContext, inputs: ComparisonInputs, records: list[PartitionClustering]) -> list[dict]:
    """Each clustering scored on a held-out sample of its dataset: the first replicate of the
    reference point that shares none of its prompts."""
    prompt_ids: dict[str, set[int]] = {}

    def prompts_of(lin: Lineage) -> set[int]:
        if lin.point.name not in prompt_ids:
            prompt_ids[lin.point.name] = set(ctx.read("prompts", lin)["prompt_id"].to_list())
        return prompt_ids[lin.point.name]

    rows = []
    for lin, rec in zip(inputs.have, records):
        target = next((t for t in inputs.pool if t.point.name != lin.point.name and not (prompts_of(t) & prompts_of(lin))), None)
        if target is not None:
            rows.append(score_row(rec, lin, target, ctx.read("activations", target), "same dataset"))
    return rows


def sweep_comparison(ctx: StageContext, inputs: ComparisonInputs) -> Output:
    records = [partition_clustering(ctx, lin) for lin in inputs.have]
    heldout = heldout_rows(ctx, inputs, records)
    reference = ctx.project.reference.point
    tables = compare_points(ctx.key, reference, _by(records, "point"), inputs.missing, pl.DataFrame(heldout) if heldout else None)
    return Output(tables, **sweep_comparison_summary(tables, inputs.missing))


def research_report(ctx: StageContext, comparisons: dict[str, dict[str, Artifact]]) -> Output:
    from cluster_assets.reporting.report import build_report, headlines

    loaded = {stage: {key: ctx.stages[stage].format.load(art.path) for key, art in arts.items()} for stage, arts in comparisons.items()}
    project = ctx.project
    points = {p.point: p for p in project.sweep.values() if p.replicate == 0}
    document = build_report(loaded.get("dataset_comparison", {}), loaded.get("sweep_comparison", {}), project.reference.point, points)
    summary = {"sections": document.markdown.count("\n## "), **headlines(document.markdown)}
    return Output(document, summary, markdown={"report": document.inline()})
