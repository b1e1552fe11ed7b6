"""The sweep file and the corpus registry file: parsing and validation.

Both are YAML files in the repo (``cluster_assets/config/``); the environment variables
``CLUSTER_ASSETS_SWEEP`` and ``CLUSTER_ASSETS_DATASETS`` point the code location at
other files.  Every stage has its own parameter model; unknown keys and out-of-range
values fail with the sweep point's name and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIG_DIR = Path(__file__).parent / "config"
DEFAULT_SWEEP = CONFIG_DIR / "sweep.yaml"
DEFAULT_DATASETS = CONFIG_DIR / "datasets.yaml"


class _Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def digest(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class PromptParams(_Stage):
    n_prompts: int = Field(192, gt=0)
    max_tokens: int = Field(64, gt=1, le=2048)
    seed: int = 0


class ActivationParams(_Stage):
    dtype: Literal["float32", "float16"] = "float32"


class MembershipParams(_Stage):
    """Thresholding, sample unit and feature filters (see ``core.filters.FilterConfig``)."""

    threshold: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    unit: Literal["token", "prompt"] = "token"
    prompt_reduce: Literal["max", "mean"] = "max"
    dead_stat: Literal["max", "mean"] = "max"
    dead_threshold: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    min_firing_rate: float | None = Field(None, ge=0.0, le=1.0)
    max_firing_rate: float | None = Field(None, ge=0.0, le=1.0)
    min_entropy: float | None = Field(None, ge=0.0)
    max_entropy: float | None = Field(None, ge=0.0)
    min_varentropy: float | None = Field(None, ge=0.0)
    max_varentropy: float | None = Field(None, ge=0.0)

    def filter_config(self):
        from cluster_assets.core.filters import FilterConfig

        return FilterConfig(**self.model_dump(exclude={"threshold", "unit", "prompt_reduce"}))


class MergeParams(_Stage):
    """The clustering method: the MDL merge (see ``core.merge.MergeConfig``) by default,
    or the UMAP+HDBSCAN baseline (parameters in the ``baseline`` section)."""

    method: Literal["mdl_merge", "umap_hdbscan"] = "mdl_merge"
    alpha: float = Field(1.0, allow_inf_nan=False)
    sampler: Literal["range", "mcmc"] = "range"
    threshold: float = Field(0.0, ge=0.0, le=1.0)
    temperature: float = Field(1.0, gt=0.0, allow_inf_nan=False)
    iters: int | None = Field(None, ge=0)
    seed: int = 0

    def merge_config(self):
        from cluster_assets.core.merge import MergeConfig

        return MergeConfig(**self.model_dump(exclude={"method"}))


class BaselineParams(_Stage):
    """UMAP (optional) + HDBSCAN on L2-normalised per-prompt activation profiles."""

    umap: bool = True
    n_components: int = Field(5, ge=1)
    n_neighbors: int = Field(15, ge=2)
    min_dist: float = Field(0.0, ge=0.0)
    metric: str = "cosine"
    min_cluster_size: int = Field(5, ge=2)
    min_samples: int | None = Field(None, ge=1)
    epsilon: float = Field(0.0, ge=0.0)
    seed: int = 0

    def baseline_config(self):
        from cluster_assets.core.baseline import BaselineConfig

        return BaselineConfig(**self.model_dump())


class ClusterParams(_Stage):
    """Where to cut the hierarchy: ``"mdl"`` (the MDL-minimising step) or a number of clusters."""

    cut: Literal["mdl"] | int = "mdl"
    top_prompts: int = Field(5, ge=1, le=100)


class SweepPoint(BaseModel):
    """All stage parameters of one named sweep point."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    prompts: PromptParams = PromptParams()
    activations: ActivationParams = ActivationParams()
    memberships: MembershipParams = MembershipParams()
    merge: MergeParams = MergeParams()
    baseline: BaselineParams = BaselineParams()
    clusters: ClusterParams = ClusterParams()

    def method_digest(self) -> dict[str, Any]:
        """What the merge_history stage reads: the merge section, plus the baseline
        section only when the baseline method is selected."""
        if self.merge.method == "umap_hdbscan":
            return {"merge": {"method": "umap_hdbscan"}, "baseline": self.baseline.digest()}
        return {"merge": self.merge.digest()}


class DatasetEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    loader: str
    offline: bool
    licence: str
    description: str = ""
    params: dict[str, Any] = {}


class ConfigFileError(ValueError):
    """A sweep or registry file entry is invalid; the message names the entry and field."""


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigFileError(f"{path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: expected a mapping at the top level")
    return data


def _describe(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())


def sweep_path() -> Path:
    return Path(os.environ.get("CLUSTER_ASSETS_SWEEP", DEFAULT_SWEEP))


def datasets_path() -> Path:
    return Path(os.environ.get("CLUSTER_ASSETS_DATASETS", DEFAULT_DATASETS))


def load_sweep(path: str | Path | None = None) -> dict[str, SweepPoint]:
    """Sweep points by name, each with the defaults merged in, in file order."""
    path = Path(path) if path else sweep_path()
    data = _read_yaml(path)
    unknown = set(data) - {"defaults", "points"}
    if unknown:
        raise ConfigFileError(f"{path}: unknown top-level keys {sorted(unknown)}; expected 'defaults' and 'points'")
    defaults = data.get("defaults") or {}
    points = data.get("points") or {}
    if not points:
        raise ConfigFileError(f"{path}: no sweep points under 'points'")
    out = {}
    for name, override in points.items():
        try:
            out[str(name)] = SweepPoint(name=str(name), **_deep_merge(defaults, override or {}))
        except ValidationError as err:
            raise ConfigFileError(f"sweep point {name!r} in {path}: {_describe(err)}") from None
    return out


def load_registry(path: str | Path | None = None) -> dict[str, DatasetEntry]:
    path = Path(path) if path else datasets_path()
    entries = _read_yaml(path).get("datasets") or {}
    if not entries:
        raise ConfigFileError(f"{path}: no datasets under 'datasets'")
    out = {}
    for name, body in entries.items():
        try:
            out[str(name)] = DatasetEntry(name=str(name), **(body or {}))
        except ValidationError as err:
            raise ConfigFileError(f"dataset {name!r} in {path}: {_describe(err)}") from None
    return out


def get_point(name: str, points: dict[str, SweepPoint] | None = None) -> SweepPoint:
    points = load_sweep() if points is None else points
    if name not in points:
        raise ConfigFileError(f"unknown sweep point {name!r}; valid: {', '.join(points)}")
    return points[name]


def get_dataset(name: str, registry: dict[str, DatasetEntry] | None = None) -> DatasetEntry:
    registry = load_registry() if registry is None else registry
    if name not in registry:
        raise ConfigFileError(f"unknown dataset {name!r}; valid: {', '.join(registry)}")
    return registry[name]


def content_hash(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts (the content address of an artifact)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
