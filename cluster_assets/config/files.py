"""Reading the sweep file and the corpus registry, with errors that say where.

Both are YAML files (defaults in this package's folder; ``CLUSTER_ASSETS_SWEEP`` and
``CLUSTER_ASSETS_DATASETS`` name others).  Every error names the file, the line, the sweep
point or dataset, and the field, once, in plain words.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from cluster_assets.config.models import REPLICATE_MARK, DatasetEntry, GroundTruth, Registry, SAEEvaluation, SweepPoint
from cluster_assets.core.clustering import METHODS
from cluster_assets.core.merge import MergeConfig
from cluster_assets.core.params import ParameterError, plain
from cluster_assets.core.sae_quality import SAEQualityThresholds

CONFIG_DIR = Path(__file__).parent
DEFAULT_SWEEP = CONFIG_DIR / "sweep.yaml"
DEFAULT_DATASETS = CONFIG_DIR / "datasets.yaml"
SWEEP_ENV, DATASETS_ENV = "CLUSTER_ASSETS_SWEEP", "CLUSTER_ASSETS_DATASETS"


class ConfigFileError(ValueError):
    """A sweep or registry file is invalid; the message names the file, line, entry and field."""


def sweep_path() -> Path:
    return Path(os.environ.get(SWEEP_ENV) or DEFAULT_SWEEP)


def datasets_path() -> Path:
    return Path(os.environ.get(DATASETS_ENV) or DEFAULT_DATASETS)


def _key_lines(node: Any, prefix: tuple = ()) -> dict[tuple, int]:
    """1-based line of every mapping key in a composed YAML tree, by key path."""
    out: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            out[path] = key.start_mark.line + 1
            out.update(_key_lines(value, path))
    return out


def _read_yaml(path: Path) -> tuple[dict, dict[tuple, int]]:
    if not path.exists():
        raise ConfigFileError(f"{path}: file not found")
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
        lines = _key_lines(yaml.compose(text))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigFileError(f"{path}{where}: not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise ConfigFileError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data, lines


def _where(path: Path, lines: dict[tuple, int], *keys: Any) -> str:
    """``file, line N`` for the deepest of ``keys`` that the file spells out."""
    for depth in range(len(keys), 0, -1):
        line = lines.get(tuple(str(k) for k in keys[:depth]))
        if line is not None:
            return f"{path}, line {line}"
    return str(path)


def locate(path: str | Path, *keys: object) -> str:
    """``file, line N`` of the deepest of ``keys`` (a path of mapping keys) that the file spells out."""
    path = Path(path)
    try:
        lines = _key_lines(yaml.compose(path.read_text()))
    except (OSError, yaml.YAMLError):
        return str(path)
    return _where(path, lines, *keys)


def describe(err: ValidationError) -> list[tuple[tuple[str, ...], str]]:
    """(field path, plain message) of each problem, with no repeated field names or reprs."""
    out = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"] if p not in METHODS)  # pydantic names a tagged union's variant in the path
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, ParameterError):
            out.append(((*loc, cause.field), cause.message))
        elif e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            out.append((loc, "is not a known field"))
        elif e["type"] == "missing":
            out.append((loc, "is required"))
        else:
            out.append((loc, f"{e['msg'][0].lower()}{e['msg'][1:]} (got {plain(e.get('input'))!r})"))
    return out


def load_sweep(path: str | Path | None = None) -> dict[str, SweepPoint]:
    """Every ``hparams`` partition by name, in file order (a point, then its replicates),
    each with the defaults merged in."""
    path = Path(path) if path else sweep_path()
    data, lines = _read_yaml(path)
    unknown = sorted(set(data) - {"defaults", "points"})
    if unknown:
        raise ConfigFileError(f"{_where(path, lines, unknown[0])}: unknown top-level key {unknown[0]!r}; expected 'defaults' and 'points'")
    defaults = data.get("defaults") or {}
    points = data.get("points") or {}
    if not isinstance(points, dict) or not points:
        raise ConfigFileError(f"{_where(path, lines, 'points')}: no sweep points under 'points'")
    out: dict[str, SweepPoint] = {}
    for name, override in points.items():
        name = str(name)
        if REPLICATE_MARK in name or not name:
            raise ConfigFileError(
                f"{_where(path, lines, 'points', name)}: sweep point name {name!r} may not be empty or contain {REPLICATE_MARK!r}"
            )
        merged = _deep_merge(defaults, override or {})
        # a sample size the point sets (n_prompts or n_tokens) replaces the other one from the defaults
        sizes = {"n_prompts", "n_tokens"} & set((override or {}).get("prompts") or {})
        if len(sizes) == 1 and isinstance(merged.get("prompts"), dict):
            merged["prompts"] = {k: v for k, v in merged["prompts"].items() if k not in {"n_prompts", "n_tokens"} - sizes}
        # a point that picks another clustering method starts from that method's own defaults
        mine, default = ((override or {}).get("clustering") or {}), (defaults.get("clustering") or {})
        default_method = default.get("method", MergeConfig.method) if isinstance(default, dict) else None
        if isinstance(mine, dict) and mine.get("method", default_method) != default_method:
            merged["clustering"] = mine
        try:
            point = SweepPoint(name=name, **merged)
        except ValidationError as err:
            loc, message = describe(err)[0]
            section_in = "points" if loc and str(loc[0]) in (override or {}) else "defaults"
            keys = ("points", name, *loc) if section_in == "points" else ("defaults", *loc)
            raise ConfigFileError(f"{_where(path, lines, *keys)}: sweep point {name!r}, field {'.'.join(loc)}: {message}") from None
        except TypeError as err:
            raise ConfigFileError(f"{_where(path, lines, 'points', name)}: sweep point {name!r}: {err}") from None
        for r in range(point.prompts.replicates):
            replica = point.replica(r)
            out[replica.name] = replica
    return out


#: The registry's settings sections besides its datasets, and their types.
REGISTRY_SECTIONS = {"sae_evaluation": SAEEvaluation, "sae_quality": SAEQualityThresholds, "ground_truth": GroundTruth}


def load_registry(path: str | Path | None = None) -> Registry:
    """The datasets by name, in file order, and the SAE's training datasets."""
    path = Path(path) if path else datasets_path()
    data, lines = _read_yaml(path)
    known = ("datasets", "sae_training", *REGISTRY_SECTIONS)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigFileError(
            f"{_where(path, lines, unknown[0])}: unknown top-level key {unknown[0]!r}; expected {', '.join(map(repr, known))}"
        )
    sections = {}
    for name, model in REGISTRY_SECTIONS.items():
        try:
            sections[name] = TypeAdapter(model).validate_python(data.get(name) or {})
        except ValidationError as err:
            loc, message = describe(err)[0]
            raise ConfigFileError(f"{_where(path, lines, name, *loc)}: field {'.'.join((name, *loc))}: {message}") from None
    entries = data.get("datasets") or {}
    if not isinstance(entries, dict) or not entries:
        raise ConfigFileError(f"{_where(path, lines, 'datasets')}: no datasets under 'datasets'")
    datasets = {}
    for name, body in entries.items():
        try:
            datasets[str(name)] = DatasetEntry(name=str(name), **(body or {}))
        except ValidationError as err:
            loc, message = describe(err)[0]
            raise ConfigFileError(
                f"{_where(path, lines, 'datasets', name, *loc)}: dataset {name!r}, field {'.'.join(loc)}: {message}"
            ) from None
    training = data.get("sae_training") or []
    if not isinstance(training, list):
        raise ConfigFileError(f"{_where(path, lines, 'sae_training')}: sae_training must be a list of dataset names")
    for name in training:
        if name not in datasets:
            raise ConfigFileError(
                f"{_where(path, lines, 'sae_training')}: sae_training names {name!r}, which is not a dataset of this file"
            )
        if not datasets[name].offline:
            raise ConfigFileError(f"{_where(path, lines, 'sae_training')}: sae_training names {name!r}, which is not offline")
    return Registry(datasets=datasets, sae_training=tuple(training), **sections)


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
