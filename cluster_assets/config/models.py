"""Typed models of the sweep file and the corpus registry.

A sweep point's sections validate straight into the types the pipeline runs on: the core's
``MembershipConfig``, ``MergeConfig``, ``BaselineConfig`` and ``ClusterConfig`` (each declares
its parameters, defaults and range checks once), plus the two model-side sections declared
here.  Unknown keys and out-of-range values are validation errors naming the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cluster_assets.core.analysis import ClusterConfig
from cluster_assets.core.baseline import BaselineConfig
from cluster_assets.core.memberships import MembershipConfig
from cluster_assets.core.merge import MergeConfig

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


SECTIONS = ("prompts", "activations", "memberships", "merge", "baseline", "clusters")


class SweepPoint(BaseModel):
    """All stage parameters of one ``hparams`` partition: a named sweep point, or one of its replicates.

    ``point`` is the sweep point's name and ``replicate`` (0-based) which of its samples this
    partition holds; ``name`` is the partition key (``point``, or ``point@<replicate + 1>``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    point: str = ""
    replicate: int = 0
    prompts: PromptConfig = PromptConfig()
    activations: ActivationConfig = ActivationConfig()
    memberships: MembershipConfig = MembershipConfig()
    merge: MergeConfig = MergeConfig()
    baseline: BaselineConfig = BaselineConfig()
    clusters: ClusterConfig = ClusterConfig()

    @model_validator(mode="before")
    @classmethod
    def _point_defaults_to_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("point"):
            data = {**data, "point": data.get("name", "")}
        return data

    def section(self, name: str) -> dict[str, Any]:
        """A section's values as plain JSON-able data."""
        value = getattr(self, name)
        return value.model_dump(mode="json") if isinstance(value, BaseModel) else dataclasses.asdict(value)

    def replica(self, replicate: int) -> SweepPoint:
        """Replicate ``replicate`` (0-based) of this point: another prompt sample and, where the
        clustering is stochastic, another seed."""
        if replicate == 0:
            return self
        update: dict[str, Any] = {"name": f"{self.point}{REPLICATE_MARK}{replicate + 1}", "replicate": replicate}
        if self.merge.method == "mdl_merge" and self.merge.stochastic:
            update["merge"] = dataclasses.replace(self.merge, seed=self.merge.seed + replicate)
        if self.merge.method == "umap_hdbscan" and self.baseline.umap:
            update["baseline"] = dataclasses.replace(self.baseline, seed=self.baseline.seed + replicate)
        return self.model_copy(update=update)

    def changes_from(self, other: SweepPoint) -> dict[str, Any]:
        """``section.field -> value`` where this point differs from ``other`` (the baseline
        section only where the baseline method is used)."""
        out = {}
        for name in SECTIONS:
            if name == "baseline" and "umap_hdbscan" not in (self.merge.method, other.merge.method):
                continue
            mine, theirs = self.section(name), other.section(name)
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


class Registry(BaseModel):
    """The corpus registry: the datasets, and the ones the embedded SAE is trained on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: dict[str, DatasetEntry]
    sae_training: tuple[str, ...] = ()

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
