"""Top-k of biased pre-activations straight into CSR, for TopK SAEs.

A TopK SAE's feature activations are ``relu(topk(x @ W_enc + b_enc))`` scattered into a
dense ``(tokens, d_sae)`` array.  The non-zeros are exactly the positive values among
each row's k largest, so a pass per row gives the CSR without the dense array, a full
top-k sort or the scatter:

1. a floor below the row's k-th largest value, guessed from a strided sample of the row
   (its value of rank ~2k among d) and never below 0 (the ReLU);
2. the entries above the floor, in feature order (~2k of them); if fewer than k, the
   floor drops to 0 and the row is scanned again, so the result never depends on the guess;
3. of those, the k largest (ties at the k-th value keep the lower feature ids), still in
   feature order, so the CSR indices come out sorted.

The bias is added in float32, the same single rounding as ``pre + b_enc`` in torch, so
the values are bit-identical to the dense computation.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
import scipy.sparse as sp

from cluster_assets.core.arrays import Array2D, FloatArray, Int32Array, Int64Array

#: Sampled entries per row used to guess the floor.
SAMPLE = 256


@nb.njit(cache=True, nogil=True, inline="always")
def _above(vals: FloatArray, floor: np.floating[Any], cand_v: FloatArray, cand_i: Int32Array) -> int:
    count = 0
    for j in range(vals.size):
        if vals[j] > floor:  # rarely true past a good floor, so well predicted (NaN: false)
            cand_v[count] = vals[j]
            cand_i[count] = j
            count += 1
    return count


@nb.njit(cache=True, nogil=True, inline="always")
def _rank_largest(vals: FloatArray, stride: int, rank: int, top: FloatArray) -> np.floating[Any]:
    """The rank-th largest of vals[::stride] (insertion into a sorted top list)."""
    size = 0
    for s in range(0, vals.size, stride):
        v = vals[s]
        if size == rank and not v > top[size - 1]:
            continue
        pos = size if size < rank else rank - 1
        while pos > 0 and top[pos - 1] < v:
            top[pos] = top[pos - 1]
            pos -= 1
        top[pos] = v
        if size < rank:
            size += 1
    return top[rank - 1]


@nb.njit(cache=True, nogil=True)
def _select(work: FloatArray, n: int, target: int) -> np.floating[Any]:
    """The value of rank ``target`` (0 = smallest) among work[:n], by in-place quickselect."""
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        a, b, c = work[lo], work[mid], work[hi]
        pivot = max(min(a, b), min(max(a, b), c))  # median of three
        i, j = lo, hi
        while i <= j:
            while work[i] < pivot:
                i += 1
            while work[j] > pivot:
                j -= 1
            if i <= j:
                work[i], work[j] = work[j], work[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            return work[target]
    return work[target]


@nb.njit(cache=True, nogil=True)
def _topk_rows(
    pre: Array2D[np.floating[Any]],
    bias: FloatArray,
    scale: FloatArray,
    k: int,
    out_idx: Array2D[np.int32],
    out_val: Array2D[np.floating[Any]],
    out_count: Int64Array,
) -> None:
    n_rows, d = pre.shape
    stride = max(1, d // SAMPLE)
    m = (d + stride - 1) // stride
    rank = int(2 * k * m / d) + 1  # the sample's rank-th largest sits near rank 2k of the row
    zero = pre.dtype.type(0)
    vals = np.empty(d, dtype=pre.dtype)
    top = np.empty(rank + 1, dtype=pre.dtype)
    cand_v = np.empty(d, dtype=pre.dtype)
    cand_i = np.empty(d, dtype=np.int32)
    work = np.empty(d, dtype=pre.dtype)
    for r in range(n_rows):
        for j in range(d):
            vals[j] = (pre[r, j] + bias[j]) * scale[j]  # float32 add then multiply, as torch does
        floor = zero
        if rank < m:
            guess = _rank_largest(vals, stride, rank, top)
            if guess > floor:
                floor = guess
        count = _above(vals, floor, cand_v, cand_i)
        if count < k and floor > zero:
            count = _above(vals, zero, cand_v, cand_i)
        if count <= k:
            out_val[r, :count] = cand_v[:count]
            out_idx[r, :count] = cand_i[:count]
            out_count[r] = count
            continue
        work[:count] = cand_v[:count]
        kth = _select(work, count, count - k)
        greater = 0
        for c in range(count):
            greater += cand_v[c] > kth
        ties = k - greater  # entries equal to the k-th value that still fit, lowest ids first
        n = 0
        for c in range(count):
            v = cand_v[c]
            if v > kth or (v == kth and ties > 0):
                if v == kth:
                    ties -= 1
                out_val[r, n] = v
                out_idx[r, n] = cand_i[c]
                n += 1
        out_count[r] = n


def topk_relu_rows(
    pre: Array2D[np.floating[Any]],
    bias: np.ndarray,
    k: int,
    out_idx: Array2D[np.int32],
    out_val: Array2D[np.floating[Any]],
    out_count: Int64Array,
    scale: np.ndarray | None = None,
) -> None:
    """Fill row r of ``out_idx``/``out_val`` (shape (tokens, k)) with the non-zeros of
    ``relu(topk_k((pre[r] + bias) * scale))`` in feature order and ``out_count[r]`` with their number.

    pre: (tokens, d_sae) float32 C-contiguous, bias and scale (default ones): (d_sae,) float32,
    k <= d_sae.  Ties at the k-th value keep the lower feature ids.  Releases the GIL.
    """
    if pre.ndim != 2 or bias.shape != (pre.shape[1],):
        raise ValueError(f"expected pre (tokens, d) and bias (d,), got {pre.shape} and {bias.shape}")
    if not 1 <= k <= pre.shape[1]:
        raise ValueError(f"k must be in [1, d_sae={pre.shape[1]}], got {k}")
    if out_idx.shape != (pre.shape[0], k) or out_val.shape != out_idx.shape or out_count.shape != (pre.shape[0],):
        raise ValueError("output arrays must be (tokens, k), (tokens, k) and (tokens,)")
    scale = np.ones(pre.shape[1], dtype=pre.dtype) if scale is None else np.ascontiguousarray(scale, dtype=pre.dtype)
    if pre.shape[0]:
        _topk_rows(np.ascontiguousarray(pre), np.ascontiguousarray(bias, dtype=pre.dtype), scale, k, out_idx, out_val, out_count)


def rows_to_csr(out_idx: Array2D[np.int32], out_val: Array2D[np.floating[Any]], out_count: Int64Array, d_sae: int) -> sp.csr_array:
    """The CSR (tokens, d_sae) of rows filled by :func:`topk_relu_rows`."""
    keep = np.arange(out_idx.shape[1]) < out_count[:, None]
    indptr = np.concatenate([[0], np.cumsum(out_count)])
    return sp.csr_array((out_val[keep], out_idx[keep], indptr), shape=(out_idx.shape[0], d_sae))


def topk_relu_csr(pre: np.ndarray, bias: np.ndarray, k: int) -> sp.csr_array:
    """CSR (tokens, d_sae) of ``relu(topk_k(pre + bias))`` with zeros dropped, sorted indices.

    pre: (tokens, d_sae) float32, bias: (d_sae,) float32; k larger than d_sae keeps every
    positive value.  Ties at the k-th value keep the lower feature ids.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pre = np.asarray(pre)
    if pre.ndim != 2:
        raise ValueError(f"expected pre (tokens, d) and bias (d,), got {pre.shape} and {np.shape(bias)}")
    n_rows, d = pre.shape
    width = min(k, d)
    out_idx = np.empty((n_rows, width), dtype=np.int32)
    out_val = np.empty((n_rows, width), dtype=pre.dtype)
    out_count = np.zeros(n_rows, dtype=np.int64)
    if d:
        topk_relu_rows(pre, np.asarray(bias), width, out_idx, out_val, out_count)
    return rows_to_csr(out_idx, out_val, out_count, d)
