"""Every stage format gives back what it saved (symmetric save/load), bit for bit."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from cluster_assets.core import MembershipConfig, MergeConfig, build_memberships, coactivation, run_merge
from cluster_assets.core.clustering import Clustering
from cluster_assets.storage import ArtifactStore
from cluster_assets.storage import formats as fmt


def test_memberships_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    dense = np.where(rng.random((400, 30)) < 0.2, rng.random((400, 30)), 0.0)
    prompts = np.sort(rng.integers(0, 20, 400))
    result = build_memberships(sp.csr_array(dense), prompts, MembershipConfig(threshold=0.1))
    fmt.MembershipsFormat().save(tmp_path, result)
    back = fmt.MembershipsFormat().load(tmp_path)
    np.testing.assert_array_equal(back.memberships.to_csr().toarray(), result.memberships.to_csr().toarray())
    np.testing.assert_array_equal(back.memberships.feature_ids, result.memberships.feature_ids)
    for name in ("firing_count", "max", "mean", "entropy", "varentropy"):
        np.testing.assert_array_equal(getattr(back.stats, name), getattr(result.stats, name))
    assert (back.stats.n_tokens, back.stats.n_prompts) == (result.stats.n_tokens, result.stats.n_prompts)
    np.testing.assert_array_equal(back.kept, result.kept)
    np.testing.assert_array_equal(back.sample_prompt, result.sample_prompt)


@pytest.mark.parametrize("n_features", [0, 1, 2, 40])
def test_coactivation_round_trips_and_a_merge_never_reaches_the_file(tmp_path, n_features):
    x = sp.csr_array(np.random.default_rng(2).random((300, n_features)) < 0.3)
    counts = coactivation(x)
    fmt.CoactivationFormat().save(tmp_path, counts)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    back = fmt.CoactivationFormat().load(tmp_path)
    np.testing.assert_array_equal(back.counts, counts.counts)
    for name in ("data", "indices", "indptr"):
        got, want = getattr(back.pairs, name), getattr(counts.pairs, name)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype == np.int32
    np.testing.assert_array_equal(back.square(), counts.square())
    if n_features > 3:  # merging stops at three groups
        history = run_merge(x, MergeConfig(), cofiring=back)
        assert history == run_merge(x, MergeConfig())
        np.testing.assert_array_equal(back.square(), counts.square())  # the run merged a copy
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files


def test_clustering_round_trips_with_a_history_and_with_fixed_labels(tmp_path):
    x = sp.csr_array(np.random.default_rng(1).random((200, 12)) < 0.3)
    history = run_merge(x, MergeConfig(seed=3), feature_ids=np.arange(12) * 5)
    merged = Clustering("mdl_merge", history.feature_ids, history=history)
    fmt.ClusteringFormat().save(tmp_path, merged)
    back = fmt.ClusteringFormat().load(tmp_path)
    assert back == merged and back.history == history and back.labels is None
    flat = Clustering("umap_hdbscan", np.arange(5), labels=np.array([0, -1, 1, 0, 1]))
    (tmp_path / "b").mkdir()
    fmt.ClusteringFormat().save(tmp_path / "b", flat)
    back = fmt.ClusteringFormat().load(tmp_path / "b")
    assert back == flat and back.history is None and back != merged
    np.testing.assert_array_equal(back.labels, [0, -1, 1, 0, 1])


def test_activation_shard_round_trip(tmp_path):
    values = sp.csr_array(np.array([[0, 1.5, 0], [2.0, 0, 0.5]], dtype=np.float32))
    tokens = pl.DataFrame({"prompt_id": [3, 3], "position": [0, 1], "token_id": [7, 9], "token": ["a", " b"]})
    fmt.ActivationShardFormat().save(tmp_path, fmt.Activations(values, tokens))
    back = fmt.ActivationShardFormat().load(tmp_path)
    assert (back.values != values).nnz == 0 and back.values.dtype == np.float32 and back.tokens.equals(tokens)
    assert back.vocabulary() == {7: "a", 9: " b"}


def _stored_shards(store, rng, sizes):
    """Activation shards written to ``store``: (their dense values, their artifacts)."""
    dense, artifacts = [], []
    for k, n in enumerate(sizes):
        values = np.where(rng.random((n, 6)) < 0.4, rng.random((n, 6)), 0).astype(np.float32)
        tokens = pl.DataFrame(
            {"prompt_id": np.arange(n) + 10 * k, "position": np.zeros(n, np.int32), "token_id": np.arange(n), "token": ["t"] * n}
        )
        artifact = store.artifact("activation_shards", k)
        with store.write(artifact, {}) as folder:
            fmt.ActivationShardFormat().save(folder, fmt.Activations(sp.csr_array(values), tokens))
        dense.append(values)
        artifacts.append(artifact)
    return dense, artifacts


def test_a_sample_reads_its_rows_of_each_shard_one_shard_at_a_time(tmp_path):
    store = ArtifactStore(tmp_path)
    dense, shards = _stored_shards(store, np.random.default_rng(0), [5, 4, 6])
    rows = (fmt.ShardRows(shards[0].address, 3, 5), fmt.ShardRows(shards[1].address, 0, 4), fmt.ShardRows(shards[2].address, 0, 2))
    expected = np.vstack([dense[0][3:5], dense[1], dense[2][:2]])
    tokens = pl.DataFrame({"prompt_id": np.arange(8), "position": np.zeros(8, np.int32), "token_id": np.arange(8), "token": ["t"] * 8})
    sample = store.artifact("activations", "a sample")
    value = fmt.ShardedActivations(tokens, rows, 6)
    with store.write(sample, {"references": store.pinned(value.references)}) as folder:
        fmt.ActivationsFormat().save(folder, value)
    back = fmt.ActivationsFormat().load(sample.verify().path)
    assert back.shards == rows and back.n_tokens == 8 and back.n_features == 6
    blocks = back.blocks()
    assert [b.shape[0] for b in blocks] == [2, 4, 2] and [b.shape[0] for b in blocks] == [2, 4, 2]  # iterable again
    np.testing.assert_array_equal(back.gather().values.toarray(), expected)
    picked = np.array([6, 0, 3, 7])
    np.testing.assert_array_equal(back.rows(picked).toarray(), expected[picked])
    assert back.rows(np.zeros(0, np.int64)).shape == (0, 6)
    with pytest.raises(ValueError, match="shards hold 8 rows but the token table 7"):
        fmt.ShardedActivations(tokens[:7], rows, 6)

    # a shard altered after it was written fails the sample that reads it, naming the shard and its file
    npz = shards[1].path / fmt.ActivationShardFormat.ACTIVATIONS
    npz.write_bytes(npz.read_bytes()[:-8] + b"\0" * 8)
    problems = sample.problems()
    assert len(problems) == 1 and problems[0].startswith(f"{shards[1].address} (referenced): activations.npz: content changed")
    store.discard(shards[1])
    assert sample.problems() == [f"{shards[1].address} (referenced): missing"]
    # a shard written again with other bytes (each file matching its own new manifest) is not the one the sample was made from
    store.discard(shards[2])
    with store.write(shards[2], {}) as folder:
        other = sp.csr_array(np.ones((6, 6), np.float32))
        fmt.ActivationShardFormat().save(folder, fmt.Activations(other, pl.DataFrame({"prompt_id": np.arange(6)})))
    assert sample.problems()[1] == f"{shards[2].address} (referenced): written again with other files than this artifact was made from"


def test_a_sites_data_files_read_back_what_was_added(tmp_path):
    site = fmt.Site()
    value = {"rows": [{"cluster": 3, "top_tokens": [" the", '"quoted"\n'], "matched": None}], "chunk": 50}
    site.add_data("p/kjv--base/clusters.js", value)
    fmt.SiteFormat().save(tmp_path, site)
    root = tmp_path / fmt.SiteFormat.SITE_DIR
    assert fmt.Site.read_data(root, "p/kjv--base/clusters.js") == value
    assert fmt.SiteFormat().load(tmp_path).files == site.files
    (root / "data" / "bad.js").write_text("alert(1);\n")
    with pytest.raises(ValueError, match=r"bad\.js: not a data file"):
        fmt.Site.read_data(root, "bad.js")
