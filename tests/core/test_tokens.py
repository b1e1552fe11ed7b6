"""Token classes on known strings, and what a cluster fires on against a dense recount."""

from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp

from cluster_assets.core.analysis import describe_clusters
from cluster_assets.core.tokens import CLASSES, classify, token_class


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" the", "word"),
        ("The", "word"),
        (" and", "word"),  # an English word that is also a Python keyword stays a word
        ("ing", "subword"),
        ("é", "subword"),
        ("\n   ", "whitespace"),
        ("\t", "whitespace"),
        (",", "punctuation"),
        (" ...", "punctuation"),
        ("—", "punctuation"),
        ("+=", "punctuation"),
        ("2024", "digits"),
        (" 1,000", "digits"),
        ("self", "code"),
        (" def", "code"),
        ("__init__", "code"),
        ("numPy", "code"),
        ("x2", "other"),
        ("'s", "other"),
    ],
)
def test_token_class_of_known_strings(text, expected):
    assert token_class(text) == expected


def test_classify_indexes_the_classes():
    assert [CLASSES[i] for i in classify([" the", "ing", ",", "42"])] == ["word", "subword", "punctuation", "digits"]


def test_describe_clusters_equals_a_dense_recount():
    rng = np.random.default_rng(0)
    n, k = 400, 6
    dense = rng.random((n, k)) < rng.uniform(0.0, 0.4, k)
    dense[:, 5] = False  # a cluster active nowhere
    token_ids = rng.integers(0, 12, n)
    positions = rng.integers(0, 30, n)
    classes = rng.integers(0, len(CLASSES), n)
    out = describe_clusters(sp.csr_array(dense), token_ids, positions, classes, top_n=3, single_share=0.3)
    for c in range(k):
        rows = np.flatnonzero(dense[:, c])
        counts = Counter(token_ids[rows].tolist())
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:3]
        assert out["top_token_ids"][c] == [t for t, _ in top]
        assert out["top_counts"][c] == [m for _, m in top]
        assert out["distinct_tokens"][c] == len(counts)
        if rows.size == 0:
            assert out["top_token_share"][c] == 0.0 and np.isnan(out["mean_position"][c])
            assert all(out[f"share_{name}"][c] == 0.0 for name in CLASSES)
            continue
        share = top[0][1] / rows.size
        assert out["top_token_share"][c] == pytest.approx(share)
        assert out["kind"][c] == ("single-token" if share >= 0.3 else "contextual")
        assert out["mean_position"][c] == pytest.approx(positions[rows].mean())
        for i, name in enumerate(CLASSES):
            assert out[f"share_{name}"][c] == pytest.approx(np.mean(classes[rows] == i))
