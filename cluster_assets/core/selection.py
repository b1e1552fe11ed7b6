"""From sparse activations to the memberships of the kept features (one pass over batches)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cluster_assets.core.filters import FeatureStats, FeatureStatsAccumulator, FilterConfig, apply_filters
from cluster_assets.core.memberships import Memberships, activity_from_batches, prompt_activity

UNITS = ("token", "prompt")


class ParameterError(ValueError):
    """A parameter value makes the computation impossible; ``field`` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass
class MembershipResult:
    memberships: Memberships  # samples x kept features; feature_ids are SAE ids
    stats: FeatureStats  # over all SAE features
    kept: np.ndarray  # (d_sae,) bool
    reason: np.ndarray  # (d_sae,) str, "kept" or the first failing filter
    sample_prompt: np.ndarray  # (n_samples,) prompt id of each sample


def build_memberships(
    activations: sp.csr_array,
    token_prompt: np.ndarray,
    threshold: float,
    filters: FilterConfig,
    unit: str = "token",
    prompt_reduce: str = "max",
    rows_per_batch: int = 65536,
) -> MembershipResult:
    """Statistics, filters and memberships of the kept features, streaming over row batches.

    Raises :class:`ParameterError` when the threshold leaves no active feature or the
    filters drop every feature.
    """
    if unit not in UNITS:
        raise ParameterError("unit", f"unknown sample unit {unit!r}; expected one of {UNITS}")
    if not np.isfinite(threshold) or threshold < 0:
        raise ParameterError("threshold", f"must be a finite number >= 0, got {threshold}")
    csr = sp.csr_array(activations)
    n_tokens, n_features = csr.shape
    if n_tokens == 0:
        raise ParameterError("activations", "no tokens (empty corpus?)")
    token_prompt = np.asarray(token_prompt, dtype=np.int64)
    acc = FeatureStatsAccumulator(n_features, threshold)
    batches = [(csr[s : s + rows_per_batch], token_prompt[s : s + rows_per_batch]) for s in range(0, n_tokens, rows_per_batch)]
    for batch, prompts in batches:
        acc.add(batch, prompts)
    stats = acc.finish()
    if stats.firing_count.sum() == 0:
        raise ParameterError("threshold", f"threshold={threshold} leaves no active feature (largest activation {stats.max.max():.4g})")
    kept, reason = apply_filters(stats, filters)
    if not kept.any():
        counts = {r: int((reason == r).sum()) for r in np.unique(reason)}
        raise ParameterError("filters", f"the filters drop every feature (dropped by reason: {counts})")
    if kept.sum() < 2:
        raise ParameterError("filters", "the filters keep a single feature; clustering needs at least 2")
    kept_ids = np.flatnonzero(kept)
    if unit == "token":
        activity = activity_from_batches((b[:, kept_ids] for b, _ in batches), threshold, kept_ids.size)
        sample_prompt = token_prompt
    else:
        activity, sample_prompt = prompt_activity(csr[:, kept_ids], token_prompt, threshold, prompt_reduce)
    return MembershipResult(Memberships(activity, kept_ids), stats, kept, reason, sample_prompt)
