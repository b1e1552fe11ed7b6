"""The fused top-k -> CSR kernel against a plain numpy reference."""

import numpy as np
import pytest

from cluster_assets.core.topk import topk_relu_csr


def _reference(pre, bias, k):
    """Dense relu(topk(pre + bias)): the k largest per row (stable: lower ids first on ties), ReLU, scatter."""
    v = (pre + bias).astype(pre.dtype)
    out = np.zeros_like(v)
    for r in range(v.shape[0]):
        top = np.argsort(-v[r], kind="stable")[:k]
        out[r, top] = np.maximum(v[r, top], 0)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_topk_relu_csr_equals_dense_reference(seed):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(0, 60)), int(rng.integers(1, 300))
    k = int(rng.integers(1, d + 5))  # k > d included
    pre = rng.normal(size=(n, d)).astype(np.float32)
    if seed % 3 == 0:  # many exact ties (small integers) and rows with few positive values
        pre = np.round(pre * 2).astype(np.float32)
    bias = rng.normal(scale=0.5, size=d).astype(np.float32) * (seed % 2)
    got = topk_relu_csr(pre, bias, k)
    want = _reference(pre, bias, k)
    assert got.shape == want.shape and got.has_sorted_indices
    np.testing.assert_array_equal(got.toarray(), want)
    assert np.all(got.data > 0)
    assert np.all(np.diff(got.indptr) <= k)


def test_topk_relu_csr_rejects_bad_shapes():
    with pytest.raises(ValueError, match="bias"):
        topk_relu_csr(np.zeros((3, 4), np.float32), np.zeros(5, np.float32), 2)
    with pytest.raises(ValueError, match="k must be"):
        topk_relu_csr(np.zeros((3, 4), np.float32), np.zeros(4, np.float32), 0)
