"""Bodies of the clustering side: memberships -> coactivation -> merge_history -> clusters."""

from __future__ import annotations

from cluster_assets.core import build_memberships
from cluster_assets.core import coactivation as count_coactivation
from cluster_assets.core.analysis import TokenColumns, analyse_clusters
from cluster_assets.core.baseline import BaselineConfig
from cluster_assets.core.clustering import cluster
from cluster_assets.defs.stages import Output, StageContext
from cluster_assets.reporting.clusters import build_clusters
from cluster_assets.reporting.summaries import clustering_summary, clusters_summary, coactivation_summary, memberships_summary
from cluster_assets.storage import formats as fmt


def memberships(ctx: StageContext) -> Output:
    acts = ctx.read("activations", fmt.ActivationsFormat)
    result = build_memberships(acts.blocks(), acts.token_prompt, ctx.point.memberships)  # two passes, shard by shard
    return Output(result, **memberships_summary(result, ctx.point.memberships.unit))


def coactivation(ctx: StageContext) -> Output:
    members = ctx.read("memberships", fmt.MembershipsFormat).memberships
    counts = count_coactivation(members.activity)
    return Output(counts, **coactivation_summary(counts, members.n_samples))


def merge_history(ctx: StageContext) -> Output:
    members, config = ctx.read("memberships", fmt.MembershipsFormat).memberships, ctx.point.clustering
    # only the density baseline reads the activations (profiles over prompts): the MDL merge leaves the token table on disk
    acts = ctx.read("activations", fmt.ActivationsFormat) if isinstance(config, BaselineConfig) else None
    result = cluster(
        members,
        config,
        activations=acts.blocks() if acts else None,
        token_prompt=acts.token_prompt if acts else None,
        cofiring=ctx.read("coactivation", fmt.CoactivationFormat),
        progress=ctx.progress("merges"),
    )
    return Output(result, **clustering_summary(result))


def clusters(ctx: StageContext) -> Output:
    clustering, acts, settings = ctx.read("merge_history", fmt.ClusteringFormat), ctx.read("activations", fmt.ActivationsFormat), ctx.point
    cut = clustering.at(settings.clusters.cut)
    tokens = acts.tokens["token"].to_list()
    threshold, top = settings.memberships.threshold, settings.clusters.top_prompts
    columns = TokenColumns(acts.tokens["token_id"].to_numpy(), acts.tokens["position"].to_numpy(), acts.token_classes())
    analysis = analyse_clusters(cut.labels, cut.feature_ids, acts.blocks(), acts.token_prompt, tokens, threshold, top, columns)
    record = build_clusters(cut, analysis, ctx.read("coactivation", fmt.CoactivationFormat), acts, ctx.source.neuronpedia_id())
    return Output(record, **clusters_summary(record, cut, settings.clusters.cut))
