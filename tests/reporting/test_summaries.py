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
