"""Noise floors from replicates: a statistic over pairs of replicate clusterings, with a 95%
interval from a bootstrap over replicates.

A *between* estimate compares two conditions (replicates ``0..n_a-1`` of A against
``0..n_b-1`` of B): its value is the mean over all ``n_a x n_b`` pairs.  A *within* estimate
(the floor) compares the replicates of one condition with each other: the mean over its
``n (n - 1) / 2`` pairs.  The interval resamples each condition's replicates with replacement
(pairs of a replicate with itself are left out) and takes the 2.5 and 97.5 percentiles of the
resampled means.  With one replicate a floor is unknown; with one pair there is no interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

N_BOOTSTRAP = 2000


@dataclass(frozen=True)
class Estimate:
    value: float | None  # mean over pairs; None when there is no pair
    low: float | None  # 95% interval; None with fewer than two pairs
    high: float | None
    pairs: int

    @property
    def known(self) -> bool:
        return self.value is not None

    @property
    def lower(self) -> float:
        """The interval's lower end, or the value where there is no interval (the estimate must be known)."""
        value = self.low if self.low is not None else self.value
        if value is None:
            raise ValueError("unknown estimate")
        return value

    @property
    def upper(self) -> float:
        value = self.high if self.high is not None else self.value
        if value is None:
            raise ValueError("unknown estimate")
        return value

    def text(self, digits: int = 2) -> str:
        if self.value is None:
            return "unknown"
        if self.low is None or self.high is None:
            return f"{self.value:.{digits}f} (one pair, no interval)"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


#: The estimate of a statistic nobody measured (no pair, no interval).
UNKNOWN = Estimate(None, None, None, 0)


def _estimate(
    values: Mapping[tuple[int, int], float], resample: Callable[[np.random.Generator], list[float]], n_boot: int, seed: int
) -> Estimate:
    """The mean over pairs, and the 2.5/97.5 percentiles of ``n_boot`` resampled means."""
    if not values:
        return UNKNOWN
    value = float(np.mean(list(values.values())))
    if len(values) < 2:
        return Estimate(value, None, None, len(values))
    rng = np.random.default_rng(seed)
    means = [float(np.mean(sample)) for sample in (resample(rng) for _ in range(n_boot)) if sample]
    low, high = np.percentile(means, [2.5, 97.5]) if means else (None, None)
    return Estimate(value, None if low is None else float(low), None if high is None else float(high), len(values))


def between(values: Mapping[tuple[int, int], float], n_a: int, n_b: int, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> Estimate:
    """``values[(i, j)]``: the statistic between replicate ``i`` of A and ``j`` of B (missing pairs skipped)."""

    def resample(rng: np.random.Generator) -> list[float]:
        ra, rb = rng.integers(0, n_a, n_a), rng.integers(0, n_b, n_b)
        return [values[(i, j)] for i in ra for j in rb if (i, j) in values]

    return _estimate(values, resample, n_boot, seed)


def within(values: Mapping[tuple[int, int], float], n: int, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> Estimate:
    """``values[(i, j)]`` for ``i < j``: the statistic between two replicates of one condition."""

    def resample(rng: np.random.Generator) -> list[float]:
        r = rng.integers(0, n, n)
        pairs = ((min(a, b), max(a, b)) for x, a in enumerate(r) for b in r[x + 1 :] if a != b)
        return [values[p] for p in pairs if p in values]

    return _estimate(values, resample, n_boot, seed)


def verdict(effect: Estimate, floors: list[Estimate]) -> str:
    """Whether a between-condition agreement (ARI, NMI, Jaccard, stable fraction: higher means
    more alike) lies beyond the replicates' own agreement: the conditions differ beyond sampling
    noise when the effect's interval (or value) lies below every known floor's interval (or value).
    """
    known = [f for f in floors if f.known]
    if not effect.known:
        return "not measured"
    if not known:
        return "floor unknown (one replicate): cannot be told from sampling noise"
    top, bottom = effect.upper, effect.lower
    floor_lows, floor_highs = [f.lower for f in known], [f.upper for f in known]
    if top < min(floor_lows):
        return "differ beyond sampling noise"
    if bottom > max(floor_highs):
        return "agree more closely than replicates do"
    return "within sampling noise"


@dataclass(frozen=True)
class LearningCurve:
    """How a floor (the agreement between replicates) grows with the sample size.

    ``sizes`` ascending (tokens per sample), ``floors`` the floor at each; ``target`` the floor
    called stable.  ``reached``: the smallest size whose floor interval (or value) lies at or
    above ``target``.  ``gain``: the floor gained per doubling of the sample over the last two
    sizes, its interval from the two floors' interval ends (the widest the data allow).
    ``projected``: where the last doubling's rate reaches ``target`` -- (at the gain's value,
    at its upper end, at its lower end; ``inf`` where that end does not rise) -- when not reached.
    """

    sizes: tuple[int, ...]
    floors: tuple[Estimate, ...]
    target: float
    reached: int | None
    gain: Estimate
    projected: tuple[float, float, float] | None

    @property
    def flattens(self) -> bool:
        """Whether the last doubling's gain cannot be told from no gain."""
        return self.gain.known and self.gain.lower <= 0.0


def learning_curve(sizes: list[int], floors: list[Estimate], target: float) -> LearningCurve:
    """The :class:`LearningCurve` of known ``floors`` at ``sizes`` (unknown floors are left out)."""
    known = sorted(((s, f) for s, f in zip(sizes, floors, strict=True) if f.known), key=lambda pair: pair[0])
    xs, fs = tuple(s for s, _ in known), tuple(f for _, f in known)
    reached = next((s for s, f in known if f.lower >= target), None)
    gain, projected = UNKNOWN, None
    if len(known) >= 2 and xs[-1] > xs[-2]:
        doublings = float(np.log2(xs[-1] / xs[-2]))
        last, before = fs[-1], fs[-2]
        at_last = last.value if last.value is not None else last.lower
        value = (at_last - (before.value if before.value is not None else before.lower)) / doublings
        gain = Estimate(value, (last.lower - before.upper) / doublings, (last.upper - before.lower) / doublings, 2)
        if reached is None:

            def at(rate: float, floor: float) -> float:
                return xs[-1] * 2.0 ** ((target - floor) / rate) if rate > 0 else float("inf")

            projected = (at(value, at_last), at(gain.upper, last.upper), at(gain.lower, last.lower))
    return LearningCurve(xs, fs, target, reached, gain, projected)
