"""Bodies of the clustering side: memberships -> coactivation -> merge_history -> clusters."""

from __future__ import annotations

import numpy as np
import polars as pl

from cluster_assets.core import build_memberships, run_merge
from cluster_assets.core import coactivation as count_coactivation
from cluster_assets.core.analysis import analyse_clusters, labels_at_cut
from cluster_assets.core.baseline import BaselineLabels, activation_profiles, umap_hdbscan
from cluster_assets.defs.stages import Output, StageContext
from cluster_assets.reporting import plots
from cluster_assets.reporting.clusters import build_clusters
from cluster_assets.reporting.text import highlight
from cluster_assets.storage.formats import features_table


def memberships(ctx: StageContext) -> Output:
    acts = ctx.read("activations")
    result = build_memberships(acts.values, acts.token_prompt, ctx.point.memberships)
    table = features_table(result)
    kept = table.filter(pl.col("kept"))
    rate, entropy = table["firing_rate"].to_numpy(), table["entropy"].to_numpy()
    return Output(
        result,
        {
            "samples": result.memberships.n_samples,
            "unit": ctx.point.memberships.unit,
            "kept_features": int(result.kept.sum()),
            "dropped": dict(table.filter(~pl.col("kept")).group_by("reason").len().sort("reason").iter_rows()),
            "quadrants": dict(kept.group_by("quadrant").len().sort("quadrant").iter_rows()),
        },
        figures={
            "entropy_vs_rate": plots.entropy_vs_rate(rate, entropy, result.kept),
            "rate_histogram": plots.rate_histogram(rate),
            "quadrant_plot": plots.quadrant_plot(kept["entropy"].to_numpy(), kept["varentropy"].to_numpy(), kept["quadrant"].to_numpy()),
        },
    )


def coactivation(ctx: StageContext) -> Output:
    members = ctx.read("memberships").memberships
    counts = count_coactivation(members.activity)
    pairs = int((np.count_nonzero(counts) - np.count_nonzero(np.diag(counts))) // 2)
    return Output(counts, {"features": members.n_features, "samples": members.n_samples, "cofiring_pairs": pairs})


def merge_history(ctx: StageContext) -> Output:
    members = ctx.read("memberships").memberships
    config = ctx.point.merge
    if config.method == "umap_hdbscan":
        acts = ctx.read("activations")
        labels = umap_hdbscan(activation_profiles(acts.values, acts.token_prompt, members.feature_ids), ctx.point.baseline)
        return Output(
            BaselineLabels(members.feature_ids, labels),
            {
                "method": config.method,
                "features": members.n_features,
                "clusters": int(labels.max(initial=-1) + 1),
                "noise_fraction": float((labels < 0).mean()),
            },
        )
    history = run_merge(
        members.activity,
        config,
        cofiring=ctx.read("coactivation"),
        overwrite_cofiring=True,
        feature_ids=members.feature_ids,
        progress=ctx.progress("merges"),
    )
    return Output(
        history,
        {
            "method": config.method,
            "features": members.n_features,
            "merges": history.n_merges,
            "best_k": history.best_k(),
            "min_mdl": float(history.mdl.min()),
            "initial_mdl": float(history.mdl[0]),
        },
        figures={"mdl_curve": plots.mdl_curve(history.ks, history.mdl, history.best_k())},
    )


def clusters(ctx: StageContext) -> Output:
    clustering, acts = ctx.read("merge_history"), ctx.read("activations")
    cut = labels_at_cut(clustering, ctx.point.clusters.cut)
    analysis = analyse_clusters(
        cut.labels,
        cut.feature_ids,
        acts.values,
        acts.token_prompt,
        acts.tokens["token"].to_list(),
        ctx.point.memberships.threshold,
        ctx.point.clusters.top_prompts,
    )
    record = build_clusters(cut, analysis, ctx.read("coactivation"), acts, ctx.source.neuronpedia_id())
    sizes = record.clusters["size"].to_numpy()
    preview = top_clusters_markdown(record)
    summary = {
        "method": cut.method,
        "k": cut.k,
        "features": int(cut.labels.size),
        "singletons": int((sizes == 1).sum()),
        "size_median": float(np.median(sizes)) if sizes.size else 0.0,
        "size_max": int(sizes.max(initial=0)),
    }
    summary |= (
        {"cut": str(ctx.point.clusters.cut), "mdl_at_cut": cut.mdl_at_cut} if cut.method == "mdl_merge" else {"noise_features": cut.noise}
    )
    return Output(
        record,
        summary,
        markdown={"top_clusters": preview},
        figures={
            "size_distribution": plots.size_distribution(sizes),
            "coactivation_heatmap": plots.cofiring_heatmap(
                record.heatmap, record.heatmap_bounds, [f"cluster {c}" for c in record.heatmap_clusters]
            ),
        },
    )


def top_clusters_markdown(record, n: int = 5, features: int = 8) -> str:
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
