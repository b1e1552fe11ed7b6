"""An SAE's evals on each dataset, and the thresholds a usable SAE meets (pure data and checks)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cluster_assets.core.params import check_number

#: nats: below this change of the loss from zero-ablating the hook, loss recovered is a ratio of noise
ABLATION_GAP = 0.01


@dataclass(frozen=True)
class SAEEval:
    """sae-lens' evals of an SAE on one dataset's held-out tokens (CE losses in nats per token).

    loss_recovered = (zero-ablated - with SAE) / (zero-ablated - clean): 1 is the model's own
    loss, 0 no better than ablating the hook.  dead / dense: fraction of features that never
    fire on this dataset's tokens / fire on more than the evaluation's ``dense_above`` of them
    (a multi-domain SAE has features that are dead on one dataset and alive on another)."""

    dataset: str
    tokens: int
    ce_loss_clean: float
    ce_loss_with_sae: float
    ce_loss_zero_ablation: float
    loss_recovered: float
    kl_div_with_sae: float
    kl_div_zero_ablation: float
    explained_variance: float
    l0: float
    dead_fraction: float
    dense_fraction: float

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SAEEvals:
    """The evals of every dataset, and ``density``: (datasets, d_sae) float64 firing density of
    each feature on each dataset's tokens, rows in the order of ``evals``."""

    evals: list[SAEEval]
    density: npt.NDArray[np.float64]

    @property
    def dead_everywhere(self) -> float:
        """Fraction of features that fire on no dataset's tokens: the SAE's dead features."""
        if self.density.size == 0:
            return 0.0
        return float((self.density.max(axis=0) == 0).mean())


@dataclass(frozen=True)
class SAEQualityThresholds:
    """What the ``sae_quality`` check asks of the SAE (the registry's ``sae_quality``): on every
    dataset CE loss recovered at least ``min_loss_recovered`` and, when set, explained variance at
    least ``min_explained_variance`` and at most ``max_dense_fraction`` dense features; and at most
    ``max_dead_fraction`` features that fire on no dataset."""

    # read by pydantic when the registry file is validated into this type: unknown keys are errors
    __pydantic_config__ = {"extra": "forbid"}

    min_loss_recovered: float = 0.85
    max_dead_fraction: float = 0.02
    min_explained_variance: float | None = None
    max_dense_fraction: float | None = None

    def __post_init__(self) -> None:
        check_number("min_loss_recovered", self.min_loss_recovered, le=1.0)
        check_number("max_dead_fraction", self.max_dead_fraction, ge=0.0, le=1.0)
        check_number("min_explained_variance", self.min_explained_variance, le=1.0)
        check_number("max_dense_fraction", self.max_dense_fraction, ge=0.0, le=1.0)


def quality_problems(result: SAEEvals, quality: SAEQualityThresholds) -> list[str]:
    """Each metric that misses its threshold, naming the dataset, the value and the registry field
    that sets the threshold (empty: every threshold met)."""
    problems: list[str] = []
    for e in result.evals:
        checks: list[tuple[str, float, str, float | None, bool]] = [
            ("loss_recovered", e.loss_recovered, "min_loss_recovered", quality.min_loss_recovered, True),
            ("explained_variance", e.explained_variance, "min_explained_variance", quality.min_explained_variance, True),
            ("dense_fraction", e.dense_fraction, "max_dense_fraction", quality.max_dense_fraction, False),
        ]
        gap = e.ce_loss_zero_ablation - e.ce_loss_clean
        if gap < ABLATION_GAP:
            problems.append(
                f"{e.dataset}: loss_recovered is not measurable: zero-ablating the hook changes the loss by only {gap:.3g} nats "
                f"(under {ABLATION_GAP:g})"
            )
            checks = checks[1:]
        for metric, value, field, threshold, at_least in checks:
            if threshold is not None and (value < threshold if at_least else value > threshold):
                side = "below" if at_least else "above"
                problems.append(f"{e.dataset}: {metric} {value:.4g} is {side} the threshold {threshold:g} (sae_quality.{field})")
    dead = result.dead_everywhere
    if dead > quality.max_dead_fraction:
        names = ", ".join(e.dataset for e in result.evals)
        problems.append(
            f"every dataset ({names}): dead_fraction {dead:.4g} (features that fire on none) is above the threshold "
            f"{quality.max_dead_fraction:g} (sae_quality.max_dead_fraction)"
        )
    return problems
