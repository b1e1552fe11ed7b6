"""Seeded generator of research-shaped SAE activity (for benchmarks; not used by the pipeline).

Power-law firing rates (a few features fire often, most rarely), optionally a few features
that fire on nearly every sample, plus planted co-firing groups, so merges have structure to find.  Produced in chunks of rows as sparse CSR
activations (positive values), never as a dense samples x features array.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class ActivityShape:
    samples: int = 500_000
    features: int = 9_981
    active: float = 200.0  # mean active features per sample
    exponent: float = 1.1  # firing rate of the r-th most frequent feature ~ r**-exponent
    groups: int = 400  # planted co-firing groups
    group_size: tuple[int, int] = (3, 20)
    group_share: float = 0.2  # share of activity that comes from planted groups
    always_on: int = 0  # features that fire on nearly every sample (rate ALWAYS_ON_RATE), as some real SAE latents do
    seed: int = 0
    chunk: int = 50_000


MAX_RATE = 0.3
ALWAYS_ON_RATE = 0.97


def _rates(shape: ActivityShape, rng: np.random.Generator) -> np.ndarray:
    """Per-feature firing probabilities ~ rank**-exponent, capped, summing (after the
    duplicate loss of sampling rows with replacement) to the non-group activity."""
    ranks = rng.permutation(shape.features) + 1.0
    weights = ranks**-shape.exponent
    target = shape.active * (1 - shape.group_share) - shape.always_on * ALWAYS_ON_RATE
    lo, hi = 0.0, 1.0
    while np.minimum(hi * weights, MAX_RATE).sum() < target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        p = np.minimum(mid * weights, MAX_RATE)
        lo, hi = (mid, hi) if (p * (1 - p / 2)).sum() < target else (lo, mid)
    rates = np.minimum(hi * weights, MAX_RATE)
    if shape.always_on:  # drawn only when asked, so the default workload keeps its bytes
        rates[rng.choice(shape.features, size=shape.always_on, replace=False)] = ALWAYS_ON_RATE
    return rates


def activation_chunks(shape: ActivityShape) -> Iterator[sp.csr_array]:
    """CSR chunks (rows = samples) whose union has the requested shape; deterministic in ``seed``."""
    rng = np.random.default_rng(shape.seed)
    rates = _rates(shape, rng)
    lo, hi = shape.group_size
    groups = [rng.choice(shape.features, size=int(rng.integers(lo, hi + 1)), replace=False) for _ in range(shape.groups)]
    group_len = np.array([g.size for g in groups])
    group_members = np.concatenate(groups)
    group_start = np.concatenate([[0], np.cumsum(group_len)[:-1]])
    # each group fires on a sample with a probability drawn so the groups supply `group_share` of the activity
    group_p = rng.dirichlet(np.ones(shape.groups)) * shape.active * shape.group_share / group_len
    group_p = np.minimum(group_p, 0.5)
    for start in range(0, shape.samples, shape.chunk):
        n = min(shape.chunk, shape.samples - start)
        per_feature = rng.binomial(n, rates)
        cols = np.repeat(np.arange(shape.features), per_feature)
        rows = rng.integers(0, n, size=cols.size)
        g_rows, g_ids = np.nonzero(rng.random((n, shape.groups)) < group_p)
        g_lens = group_len[g_ids]
        g_cols = group_members[np.repeat(group_start[g_ids], g_lens) + _ranges(g_lens)]
        all_rows = np.concatenate([rows, np.repeat(g_rows, g_lens)])
        all_cols = np.concatenate([cols, g_cols])
        values = rng.exponential(1.0, size=all_rows.size).astype(np.float32) + 0.01
        chunk = sp.csr_array((values, (all_rows, all_cols)), shape=(n, shape.features))
        chunk.sum_duplicates()
        yield chunk


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """concatenate(arange(l) for l in lengths), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total) - offsets
