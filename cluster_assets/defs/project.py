"""What a code location is built from: the corpus registry, the sweep, and the mode.

``Project.load()`` reads the files named by the environment (or given paths) and validates
everything the code location needs when it loads -- every registry and sweep field, loader
names and their parameters, and (when the corpus cache knows the corpus size) whether the
replicates of a point can be disjoint -- so a bad file fails at once, naming file and field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from cluster_assets.config import ConfigFileError, DatasetEntry, Registry, SweepPoint, datasets_path, load_registry, load_sweep, sweep_path
from cluster_assets.config.files import locate
from cluster_assets.storage.hashing import content_hash

MODES = ("embedded", "hub")


def hub_reachable() -> bool:
    """Hub datasets can stream: neither HF_HUB_OFFLINE nor HF_DATASETS_OFFLINE is set."""
    return os.environ.get("HF_HUB_OFFLINE") != "1" and os.environ.get("HF_DATASETS_OFFLINE") != "1"


@dataclass(frozen=True)
class Project:
    registry: Registry
    sweep: dict[str, SweepPoint]  # hparams partitions (points and their replicates) by name
    registry_path: Path
    sweep_path: Path
    mode: Literal["embedded", "hub"] = "embedded"
    online: bool = False  # hub datasets are partitions only then

    @classmethod
    def load(
        cls,
        sweep: str | Path | None = None,
        datasets: str | Path | None = None,
        mode: str | None = None,
        online: bool | None = None,
        cache_dir: str | Path | None = None,
    ) -> Project:
        from cluster_assets.sources.corpora import entry_problems, usable_count
        from cluster_assets.sources.prompts import too_few_texts

        registry_path, sweep_file = Path(datasets or datasets_path()), Path(sweep or sweep_path())
        registry, points = load_registry(registry_path), load_sweep(sweep_file)
        mode = mode or os.environ.get("CLUSTER_ASSETS_MODE") or "embedded"
        if mode not in MODES:
            raise ConfigFileError(f"CLUSTER_ASSETS_MODE={mode!r}: expected one of {', '.join(MODES)}")
        if mode == "embedded" and not registry.sae_training:
            raise ConfigFileError(
                f"{locate(registry_path, 'sae_training')}: sae_training names no dataset; the embedded SAE is trained on them"
            )
        for entry in registry.entries():
            for field, problem in entry_problems(entry):
                raise ConfigFileError(
                    f"{locate(registry_path, 'datasets', entry.name, field)}: dataset {entry.name!r}, field {field}: {problem}"
                )
        project = cls(
            registry,
            points,
            registry_path,
            sweep_file,
            cast(Literal["embedded", "hub"], mode),
            hub_reachable() if online is None else online,
        )
        for point in points.values():
            unknown = [d for d in point.datasets or () if d not in registry]
            if unknown and not point.replicate:
                where = locate(sweep_file, "points", point.point, "datasets")
                raise ConfigFileError(
                    f"{where}: sweep point {point.point!r}, field datasets: {', '.join(map(repr, unknown))} not in the registry; "
                    f"valid: {', '.join(registry.names)}"
                )
        cache = Path(cache_dir or os.environ.get("CLUSTER_ASSETS_CACHE") or Path.cwd() / ".cache") / "corpora"
        for entry in project.datasets:
            usable = usable_count(entry, cache)
            for point in points.values():
                n_prompts = point.prompts.n_prompts
                if point.replicate or usable is None or n_prompts is None or not point.runs_on(entry.name):
                    continue  # a token budget is checked when the prompts are sampled (it needs the tokenizer)
                shortfall = too_few_texts(n_prompts, point.prompts.replicates, usable, entry.name)
                if shortfall:
                    where = locate(sweep_file, "points", point.point, "prompts", "n_prompts")
                    raise ConfigFileError(f"{where}: sweep point {point.point!r}, field prompts.n_prompts: {shortfall}")
        return project

    @property
    def datasets(self) -> list[DatasetEntry]:
        """The dataset partitions: offline datasets, and hub datasets when the hub is reachable."""
        return [e for e in self.registry.entries() if e.offline or self.online]

    def dataset(self, name: str) -> DatasetEntry:
        return self.registry[name]

    def point(self, name: str) -> SweepPoint:
        if name not in self.sweep:
            raise ConfigFileError(f"unknown sweep point {name!r}; valid: {', '.join(self.sweep)}")
        return self.sweep[name]

    @property
    def reference(self) -> SweepPoint:
        """The first point of the sweep: what sweep comparisons measure agreement against."""
        return next(iter(self.sweep.values()))

    def runs(self, datasets: Iterable[str] | None = None, hparams: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """The (dataset, sweep partition) pairs that run, sweep partition by sweep partition: every
        dataset partition with every sweep partition, but a point's own ``datasets`` where it names
        them.  ``datasets``/``hparams`` narrow it to those names."""
        names = [e.name for e in self.datasets] if datasets is None else list(datasets)
        return [(d, h) for h in (self.sweep if hparams is None else hparams) for d in names if self.point(h).runs_on(d)]

    def replicates_of(self, point: str) -> list[SweepPoint]:
        return [p for p in self.sweep.values() if p.point == point]

    def first_points_by(self, section: str) -> dict[str, SweepPoint]:
        """Each distinct value of a sweep section once, by the first point (first replicate) that has it."""
        out: dict[str, SweepPoint] = {}
        for p in self.sweep.values():
            if p.replicate == 0 and all(p.section(section) != q.section(section) for q in out.values()):
                out[p.point] = p
        return out

    def files_digest(self) -> str:
        """Hash of the two files' contents (to notice edits that need a code-location reload)."""
        return content_hash(self.sweep_path.read_text(), self.registry_path.read_text())
