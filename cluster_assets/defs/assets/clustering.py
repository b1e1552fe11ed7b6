"""Bodies of the clustering side: memberships -> coactivation -> merge_history -> clusters."""

from __future__ import annotations

from cluster_assets.core import build_memberships, run_merge
from cluster_assets.core import coactivation as count_coactivation
from cluster_assets.core.analysis import analyse_clusters, labels_at_cut
from cluster_assets.core.baseline import BaselineLabels, activation_profiles, umap_hdbscan
from cluster_assets.defs.stages import Output, StageContext
from cluster_assets.reporting.clusters import build_clusters
from cluster_assets.reporting.summaries import (
    baseline_summary,
    clusters_summary,
    coactivation_summary,
    memberships_summary,
    merge_summary,
)


def memberships(ctx: StageContext) -> Output:
    acts = ctx.read("activations")
    result = build_memberships(acts.values, acts.token_prompt, ctx.point.memberships)
    return Output(result, **memberships_summary(result, ctx.point.memberships.unit))


def coactivation(ctx: StageContext) -> Output:
    members = ctx.read("memberships").memberships
    counts = count_coactivation(members.activity)
    return Output(counts, **coactivation_summary(counts, members.n_samples))


def merge_history(ctx: StageContext) -> Output:
    members, config = ctx.read("memberships").memberships, ctx.point.merge
    if config.method == "umap_hdbscan":
        acts = ctx.read("activations")
        labels = umap_hdbscan(activation_profiles(acts.values, acts.token_prompt, members.feature_ids), ctx.point.baseline)
        return Output(BaselineLabels(members.feature_ids, labels), **baseline_summary(labels, config.method))
    cofiring = ctx.read("coactivation")
    progress = ctx.progress("merges")
    history = run_merge(
        members.activity, config, cofiring=cofiring, overwrite_cofiring=True, feature_ids=members.feature_ids, progress=progress
    )
    return Output(history, **merge_summary(history, config.method))


def clusters(ctx: StageContext) -> Output:
    clustering, acts, settings = ctx.read("merge_history"), ctx.read("activations"), ctx.point
    cut = labels_at_cut(clustering, settings.clusters.cut)
    tokens = acts.tokens["token"].to_list()
    threshold, top = settings.memberships.threshold, settings.clusters.top_prompts
    analysis = analyse_clusters(cut.labels, cut.feature_ids, acts.values, acts.token_prompt, tokens, threshold, top)
    record = build_clusters(cut, analysis, ctx.read("coactivation"), acts, ctx.source.neuronpedia_id())
    return Output(record, **clusters_summary(record, cut, settings.clusters.cut))
