"""The comparison tables: clusterings across datasets (one sweep point) and across sweep points
(one dataset), every between-condition number beside its replicate floor.

Inputs are typed records of the ``clusters`` partitions that exist (a point's replicates are
several records); outputs are polars tables and a JSON summary (:class:`Tables`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from cluster_assets.config import SweepPoint
from cluster_assets.core.analysis import cluster_activity
from cluster_assets.core.comparison import best_matches, pair_metrics, stable_clusters
from cluster_assets.core.heldout import heldout_score
from cluster_assets.core.memberships import activity_of
from cluster_assets.core.replicates import Estimate, between, verdict, within
from cluster_assets.reporting.text import highlight, markdown_table
from cluster_assets.storage.formats import Clusters, SampleActivations, Tables

#: (dataset, hparams partition) -> that sample's activations, or its prompt ids
ActivationsOf = Callable[[str, str], SampleActivations]
PromptIdsOf = Callable[[str, str], set[int]]

#: The agreement statistics compared against their floors (higher = more alike).
METRICS = ("ari", "nmi", "jaccard", "stable")
METRIC_NAMES = {"ari": "ARI", "nmi": "NMI", "jaccard": "best-match Jaccard", "stable": "stable clusters (fraction)"}


@dataclass(frozen=True)
class PartitionClustering:
    """One ``clusters`` partition as the comparisons see it."""

    dataset: str
    point: str  # the sweep point (its replicates share it)
    replicate: int  # 0-based
    partition: str  # the hparams partition key
    artifact: str  # clusters artifact hash
    memberships: str  # memberships artifact hash (same hash: same samples and features)
    method: str
    feature_ids: np.ndarray
    labels: np.ndarray
    k: int
    noise: int
    mdl_at_cut: float | None
    kept: int
    clusters: pl.DataFrame
    top_prompts: pl.DataFrame
    descriptions: pl.DataFrame | None = None
    changes: dict = field(default_factory=dict)  # section.field -> value where the point differs from the reference
    tokens: int = 0  # tokens of the sample it was clustered on
    settings: SweepPoint | None = None  # the partition's sweep point (how its samples are scored)
    alpha: float = 1.0  # the alpha its held-out description length is scored with

    def describe(self, cluster: int) -> dict:
        """kind (single-token / contextual) and dominant token class of a cluster."""
        if self.descriptions is None:
            return {}
        rows = self.descriptions.filter(pl.col("cluster") == cluster)
        if not rows.height:
            return {}
        shares = {c[len("share_") :]: rows[c][0] for c in rows.columns if c.startswith("share_")}
        return {"kind": rows["kind"][0], "class": max(shares, key=lambda c: shares[c])}

    def top_prompt(self, cluster: int, width: int = 160) -> str:
        rows = self.top_prompts.filter(pl.col("cluster") == cluster)
        return highlight(rows["text"][0], rows["span_starts"][0], rows["span_ends"][0], "markdown", width) if rows.height else ""

    def top_tokens(self, cluster: int, n: int = 6) -> str:
        if self.descriptions is None:
            return ""
        rows = self.descriptions.filter(pl.col("cluster") == cluster)
        if not rows.height:
            return ""
        return ", ".join(f"{t!r} {c}" for t, c in list(zip(rows["top_tokens"][0], rows["top_counts"][0]))[:n])


def partition_record(
    dataset: str, point: SweepPoint, reference: SweepPoint, artifact: str, memberships: str, clusters: Clusters
) -> PartitionClustering:
    """The comparison record of one ``clusters`` partition, from its stored record's typed fields.

    artifact, memberships: the hashes of its clusters and memberships artifacts."""
    cut = clusters.cut
    changes = {k: v for k, v in point.changes_from(reference).items() if k != "clustering.seed"}
    return PartitionClustering(
        dataset,
        point.point,
        point.replicate,
        point.name,
        artifact,
        memberships,
        cut.method,
        clusters.labels["feature_id"].to_numpy(),
        clusters.labels["cluster"].to_numpy(),
        cut.k,
        cut.noise,
        cut.mdl_at_cut,
        int(clusters.labels.height),
        clusters.clusters,
        clusters.top_prompts,
        clusters.extra.get("descriptions"),
        changes,
        cut.tokens,
        point,
        point.scoring_alpha(reference),
    )


def by(records: Sequence[PartitionClustering], attr: str) -> dict[str, list[PartitionClustering]]:
    """Records grouped by ``attr`` (``dataset`` or ``point``), replicates in order."""
    out: dict[str, list[PartitionClustering]] = {}
    for r in sorted(records, key=lambda r: r.replicate):
        out.setdefault(getattr(r, attr), []).append(r)
    return out


def score_row(rec: PartitionClustering, measured_on: str, sample: str, acts: SampleActivations, kind: str) -> dict:
    """A clustering scored by its description length on another sample (``acts``: ``sample`` of ``measured_on``)."""
    settings = _settings(rec)
    activity, _ = activity_of(acts.blocks(), acts.token_prompt, rec.feature_ids, settings.memberships)
    score = heldout_score(activity, rec.labels, rec.alpha)
    return {
        "point": rec.point,
        "replicate": rec.replicate + 1,
        "method": rec.method,
        "clustered_on": rec.dataset,
        "measured_on": measured_on,
        "sample": sample,
        "kind": kind,
        "mdl": score.mdl,
        "singletons": score.singletons,
        "random": score.random,
        "gain_vs_singletons": score.gain_vs_singletons,
        "gain_vs_random": score.gain_vs_random,
        "samples": score.samples,
    }


def _settings(rec: PartitionClustering) -> SweepPoint:
    if rec.settings is None:
        raise ValueError(f"record {rec.dataset}|{rec.partition} carries no sweep point to score it with")
    return rec.settings


def cross_dataset_rows(firsts: dict[str, PartitionClustering], activations_of: ActivationsOf) -> tuple[list[dict], list[dict]]:
    """Each dataset's clusters (its first sample's) measured on every dataset's first sample:
    firing rates (``activity``), and description length on the other datasets (``transfer``)."""
    activity, transfer = [], []
    for name, rec in firsts.items():
        for other, orec in firsts.items():
            acts = activations_of(other, orec.partition)
            counts = cluster_activity(acts.blocks(), rec.feature_ids, rec.labels, _settings(rec).memberships.threshold)
            rates = counts / max(acts.n_tokens, 1)
            activity += [{"clustered_on": name, "cluster": c, "measured_on": other, "firing_rate": float(v)} for c, v in enumerate(rates)]
            if other != name:
                transfer.append(score_row(rec, other, orec.partition, acts, "transfer"))
    return activity, transfer


def heldout_rows(
    records: Sequence[PartitionClustering], pool: Sequence[str], prompt_ids_of: PromptIdsOf, activations_of: ActivationsOf
) -> list[dict]:
    """Each clustering scored on a held-out sample of its dataset: the first partition of
    ``pool`` (the reference point's replicates, then its other sizes') that shares none of its prompts."""
    rows = []
    for rec in records:
        mine = prompt_ids_of(rec.dataset, rec.partition)
        target = next((t for t in pool if t != rec.partition and not (prompt_ids_of(rec.dataset, t) & mine)), None)
        if target is not None:
            rows.append(score_row(rec, rec.dataset, target, activations_of(rec.dataset, target), "same dataset"))
    return rows


def dataset_comparison_tables(
    point: str, records: Sequence[PartitionClustering], missing: list[str], activations_of: ActivationsOf
) -> Tables:
    """:func:`compare_datasets`, with each dataset's clusters measured on the other datasets."""
    firsts = {r.dataset: r for r in records if r.replicate == 0}
    activity, transfer = cross_dataset_rows(firsts, activations_of)
    tables = compare_datasets(point, by(records, "dataset"), missing, pl.DataFrame(activity) if activity else None)
    if transfer:
        tables.tables["transfer"] = pl.DataFrame(transfer)
    return tables


def sweep_comparison_tables(
    dataset: str,
    reference: str,
    records: Sequence[PartitionClustering],
    missing: list[str],
    pool: Sequence[str],
    prompt_ids_of: PromptIdsOf,
    activations_of: ActivationsOf,
) -> Tables:
    """:func:`compare_points`, with each clustering scored on a held-out sample of the dataset."""
    heldout = heldout_rows(records, pool, prompt_ids_of, activations_of)
    return compare_points(dataset, reference, by(records, "point"), missing, pl.DataFrame(heldout) if heldout else None)


def _metrics(a: PartitionClustering, b: PartitionClustering) -> dict[str, float]:
    return pair_metrics(a.feature_ids, a.labels, b.feature_ids, b.labels)


def floor_of(replicates: Sequence[PartitionClustering]) -> dict[str, Estimate]:
    """Each metric between the replicates of one condition (its noise floor)."""
    values = {(i, j): _metrics(replicates[i], replicates[j]) for i in range(len(replicates)) for j in range(i + 1, len(replicates))}
    return {m: within({p: v[m] for p, v in values.items() if np.isfinite(v[m])}, len(replicates)) for m in METRICS}


def floor_on(replicates: Sequence[PartitionClustering], other: Sequence[PartitionClustering]) -> dict[str, Estimate]:
    """The floor of ``replicates`` on the features ``other`` kept (any of its replicates): a point
    that filters features differently (an entropy filter) is compared with the reference on those,
    so the reference's noise is measured on the same subset."""
    kept = np.unique(np.concatenate([r.feature_ids for r in other]))

    def on_kept(rec: PartitionClustering) -> PartitionClustering:
        keep = np.isin(rec.feature_ids, kept)
        return replace(rec, feature_ids=rec.feature_ids[keep], labels=rec.labels[keep])

    return floor_of([on_kept(r) for r in replicates])


def effect_of(a: Sequence[PartitionClustering], b: Sequence[PartitionClustering]) -> dict[str, Estimate]:
    """Each metric between the replicates of two conditions."""
    values = {(i, j): _metrics(a[i], b[j]) for i in range(len(a)) for j in range(len(b))}
    return {m: between({p: v[m] for p, v in values.items() if np.isfinite(v[m])}, len(a), len(b)) for m in METRICS}


def _estimate_columns(prefix: str, e: Estimate) -> dict[str, float | int | None]:
    return {prefix: e.value, f"{prefix}_low": e.low, f"{prefix}_high": e.high}


def effect_rows(
    label_a: str, label_b: str, effect: dict[str, Estimate], floor_a: dict[str, Estimate], floor_b: dict[str, Estimate]
) -> list[dict]:
    rows = []
    for m in METRICS:
        rows.append(
            {
                "a": label_a,
                "b": label_b,
                "metric": m,
                **_estimate_columns("value", effect[m]),
                "pairs": effect[m].pairs,
                **_estimate_columns("floor_a", floor_a[m]),
                **_estimate_columns("floor_b", floor_b[m]),
                "verdict": verdict(effect[m], [floor_a[m], floor_b[m]]),
            }
        )
    return rows


def floor_rows(name: str, replicates: int, floor: dict[str, Estimate]) -> list[dict]:
    return [
        {"condition": name, "replicates": replicates, "metric": m, **_estimate_columns("value", e), "pairs": e.pairs}
        for m, e in floor.items()
    ]


def _frame(rows: list[dict], schema: dict | None = None) -> pl.DataFrame:
    return pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None) if rows else pl.DataFrame(schema=schema or {})


ESTIMATE_SCHEMA = {
    c: pl.Float64
    for c in ("value", "value_low", "value_high", "floor_a", "floor_a_low", "floor_a_high", "floor_b", "floor_b_low", "floor_b_high")
}


def compare_datasets(
    point: str,
    parts: dict[str, list[PartitionClustering]],
    missing: list[str],
    activity: pl.DataFrame | None = None,
    min_jaccard: float = 0.5,
) -> Tables:
    """Across the datasets of one sweep point: effects against floors, matches, stable and specific clusters."""
    names = [n for n, reps in parts.items() if reps]
    floors = {n: floor_of(parts[n]) for n in names}
    effects, floor_table, match_rows, stable_rows, specific_rows = [], [], [], [], []
    for n in names:
        floor_table += floor_rows(n, len(parts[n]), floors[n])
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            effects += effect_rows(a, b, effect_of(parts[a], parts[b]), floors[a], floors[b])
    first = {n: parts[n][0] for n in names}
    best: dict[tuple[str, int], float] = {}
    for a in names:
        for b in names:
            if a == b:
                continue
            m = best_matches(first[a].feature_ids, first[a].labels, first[b].feature_ids, first[b].labels)
            sizes = dict(zip(*np.unique(first[a].labels, return_counts=True)))
            for c, other, jac in zip(m.cluster.tolist(), m.best.tolist(), m.jaccard.tolist()):
                match_rows.append({"name": a, "cluster": c, "size": int(sizes[c]), "other": b, "best": other, "jaccard": jac})
                best[(a, c)] = max(best.get((a, c), 0.0), jac)
    if len(names) >= 2:
        ref = names[0]
        stable = stable_clusters(ref, {n: (first[n].feature_ids, first[n].labels) for n in names}, min_jaccard, min_size=2)
        sizes = dict(zip(*np.unique(first[ref].labels, return_counts=True)))
        for c, matched in stable.items():
            row = {
                "reference": ref,
                "cluster": c,
                "size": int(sizes[c]),
                **first[ref].describe(c),
                f"top_tokens[{ref}]": first[ref].top_tokens(c),
                f"top_prompt[{ref}]": first[ref].top_prompt(c),
            }
            for b, (other, jaccard) in matched.items():
                row |= {
                    f"cluster[{b}]": other,
                    f"jaccard[{b}]": jaccard,
                    f"top_tokens[{b}]": first[b].top_tokens(other),
                    f"top_prompt[{b}]": first[b].top_prompt(other),
                }
            stable_rows.append(row)
        for (name, c), jac in best.items():
            size = int((first[name].labels == c).sum())
            if jac < min_jaccard and size > 1:
                specific_rows.append(
                    {
                        "name": name,
                        "cluster": c,
                        "size": size,
                        "best_jaccard": jac,
                        **first[name].describe(c),
                        "top_tokens": first[name].top_tokens(c),
                        "top_prompt": first[name].top_prompt(c),
                    }
                )
    tables = {
        "effects": _frame(effects, ESTIMATE_SCHEMA),
        "floors": _frame(floor_table, {"value": pl.Float64, "value_low": pl.Float64, "value_high": pl.Float64}),
        "matches": _frame(match_rows),
        "stable": _frame(stable_rows),
        "specific": _frame(specific_rows),
    }
    if activity is not None:
        tables["activity"] = activity
    summary = {
        "point": point,
        "available": names,
        "missing": missing,
        "replicates": {n: len(parts[n]) for n in names},
        "tokens": {n: first[n].tokens for n in names},
        "kept": {n: first[n].kept for n in names},
        "stable": len(stable_rows),
        "specific": {n: sum(1 for r in specific_rows if r["name"] == n) for n in names},
    }
    if len(names) < 2:
        summary["note"] = f"fewer than two datasets have clusters for {point!r}: nothing to compare yet"
    return Tables(tables, summary)


def compare_points(
    dataset: str, reference: str, parts: dict[str, list[PartitionClustering]], missing: list[str], heldout: pl.DataFrame | None = None
) -> Tables:
    """Across the sweep points of one dataset: each point against the reference point and the floors."""
    names = [n for n, reps in parts.items() if reps]
    floors = {n: floor_of(parts[n]) for n in names}
    rows, effects, floor_table, method_rows = [], [], [], []
    for n in names:
        first = parts[n][0]
        sizes = first.clusters["size"] if first.clusters.height else pl.Series([0])
        rows.append(
            {
                "point": n,
                "changes": ", ".join(f"{k}={v}" for k, v in first.changes.items()) or "(reference)",
                "method": first.method,
                "replicates": len(parts[n]),
                "tokens": int(np.mean([r.tokens for r in parts[n]])),  # per sample, over its replicates
                "kept": first.kept,
                "k": first.k,
                "noise_fraction": first.noise / max(len(first.labels), 1),
                "mdl_at_cut": first.mdl_at_cut,
                "size_median": float(np.median(sizes.to_numpy())),
                "size_max": int(sizes.to_numpy().max()),
            }
        )
        floor_table += floor_rows(n, len(parts[n]), floors[n])
        if n != reference and reference in names:
            # a point that filters features (its memberships section differs) is read against the reference's floor on what it kept
            filters = any(k.startswith("memberships.") for k in first.changes)
            ref_floor = floor_on(parts[reference], parts[n]) if filters else floors[reference]
            effects += effect_rows(n, reference, effect_of(parts[n], parts[reference]), floors[n], ref_floor)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pa, pb = parts[a][0], parts[b][0]
            if pa.memberships == pb.memberships and pa.method != pb.method:
                m = _metrics(pa, pb)
                method_rows.append(
                    {
                        "point_a": a,
                        "method_a": pa.method,
                        "point_b": b,
                        "method_b": pb.method,
                        "ari": m["ari"],
                        "k_a": pa.k,
                        "k_b": pb.k,
                        "noise_a": pa.noise / max(len(pa.labels), 1),
                        "noise_b": pb.noise / max(len(pb.labels), 1),
                    }
                )
    tables = {
        "points": _frame(rows, {"mdl_at_cut": pl.Float64}),
        "effects": _frame(effects, ESTIMATE_SCHEMA),
        "floors": _frame(floor_table, {"value": pl.Float64, "value_low": pl.Float64, "value_high": pl.Float64}),
    }
    if method_rows:
        tables["methods"] = _frame(method_rows)
    if heldout is not None and heldout.height:
        tables["heldout"] = heldout
    summary = {
        "dataset": dataset,
        "reference": reference,
        "available": names,
        "missing": missing,
        "replicates": {n: len(parts[n]) for n in names},
    }
    if len(names) < 2:
        summary["note"] = f"fewer than two sweep points have clusters for {dataset!r}: nothing to compare yet"
    return Tables(tables, summary)


def estimate(row: dict, prefix: str) -> Estimate:
    """The estimate stored in a table row as ``<prefix>``, ``<prefix>_low``, ``<prefix>_high``."""
    return Estimate(row.get(prefix), row.get(f"{prefix}_low"), row.get(f"{prefix}_high"), int(row.get("pairs") or 0))


def plot_row(label: str, effect: Estimate, floors: Sequence[Estimate] = ()) -> dict:
    """One row of :func:`cluster_assets.reporting.plots.effect_vs_floor`: the effect with its
    interval (or its value alone), beside the lowest known floor (the one a difference must clear)."""
    row: dict = {"label": label, "value": effect.value, "low": effect.lower, "high": effect.upper}
    known = [f for f in floors if f.known]
    if known:
        floor = min(known, key=lambda f: f.lower)
        row |= {"floor": floor.value, "floor_low": floor.lower, "floor_high": floor.upper}
    return row


def effect_plot_rows(effects: pl.DataFrame, label: Callable[[dict], str] = lambda r: f"{r['a']} ~ {r['b']}") -> list[dict]:
    """Plot rows of an ``effects`` table (already filtered to one metric); unmeasured rows left out."""
    return [
        plot_row(label(r), estimate(r, "value"), [estimate(r, "floor_a"), estimate(r, "floor_b")])
        for r in effects.iter_rows(named=True)
        if r["value"] is not None
    ]


def effects_markdown(effects: pl.DataFrame) -> str:
    """An ``effects`` table for people: each number with its interval, and the verdict."""
    if not effects.height:
        return "_nothing to compare yet_"
    rows = [
        {
            "a": r["a"],
            "b": r["b"],
            "metric": METRIC_NAMES[r["metric"]],
            "between": estimate(r, "value").text(3),
            "floor a": estimate(r, "floor_a").text(3),
            "floor b": estimate(r, "floor_b").text(3),
            "verdict": r["verdict"],
        }
        for r in effects.iter_rows(named=True)
    ]
    return markdown_table(pl.DataFrame(rows), width=80)
