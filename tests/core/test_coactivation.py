import numpy as np
import pytest
import scipy.sparse as sp

from cluster_assets.core import coactivation
from tests.core.reference import dense_coactivation, random_activity


@pytest.mark.parametrize("seed", range(12))
def test_coactivation_equals_dense_product(seed):
    rng = np.random.default_rng(seed)
    n, f = rng.integers(1, 300), rng.integers(1, 60)
    x = random_activity(rng, n, f, density=rng.uniform(0.01, 0.5))
    got = coactivation(sp.csr_array(x))
    assert np.issubdtype(got.dtype, np.integer)
    np.testing.assert_array_equal(got, dense_coactivation(x))


def test_coactivation_accepts_uint8_and_csc_and_unsorted():
    rng = np.random.default_rng(1)
    x = random_activity(rng, 120, 25, 0.2)
    csr = sp.csr_array(x.astype(np.uint8))
    # scramble index order inside rows: the kernel must not depend on sorted input
    rev = np.concatenate([np.arange(csr.indptr[i + 1] - 1, csr.indptr[i] - 1, -1) for i in range(csr.shape[0])])
    unsorted = sp.csr_array((csr.data[rev], csr.indices[rev], csr.indptr), shape=csr.shape)
    unsorted.has_sorted_indices = False
    for m in (csr, unsorted, sp.csc_array(x), sp.csr_matrix(x.astype(np.uint8))):
        np.testing.assert_array_equal(coactivation(m), dense_coactivation(x))


def test_coactivation_empty_rows_and_columns():
    x = np.zeros((10, 5), dtype=bool)
    x[3, 1] = x[3, 4] = True
    c = coactivation(sp.csr_array(x))
    np.testing.assert_array_equal(c, dense_coactivation(x))
    assert c[1, 4] == 1 and c[0].sum() == 0


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
    np.testing.assert_array_equal(mod.coactivation(sp.csr_array(x)), dense_coactivation(x))


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
