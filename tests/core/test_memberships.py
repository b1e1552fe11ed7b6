import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_assets.core import Membership, Memberships, activity_from_batches, prompt_activity
from cluster_assets.core.features import stack_blocks
from cluster_assets.core.memberships import DENSE_FRACTION, token_activity_csc


@st.composite
def two_sets(draw):
    n = draw(st.integers(1, 700))
    # sizes drawn around the sparse/bitset switch point so both forms and mixes occur
    boundary = int(DENSE_FRACTION * n)

    def one():
        size = draw(st.integers(0, min(n, boundary * 3 + 3)))
        return set(draw(st.lists(st.integers(0, n - 1), min_size=size, max_size=size)))

    return n, one(), one()


@settings(max_examples=300, deadline=None)
@given(two_sets())
def test_membership_ops_match_python_sets(case):
    n, a, b = case
    ma = Membership.from_indices(np.array(sorted(a), dtype=np.int64), n)
    mb = Membership.from_indices(np.array(sorted(b), dtype=np.int64), n)
    assert ma.is_bitset == (len(a) > DENSE_FRACTION * n)
    assert ma.count() == len(a)
    assert ma.intersection_count(mb) == len(a & b) == mb.intersection_count(ma)
    u = ma.union(mb)
    assert u.to_indices().tolist() == sorted(a | b)
    assert u.is_bitset == (len(a | b) > DENSE_FRACTION * n)  # a merged group upgrades by itself
    assert u.count() == len(a | b)
    assert ma == Membership.from_mask(np.isin(np.arange(n), list(a)))


def test_membership_rejects_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        Membership.from_indices(np.array([5]), 5)
    with pytest.raises(ValueError, match="samples"):
        Membership.from_indices(np.array([1]), 5).intersection_count(Membership.from_indices(np.array([1]), 6))


def test_memberships_round_trip_sparse_matrix():
    rng = np.random.default_rng(0)
    x = rng.random((2000, 40)) < rng.uniform(0.0, 0.03, size=40)  # rates either side of the 1/64 switch
    m = Memberships(sp.csr_array(x), feature_ids=np.arange(40) * 3)
    assert {mm.is_bitset for mm in m.compressed()} == {True, False}
    np.testing.assert_array_equal(m.to_csr().toarray(), x)
    np.testing.assert_array_equal(m.counts(), x.sum(axis=0))
    for j in range(40):
        np.testing.assert_array_equal(m[j].to_indices(), np.flatnonzero(x[:, j]))
    back = Memberships.from_columns([m[j].to_indices() for j in range(40)], 2000, m.feature_ids)
    np.testing.assert_array_equal(back.to_csr().toarray(), x)
    np.testing.assert_array_equal(back.feature_ids, m.feature_ids)
    sub = m.subset(np.array([5, 2]))
    np.testing.assert_array_equal(sub.to_csr().toarray(), x[:, [5, 2]])


def test_activity_from_batches_is_strict_threshold_over_stream():
    rng = np.random.default_rng(1)
    dense = np.where(rng.random((300, 20)) < 0.2, rng.random((300, 20)), 0.0)
    dense[0, 0] = 0.5  # exactly at the threshold: not active
    batches = [sp.csr_array(dense[i : i + 64]) for i in range(0, 300, 64)]
    act = activity_from_batches(batches, 0.5, 20)
    np.testing.assert_array_equal(act.toarray(), dense > 0.5)
    with pytest.raises(ValueError, match="NaN"):
        activity_from_batches([sp.csr_array(np.array([[np.inf]]))], 0.0, 1)
    with pytest.raises(ValueError, match="threshold"):
        activity_from_batches(batches, -1.0, 20)


def test_stack_blocks_is_scipys_vstack_and_lets_go_of_each_block():
    rng = np.random.default_rng(2)
    heights = [0, 7, 1, 0, 30, 12]  # empty blocks and a one-row block among them
    dense = [rng.random((h, 9)) < 0.3 for h in heights]
    blocks = [sp.csr_array(d) for d in dense]
    expected = sp.vstack([sp.csr_array(d) for d in dense], format="csr")
    out = stack_blocks(blocks, 9)
    assert blocks == []  # each block dropped once copied
    assert out.dtype == bool and out.indices.dtype == np.int32 and out.indptr.dtype == np.int32
    np.testing.assert_array_equal(out.indptr, expected.indptr)
    np.testing.assert_array_equal(out.indices, expected.indices)
    np.testing.assert_array_equal(out.toarray(), np.vstack(dense))
    assert stack_blocks([], 4).shape == (0, 4)


def test_token_activity_csc_is_the_dense_threshold_and_checks_the_counts_it_is_sized_by():
    rng = np.random.default_rng(3)
    dense = np.where(rng.random((120, 11)) < 0.3, rng.random((120, 11)), 0.0).astype(np.float32)
    dense[5, 2] = 0.25  # exactly at the threshold: not active
    prompt = np.repeat(np.arange(12), 10)
    blocks = [sp.csr_array(dense[i : i + 40]) for i in range(0, 120, 40)]
    ids = np.array([0, 2, 3, 7, 10])
    counts = (dense > 0.25).sum(axis=0)  # the statistics' firing counts, every feature
    got = token_activity_csc(blocks, prompt, ids, 0.25, counts)
    assert isinstance(got, sp.csc_array) and got.dtype == bool and got.indices.dtype == np.int32
    assert got.has_sorted_indices
    np.testing.assert_array_equal(got.toarray(), dense[:, ids] > 0.25)
    too_few, too_many = counts.copy(), counts.copy()
    too_few[3] -= 1
    too_many[7] += 1
    with pytest.raises(ValueError, match="more entries"):
        token_activity_csc(blocks, prompt, ids, 0.25, too_few)
    with pytest.raises(ValueError, match="fewer entries"):
        token_activity_csc(blocks, prompt, ids, 0.25, too_many)


@pytest.mark.parametrize("reduce", ["max", "mean"])
def test_prompt_activity_matches_dense(reduce):
    rng = np.random.default_rng(2)
    dense = np.where(rng.random((90, 12)) < 0.25, rng.random((90, 12)), 0.0)
    prompt = np.sort(rng.integers(0, 15, size=90))
    got, ids = prompt_activity(sp.csr_array(dense), prompt, 0.3, reduce=reduce)
    agg = np.stack([getattr(dense[prompt == p], reduce)(axis=0) for p in ids])
    np.testing.assert_array_equal(got.toarray(), agg > 0.3)
    with pytest.raises(ValueError, match="unknown prompt reduce"):
        prompt_activity(sp.csr_array(dense), prompt, 0.3, reduce="median")
