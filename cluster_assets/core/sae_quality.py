"""An SAE's evals on one dataset, and the thresholds a usable SAE meets (pure data and checks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cluster_assets.core.params import check_number

#: nats: below this change of the loss from zero-ablating the hook, loss recovered is a ratio of noise
ABLATION_GAP = 0.01


@dataclass(frozen=True)
class SAEEval:
    """sae-lens' evals of an SAE on one dataset's held-out tokens (CE losses in nats per token).

    loss_recovered = (zero-ablated - with SAE) / (zero-ablated - clean): 1 is the model's own
    loss, 0 no better than ablating the hook.  dead / dense: fraction of features that never
    fire / fire on more than the evaluation's ``dense_above`` of the tokens."""

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
class SAEQuality:
    """What the ``sae_quality`` check asks of the SAE on every dataset (the registry's
    ``sae_quality``): CE loss recovered at least ``min_loss_recovered``, at most
    ``max_dead_fraction`` dead features and, when set, explained variance at least
    ``min_explained_variance`` and at most ``max_dense_fraction`` dense features."""

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


def quality_problems(evals: Sequence[SAEEval], quality: SAEQuality) -> list[str]:
    """Each dataset's metric that misses its threshold, naming the dataset, the value and the
    registry field that sets the threshold (empty: every threshold met on every dataset)."""
    problems: list[str] = []
    for e in evals:
        checks: list[tuple[str, float, str, float | None, bool]] = [
            ("loss_recovered", e.loss_recovered, "min_loss_recovered", quality.min_loss_recovered, True),
            ("dead_fraction", e.dead_fraction, "max_dead_fraction", quality.max_dead_fraction, False),
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
    return problems
