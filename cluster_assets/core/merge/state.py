"""Greedy MDL merge of features into groups, with exact incremental co-firing updates.

Reference semantics (the README's "The MDL merge"): with ``N`` samples, ``k`` groups, counts
``s_i``, co-firing ``c_ij`` and group sizes ``r_i`` (features), the MDL of a grouping is
``sum_i (s_i/N) (log2 k + alpha r_i)`` bits per sample and merging ``i`` and ``j`` costs
the change in MDL.  Expanding the design's formula, the ``p_i + p_j`` terms cancel::

    N * cost_ij = S log2((k-1)/k) - c_ij log2(k-1)
                  + alpha [ s_i r_j + s_j r_i - c_ij (r_i + r_j) ]

with ``S = sum_i s_i``.  The first term is the same for every pair, so samplers work on
``key_ij = alpha * M_ij - c_ij * log2(k-1)`` where ``M_ij`` is an exact integer; the
recorded cost is the full value (equal to the MDL difference).

After merging ``i`` and ``j`` into ``g``, for every other group ``m``
``|g & m| = |i & m| + |j & m| - |i & j & m|``, and only samples where both ``i`` and
``j`` fire can contribute to the last term, so the update scans just those samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numba as nb
import numpy as np

from cluster_assets.core.coactivation import (
    CoFiring,
    as_activity_csr,
    canonical_bool_csc,
    coactivation,
    compact_index,
    csc_rows,
    row_starts,
)
from cluster_assets.core.history import MergeHistory
from cluster_assets.core.mdl import description_length_bits
from cluster_assets.core.merge.row_extremes import RowExtremes, extremes_mcmc_pick, extremes_range_pick
from cluster_assets.core.merge.scan import scan_mcmc_pick, scan_range_pick
from cluster_assets.core.merge.sets import (
    BOTH_MINUS_COMMON,
    I_PLUS_J_ONLY,
    J_PLUS_I_ONLY,
    difference_sorted,
    group_counts,
    intersect_sorted,
    merge_rows,
    union_sorted,
)
from cluster_assets.core.params import ParameterError, SparseMatrix, check_choices, check_number

#: "auto": row extremes for greedy, and rejection sampling over them for range and mcmc;
#: "scan": always the full scan (the reference the fast paths are tested against)
ENGINES = ("auto", "scan")


@dataclass(frozen=True)
class MergeConfig:
    """The MDL merge's parameters (the ``clustering`` section of a sweep point with method ``mdl_merge``).

    alpha: weight of the per-feature cost (bits per active feature), finite.
    sampler: ``"range"`` (uniform among pairs within ``threshold * (max - min)`` of the
        minimum cost; ``threshold=0`` is greedy) or ``"mcmc"`` (probability proportional
        to ``exp((min - cost) / temperature)``, costs in bits per sample).
    iters: number of merges; ``None`` merges until three groups remain.
    seed: seed of the ``numpy.random.default_rng`` that drives the sampler.
    """

    # read by pydantic when the sweep file is validated into this type: unknown keys are errors
    __pydantic_config__ = {"extra": "forbid"}

    method: Literal["mdl_merge"] = "mdl_merge"
    alpha: float = 1.0
    sampler: Literal["range", "mcmc"] = "range"
    threshold: float = 0.0
    temperature: float = 1.0
    iters: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_choices(self)
        check_number("alpha", self.alpha)
        check_number("threshold", self.threshold, ge=0.0, le=1.0)
        check_number("temperature", self.temperature, gt=0.0)
        check_number("iters", self.iters, ge=0)

    @property
    def stochastic(self) -> bool:
        """Whether the seed changes the result (mcmc, or range with a band above the minimum)."""
        return self.sampler == "mcmc" or self.threshold > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- state -----------------------------------------------------------------------------


class MergeState:
    """The groups during a merge run; slots are the initial feature columns.

    A group lives in the slot of its smallest member column.  ``pairs`` (the condensed
    triangle of a :class:`~cluster_assets.core.coactivation.CoFiring`, entry ``starts[i] + j``
    for slots ``i < j``) holds for active slots the exact number of samples where groups ``i``
    and ``j`` both fire; ``counts`` each group's own count.
    """

    def __init__(self, activity: SparseMatrix, cofiring: CoFiring | None = None, engine: str = "auto"):
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; expected one of {ENGINES}")
        self.engine = engine
        self._rows: RowExtremes | None = None
        # int32 sample ids halve the memory.  A canonical boolean CSC (what Memberships holds)
        # already lists each feature's samples: its row view is built from it, with no data array.
        given = canonical_bool_csc(activity)
        if given is not None:
            csc = compact_index(given)
            self.row_indptr, self.row_indices = csc_rows(csc.indptr.astype(np.int64), csc.indices, csc.shape[0])
        else:
            csr = as_activity_csr(activity)
            self.row_indptr, self.row_indices = csr.indptr, csr.indices
            csc = compact_index(csr).tocsc()
            csc.sort_indices()
        n_samples, n_features = csc.shape
        if n_samples == 0 or n_features == 0:
            raise ValueError(f"activity is empty (shape {csc.shape})")
        if n_features < 2:
            raise ValueError("merging needs at least 2 features")
        if csc.nnz == 0:
            raise ValueError("no feature is active on any sample")
        self.n_samples, self.n_features = n_samples, n_features
        self.members: list[np.ndarray] = [csc.indices[csc.indptr[j] : csc.indptr[j + 1]] for j in range(n_features)]
        if cofiring is None:
            cofiring = coactivation(csc)
        elif cofiring.n_features != n_features:
            raise ValueError(f"co-firing counts of {cofiring.n_features} features given for {n_features} features")
        # every count stays <= n_samples (a merged group's co-firing included), so the pairs keep their type
        self.pairs = cofiring.condensed()
        self.starts = row_starts(n_features)
        self.counts = cofiring.counts.astype(np.int64, copy=True)
        self._merged_row = np.zeros(n_features, dtype=np.int64)
        self.sizes = np.ones(n_features, dtype=np.int64)
        self.label = np.arange(n_features, dtype=np.int64)  # feature column -> slot
        self.cluster_id = np.arange(n_features, dtype=np.int64)  # slot -> scipy linkage id
        self.features = [np.array([j], dtype=np.int64) for j in range(n_features)]
        self.active = np.arange(n_features, dtype=np.int64)  # sorted active slots
        self.n_merges = 0

    @property
    def cofiring(self) -> CoFiring:
        """The current co-firing counts, indexed by slot (entries of merged-away slots are stale)."""
        return CoFiring.from_condensed(self.counts, self.pairs)

    @property
    def k(self) -> int:
        return int(self.active.size)

    def mdl(self, alpha: float) -> float:
        """MDL of the current grouping, bits per sample."""
        return description_length_bits(self.counts[self.active], self.sizes[self.active], self.n_samples, alpha)

    def choose(self, config: MergeConfig, u: float, rng: np.random.Generator | None = None) -> tuple[int, int, float]:
        """Pick the pair (i, j) of slots to merge; return its cost (bits/sample).

        ``u`` is the uniform draw of the full-scan samplers and of greedy ties.  Given
        ``rng``, the fast engine's rejection samplers (mcmc, and range with threshold > 0)
        draw from it instead: the same distribution, other draws.  Without ``rng`` every
        engine makes the full scan's choice for the same ``u``.
        """
        k = self.k
        log_km1 = math.log2(k - 1)
        if self.engine == "auto" and config.sampler == "mcmc" and rng is not None:
            rows = self._row_extremes(config.alpha, 0.0)
            scale = 1.0 / (self.n_samples * config.temperature)
            i, j, key = extremes_mcmc_pick(rows, self.active, self.counts, self.sizes, self.pairs, self.starts, log_km1, scale, rng)
        elif self._uses_rows(config):
            rows = self._row_extremes(config.alpha, config.threshold)
            # greedy keeps the full scan's choice for u; range > 0 draws by rejection when given rng
            draws = rng if config.threshold > 0 else None
            i, j, key = extremes_range_pick(rows, self.active, self.counts, self.sizes, self.pairs, self.starts, log_km1, u, draws)
        elif config.sampler == "range":
            i, j, key = scan_range_pick(
                self.active, self.counts, self.sizes, self.pairs, self.starts, config.alpha, log_km1, config.threshold, u
            )
        else:
            scale = 1.0 / (self.n_samples * config.temperature)
            i, j, key = scan_mcmc_pick(self.active, self.counts, self.sizes, self.pairs, self.starts, config.alpha, log_km1, scale, u)
        total = int(self.counts[self.active].sum())
        cost = (total * math.log2((k - 1) / k) + key) / self.n_samples
        return int(i), int(j), cost

    def _row_extremes(self, alpha: float, threshold: float) -> RowExtremes:
        """The row structure for this alpha/threshold (rebuilt from scratch when they change)."""
        if self._rows is None or (self._rows.alpha, self._rows.threshold) != (alpha, threshold):
            self._rows = RowExtremes(self.n_features, alpha, self.n_samples, threshold)
        return self._rows

    def _uses_rows(self, config: MergeConfig) -> bool:
        """Row extremes serve the range sampler (greedy included); mcmc weighs every pair."""
        return self.engine == "auto" and config.sampler == "range"

    def merge(self, i: int, j: int) -> None:
        """Merge slot ``j`` into slot ``i`` (i < j) and update co-firing counts exactly.

        For every other group C, ``|(I | J) & C|`` is computed from whichever sample set is
        smallest: ``|I&C| + |J&C| - |I&J&C|`` scanning I&J, or ``|I&C| + |(J-I)&C|`` scanning
        J-I, or symmetrically I-J.  Only the scanned samples' rows are read.
        """
        if i > j:
            i, j = j, i
        c_ij = int(self.pairs[self.starts[i] + j])
        sizes = (c_ij, self.counts[j] - c_ij, self.counts[i] - c_ij)
        members_i, members_j = self.members[i], self.members[j]
        if sizes[0] <= min(sizes[1], sizes[2]):
            scanned, mode = intersect_sorted(members_i, members_j), BOTH_MINUS_COMMON
        elif sizes[1] <= sizes[2]:
            scanned, mode = difference_sorted(members_j, members_i), I_PLUS_J_ONLY
        else:
            scanned, mode = difference_sorted(members_i, members_j), J_PLUS_I_ONLY
        extra = group_counts(scanned, self.row_indptr, self.row_indices, self.label, self.n_features, nb.get_num_threads())
        merge_rows(self.pairs, self.starts, self.active, i, j, extra, mode, self._merged_row)
        self.counts[i] = self.counts[i] + self.counts[j] - c_ij
        self.sizes[i] += self.sizes[j]
        self.members[i] = union_sorted(self.members[i], self.members[j], int(self.counts[i]))
        self.members[j] = np.zeros(0, self.members[j].dtype)  # not a [:0] view: that would keep the merged-away buffer alive
        self.label[self.features[j]] = i
        self.features[i] = np.concatenate([self.features[i], self.features[j]])
        self.features[j] = np.zeros(0, np.int64)
        self.cluster_id[i] = self.n_features + self.n_merges
        self.active = self.active[self.active != j]
        self.n_merges += 1
        if self._rows is not None and self.k > 2:
            self._rows.merged(self.active, i, j, self.counts, self.sizes, self._merged_row, math.log2(self.k - 1))


def run_merge(
    activity: SparseMatrix,
    config: MergeConfig = MergeConfig(),
    *,
    cofiring: CoFiring | None = None,
    feature_ids: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
    engine: str = "auto",
) -> MergeHistory:
    """Run the MDL merge on a samples x features activity matrix.

    ``cofiring`` may pass a precomputed :func:`coactivation` of the same matrix (left
    unchanged: the run works on its condensed triangle).
    ``progress(step, total)`` is called every few hundred merges.  Same input and
    config (seed included) give the same history, bit for bit.  Greedy histories are
    identical across engines; for range (threshold > 0) and mcmc the fast engine draws
    from the same distribution by rejection, so its histories differ from the scan's.
    """
    state = MergeState(activity, cofiring, engine)
    possible = max(state.n_features - 3, 0)
    iters = possible if config.iters is None else config.iters
    if iters > possible:
        raise ParameterError(
            "iters", f"{iters} is more merges than possible: {state.n_features} features allow {possible} (merging stops at three groups)"
        )
    rng = np.random.default_rng(config.seed)
    pairs = np.zeros((iters, 2), dtype=np.int64)
    costs = np.zeros(iters, dtype=np.float64)
    sizes = np.zeros(iters, dtype=np.int64)
    counts = np.zeros(iters, dtype=np.int64)
    mdl = np.zeros(iters + 1, dtype=np.float64)
    mdl[0] = state.mdl(config.alpha)
    report_every = max(1, iters // 20)
    for step in range(iters):
        i, j, cost = state.choose(config, float(rng.random()), rng)
        a, b = sorted((int(state.cluster_id[i]), int(state.cluster_id[j])))
        pairs[step] = a, b
        costs[step] = cost
        state.merge(i, j)
        sizes[step] = state.sizes[i]
        counts[step] = state.counts[i]
        mdl[step + 1] = state.mdl(config.alpha)
        if progress is not None and (step + 1) % report_every == 0:
            progress(step + 1, iters)
    return MergeHistory(
        n_features=state.n_features,
        n_samples=state.n_samples,
        pairs=pairs,
        costs=costs,
        mdl=mdl,
        sizes=sizes,
        counts=counts,
        feature_ids=feature_ids,
        config=config.to_dict(),
    )
