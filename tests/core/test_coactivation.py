import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import squareform

from cluster_assets.core import CoFiring, coactivation
from tests.conftest import ROOT
from tests.core.reference import dense_coactivation, random_activity


@pytest.mark.parametrize("seed", range(12))
def test_coactivation_equals_dense_product(seed):
    rng = np.random.default_rng(seed)
    n, f = rng.integers(1, 300), rng.integers(1, 60)
    x = random_activity(rng, n, f, density=rng.uniform(0.01, 0.5))
    got = coactivation(sp.csr_array(x))
    assert np.issubdtype(got.pairs.dtype, np.integer)
    want = dense_coactivation(x)
    np.testing.assert_array_equal(got.square(), want)
    np.testing.assert_array_equal(got.counts, np.diag(want))
    # the pairs are the strict upper triangle, canonical, with no stored zeros; condensed() is
    # scipy's condensed form of the square array (diagonal aside), and from_condensed its inverse
    upper = np.triu(want, 1)
    np.testing.assert_array_equal(got.pairs.toarray(), upper)
    assert got.pairs.has_canonical_format and got.pairs.nnz == np.count_nonzero(upper) == got.nonzero_pairs()
    np.testing.assert_array_equal(got.condensed(), squareform(want - np.diag(np.diag(want)), checks=False))
    back = CoFiring.from_condensed(got.counts, got.condensed())
    np.testing.assert_array_equal(back.pairs.toarray(), upper)
    a, b = int(rng.integers(f)), int(rng.integers(f))
    assert got.at(a, b) == want[a, b]
    idx = rng.integers(0, f, size=7)
    np.testing.assert_array_equal(got.square(idx), want[np.ix_(idx, idx)])


def test_coactivation_accepts_uint8_and_csc_and_unsorted():
    rng = np.random.default_rng(1)
    x = random_activity(rng, 120, 25, 0.2)
    csr = sp.csr_array(x.astype(np.uint8))
    # scramble index order inside rows: the kernel must not depend on sorted input
    rev = np.concatenate([np.arange(csr.indptr[i + 1] - 1, csr.indptr[i] - 1, -1) for i in range(csr.shape[0])])
    unsorted = sp.csr_array((csr.data[rev], csr.indices[rev], csr.indptr), shape=csr.shape)
    unsorted.has_sorted_indices = False
    for m in (csr, unsorted, sp.csc_array(x), sp.csr_matrix(x.astype(np.uint8))):
        np.testing.assert_array_equal(coactivation(m).square(), dense_coactivation(x))


def test_coactivation_empty_rows_and_columns():
    x = np.zeros((10, 5), dtype=bool)
    x[3, 1] = x[3, 4] = True
    c = coactivation(sp.csr_array(x))
    np.testing.assert_array_equal(c.square(), dense_coactivation(x))
    assert c.at(1, 4) == 1 and c.square()[0].sum() == 0


def test_coactivation_rejects_nan_and_non_matrix():
    with pytest.raises(ValueError, match="NaN"):
        coactivation(sp.csr_array(np.array([[np.nan, 1.0]])))
    with pytest.raises(TypeError):
        coactivation([[1, 0]])


def test_coactivation_across_sample_blocks(monkeypatch):
    """Inputs longer than several sample blocks (the kernel's cache tiling) stay exact."""
    import importlib

    mod = importlib.import_module("cluster_assets.core.coactivation")  # the package re-exports the function under this name

    rng = np.random.default_rng(7)
    x = random_activity(rng, 1000, 30, 0.2)
    monkeypatch.setattr(mod, "SAMPLE_BLOCK", 64)
    np.testing.assert_array_equal(mod.coactivation(sp.csr_array(x)).square(), dense_coactivation(x))


@pytest.mark.parametrize("ratio", [0, 1, 1e9])
def test_frequent_and_rare_kernels_each_count_exactly(monkeypatch, ratio):
    """Every feature but the last rare (per-thread rows), a mix, or every feature frequent (blocked kernel)."""
    import importlib

    mod = importlib.import_module("cluster_assets.core.coactivation")
    rng = np.random.default_rng(11)
    x = random_activity(rng, 700, 45, 0.15)
    x[:, :20] &= rng.random((700, 20)) < 0.05  # a tail of rare features
    monkeypatch.setattr(mod, "SAMPLE_BLOCK", 100)
    monkeypatch.setattr(mod, "DENSE_ROW_RATIO", ratio)
    np.testing.assert_array_equal(mod.coactivation(sp.csr_array(x)).square(), dense_coactivation(x))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_parts", [1, 2, 3, 1000])
def test_transpose_with_positions_equals_scipy_tocsc(seed, n_parts):
    """The threaded counting-sort transpose: same CSC as scipy, positions point back at each entry."""
    from cluster_assets.core.coactivation import as_activity_csr, csc_with_positions

    rng = np.random.default_rng(seed)
    csr = as_activity_csr(sp.random_array((int(rng.integers(1, 300)), 40), density=0.1, format="csr", rng=rng))
    positions = np.empty(csr.nnz, dtype=np.int32)
    col_indptr, samples, positions = csc_with_positions(csr.indptr, csr.indices, 40, positions, n_parts)
    want = csr.tocsc()
    want.sort_indices()
    np.testing.assert_array_equal(col_indptr, want.indptr)
    np.testing.assert_array_equal(samples, want.indices)
    np.testing.assert_array_equal(csr.indices[positions], np.repeat(np.arange(40), np.diff(col_indptr)))
    rows_of_entries = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    np.testing.assert_array_equal(rows_of_entries[positions], samples)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("budget", [1, 7, 50, 1 << 24])
def test_a_canonical_boolean_csc_is_counted_block_by_block_without_a_whole_row_view(seed, budget, monkeypatch):
    """Memberships' CSC is counted in blocks of samples (one sample alone may exceed the block's
    entries): each block's row view and positions are what the transpose gives, and neither the
    whole CSR nor a second transpose is ever built."""
    from cluster_assets.core.coactivation import as_activity_csr, csc_sample_block, csc_with_positions, sample_blocks

    module = sys.modules["cluster_assets.core.coactivation"]  # the package's `coactivation` is the function

    rng = np.random.default_rng(seed)
    x = random_activity(rng, int(rng.integers(1, 300)), 40, density=rng.uniform(0.02, 0.4))
    csc = sp.csc_array(x)
    blocks = sample_blocks(np.bincount(csc.indices, minlength=x.shape[0]), budget)
    assert blocks[0][0] == 0 and blocks[-1][1] == x.shape[0] and all(a[1] == b[0] for a, b in itertools.pairwise(blocks))
    assert all(x[t0:t1].sum() <= budget or t1 - t0 == 1 for t0, t1 in blocks)
    cursor = csc.indptr[:-1].astype(np.int64)
    for t0, t1 in blocks:
        b_indptr, b_samples, row_indptr, row_features, positions = csc_sample_block(
            csc.indptr.astype(np.int64), csc.indices, cursor, t0, t1
        )
        csr = as_activity_csr(sp.csr_array(x[t0:t1]))
        want = csc_with_positions(csr.indptr, csr.indices, 40, np.empty(csr.nnz, np.int32), 2)
        for got, expected in zip((row_indptr, row_features, b_indptr, b_samples, positions), (csr.indptr, csr.indices, *want)):
            np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(cursor, csc.indptr[1:])

    def never(*args):
        raise AssertionError("a canonical boolean CSC was converted whole")

    monkeypatch.setattr(module, "csc_with_positions", never)
    monkeypatch.setattr(module, "as_activity_csr", never)
    monkeypatch.setattr(module, "BLOCK_ENTRIES", budget)
    got = coactivation(csc)
    np.testing.assert_array_equal(got.square(), dense_coactivation(x))
    np.testing.assert_array_equal(got.counts, x.sum(axis=0))


WIDE_RUN = textwrap.dedent("""
    import resource, sys, tracemalloc
    import numpy as np, scipy.sparse as sp
    from cluster_assets.core import MergeConfig, coactivation, run_merge

    f, n = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(n), 400)
    x = sp.csr_array((np.ones(rows.size, bool), (rows, rng.integers(0, f, rows.size))), shape=(n, f))
    tracemalloc.start()
    counts = coactivation(x)
    _, traced_counts = tracemalloc.get_traced_memory()
    history = run_merge(x, MergeConfig(iters=200), cofiring=counts)
    _, traced = tracemalloc.get_traced_memory()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(counts.nbytes, counts.nonzero_pairs(), counts.pairs.dtype, traced_counts, traced, peak, history.n_merges)
""")


def test_a_wide_run_never_holds_a_features_squared_array_of_floats():
    """20,000 features, few samples: the counts hold only the pairs that co-fire (8 bytes each),
    coactivation never allocates the triangle, the merge's condensed int32 triangle is a quarter
    of an F x F float64 array, and neither the arrays numpy allocates (tracemalloc) nor the
    whole process (its peak resident memory, numba's arrays included) come near F x F x 8 bytes."""
    f, n = 20_000, 300
    done = subprocess.run(
        [sys.executable, "-c", WIDE_RUN, str(f), str(n)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    nbytes, nonzero, dtype, traced_counts, traced, peak_rss, merges = done.stdout.split()
    square_floats, triangle = f * f * 8, f * (f - 1) // 2 * 4
    assert dtype == "int32" and int(merges) == 200
    assert int(nbytes) <= int(nonzero) * 8 + (f + 1) * 8 + f * 8 and int(nbytes) < triangle / 4
    # counting held the activity, its transpose and the bounded output: far from the triangle
    assert int(traced_counts) < triangle / 2
    assert int(traced) < square_floats / 2  # the counts (a quarter) and what the merge keeps beside them
    assert int(peak_rss) < square_floats / 2
