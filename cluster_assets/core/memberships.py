"""Memberships: the set of samples on which each feature is active, and how they are built.

A feature is *active* on a sample when its activation is strictly above the threshold.
:class:`Memberships` holds the kept features' sets as one boolean CSC matrix (samples x
features; column j lists the samples of feature j) -- what the pipeline computes, stores and
merges.  :class:`Membership` is one set in compressed form for set algebra on single groups:
a sorted index array or, above :data:`DENSE_FRACTION` of the samples, a packed bitset,
whichever is smaller; unions re-choose the form.  :func:`build_memberships` goes from sparse
activations to the statistics of every feature, the filters and the kept features' memberships.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

import numba as nb
import numpy as np
import scipy.sparse as sp

from cluster_assets.core.arrays import FloatArray, Int64Array, IntArray
from cluster_assets.core.coactivation import compact_index, count_dtype
from cluster_assets.core.features import (
    Blocks,
    FeatureStats,
    canonical_blocks,
    canonical_csr,
    feature_statistics,
    per_prompt,
    stack_blocks,
    stack_prompt_rows,
)
from cluster_assets.core.params import ParameterError, SparseMatrix, check_choices, check_number, plain

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
    def from_indices(cls, indices: np.ndarray, n_samples: int) -> Membership:
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
    def from_mask(cls, mask: np.ndarray) -> Membership:
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
        return int(self.indices.nbytes if self.indices is not None else self._bits().nbytes)

    def _bits(self) -> np.ndarray:
        assert self.bits is not None, "a membership holds indices or bits"
        return self.bits

    # set algebra ----------------------------------------------------------------
    def count(self) -> int:
        if self.indices is not None:
            return int(self.indices.size)
        return int(np.unpackbits(self._bits(), bitorder="little").sum())

    def _check(self, other: Membership) -> None:
        if other.n_samples != self.n_samples:
            raise ValueError(f"memberships over {self.n_samples} and {other.n_samples} samples")

    def intersection_count(self, other: Membership) -> int:
        self._check(other)
        if self.bits is not None and other.bits is not None:
            return int(np.unpackbits((self.bits & other.bits).view(np.uint8), bitorder="little").sum())
        if self.indices is not None and other.indices is not None:
            return int(np.intersect1d(self.indices, other.indices, assume_unique=True).size)
        sparse, dense = (self, other) if self.indices is not None else (other, self)
        return int(dense._mask()[sparse.indices].sum())

    def union(self, other: Membership) -> Membership:
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

    def __init__(self, activity: SparseMatrix, feature_ids: np.ndarray | None = None):
        if isinstance(activity, (sp.csr_array, sp.csc_array)):
            activity = compact_index(cast(sp.csr_array | sp.csc_array, activity))  # else the transpose below inherits an int64 index
        csc = compact_index(sp.csc_array(activity))
        if csc.dtype != bool:  # astype copies every array, even to the same type
            csc = csc.astype(bool)
        csc.sum_duplicates()
        csc.sort_indices()
        self.activity = csc
        n_features = csc.shape[1]
        self.feature_ids = np.arange(n_features, dtype=np.int64) if feature_ids is None else np.asarray(feature_ids, dtype=np.int64)
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

    @classmethod
    def from_columns(cls, columns: list[np.ndarray], n_samples: int, feature_ids: np.ndarray | None = None) -> Memberships:
        """From one sorted sample-index array per feature."""
        lens = np.array([c.size for c in columns], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        data_idx = np.concatenate(columns).astype(np.int64) if columns else np.zeros(0, np.int64)
        csc = sp.csc_array((np.ones(data_idx.size, bool), data_idx, indptr), shape=(n_samples, len(columns)))
        return cls(csc, feature_ids)

    def subset(self, columns: np.ndarray) -> Memberships:
        """The memberships of the given column positions (in that order)."""
        columns = np.asarray(columns, dtype=np.int64)
        return Memberships(self.activity[:, columns], self.feature_ids[columns])


def activity_from_batches(batches: Iterable[SparseMatrix], threshold: float, n_features: int) -> sp.csr_array:
    """Stream sparse activation batches (rows = samples, in order) into a boolean activity CSR.

    Only entries strictly above ``threshold`` are kept, so memory is bounded by the active
    entries, never by ``samples x features``.  Raises on NaN/inf activations.
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    blocks: list[sp.csr_array] = []
    for batch in batches:
        csr = sp.csr_array(batch)
        if csr.shape[1] != n_features:
            raise ValueError(f"batch has {csr.shape[1]} features, expected {n_features}")
        if not np.all(np.isfinite(csr.data)):
            raise ValueError("activations contain NaN or inf")
        csr.sum_duplicates()
        keep = csr.data > threshold
        kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])  # kept entries before each position
        idx = csr.indices[keep].astype(np.int32)
        blocks.append(sp.csr_array((np.ones(idx.size, bool), idx, kept_before[csr.indptr]), shape=csr.shape))
    out = stack_blocks(blocks, n_features)
    out.sort_indices()
    return out


def prompt_activity(
    activations: SparseMatrix, prompt_ids: np.ndarray, threshold: float, reduce: str = "max"
) -> tuple[sp.csr_array, np.ndarray]:
    """Prompt-level activity of every feature: active on a prompt when ``reduce`` (``max``:
    on any token; ``mean``: averaged over all the prompt's tokens, zeros included) of its
    activations is strictly above ``threshold``.  Returns (prompts x features bool CSR, the
    prompt ids in row order)."""
    if reduce not in ("max", "mean"):
        raise ValueError(f"unknown prompt reduce {reduce!r}; expected 'max' or 'mean'")
    csr: sp.csr_array = sp.csr_array(activations)
    config = MembershipConfig(threshold=threshold, unit="prompt", prompt_reduce=reduce)  # type: ignore[arg-type]
    return activity_of(csr, np.asarray(prompt_ids), np.arange(csr.shape[1]), config)


@dataclass(frozen=True)
class MembershipConfig:
    """What counts as active, on which samples, and which features are kept (the ``memberships``
    section of a sweep point).

    threshold: a feature is active where its activation is strictly above this.
    unit: samples are ``token``s, or ``prompt``s (active when ``prompt_reduce`` -- ``max`` or
        ``mean`` over the prompt's tokens, zeros included -- is above the threshold).
    dead_stat / dead_threshold: drop a feature whose ``max`` or ``mean`` activation is below
        ``dead_threshold`` (a feature that never fires is always dead).
    min_/max_firing_rate (fraction of tokens), min_/max_entropy, min_/max_varentropy (nats):
        inclusive ranges; ``None`` leaves a side open.
    """

    # read by pydantic when the sweep file is validated into this type: unknown keys are errors
    __pydantic_config__ = {"extra": "forbid"}

    threshold: float = 0.0
    unit: Literal["token", "prompt"] = "token"
    prompt_reduce: Literal["max", "mean"] = "max"
    dead_stat: Literal["max", "mean"] = "max"
    dead_threshold: float = 0.0
    min_firing_rate: float | None = None
    max_firing_rate: float | None = None
    min_entropy: float | None = None
    max_entropy: float | None = None
    min_varentropy: float | None = None
    max_varentropy: float | None = None

    def __post_init__(self) -> None:
        check_choices(self)
        check_number("threshold", self.threshold, ge=0.0)
        check_number("dead_threshold", self.dead_threshold, ge=0.0)
        for stat in ("firing_rate", "entropy", "varentropy"):
            lo, hi = f"min_{stat}", f"max_{stat}"
            for name in (lo, hi):
                check_number(name, getattr(self, name), ge=0.0, le=1.0 if stat == "firing_rate" else None)
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise ParameterError(lo, f"{a} is above {hi} = {b}")

    def rule_fields(self, reason: str) -> str:
        """The parameter(s) behind a drop reason of :func:`apply_filters`."""
        if reason == "dead":
            return "dead_threshold"
        return " / ".join(f for f in (f"min_{reason}", f"max_{reason}") if getattr(self, f) is not None)


def _outside(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    out = np.zeros(x.shape, dtype=bool)
    if lo is not None:
        out |= ~(x >= lo)
    if hi is not None:
        out |= ~(x <= hi)
    return out


def apply_filters(stats: FeatureStats, config: MembershipConfig) -> tuple[np.ndarray, np.ndarray]:
    """(kept mask, reason per feature): the first failing rule, in the order of
    :data:`~cluster_assets.core.features.REASONS`.

    Dead: ``max`` or ``mean`` (``config.dead_stat``) below ``dead_threshold``, or never firing.
    """
    value = stats.max if config.dead_stat == "max" else stats.mean
    rules = [
        ("dead", (value < config.dead_threshold) | (stats.firing_count == 0) | (stats.max <= 0)),
        ("firing_rate", _outside(stats.firing_rate, config.min_firing_rate, config.max_firing_rate)),
        ("entropy", _outside(stats.entropy, config.min_entropy, config.max_entropy)),
        ("varentropy", _outside(stats.varentropy, config.min_varentropy, config.max_varentropy)),
    ]
    reason = np.full(stats.firing_count.size, "kept", dtype=object)
    for name, failed in rules:
        reason[(reason == "kept") & failed] = name
    return reason == "kept", reason.astype(str)


@dataclass(frozen=True)
class MembershipResult:
    memberships: Memberships  # samples x kept features; feature_ids are SAE ids
    stats: FeatureStats  # over all SAE features
    kept: np.ndarray  # (d_sae,) bool
    reason: np.ndarray  # (d_sae,) str, "kept" or the first failing filter
    sample_prompt: np.ndarray  # (n_samples,) prompt id of each sample


@nb.njit(parallel=True, cache=True)
def _kept_activity(
    indptr: IntArray,
    indices: IntArray,
    data: FloatArray,
    column_of: Int64Array,
    threshold: float,
    index_type: np.dtype[np.signedinteger[Any]],
) -> tuple[Int64Array, IntArray]:
    """Boolean CSR of the entries above ``threshold`` in kept columns, renumbered by ``column_of``
    (-1 = dropped; increasing, so rows stay sorted).  Rows are independent: any thread count
    gives the same arrays."""
    n_rows = indptr.size - 1
    counts = np.zeros(n_rows + 1, np.int64)
    for t in nb.prange(n_rows):
        c = 0
        for q in range(indptr[t], indptr[t + 1]):
            if data[q] > threshold and column_of[indices[q]] >= 0:
                c += 1
        counts[t + 1] = c
    out_indptr = np.cumsum(counts)
    out_idx = np.empty(out_indptr[-1], index_type)
    for t in nb.prange(n_rows):
        at = out_indptr[t]
        for q in range(indptr[t], indptr[t + 1]):
            col = column_of[indices[q]]
            if data[q] > threshold and col >= 0:
                out_idx[at] = col
                at += 1
    return out_indptr, out_idx


def kept_activity(activations: sp.csr_array, kept_ids: np.ndarray, threshold: float) -> sp.csr_array:
    """samples x kept features boolean activity (strictly above ``threshold``), int32 indices where they fit."""
    csr = canonical_csr(activations)
    column_of = np.full(csr.shape[1], -1, np.int64)
    column_of[kept_ids] = np.arange(kept_ids.size)
    index_type = count_dtype(max(csr.nnz, *csr.shape))
    indptr, idx = _kept_activity(csr.indptr, csr.indices, csr.data, column_of, float(threshold), index_type)
    return sp.csr_array((np.ones(idx.size, bool), idx, indptr.astype(index_type)), shape=(csr.shape[0], kept_ids.size))


def build_memberships(activations: SparseMatrix | Blocks, token_prompt: np.ndarray, config: MembershipConfig) -> MembershipResult:
    """Statistics of every feature, the filters, and the memberships of the kept features.

    ``activations``: (tokens, d_sae) CSR, or its row blocks (:data:`~cluster_assets.core.features.Blocks`:
    two passes, one block in memory at a time); ``token_prompt``: (tokens,) prompt id of each row.
    Raises :class:`ParameterError` naming the field when the threshold leaves no active feature
    or the filters drop every feature.
    """
    token_prompt = np.asarray(token_prompt, dtype=np.int64)
    if token_prompt.size == 0:
        raise ValueError("no tokens to analyse (empty corpus?)")
    stats = feature_statistics(activations, token_prompt, config.threshold)
    if stats.firing_count.sum() == 0:
        raise ParameterError(
            "threshold", f"{plain(config.threshold)} leaves no active feature (the largest activation is {stats.max.max():.4g})"
        )
    kept, reason = apply_filters(stats, config)
    if kept.sum() < 2:
        counts = {str(r): int((reason == r).sum()) for r in np.unique(reason) if r != "kept"}
        worst = max(counts, key=lambda r: counts[r])
        what = "every feature" if not kept.any() else "all but one feature (clustering needs at least 2)"
        dropped = ", ".join(f"{n} by {r}" for r, n in counts.items())
        raise ParameterError(config.rule_fields(worst), f"the filters drop {what} ({dropped})")
    kept_ids = np.flatnonzero(kept)
    if config.unit == "token":  # the statistics' firing counts size each column: filled in place, never stacked
        activity: sp.csr_array | sp.csc_array = token_activity_csc(
            activations, token_prompt, kept_ids, config.threshold, stats.firing_count
        )
        sample_prompt = token_prompt
    else:
        activity, sample_prompt = activity_of(activations, token_prompt, kept_ids, config)
    return MembershipResult(Memberships(activity, kept_ids), stats, kept, reason, sample_prompt)


@nb.njit(cache=True)
def _fill_columns(
    indptr: IntArray,
    indices: IntArray,
    data: FloatArray,
    column_of: Int64Array,
    threshold: float,
    first_row: int,
    cursor: Int64Array,
    end: Int64Array,
    out: IntArray,
) -> bool:
    """Append each row's entries above ``threshold`` in kept columns (``column_of``, -1 = dropped)
    to their column of ``out`` at ``cursor``; False if a column would pass its ``end``."""
    for t in range(indptr.size - 1):
        for q in range(indptr[t], indptr[t + 1]):
            if data[q] > threshold:
                c = column_of[indices[q]]
                if c >= 0:
                    if cursor[c] >= end[c]:
                        return False
                    out[cursor[c]] = first_row + t
                    cursor[c] += 1
    return True


def token_activity_csc(
    activations: SparseMatrix | Blocks, token_prompt: np.ndarray, feature_ids: np.ndarray, threshold: float, firing_count: np.ndarray
) -> sp.csc_array:
    """tokens x ``feature_ids`` boolean activity (strictly above ``threshold``) as a CSC, filled block
    by block: ``firing_count`` (every feature's, from :func:`feature_statistics` at the same
    threshold) sizes each column up front, so only the result and one block are ever in memory.
    Rows ascend within a block and blocks come in order, so each column's samples are sorted."""
    feature_ids = np.asarray(feature_ids, dtype=np.int64)
    counts = np.asarray(firing_count, dtype=np.int64)[feature_ids]
    indptr = np.concatenate([[0], np.cumsum(counts)])
    n_rows = int(np.asarray(token_prompt).size)
    index_type = count_dtype(max(int(indptr[-1]), n_rows, feature_ids.size))
    out = np.empty(int(indptr[-1]), index_type)
    column_of = np.full(np.asarray(firing_count).size, -1, np.int64)  # one count per SAE feature
    column_of[feature_ids] = np.arange(feature_ids.size)
    cursor, first_row = indptr[:-1].copy(), 0
    for csr, rows in canonical_blocks(activations, token_prompt):
        if not _fill_columns(csr.indptr, csr.indices, csr.data, column_of, float(threshold), first_row, cursor, indptr[1:], out):
            raise ValueError("the activations have more entries above the threshold than the statistics counted")
        first_row += rows.size
    if not np.array_equal(cursor, indptr[1:]):
        raise ValueError("the activations have fewer entries above the threshold than the statistics counted")
    return sp.csc_array((np.ones(out.size, bool), out, indptr.astype(index_type)), shape=(n_rows, feature_ids.size))


def activity_of(
    activations: SparseMatrix | Blocks, token_prompt: np.ndarray, feature_ids: np.ndarray, config: MembershipConfig
) -> tuple[sp.csr_array, np.ndarray]:
    """(samples x ``feature_ids`` boolean activity, the prompt of each sample): a feature is
    active per ``config`` (threshold, token or prompt unit).  ``feature_ids`` ascending.
    ``activations``: a matrix or its row blocks, one block in memory at a time."""
    feature_ids = np.asarray(feature_ids, dtype=np.int64)
    if feature_ids.size > 1 and np.any(np.diff(feature_ids) <= 0):
        raise ValueError("feature_ids must be strictly increasing")
    token_prompt = np.asarray(token_prompt, dtype=np.int64)
    parts: list[tuple[np.ndarray, sp.csr_array]] = []
    token_rows: list[sp.csr_array] = []
    for csr, rows in canonical_blocks(activations, token_prompt):
        if config.unit == "token":
            token_rows.append(kept_activity(csr, feature_ids, config.threshold))
            continue
        prompts, reduced = per_prompt(csr, rows, "max" if config.prompt_reduce == "max" else "sum")
        if config.prompt_reduce == "mean":
            tokens_per_prompt = np.bincount(np.searchsorted(prompts, rows), minlength=prompts.size)
            reduced = sp.csr_array(sp.diags_array(1.0 / tokens_per_prompt) @ reduced)
        parts.append((prompts, kept_activity(reduced, feature_ids, config.threshold)))
    if config.unit == "token":  # samples are the tokens, in row order
        return stack_blocks(token_rows, feature_ids.size), token_prompt
    prompts, activity = stack_prompt_rows(parts, feature_ids.size)
    return cast(sp.csr_array, compact_index(activity)), prompts
