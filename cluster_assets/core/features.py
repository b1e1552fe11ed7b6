"""Per-feature statistics over sparse token activations, and the filters that keep features.

Statistics (all SAE features, one pass over the CSR, never a dense tokens x features array):

- ``firing_count`` / ``firing_rate``: tokens with activation > threshold;
- ``max``, ``mean``: over all tokens, implicit zeros included;
- ``entropy`` / ``varentropy`` (the research notebook's definitions, natural log): take the
  per-prompt mass ``m_q = sum of |activation|`` over prompt ``q``'s tokens, normalise over all
  prompts ``p_q = m_q / sum m``; entropy ``= -sum_q p_q log p_q``; varentropy is the population
  variance over all prompts of ``h_q = -p_q log p_q`` (zero-mass prompts have ``h_q = 0``).
  Both are NaN for a feature with no mass.

Every sum runs in token (or prompt) order on one thread, so results do not depend on the
number of threads.  The activations may come as row blocks (:data:`Blocks`, e.g. one per
activation shard): sums carry over from block to block in the same order, so any split of the
rows gives the same bytes as the whole matrix, in memory that holds one block at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numba as nb
import numpy as np
import scipy.sparse as sp

from cluster_assets.core.arrays import Float64Array, FloatArray, Int32Array, Int64Array, IntArray
from cluster_assets.core.coactivation import count_dtype
from cluster_assets.core.params import SparseMatrix

#: Row blocks of one (tokens x features) activation matrix, in row order; iterable more than once
#: (a list, or the stored activations' shards, each loaded when reached).  A prompt's tokens
#: lie in one block.
Blocks = Iterable[SparseMatrix]

#: Why a feature was dropped: the first failing rule, in this order ("kept" when none fails).
REASONS = ("kept", "dead", "firing_rate", "entropy", "varentropy")


@dataclass(frozen=True)
class FeatureStats:
    """Arrays of shape (n_features,) plus the token/prompt totals they were computed over."""

    n_tokens: int
    n_prompts: int
    firing_count: np.ndarray  # int64
    max: np.ndarray  # float64
    mean: np.ndarray  # float64
    entropy: np.ndarray  # float64, nats, NaN without mass
    varentropy: np.ndarray  # float64, NaN without mass

    @property
    def firing_rate(self) -> np.ndarray:
        return self.firing_count / max(self.n_tokens, 1)

    def columns(self) -> dict[str, np.ndarray]:
        return {
            "feature_id": np.arange(self.firing_count.size, dtype=np.int64),
            "firing_count": self.firing_count,
            "firing_rate": self.firing_rate,
            "max": self.max,
            "mean": self.mean,
            "entropy": self.entropy,
            "varentropy": self.varentropy,
        }


@nb.njit(cache=True)
def _column_stats(
    indices: IntArray, data: FloatArray, threshold: float, firing: Int64Array, vmax: Float64Array, vsum: Float64Array
) -> bool:
    """Add one block's entries to the running firing counts, maxima and sums (False on NaN/inf)."""
    for q in range(indices.size):
        v = np.float64(data[q])
        if not np.isfinite(v):
            return False
        f = indices[q]
        if v > threshold:
            firing[f] += 1
        if v > vmax[f]:
            vmax[f] = v
        vsum[f] += v
    return True


@nb.njit(cache=True)
def prompt_reduce(
    indptr: IntArray,
    indices: IntArray,
    data: FloatArray,
    row_order: IntArray,
    row_prompt: IntArray,
    n_prompts: int,
    n_features: int,
    op: int,
) -> tuple[Int64Array, Int32Array, Float64Array]:
    """(prompts x features) CSR of a reduction of each feature's entries over each prompt's tokens.

    Rows are visited in ``row_order``, along which ``row_prompt`` (0..n_prompts-1) does not
    decrease.  ``op``: 0 = sum of |v|, 1 = max of v, 2 = sum of v.  Output columns are sorted.
    """
    out_indptr = np.zeros(n_prompts + 1, np.int64)
    out_idx = np.empty(indices.size, np.int32)
    out_val = np.empty(indices.size, np.float64)
    scratch = np.zeros(n_features)
    seen = np.full(n_features, -1, np.int64)
    touched = np.empty(n_features, np.int64)
    count = 0
    r = 0
    n_rows = row_order.size
    for p in range(n_prompts):
        n_touched = 0
        while r < n_rows and row_prompt[row_order[r]] == p:
            row = row_order[r]
            for q in range(indptr[row], indptr[row + 1]):
                f = indices[q]
                v = np.float64(data[q])
                if seen[f] != p:
                    seen[f] = p
                    touched[n_touched] = f
                    n_touched += 1
                    scratch[f] = abs(v) if op == 0 else v
                elif op == 0:
                    scratch[f] += abs(v)
                elif op == 1:
                    scratch[f] = max(scratch[f], v)
                else:
                    scratch[f] += v
            r += 1
        order = np.sort(touched[:n_touched])
        for t in range(n_touched):
            out_idx[count] = order[t]
            out_val[count] = scratch[order[t]]
            count += 1
        out_indptr[p + 1] = count
    return out_indptr, out_idx[:count], out_val[:count]


def prompt_rows(token_prompt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prompt ids in order, each token's prompt index, the token order that groups prompts)."""
    prompts, row_prompt = np.unique(np.asarray(token_prompt), return_inverse=True)
    row_prompt = row_prompt.ravel()
    if row_prompt.size < 2 or np.all(row_prompt[1:] >= row_prompt[:-1]):
        order = np.arange(row_prompt.size)
    else:
        order = np.argsort(row_prompt, kind="stable")
    return prompts, row_prompt, order


def per_prompt(activations: sp.csr_array, token_prompt: np.ndarray, op: str = "abs_sum") -> tuple[np.ndarray, sp.csr_array]:
    """(prompt ids, prompts x features CSR) of ``op`` (``abs_sum``, ``max`` or ``sum``) over each prompt's tokens."""
    csr = canonical_csr(activations)
    prompts, row_prompt, order = prompt_rows(token_prompt)
    if row_prompt.shape != (csr.shape[0],):
        raise ValueError("token_prompt must have one entry per activation row")
    code = {"abs_sum": 0, "max": 1, "sum": 2}[op]
    indptr, idx, val = prompt_reduce(csr.indptr, csr.indices, csr.data, order, row_prompt, prompts.size, csr.shape[1], code)
    if indptr[-1] < np.iinfo(np.int32).max:  # else scipy widens the int32 indices to indptr's int64
        indptr = indptr.astype(np.int32)
    return prompts, sp.csr_array((val, idx, indptr), shape=(prompts.size, csr.shape[1]))


def canonical_csr(activations: SparseMatrix) -> sp.csr_array:
    """CSR with sorted, duplicate-free rows (a no-op check when it already is)."""
    csr = sp.csr_array(activations)
    csr.sum_duplicates()
    return csr


def blocks_of(activations: SparseMatrix | Blocks) -> Blocks:
    """``activations`` as row blocks: a matrix is one block."""
    if isinstance(activations, (np.ndarray, sp.sparray, sp.spmatrix)):
        return [activations]
    return activations


def canonical_blocks(activations: SparseMatrix | Blocks, token_prompt: np.ndarray) -> Iterator[tuple[sp.csr_array, np.ndarray]]:
    """Each block as a canonical CSR with its rows' prompts; checks that the blocks' rows are
    exactly ``token_prompt``'s and that no prompt is split between blocks."""
    token_prompt = np.asarray(token_prompt, dtype=np.int64)
    start, seen = 0, set[int]()
    for block in blocks_of(activations):
        csr = canonical_csr(block)
        rows = token_prompt[start : start + csr.shape[0]]
        if rows.size != csr.shape[0]:
            raise ValueError(f"token_prompt has {token_prompt.size} rows, fewer than the activations' blocks")
        mine = np.unique(rows).tolist()
        if not seen.isdisjoint(mine):
            raise ValueError("a prompt's tokens are split between two activation blocks")
        seen.update(mine)
        start += csr.shape[0]
        yield csr, rows
    if start != token_prompt.size:
        raise ValueError(f"token_prompt has {token_prompt.size} rows but the activations {start}")


def prompt_row_order(prompts: list[np.ndarray], indptrs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-block rows, one per prompt (each block's ``prompts`` ascending, with its CSR ``indptr``),
    as one set of rows in prompt id order: (prompt ids, indptr, and which of the blocks' concatenated
    entries each new entry is).  A prompt lies in one block, so this is what the whole matrix gives."""
    ids = np.concatenate(prompts) if prompts else np.zeros(0, np.int64)
    lengths = np.concatenate([np.diff(i) for i in indptrs]) if indptrs else np.zeros(0, np.int64)
    order = np.argsort(ids, kind="stable")
    moved = lengths[order]
    indptr = np.concatenate([[0], np.cumsum(moved)]).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    take: np.ndarray = np.arange(int(indptr[-1])) - np.repeat(indptr[:-1], moved) + np.repeat(starts[order], moved)
    return ids[order], indptr, take


def stack_blocks(blocks: list[sp.csr_array], n_columns: int) -> sp.csr_array:
    """Consecutive row blocks as one CSR (what ``sp.vstack`` gives, int32 indices where they fit).

    Empties ``blocks``, dropping each block once it is copied: the result's pages are touched only
    as they are filled, so the peak is the result plus one block, not the blocks and the result.
    """
    n_rows, nnz = sum(b.shape[0] for b in blocks), sum(b.nnz for b in blocks)
    index_type = count_dtype(max(nnz, n_rows, n_columns))
    indptr, indices = np.zeros(n_rows + 1, index_type), np.empty(nnz, index_type)
    data = np.empty(nnz, blocks[0].dtype if blocks else bool)
    blocks.reverse()
    row = at = 0
    while blocks:
        b = blocks.pop()
        indptr[row + 1 : row + 1 + b.shape[0]] = at + b.indptr[1:]
        indices[at : at + b.nnz], data[at : at + b.nnz] = b.indices, b.data
        row, at = row + b.shape[0], at + b.nnz
        del b
    return sp.csr_array((data, indices, indptr), shape=(n_rows, n_columns))


def stack_prompt_rows(parts: list[tuple[np.ndarray, sp.csr_array]], n_columns: int) -> tuple[np.ndarray, sp.csr_array]:
    """(prompt ids ascending, their rows): per-block (prompt ids, prompts x columns) results stacked
    in prompt order (:func:`prompt_row_order`).  Empties ``parts``."""
    if not parts:
        return np.zeros(0, np.int64), sp.csr_array((0, n_columns))
    ids, blocks = [p for p, _ in parts], [sp.csr_array(m) for _, m in parts]
    parts.clear()
    stacked_ids = np.concatenate(ids)
    if stacked_ids.size < 2 or np.all(stacked_ids[1:] > stacked_ids[:-1]):  # already in prompt order (shards are)
        return stacked_ids, stack_blocks(blocks, n_columns)
    prompts, indptr, take = prompt_row_order(ids, [m.indptr for m in blocks])
    data = np.concatenate([m.data for m in blocks])[take]
    indices = np.concatenate([m.indices for m in blocks])[take]
    return prompts, sp.csr_array((data, indices, indptr), shape=(prompts.size, n_columns))


def feature_statistics(activations: SparseMatrix | Blocks, token_prompt: np.ndarray, threshold: float) -> FeatureStats:
    """Statistics of every feature (column) of a tokens x features activation matrix, or of its
    row blocks, one block in memory at a time.

    ``token_prompt``: (tokens,) prompt id of each row.  Raises on NaN/inf and on no tokens.
    """
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold}")
    firing, vmax, vsum = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    masses: list[tuple[np.ndarray, sp.csr_array]] = []
    n_tokens = 0
    for i, (csr, rows) in enumerate(canonical_blocks(activations, token_prompt)):
        if i == 0:  # the running sums, sized by the first block
            firing, vmax, vsum = np.zeros(csr.shape[1], np.int64), np.zeros(csr.shape[1]), np.zeros(csr.shape[1])
        if csr.shape[1] != firing.size:
            raise ValueError(f"an activation block has {csr.shape[1]} features, expected {firing.size}")
        if not _column_stats(csr.indices, csr.data, float(threshold), firing, vmax, vsum):
            raise ValueError("activations contain NaN or inf")
        n_tokens += csr.shape[0]
        if csr.shape[0]:
            masses.append(per_prompt(csr, rows, "abs_sum"))
    if n_tokens == 0:
        raise ValueError("no activations were given (empty corpus?)")
    n_features = firing.size
    # the prompt masses grow with the sample: each form is dropped once the next exists
    prompts, mass = stack_prompt_rows(masses, n_features)
    columns = mass.tocsc()
    del mass
    entropy, varentropy = prompt_entropy(columns)
    return FeatureStats(n_tokens, int(prompts.size), firing, vmax, vsum / n_tokens, entropy, varentropy)


def prompt_entropy(mass: sp.csc_array, chunk: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Entropy and varentropy (nats) of each column of a prompts x features mass matrix.

    Columns are independent, so they are taken in runs of about ``chunk`` entries: the
    temporaries stay bounded whatever the number of prompts, and every column's arithmetic is
    the same as in one run."""
    n_prompts, n_features = mass.shape
    mass = sp.csc_array(mass)
    mass.sort_indices()
    indptr: Int64Array = mass.indptr.astype(np.int64)
    entropy, varentropy = np.zeros(n_features), np.zeros(n_features)
    start = 0
    while start < n_features:
        last = int(np.searchsorted(indptr, int(indptr[start]) + chunk, side="right")) - 1  # the run's entries fit in chunk
        stop = min(max(last, start + 1), n_features)
        data = mass.data[indptr[start] : indptr[stop]]
        entropy[start:stop], varentropy[start:stop] = _entropy_columns(data, np.diff(indptr[start : stop + 1]), n_prompts)
        start = stop
    return entropy, varentropy


def _entropy_columns(data: np.ndarray, nnz: np.ndarray, n_prompts: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`prompt_entropy` of consecutive columns: their entries in column order, each one's count."""
    n_features = nnz.size
    col = np.repeat(np.arange(n_features), nnz)
    totals = np.bincount(col, weights=data, minlength=n_features).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = data / totals[col]
        h = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy = np.bincount(col, weights=h, minlength=n_features).astype(np.float64)
    mean_h = entropy / n_prompts
    # two-pass variance: explicit prompts, then the zero-mass prompts that contribute (0 - mean)^2
    sq = np.bincount(col, weights=(h - mean_h[col]) ** 2, minlength=n_features)
    varentropy = (sq + (n_prompts - nnz) * mean_h**2) / n_prompts
    dead = totals <= 0
    entropy[dead] = np.nan
    varentropy[dead] = np.nan
    return entropy, varentropy


def quadrants(entropy: np.ndarray, varentropy: np.ndarray) -> np.ndarray:
    """The research notebook's entropy/varentropy quadrant of each feature (median split).

    low/low "flowing", high entropy/low varentropy "careful", low/high "exploring",
    high/high "resampling"; NaN statistics give "" (no quadrant).
    """
    out = np.full(entropy.shape, "", dtype=object)
    ok = np.isfinite(entropy) & np.isfinite(varentropy)
    if not ok.any():
        return out.astype(str)
    high_e = entropy > np.median(entropy[ok])
    high_v = varentropy > np.median(varentropy[ok])
    names = {(False, False): "flowing", (True, False): "careful", (False, True): "exploring", (True, True): "resampling"}
    for (e, v), name in names.items():
        out[ok & (high_e == e) & (high_v == v)] = name
    return out.astype(str)
