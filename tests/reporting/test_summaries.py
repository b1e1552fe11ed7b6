"""Summaries are typed dataclasses; one renderer turns any of them into the metadata dict."""

from dataclasses import dataclass

from cluster_assets.reporting.summaries import ClusteringSummary, ClustersSummary, PromptsSummary, SAESummary, summary_values


@dataclass(frozen=True)
class _Quality:
    l0: float
    fvu: float


def test_a_summary_renders_its_fields_in_order_with_renames_nesting_and_no_nones():
    assert list(summary_values(PromptsSummary(12, 150, 12.5, 1, 0, 2, 90))) == [
        "dagster/row_count",
        "tokens",
        "tokens_per_prompt_median",
        "truncated",
        "empty_dropped",
        "duplicates_dropped",
        "usable_texts",
    ]
    sae = summary_values(SAESummary("embedded", _Quality(64.0, 0.24), 1000, 2048, {"kjv": 500}, 3.5))
    assert sae == {
        "mode": "embedded",
        "l0": 64.0,
        "fvu": 0.24,
        "training_tokens": 1000,
        "samples_seen": 2048,
        "tokens_per_dataset": {"kjv": 500},
        "train_seconds": 3.5,
    }
    fixed = summary_values(ClustersSummary("umap_hdbscan", 4, 30, 2, 5.0, 9, noise_features=3))
    merged = summary_values(ClustersSummary("mdl_merge", 4, 30, 2, 5.0, 9, cut="mdl", mdl_at_cut=12.5))
    assert "noise_features" in fixed and "cut" not in fixed and "mdl_at_cut" not in fixed
    assert merged["cut"] == "mdl" and "noise_features" not in merged
    assert summary_values(ClusteringSummary("umap_hdbscan", 30, clusters=4, noise_fraction=0.1)) == {
        "method": "umap_hdbscan",
        "features": 30,
        "clusters": 4,
        "noise_fraction": 0.1,
    }
    assert summary_values({"pairs": 3}) == {"pairs": 3}  # a plain mapping passes through


def test_a_clustering_that_calls_every_feature_noise_stores_and_summarises_typed_empty_tables():
    import numpy as np
    import polars as pl
    import scipy.sparse as sp

    from cluster_assets.core.analysis import Cut, TokenColumns, analyse_clusters
    from cluster_assets.reporting.clusters import build_clusters
    from cluster_assets.reporting.summaries import clusters_summary
    from cluster_assets.storage.formats import Activations

    values = sp.csr_array(np.array([[0, 1.5, 0], [2.0, 0, 0.5], [0, 1.0, 1.0]], dtype=np.float32))
    tokens = pl.DataFrame({"prompt_id": [0, 0, 1], "position": [0, 1, 0], "token_id": [7, 9, 7], "token": ["a", " b", "a"]})
    acts, features, labels = Activations(values, tokens), np.arange(3), np.full(3, -1)
    cut = Cut("umap_hdbscan", 0, features, labels, 3, None)
    columns = TokenColumns(tokens["token_id"].to_numpy(), tokens["position"].to_numpy(), acts.token_classes())
    analysis = analyse_clusters(labels, features, values, acts.token_prompt, tokens["token"].to_list(), 0.0, columns=columns)
    record = build_clusters(cut, analysis, np.eye(3, dtype=np.int64), acts)
    assert record.clusters.height == 0 and record.clusters.schema["cluster"] == pl.Int64
    assert record.extra["descriptions"].schema["cluster"] == pl.Int64
    shown = clusters_summary(record, cut, "mdl")  # joins the clusters with their top prompts
    assert shown["summary"].k == 0 and shown["summary"].noise_features == 3 and shown["markdown"]["top_clusters"] == ""
