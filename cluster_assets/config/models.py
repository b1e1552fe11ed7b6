"""Typed models of the sweep file and the corpus registry.

A sweep point's sections validate straight into the types the pipeline runs on: the core's
``MembershipConfig``, ``ClusteringConfig`` (``MergeConfig`` | ``BaselineConfig``, tagged by
``method``) and ``ClusterConfig`` (each declares its parameters, defaults and range checks
once), plus the two model-side sections declared here.  Unknown keys and out-of-range values are validation errors naming the field.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cluster_assets.core.analysis import ClusterConfig
from cluster_assets.core.baseline import BaselineConfig
from cluster_assets.core.clustering import ClusteringConfig, reseeded
from cluster_assets.core.memberships import MembershipConfig
from cluster_assets.core.merge import MergeConfig
from cluster_assets.core.sae_quality import SAEQualityThresholds

#: Partition names of a point's replicates 2..R: ``<point>@<r>`` (replicate 1 is the point itself).
REPLICATE_MARK = "@"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptConfig(_Section):
    """Which prompts are sampled (the ``prompts`` section).

    n_prompts: prompts per sample; or n_tokens: a token budget per sample (prompts are taken
    until their tokens reach it, so datasets with short and long texts give samples of the same
    size).  Set one of the two.  max_tokens: each prompt is cut to at most this many model
    tokens; seed: the sampling seed; replicates: independent samples of the same corpus
    (disjoint texts), each a partition of its own.
    """

    n_prompts: int | None = Field(default=192, gt=0)
    n_tokens: int | None = Field(default=None, gt=0)
    max_tokens: int = Field(default=64, gt=1, le=2048)
    seed: int = 0
    replicates: int = Field(default=1, ge=1, le=50)

    @model_validator(mode="before")
    @classmethod
    def _one_size(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("n_tokens") is not None:
            if data.get("n_prompts") is not None:
                raise ValueError("set n_prompts or n_tokens, not both")
            data = {**data, "n_prompts": None}
        elif isinstance(data, dict) and "n_prompts" in data and data["n_prompts"] is None:
            raise ValueError("set n_prompts or n_tokens")
        return data


class ActivationConfig(_Section):
    """How activations are stored (the ``activations`` section)."""

    dtype: Literal["float32", "float16"] = "float32"


SECTIONS = ("prompts", "activations", "memberships", "clustering", "clusters")
#: The fields that set a sample's size (a point that changes only these is another size of the same setting).
SIZE_FIELDS = frozenset({"prompts.n_tokens", "prompts.n_prompts"})


def plain(value: Any) -> dict[str, Any]:
    """A settings section (a pydantic model or a dataclass) as plain JSON-able data."""
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else dataclasses.asdict(value)


class SweepPoint(BaseModel):
    """All stage parameters of one ``hparams`` partition: a named sweep point, or one of its replicates.

    ``point`` is the sweep point's name and ``replicate`` (0-based) which of its samples this
    partition holds; ``name`` is the partition key (``point``, or ``point@<replicate + 1>``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    point: str = ""
    replicate: int = 0
    datasets: tuple[str, ...] | None = None  # the datasets the point runs on (None: every dataset partition)
    prompts: PromptConfig = PromptConfig()
    activations: ActivationConfig = ActivationConfig()
    memberships: MembershipConfig = MembershipConfig()
    clustering: Annotated[ClusteringConfig, Field(discriminator="method")] = MergeConfig()
    clusters: ClusterConfig = ClusterConfig()

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("point"):
            data = {**data, "point": data.get("name", "")}
        clustering = data.get("clustering") if isinstance(data, dict) else None
        if isinstance(clustering, dict) and "method" not in clustering:  # the tag's default: the MDL merge
            data = {**data, "clustering": {"method": MergeConfig.method, **clustering}}
        return data

    def runs_on(self, dataset: str) -> bool:
        """Whether ``(dataset, this point)`` is a partition that runs: a point may name the datasets
        it is for (a sample size only some corpora hold); the others' partitions are never run."""
        return self.datasets is None or dataset in self.datasets

    def section(self, name: str) -> dict[str, Any]:
        """A section's values as plain JSON-able data."""
        return plain(getattr(self, name))

    def parameters(self) -> dict[str, Any]:
        """Every scalar parameter as ``section.field -> value`` (the columns of the result tables)."""
        return {
            f"{name}.{k}": v
            for name in SECTIONS
            for k, v in self.section(name).items()
            if v is None or isinstance(v, (bool, int, float, str))
        }

    def replica(self, replicate: int) -> SweepPoint:
        """Replicate ``replicate`` (0-based) of this point: another prompt sample and, where the
        clustering is stochastic, another seed."""
        if replicate == 0:
            return self
        name = f"{self.point}{REPLICATE_MARK}{replicate + 1}"
        return self.model_copy(update={"name": name, "replicate": replicate, "clustering": reseeded(self.clustering, replicate)})

    @property
    def density_baseline(self) -> BaselineConfig | None:
        """The density baseline's settings where this point clusters with it, else None."""
        return self.clustering if isinstance(self.clustering, BaselineConfig) else None

    def scoring_alpha(self, reference: SweepPoint) -> float:
        """The alpha of the description length a clustering is scored by on held-out data: the
        merge's own; for a method that has none, the reference point's (the MDL merge's default
        when the reference has none either)."""
        if isinstance(self.clustering, MergeConfig):
            return self.clustering.alpha
        return reference.clustering.alpha if isinstance(reference.clustering, MergeConfig) else MergeConfig.alpha

    def resizes(self, other: SweepPoint) -> bool:
        """Whether this point is ``other`` at another sample size (a point of its learning curve)."""
        changes = self.changes_from(other)
        return bool(changes) and set(changes) <= SIZE_FIELDS

    def changes_from(self, other: SweepPoint) -> dict[str, Any]:
        """``section.field -> value`` where this point differs from ``other``.  Where the
        clustering method differs, its parameters are compared with that method's defaults."""
        out = {}
        for name in SECTIONS:
            mine, theirs = self.section(name), other.section(name)
            if mine.get("method") != theirs.get("method"):
                theirs = dataclasses.asdict(type(getattr(self, name))()) | {"method": theirs.get("method")}
            out.update({f"{name}.{k}": v for k, v in mine.items() if theirs.get(k) != v and k != "replicates"})
        return out


class DatasetEntry(BaseModel):
    """One corpus of the registry: a ``dataset`` partition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    loader: str
    offline: bool
    licence: str
    description: str = ""
    params: dict[str, Any] = {}

    def identity(self) -> dict[str, Any]:
        """What the dataset's texts are (name, loader, params), as it enters content addresses."""
        return self.model_dump(include={"name", "loader", "params"})


class SAEEvaluation(_Section):
    """How the SAE is measured on each dataset (the registry's ``sae_evaluation``): sae-lens' evals
    on ``tokens_per_dataset`` tokens of held-out text in rows of ``context_size`` tokens,
    ``batch_prompts`` rows per forward; a feature is dense when it fires on more than
    ``dense_above`` of the tokens.  Part of the evals' address."""

    tokens_per_dataset: int = Field(default=2048, gt=0)
    context_size: int = Field(default=64, gt=1, le=2048)
    batch_prompts: int = Field(default=16, gt=0)
    dense_above: float = Field(default=0.1, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_batch(self) -> SAEEvaluation:
        if self.tokens_per_dataset < self.context_size * self.batch_prompts:
            raise ValueError(
                f"tokens_per_dataset ({self.tokens_per_dataset}) is less than one batch of batch_prompts x context_size "
                f"({self.batch_prompts} x {self.context_size})"
            )
        return self


class GroundTruth(_Section):
    """Activations with planted co-firing structure (sae-lens' synthetic toolkit) that every
    clustering method of the sweep is asked to recover (the registry's ``ground_truth``), at each
    of ``sample_sizes`` samples.  The plant: ``groups`` groups of ``group_size`` features that
    co-fire (Gaussian-copula correlation ``correlation`` inside a group), the first ``hierarchies``
    of them trees (children fire only with their parent), group firing probabilities Zipf-like
    from ``max_firing`` to ``min_firing``, and ``noise_features`` independent features
    (``frequent_noise`` of them on half the samples); ``tokens_per_prompt`` samples make a prompt."""

    sample_sizes: tuple[int, ...] = (500, 2000, 8000)
    groups: int = Field(default=12, ge=1)
    group_size: int = Field(default=5, ge=2)
    correlation: float = Field(default=0.9, gt=0.0, lt=1.0)
    hierarchies: int = Field(default=3, ge=0)
    noise_features: int = Field(default=16, ge=0)
    frequent_noise: int = Field(default=2, ge=0)
    max_firing: float = Field(default=0.2, gt=0.0, le=1.0)
    min_firing: float = Field(default=0.01, gt=0.0, le=1.0)
    tokens_per_prompt: int = Field(default=16, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> GroundTruth:
        if self.hierarchies > self.groups:
            raise ValueError(f"hierarchies ({self.hierarchies}) is more than groups ({self.groups})")
        if self.frequent_noise > self.noise_features:
            raise ValueError(f"frequent_noise ({self.frequent_noise}) is more than noise_features ({self.noise_features})")
        if self.min_firing >= self.max_firing:
            raise ValueError(f"min_firing ({self.min_firing}) must be below max_firing ({self.max_firing})")
        if not self.sample_sizes or min(self.sample_sizes) < self.tokens_per_prompt:
            raise ValueError(f"sample_sizes must be non-empty, each at least tokens_per_prompt ({self.tokens_per_prompt})")
        return self

    @property
    def n_features(self) -> int:
        return self.groups * self.group_size + self.noise_features


class Registry(BaseModel):
    """The corpus registry: the datasets, the ones the embedded SAE is trained on, and how the
    SAE is measured on them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: dict[str, DatasetEntry]
    sae_training: tuple[str, ...] = ()
    sae_evaluation: SAEEvaluation = SAEEvaluation()
    sae_quality: SAEQualityThresholds = SAEQualityThresholds()
    ground_truth: GroundTruth = GroundTruth()

    def __getitem__(self, name: str) -> DatasetEntry:
        return self.datasets[name]

    @property
    def names(self) -> list[str]:
        return list(self.datasets)

    def __contains__(self, name: object) -> bool:
        return name in self.datasets

    def entries(self) -> list[DatasetEntry]:
        return list(self.datasets.values())

    def training_entries(self) -> list[DatasetEntry]:
        return [self.datasets[name] for name in self.sae_training]
