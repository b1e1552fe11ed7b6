"""Compressed per-feature memberships: the set of samples on which a feature is active.

A feature is *active* on a sample when its activation is strictly above the threshold.
Each feature's sample set is stored as whichever form is smaller:

- a sorted ``int64`` index array (``4``-``8`` bytes per active sample), or
- a packed little-endian bitset over all ``n_samples`` samples (``n_samples / 8`` bytes).

The switch point is :data:`DENSE_FRACTION`: a set holding more than that fraction of
the samples is stored as a bitset.  Unions (group merges) re-choose the form, so a
group that grows "upgrades" to a bitset by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.sparse as sp

from cluster_assets.core.atomic import atomic_path
from cluster_assets.core.coactivation import compact_index, count_dtype

#: A set with more than this fraction of all samples is stored as a bitset: at that
#: point ``8 * count`` bytes of int64 indices exceed the ``n_samples / 8`` bitset bytes.
DENSE_FRACTION = 1.0 / 64.0


@dataclass(frozen=True)
class Membership:
    """The samples on which one feature (or group of features) is active.

    Exactly one of ``indices`` (sorted, unique int64) or ``bits`` (packed uint8,
    ``ceil(n_samples / 8)`` bytes, little bit order) is set.
    """

    n_samples: int
    indices: np.ndarray | None = None
    bits: np.ndarray | None = None

    # construction --------------------------------------------------------------
    @classmethod
    def from_indices(cls, indices: np.ndarray, n_samples: int) -> "Membership":
        """Build from sample indices (any order, duplicates allowed); picks the form."""
        idx = np.unique(np.asarray(indices, dtype=np.int64))
        if idx.size and (idx[0] < 0 or idx[-1] >= n_samples):
            raise ValueError(f"sample index out of range [0, {n_samples})")
        if idx.size > DENSE_FRACTION * n_samples:
            mask = np.zeros(n_samples, dtype=bool)
            mask[idx] = True
            return cls(n_samples, bits=np.packbits(mask, bitorder="little"))
        return cls(n_samples, indices=idx)

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> "Membership":
        mask = np.asarray(mask, dtype=bool)
        return cls.from_indices(np.flatnonzero(mask), mask.size)

    # views ----------------------------------------------------------------------
    @property
    def is_bitset(self) -> bool:
        return self.bits is not None

    def to_indices(self) -> np.ndarray:
        """Sorted int64 sample indices."""
        if self.indices is not None:
            return self.indices
        return np.flatnonzero(self._mask()).astype(np.int64)

    def _mask(self) -> np.ndarray:
        if self.bits is not None:
            return np.unpackbits(self.bits, count=self.n_samples, bitorder="little").astype(bool)
        mask = np.zeros(self.n_samples, dtype=bool)
        mask[self.indices] = True
        return mask

    @property
    def nbytes(self) -> int:
        return int((self.indices if self.indices is not None else self.bits).nbytes)

    # set algebra ----------------------------------------------------------------
    def count(self) -> int:
        if self.indices is not None:
            return int(self.indices.size)
        return int(np.unpackbits(self.bits, bitorder="little").sum())

    def _check(self, other: "Membership") -> None:
        if other.n_samples != self.n_samples:
            raise ValueError(f"memberships over {self.n_samples} and {other.n_samples} samples")

    def intersection_count(self, other: "Membership") -> int:
        self._check(other)
        if self.bits is not None and other.bits is not None:
            return int(np.unpackbits(self.bits & other.bits, bitorder="little").sum())
        if self.indices is not None and other.indices is not None:
            return int(np.intersect1d(self.indices, other.indices, assume_unique=True).size)
        sparse, dense = (self, other) if self.indices is not None else (other, self)
        return int(dense._mask()[sparse.indices].sum())

    def union(self, other: "Membership") -> "Membership":
        self._check(other)
        if self.bits is not None and other.bits is not None:
            return Membership(self.n_samples, bits=self.bits | other.bits)
        if self.indices is not None and other.indices is not None:
            return Membership.from_indices(np.union1d(self.indices, other.indices), self.n_samples)
        return Membership.from_mask(self._mask() | other._mask())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Membership):
            return NotImplemented
        return self.n_samples == other.n_samples and np.array_equal(self.to_indices(), other.to_indices())

    __hash__ = None  # type: ignore[assignment]


class Memberships:
    """Memberships of many features over one sample axis, backed by a CSC activity matrix.

    ``activity`` is a boolean ``scipy.sparse.csc_array`` of shape ``(n_samples, n_features)``
    with sorted indices; column ``j`` lists the samples where feature ``feature_ids[j]`` is
    active.  ``feature_ids`` are the SAE feature ids (identity across datasets).
    """

    def __init__(self, activity: sp.sparray | sp.spmatrix, feature_ids: np.ndarray | None = None):
        if sp.issparse(activity) and activity.format in ("csr", "csc"):
            activity = compact_index(activity)  # else the transpose below inherits an int64 index
        csc = compact_index(sp.csc_array(activity, dtype=bool))
        csc.sum_duplicates()
        csc.sort_indices()
        self.activity = csc
        n_features = csc.shape[1]
        self.feature_ids = (
            np.arange(n_features, dtype=np.int64) if feature_ids is None else np.asarray(feature_ids, dtype=np.int64)
        )
        if self.feature_ids.shape != (n_features,):
            raise ValueError("feature_ids must have one entry per column of activity")

    @property
    def n_samples(self) -> int:
        return int(self.activity.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.activity.shape[1])

    def counts(self) -> np.ndarray:
        """Active-sample count per feature, int64 of shape (n_features,)."""
        return np.diff(self.activity.indptr).astype(np.int64)

    def __len__(self) -> int:
        return self.n_features

    def __getitem__(self, j: int) -> Membership:
        lo, hi = self.activity.indptr[j], self.activity.indptr[j + 1]
        return Membership.from_indices(self.activity.indices[lo:hi], self.n_samples)

    def compressed(self) -> list[Membership]:
        return [self[j] for j in range(self.n_features)]

    def to_csr(self) -> sp.csr_array:
        """Samples x features boolean CSR (sorted indices)."""
        csr = self.activity.tocsr()
        csr.sort_indices()
        return csr

    def subset(self, columns: np.ndarray) -> "Memberships":
        """The memberships of the given column positions (in that order)."""
        columns = np.asarray(columns, dtype=np.int64)
        return Memberships(self.activity[:, columns], self.feature_ids[columns])

    # storage: compressed on disk (index lists for sparse features, bitsets for dense) ---
    def save(self, path: str | Path) -> None:
        """Write as ``.npz``: sparse features as concatenated index lists, dense ones as bitsets."""
        parts = self.compressed()
        is_bits = np.array([m.is_bitset for m in parts], dtype=bool)
        sparse_parts = [m.indices for m in parts if not m.is_bitset]
        lens = np.array([0 if m.is_bitset else m.indices.size for m in parts], dtype=np.int64)
        bitsets = [m.bits for m in parts if m.is_bitset]
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh,
                    n_samples=np.int64(self.n_samples),
                    feature_ids=self.feature_ids,
                    is_bitset=is_bits,
                    index_lengths=lens,
                    indices=np.concatenate(sparse_parts) if sparse_parts else np.zeros(0, np.int64),
                    bitsets=np.stack(bitsets) if bitsets else np.zeros((0, (self.n_samples + 7) // 8), np.uint8),
                )

    @classmethod
    def load(cls, path: str | Path) -> "Memberships":
        with np.load(path) as z:
            n_samples = int(z["n_samples"])
            is_bits, lens = z["is_bitset"], z["index_lengths"]
            indices, bitsets = z["indices"], z["bitsets"]
            feature_ids = z["feature_ids"]
        cols, offset, b = [], 0, 0
        for j in range(is_bits.size):
            if is_bits[j]:
                m = Membership(n_samples, bits=bitsets[b])
                cols.append(m.to_indices())
                b += 1
            else:
                cols.append(indices[offset : offset + lens[j]])
                offset += int(lens[j])
        return cls.from_columns(cols, n_samples, feature_ids)

    @classmethod
    def from_columns(cls, columns: list[np.ndarray], n_samples: int, feature_ids: np.ndarray | None = None) -> "Memberships":
        """From one sorted sample-index array per feature."""
        lens = np.array([c.size for c in columns], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        data_idx = np.concatenate(columns).astype(np.int64) if columns else np.zeros(0, np.int64)
        csc = sp.csc_array((np.ones(data_idx.size, bool), data_idx, indptr), shape=(n_samples, len(columns)))
        return cls(csc, feature_ids)


def activity_from_batches(batches: Iterable[sp.sparray | sp.spmatrix], threshold: float, n_features: int) -> sp.csr_array:
    """Stream sparse activation batches (rows = samples, in order) into a boolean activity CSR.

    Only entries strictly above ``threshold`` are kept, so memory is bounded by the active
    entries, never by ``samples x features``.  Raises on NaN/inf activations.
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    indptrs, indices, n_rows = [np.zeros(1, np.int64)], [], 0
    for batch in batches:
        csr = sp.csr_array(batch)
        if csr.shape[1] != n_features:
            raise ValueError(f"batch has {csr.shape[1]} features, expected {n_features}")
        if not np.all(np.isfinite(csr.data)):
            raise ValueError("activations contain NaN or inf")
        csr.sum_duplicates()
        keep = csr.data > threshold
        kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])  # kept entries before each position
        indptrs.append(indptrs[-1][-1] + kept_before[csr.indptr[1:]])
        indices.append(csr.indices[keep].astype(np.int32))
        n_rows += csr.shape[0]
    indptr = np.concatenate(indptrs)
    # fill one array chunk by chunk, freeing each as it is copied: np.concatenate would hold both
    idx = np.empty(int(indptr[-1]), dtype=np.int32)
    indices.reverse()
    pos = 0
    while indices:
        part = indices.pop()
        idx[pos : pos + part.size] = part
        pos += part.size
    index_type = count_dtype(max(idx.size, n_rows, n_features))  # int32 indptr, or scipy widens idx to int64
    out = sp.csr_array((np.ones(idx.size, dtype=bool), idx.astype(index_type, copy=False), indptr.astype(index_type)),
                       shape=(n_rows, n_features))
    out.sort_indices()
    return out


def prompt_activity(
    activations: sp.sparray | sp.spmatrix,
    prompt_ids: np.ndarray,
    threshold: float,
    reduce: str = "max",
) -> tuple[sp.csr_array, np.ndarray]:
    """Prompt-level activity: a feature is active on a prompt when ``reduce`` of its
    activations over the prompt's tokens is strictly above ``threshold``.

    ``reduce='max'`` means active on any token; ``'mean'`` averages over all the prompt's
    tokens (zeros included).  Returns (prompts x features bool CSR, the prompt ids in row
    order).
    """
    if reduce not in ("max", "mean"):
        raise ValueError(f"unknown prompt reduce {reduce!r}; expected 'max' or 'mean'")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    csr = sp.csr_array(activations)
    prompt_ids = np.asarray(prompt_ids)
    if prompt_ids.shape != (csr.shape[0],):
        raise ValueError("prompt_ids must have one entry per token row")
    uniq, row_prompt = np.unique(prompt_ids, return_inverse=True)
    coo = csr.tocoo()
    rows = row_prompt[coo.row]
    if reduce == "mean":
        agg = sp.coo_array((coo.data.astype(np.float64), (rows, coo.col)), shape=(uniq.size, csr.shape[1])).tocsr()
        agg.sum_duplicates()
        n_tok = np.bincount(row_prompt, minlength=uniq.size).astype(np.float64)
        agg = sp.csr_array(sp.diags_array(1.0 / n_tok) @ agg)
    else:
        # max over tokens: activations are >= 0 after an SAE's ReLU/TopK, but be exact for any sign
        order = np.lexsort((coo.col, rows))
        r, c, v = rows[order], coo.col[order], coo.data[order].astype(np.float64)
        key = r.astype(np.int64) * csr.shape[1] + c
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if key.size else np.zeros(0, np.int64)
        vmax = np.maximum.reduceat(v, starts) if key.size else v
        agg = sp.csr_array((vmax, (r[starts], c[starts])), shape=(uniq.size, csr.shape[1]))
    return activity_from_batches([agg], threshold, csr.shape[1]), uniq
