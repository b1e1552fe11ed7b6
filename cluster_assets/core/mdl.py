"""The MDL of a grouping, written once (README, "The MDL merge").

With ``N`` samples and ``k`` groups, group ``i`` active on ``s_i`` samples with ``r_i`` member
features costs ``(s_i / N) (log2 k + alpha r_i)`` bits per sample.  The merge tracks it step by
step (:mod:`cluster_assets.core.merge.state`) and held-out scoring measures it on unseen samples
(:mod:`cluster_assets.core.heldout`).
"""

from __future__ import annotations

import math

from cluster_assets.core.arrays import Int64Array


def description_length_bits(counts: Int64Array, sizes: Int64Array, n_samples: int, alpha: float) -> float:
    """Bits per sample of a grouping: ``counts`` (k,) samples where each group fires, ``sizes`` (k,)
    its member features.  Sums are exact integers; one rounding at the end."""
    k = int(counts.size)
    if n_samples == 0 or k == 0:
        return 0.0
    total = int(counts.sum())
    weighted = int((counts * sizes).sum())
    return (math.log2(k) * total + alpha * weighted) / n_samples
