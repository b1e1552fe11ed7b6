"""Per-feature statistics and the filters that decide which features are clustered.

Statistics are accumulated from sparse activation batches (tokens x features), never
from a dense array:

- ``firing_count`` / ``firing_rate``: samples (tokens) with activation > threshold;
- ``max``, ``mean``: over all tokens, implicit zeros included;
- ``entropy`` / ``varentropy`` (the research notebook's definitions, natural log): take
  the per-prompt mass ``m_q = sum of |activation|`` over prompt ``q``'s tokens, normalise
  over all prompts ``p_q = m_q / sum m``; entropy ``= -sum_q p_q log p_q``; varentropy is
  the population variance over all prompts of ``h_q = -p_q log p_q`` (zero-mass prompts
  have ``h_q = 0``).  Both are NaN for a feature with no mass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
import scipy.sparse as sp

STATS = ("max", "mean")
REASONS = ("kept", "dead", "firing_rate", "entropy", "varentropy")


@dataclass
class FeatureStats:
    """Arrays of shape (n_features,) plus the sample/prompt totals they were computed over."""

    n_tokens: int
    n_prompts: int
    firing_count: np.ndarray
    max: np.ndarray
    mean: np.ndarray
    entropy: np.ndarray
    varentropy: np.ndarray

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


class FeatureStatsAccumulator:
    """Streams (activation batch, prompt id per row) pairs into :class:`FeatureStats`."""

    def __init__(self, n_features: int, threshold: float):
        if threshold < 0 or not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number >= 0, got {threshold}")
        self.n_features, self.threshold = n_features, threshold
        self.n_tokens = 0
        self.firing = np.zeros(n_features, np.int64)
        self.vmax = np.zeros(n_features, np.float64)
        self.vsum = np.zeros(n_features, np.float64)
        self._mass: list[sp.coo_array] = []
        self._prompts: list[np.ndarray] = []

    def add(self, batch: sp.sparray | sp.spmatrix, prompt_ids: np.ndarray) -> None:
        coo = sp.coo_array(batch)
        if coo.shape[1] != self.n_features:
            raise ValueError(f"batch has {coo.shape[1]} features, expected {self.n_features}")
        prompt_ids = np.asarray(prompt_ids, dtype=np.int64)
        if prompt_ids.shape != (coo.shape[0],):
            raise ValueError("prompt_ids must have one entry per batch row")
        v = coo.data.astype(np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError("activations contain NaN or inf")
        self.n_tokens += coo.shape[0]
        np.add.at(self.firing, coo.col, v > self.threshold)
        np.maximum.at(self.vmax, coo.col, v)
        np.add.at(self.vsum, coo.col, v)
        self._mass.append(sp.coo_array((np.abs(v), (prompt_ids[coo.row], coo.col))))
        self._prompts.append(np.unique(prompt_ids))

    def finish(self) -> FeatureStats:
        if self.n_tokens == 0:
            raise ValueError("no activations were given (empty corpus?)")
        prompts = np.unique(np.concatenate(self._prompts))
        rows = np.concatenate([m.row for m in self._mass])
        cols = np.concatenate([m.col for m in self._mass])
        vals = np.concatenate([m.data for m in self._mass])
        mass = sp.csc_array((vals, (np.searchsorted(prompts, rows), cols)), shape=(prompts.size, self.n_features))
        mass.sum_duplicates()
        entropy, varentropy = prompt_entropy(mass)
        return FeatureStats(
            n_tokens=self.n_tokens,
            n_prompts=int(prompts.size),
            firing_count=self.firing,
            max=self.vmax,
            mean=self.vsum / self.n_tokens,
            entropy=entropy,
            varentropy=varentropy,
        )


def feature_statistics(batches: Iterable[tuple[sp.sparray, np.ndarray]], n_features: int, threshold: float) -> FeatureStats:
    acc = FeatureStatsAccumulator(n_features, threshold)
    for batch, prompt_ids in batches:
        acc.add(batch, prompt_ids)
    return acc.finish()


def prompt_entropy(mass: sp.csc_array) -> tuple[np.ndarray, np.ndarray]:
    """Entropy and varentropy (nats) of each column of a prompts x features mass matrix."""
    n_prompts, n_features = mass.shape
    mass = sp.csc_array(mass)
    totals = np.asarray(mass.sum(axis=0)).ravel()
    col = np.repeat(np.arange(n_features), np.diff(mass.indptr))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = mass.data / totals[col]
        h = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    entropy = np.bincount(col, weights=h, minlength=n_features)
    mean_h = entropy / n_prompts
    # two-pass variance: explicit prompts, then the zero-mass prompts that contribute (0 - mean)^2
    sq = np.bincount(col, weights=(h - mean_h[col]) ** 2, minlength=n_features)
    nnz = np.diff(mass.indptr)
    varentropy = (sq + (n_prompts - nnz) * mean_h**2) / n_prompts
    dead = totals <= 0
    entropy[dead] = np.nan
    varentropy[dead] = np.nan
    return entropy, varentropy


@dataclass(frozen=True)
class FilterConfig:
    """Which features to keep.  Ranges are inclusive; ``None`` leaves a side open.

    dead_stat/dead_threshold: drop a feature whose ``max`` or ``mean`` activation is
    below ``dead_threshold`` (a feature with all-zero activations is always dead).
    """

    dead_stat: str = "max"
    dead_threshold: float = 0.0
    min_firing_rate: float | None = None
    max_firing_rate: float | None = None
    min_entropy: float | None = None
    max_entropy: float | None = None
    min_varentropy: float | None = None
    max_varentropy: float | None = None

    def __post_init__(self) -> None:
        if self.dead_stat not in STATS:
            raise ValueError(f"unknown dead_stat {self.dead_stat!r}; expected one of {STATS}")
        for lo, hi in (("min_firing_rate", "max_firing_rate"), ("min_entropy", "max_entropy"), ("min_varentropy", "max_varentropy")):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{lo}={a} is above {hi}={b}")
        for name in ("min_firing_rate", "max_firing_rate"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= v <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {v}")

    def to_dict(self) -> dict:
        return asdict(self)


def _outside(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    out = np.zeros(x.shape, dtype=bool)
    if lo is not None:
        out |= ~(x >= lo)
    if hi is not None:
        out |= ~(x <= hi)
    return out


def apply_filters(stats: FeatureStats, config: FilterConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return (kept mask, reason per feature).  The first failing rule, in the order of
    :data:`REASONS`, is the recorded reason."""
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
