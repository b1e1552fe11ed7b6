"""The stored tables of a clustering, built from its analysis: what the UI, the comparisons
and the report show of each cluster."""

from __future__ import annotations

import numpy as np
import polars as pl

from cluster_assets.core.analysis import ClusterAnalysis, Cut
from cluster_assets.core.coactivation import CoFiring
from cluster_assets.storage.formats import Clusters, CutSummary, SampleActivations

#: Features per cluster shown in the co-firing heatmap (the largest clusters, up to this many features).
HEATMAP_FEATURES = 200
NEURONPEDIA = "https://www.neuronpedia.org/{sae}/{feature}"
#: Column types that hold when a method finds no cluster at all (HDBSCAN may call every feature noise).
KEY_TYPES = {"cluster": pl.Int64, "feature_ids": pl.List(pl.Int64), "top_token_ids": pl.List(pl.Int64), "top_counts": pl.List(pl.Int64)}


def build_clusters(
    cut: Cut, analysis: ClusterAnalysis, cofiring: CoFiring, activations: SampleActivations, neuronpedia_id: str | None = None
) -> Clusters:
    """The stored tables of a clustering: clusters sorted by active tokens (largest first),
    top prompts, labels, the correlation, the co-firing heatmap of the largest clusters, and
    ``descriptions`` (what each cluster fires on: top tokens, token classes, position).
    With a Neuronpedia id, each cluster row links every feature to its dashboard."""
    table = pl.DataFrame(analysis.clusters, schema_overrides=_key_types(analysis.clusters)).sort(
        ["active_tokens", "cluster"], descending=[True, False]
    )
    if neuronpedia_id:
        table = table.with_columns(
            feature_links=pl.col("feature_ids").list.eval(pl.format(NEURONPEDIA.format(sae=neuronpedia_id, feature="{}"), pl.element()))
        )
    top = pl.DataFrame(
        analysis.top_prompts,
        schema={
            "cluster": pl.Int64,
            "rank": pl.Int64,
            "prompt_id": pl.Int64,
            "active_tokens": pl.Int64,
            "activation_mass": pl.Float64,
            "text": pl.String,
            "span_starts": pl.List(pl.Int64),
            "span_ends": pl.List(pl.Int64),
        },
    )
    position = {int(f): i for i, f in enumerate(cut.feature_ids.tolist())}  # coactivation rows follow the kept features
    blocks, bounds, shown = [], [], []
    for cluster, members in table.select("cluster", "feature_ids").iter_rows():
        if sum(map(len, blocks)) + len(members) > HEATMAP_FEATURES or len(members) < 2:
            continue
        blocks.append([position[f] for f in members])
        bounds.append(sum(map(len, blocks)))
        shown.append(cluster)
        if len(blocks) == 8:
            break
    order = np.array([p for b in blocks for p in b], dtype=np.int64)
    heatmap = np.log1p(cofiring.square(order).astype(np.float64)) if order.size else np.zeros((0, 0))
    labels = pl.DataFrame({"feature_id": cut.feature_ids, "cluster": cut.labels})
    if analysis.descriptions is None:
        raise ValueError("the cluster analysis was run without token columns: it cannot say what the clusters fire on")
    described = dict(analysis.descriptions)
    vocab = activations.vocabulary()
    described["top_tokens"] = [[vocab[t] for t in ids] for ids in described["top_token_ids"]]
    descriptions = pl.DataFrame(described, schema_overrides=_key_types(described))
    return Clusters(
        labels,
        table,
        top,
        analysis.correlation,
        heatmap,
        np.asarray(bounds, np.int64),
        np.asarray(shown, np.int64),
        CutSummary(cut.method, cut.k, cut.noise, cut.mdl_at_cut, activations.n_tokens),
        {"descriptions": descriptions},
    )


def _key_types(columns: dict) -> dict:
    return {name: kind for name, kind in KEY_TYPES.items() if name in columns}
