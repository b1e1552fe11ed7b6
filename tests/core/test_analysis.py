import numpy as np
import pytest
import scipy.sparse as sp

from cluster_assets.core import MembershipConfig, MergeConfig, ParameterError, build_memberships, run_merge
from cluster_assets.core.analysis import analyse_clusters, correlation_of, cut_labels, runs
from cluster_assets.core.coactivation import CoFiring, coactivation, row_starts
from cluster_assets.core.features import quadrants
from cluster_assets.core.validation import coactivation_problems, history_problems, partition_problems


def _activations(seed=0, n_tokens=300, d_sae=40):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n_tokens, d_sae)) < rng.uniform(0, 0.3, d_sae), rng.exponential(1.0, (n_tokens, d_sae)), 0.0)
    prompts = np.sort(rng.integers(0, 25, n_tokens))
    return dense, prompts


def test_analysis_matches_dense_reference():
    dense, prompts = _activations()
    feature_ids = np.array([1, 4, 5, 9, 12, 20, 33])
    labels = np.array([0, 0, 1, 2, 1, 2, 2])
    text = [f"t{i}" for i in range(len(dense))]
    res = analyse_clusters(labels, feature_ids, sp.csr_array(dense), prompts, text, threshold=0.5, top_n=3)
    active = dense > 0.5
    ids = np.unique(prompts)
    per_prompt = np.zeros((ids.size, 3))
    for c in range(3):
        cols = feature_ids[labels == c]
        tok = active[:, cols].any(axis=1)
        assert res.clusters["active_tokens"][c] == tok.sum()
        assert res.clusters["size"][c] == len(cols)
        assert res.clusters["feature_ids"][c] == sorted(cols.tolist())
        vals = dense[:, cols][active[:, cols]]
        assert res.clusters["mean_activation"][c] == pytest.approx(vals.mean())
        assert res.clusters["max_activation"][c] == pytest.approx(vals.max())
        per_prompt[:, c] = [tok[prompts == p].sum() for p in ids]
        # the best prompt is the one with most active tokens; its active tokens are marked
        top = [i for i, cc in enumerate(res.top_prompts["cluster"]) if cc == c]
        best = ids[np.argmax(per_prompt[:, c])]
        assert res.top_prompts["active_tokens"][top[0]] == per_prompt[:, c].max()
        p = res.top_prompts["prompt_id"][top[0]]
        rows = np.flatnonzero(prompts == p)
        assert res.top_prompts["text"][top[0]] == "".join(text[t] for t in rows)
        # each run of consecutive active tokens is one span of characters
        starts = np.concatenate([[0], np.cumsum([len(text[t]) for t in rows])])
        expected = [[int(starts[a]), int(starts[b])] for a, b in runs(tok[rows])]
        spans = [list(pair) for pair in zip(res.top_prompts["span_starts"][top[0]], res.top_prompts["span_ends"][top[0]])]
        assert spans == expected and expected
        assert per_prompt[list(ids).index(p), c] == per_prompt[list(ids).index(best), c]
    assert res.clusters["prompts_active"] == (per_prompt > 0).sum(axis=0).tolist()
    np.testing.assert_array_equal(res.correlation, correlation_of(sp.csr_array(per_prompt)))  # exact: integer Gram
    np.testing.assert_allclose(res.correlation, np.corrcoef(per_prompt, rowvar=False), atol=1e-12)


def test_cut_labels_and_quadrants():
    rng = np.random.default_rng(3)
    x = sp.csr_array(rng.random((200, 12)) < 0.2)
    h = run_merge(x, MergeConfig(threshold=0.0))
    k, labels = cut_labels(h, "mdl")
    assert k == h.best_k() and labels.max() + 1 == k
    assert cut_labels(h, 5)[0] == 5
    with pytest.raises(ValueError, match="outside"):
        cut_labels(h, 2)
    q = quadrants(np.array([0.1, 0.9, 0.1, 0.9, np.nan]), np.array([0.1, 0.1, 0.9, 0.9, 0.5]))
    assert q.tolist() == ["flowing", "careful", "exploring", "resampling", ""]


def test_build_memberships_token_and_prompt_units():
    dense, prompts = _activations(1)
    res = build_memberships(sp.csr_array(dense), prompts, MembershipConfig(threshold=0.2, min_firing_rate=0.05))
    kept = np.flatnonzero(res.kept)
    assert np.all((dense > 0.2).mean(axis=0)[kept] >= 0.05)
    np.testing.assert_array_equal(res.memberships.feature_ids, kept)
    np.testing.assert_array_equal(res.memberships.to_csr().toarray(), dense[:, kept] > 0.2)
    res_p = build_memberships(
        sp.csr_array(dense), prompts, MembershipConfig(threshold=0.2, min_firing_rate=0.05, unit="prompt", prompt_reduce="max")
    )
    ids = np.unique(prompts)
    want = np.stack([(dense[prompts == p][:, kept] > 0.2).any(axis=0) for p in ids])
    np.testing.assert_array_equal(res_p.memberships.to_csr().toarray(), want)
    np.testing.assert_array_equal(res_p.sample_prompt, ids)


@pytest.mark.parametrize(
    "config, field", [(MembershipConfig(threshold=1e6), "threshold"), (MembershipConfig(min_firing_rate=0.99), "min_firing_rate")]
)
def test_build_memberships_bad_parameters_name_the_field(config, field):
    dense, prompts = _activations(2)
    with pytest.raises(ParameterError) as err:
        build_memberships(sp.csr_array(dense), prompts, config)
    assert err.value.field == field
    assert "np." not in err.value.message and field not in err.value.message  # plain words, the field named once


def test_validation_finds_corruption():
    rng = np.random.default_rng(4)
    x = sp.csr_array(rng.random((150, 10)) < 0.3)
    counts = coactivation(x)
    assert coactivation_problems(counts, x) == []
    condensed = counts.condensed()
    condensed[row_starts(10)[2] + 3] += 1
    bad = CoFiring.from_condensed(counts.counts, condensed)
    assert any("recount" in p for p in coactivation_problems(bad, x, n_samples_checked=1000))
    h = run_merge(x, MergeConfig())
    assert history_problems(h) == []
    h.pairs[2] = h.pairs[1]
    assert history_problems(h)
    assert partition_problems(np.array([0, 1]), np.array([3, 4]), np.array([3, 4])) == []
    assert partition_problems(np.array([0, 1]), np.array([3, 3]), np.array([3, 4]))


def test_token_cluster_activations_sum_each_clusters_active_members_as_the_dense_reference():
    import numpy as np
    import scipy.sparse as sp

    from cluster_assets.core.analysis import token_cluster_activations

    rng = np.random.default_rng(5)
    dense = np.where(rng.random((40, 12)) < 0.3, rng.exponential(1.0, (40, 12)), 0.0).astype(np.float32)
    feature_ids, labels = np.array([1, 3, 4, 7, 9, 10]), np.array([0, 1, 0, -1, 2, 1])
    rows = np.array([17, 2, 30, 5, 39])
    got = token_cluster_activations(sp.csr_array(dense), feature_ids, labels, rows, 0.5).toarray()
    expected = np.zeros((rows.size, 3))
    for i, r in enumerate(rows):
        for f, c in zip(feature_ids, labels):
            if c >= 0 and dense[r, f] > 0.5:
                expected[i, c] += dense[r, f]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert (expected > 0).sum() >= 5  # something was summed
