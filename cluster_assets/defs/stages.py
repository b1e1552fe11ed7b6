"""A stage of the pipeline as one row (:class:`Stage`), and the one load-or-compute helper.

A stage is a name, its body (the function that computes it), its files (a
:class:`~cluster_assets.storage.formats.Format`), every stage it reads (``reads``: its Dagster
deps, and the only stages :meth:`StageContext.read` lets it load) and the sweep sections its
output depends on (``sections``).  The table of rows is :data:`cluster_assets.defs.pipeline.STAGES`.
An artifact lives at ``<root>/<stage>/<hash>`` where the hash covers the format (and code)
version, the dataset, those sections and the hashes of the stages it reads (:class:`Lineage`,
computed once per run).

:func:`run_stage` is the shape every asset shares: reuse the artifact when it exists and
verifies; otherwise (or when verification fails, which is logged with the file) call the
stage's body, write the artifact atomically with checksums, and return its metadata as
plain values with the content hash as the Dagster data version.  Bodies read their inputs
with :meth:`StageContext.read` (verified) and call one library function.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dagster as dg

from cluster_assets.config import DatasetEntry, SweepPoint
from cluster_assets.config.models import SECTIONS, plain
from cluster_assets.core.params import ParameterError
from cluster_assets.defs.metadata import PeakMemory, artifact_metadata, figure_markdown, plain_metadata, ran_on
from cluster_assets.defs.project import Project
from cluster_assets.reporting.summaries import summary_values
from cluster_assets.sources.numerics import check_libraries, device_class, model_numerics
from cluster_assets.storage import Artifact, ArtifactStore
from cluster_assets.storage import formats as fmt

MODEL_POOL = "model"
#: The artifact store's folder of activation shards (not an asset: the activations stage's reusable parts).
SHARDS = "activation_shards"
T = TypeVar("T")


@dataclass(frozen=True)
class Stage:
    """One row of the stage table."""

    name: str
    format: fmt.Format
    body: Callable[..., Output]  # (StageContext) -> Output; comparisons and the report take their gathered inputs too
    reads: tuple[str, ...] = ()  # every stage the body loads: its deps in Dagster and in the content address
    sections: tuple[str, ...] = ()  # sweep sections the output depends on (unpartitioned: see Lineage._settings)
    partitioning: str = "dataset_point"  # "dataset_point", "hparams", "dataset" or "none"
    group: str = "clustering"
    kinds: frozenset[str] = frozenset()
    pool: str | None = None
    description: str = ""
    # Dagster's code_version: bump it when the body's output changes for the same inputs. It enters
    # the address only once set, so setting it never moves the artifacts of the other stages.
    code_version: str | None = None
    # Its bytes come from torch (the model, the SAE): the numerics class of the device enters the
    # address (cluster_assets.sources.numerics), and the body runs under model_numerics.
    numerics: bool = False

    def versions(self) -> list[str]:
        """The address parts that version the stage's files and logic."""
        return [f"format-v{self.format.version}"] + ([f"code-v{self.code_version}"] if self.code_version is not None else [])

    def params(self, point: SweepPoint) -> dict[str, Any]:
        """The sweep sections the output depends on, as they enter its address.  Unset (None)
        fields are left out, so a new optional parameter changes no existing address."""
        out = {s: {k: v for k, v in point.section(s).items() if v is not None} for s in self.sections}
        if "prompts" in out:  # the replicate index, not the count: adding replicates leaves replicate 1 as it is
            out["prompts"] = {k: v for k, v in out["prompts"].items() if k != "replicates"} | {"replicate": point.replicate}
        return out


def validate_table(stages: Mapping[str, Stage]) -> None:
    """A stage table's rows are complete and ordered: each has a body and a format, and reads only
    stages declared on earlier rows.  Called when the definitions load (so ``dg check defs`` fails)."""
    seen: set[str] = set()
    for name, stage in stages.items():
        if name != stage.name:
            raise ValueError(f"the stage table's key {name!r} names a row for {stage.name!r}")
        if not callable(stage.body):
            raise TypeError(f"stage {name!r}: its body {stage.body!r} is not a function")
        if not isinstance(stage.format, fmt.Format):
            raise TypeError(f"stage {name!r}: its format {stage.format!r} is not a storage.formats.Format")
        unknown = [r for r in stage.reads if r not in seen]
        if unknown:
            raise ValueError(f"stage {name!r} reads {unknown}, which no earlier row of the stage table declares")
        seen.add(name)


@dataclass(frozen=True)
class Across:
    """The partitions a one-dimensional stage (a comparison) reads: those whose ``clusters``
    exist (``have``), the names of those that do not (``missing``), and for a sweep comparison
    the held-out ``pool`` (the reference point's replicates of the dataset, then those of its other
    sample sizes, with activations)."""

    have: list[Lineage]
    missing: list[str]
    pool: list[Lineage] = field(default_factory=list)


class Lineage:
    """Content addresses of the stages of one partition, each computed once: a (dataset, sweep
    point), a comparison's key, or neither (the SAE, the report).  The one place addresses are made."""

    def __init__(
        self,
        stages: Mapping[str, Stage],
        project: Project,
        store: ArtifactStore,
        source: Any,
        dataset: DatasetEntry | None = None,
        point: SweepPoint | None = None,
        key: str | None = None,
    ):
        self.stages, self.project, self.store, self.source, self._dataset, self._point = stages, project, store, source, dataset, point
        self.key = key
        self._artifacts: dict[str, Artifact] = {}
        self._parts: dict[str, list[Any]] = {}
        self._lineages: dict[tuple[str, str], Lineage] = {}
        self._across: dict[str, Across] = {}
        self._found: dict[str, dict[str, dict[str, Lineage]]] = {}

    @property
    def partitioned(self) -> bool:
        return self._dataset is not None and self._point is not None

    @property
    def dataset(self) -> DatasetEntry:
        if self._dataset is None:
            raise ValueError("this lineage is not of a (dataset, sweep point) partition")
        return self._dataset

    @property
    def point(self) -> SweepPoint:
        if self._point is None:
            raise ValueError("this lineage is not of a (dataset, sweep point) partition")
        return self._point

    def lineage_of(self, dataset: str, point: str) -> Lineage:
        """The lineage of a (dataset, sweep point) partition (comparisons read many)."""
        if (dataset, point) not in self._lineages:
            self._lineages[(dataset, point)] = Lineage(
                self.stages, self.project, self.store, self.source, self.project.dataset(dataset), self.project.point(point)
            )
        return self._lineages[(dataset, point)]

    def keyed(self, key: str) -> Lineage:
        """The lineage of a comparison's partition ``key`` (a sweep point or a dataset)."""
        return Lineage(self.stages, self.project, self.store, self.source, key=key)

    def keys(self, partitioning: str) -> list[str]:
        """The partition keys of a one-dimensional stage."""
        if partitioning == "hparams":
            return list(dict.fromkeys(p.point for p in self.project.sweep.values()))
        return [d.name for d in self.project.datasets]

    def across(self, name: str) -> Across:
        """What the comparison ``name`` reads for this lineage's key (found once: the address and the
        body see the same partitions, even while others land)."""
        if name not in self._across:
            self._across[name] = self._find_across(name)
        return self._across[name]

    def _find_across(self, name: str) -> Across:
        project, key = self.project, self._require_key()
        if self.stages[name].partitioning == "hparams":
            pairs = project.runs(hparams=[p.name for p in project.replicates_of(key)])
            pool = []
        else:
            pairs = project.runs(datasets=[key])
            # held-out samples: the reference's replicates, then its other sizes' (a large sample may overlap every one of the reference's)
            ref = project.reference
            pool = [self.lineage_of(key, p.name) for p in project.replicates_of(ref.point)]
            pool += [self.lineage_of(key, h) for d, h in pairs if project.point(h).resizes(ref)]
        lineages = [self.lineage_of(d, p) for d, p in pairs]
        have = [lin for lin in lineages if lin.artifact("clusters").exists]
        missing = [f"{lin.dataset.name}|{lin.point.name}" for lin in lineages if not lin.artifact("clusters").exists]
        return Across(have, missing, [lin for lin in pool if lin.artifact("activations").exists])

    def found(self, name: str) -> dict[str, dict[str, Lineage]]:
        """For an unpartitioned stage reading partitioned ones (the report, the explorer): for each
        read stage, the keys whose artifact exists (a comparison's: and compared something), with
        their lineages (key "" for an unpartitioned read, "<dataset>|<sweep partition>" for a 2-D
        one).  Found once, as :meth:`across`."""
        if name not in self._found:
            self._found[name] = self._find_found(name)
        return self._found[name]

    def _find_found(self, name: str) -> dict[str, dict[str, Lineage]]:
        out: dict[str, dict[str, Lineage]] = {}
        for read in self.stages[name].reads:
            out[read] = {}
            if self.stages[read].partitioning == "none":
                out[read] = {"": self} if self.artifact(read).exists else {}
                continue
            if self.stages[read].partitioning == "dataset_point":
                pairs = self.project.runs()
                out[read] = {f"{d}|{p}": lin for d, p in pairs if (lin := self.lineage_of(d, p)).artifact(read).exists}
                continue
            for key in self.keys(self.stages[read].partitioning):
                sub = self.keyed(key)
                if sub.across(read).have and sub.artifact(read).exists:
                    out[read][key] = sub
        return out

    def _require_key(self) -> str:
        if self.key is None:
            raise ValueError("this lineage has no single-dimension partition key")
        return self.key

    def artifact(self, name: str) -> Artifact:
        if name not in self._artifacts:
            self._parts[name] = self._address_parts(name)
            self._artifacts[name] = self.store.artifact(name, *self._parts[name])
        return self._artifacts[name]

    def shard(self, shard: int) -> tuple[Artifact, list[Any]]:
        """Activation shard ``shard`` of this partition's dataset (:mod:`cluster_assets.sources.shards`)
        and its address parts: what its bytes depend on -- the dataset's draws and their cut (the
        prompts stage's versions, seed, max_tokens), the model, the SAE, the stored dtype, numerics
        and forward batching, and the block itself; not the sample's size or replicate, so every
        sample covering the block finds it."""
        stage, prompts = self.stages["activations"], self.point.prompts
        parts = [
            *stage.versions(),
            {"prompts": self.stages["prompts"].versions()},
            self.dataset.identity(),
            {"seed": prompts.seed, "max_tokens": prompts.max_tokens},
            self.source.model_identity(),
            self.artifact("sae").hash,
            stage.params(self.point),
            {"numerics": device_class(self.source.resolved_device())},
            {"forward": self.source.forward_batching(), "batch_window": self.source.batch_window},
            {"shard": shard, "shard_prompts": self.source.shard_prompts},
        ]
        return self.store.artifact(SHARDS, *parts), parts

    def inputs(self, name: str) -> dict[str, Any]:
        """What the manifest records as the artifact's inputs: the hashes of its reads, or its address parts."""
        if self.stages[name].partitioning == "dataset_point":
            return {u: self.artifact(u).hash for u in self.stages[name].reads}
        self.artifact(name)
        return {"address": self._parts[name]}

    def _settings(self, section: str) -> Any:
        """A section an unpartitioned stage depends on: ``datasets`` (those in use), a section of the
        registry, or a sweep section (each distinct value, by the first point that has it; unset fields left out)."""
        if section == "datasets":
            return [d.identity() for d in self.project.datasets]
        registry = self.project.registry
        if section in type(registry).model_fields:
            return plain(getattr(registry, section))
        points = self.project.first_points_by(section)
        return {name: {k: v for k, v in p.section(section).items() if v is not None} for name, p in points.items()}

    def _address_parts(self, name: str) -> list[Any]:
        """Everything the stage's output depends on: its versions, then by partitioning: its
        source's identity (no reads), the dataset, declared reads' hashes and sweep sections (a
        2-D partition), each read partition's hashes (a comparison), or the read artifacts (the report)."""
        stage = self.stages[name]
        parts: list[Any] = stage.versions()
        if name == "sae":
            training = [e.identity() for e in self.project.registry.training_entries()]
            parts.append(self.source.sae_identity(training))
        elif name == "prompts":
            parts += [self.dataset.identity(), stage.params(self.point), self.source.model_identity()]
        elif stage.partitioning == "dataset_point":
            parts += [self.dataset.name, [self.artifact(u).hash for u in stage.reads], stage.params(self.point)]
        elif stage.partitioning in ("hparams", "dataset"):
            across = self.across(name)
            parts += [
                self._require_key(),
                sorted((lin.dataset.name, lin.point.name, *(lin.artifact(u).hash for u in stage.reads)) for lin in across.have),
            ]
            if stage.partitioning == "dataset":  # scored on held-out samples of the reference point
                pool = sorted((lin.point.name, lin.artifact("prompts").hash, lin.artifact("activations").hash) for lin in across.pool)
                parts += [self.project.reference.model_dump(mode="json"), pool]
        elif stage.partitioning == "none" and all(self.stages[u].partitioning == "none" for u in stage.reads):
            parts += [[self.artifact(u).hash for u in stage.reads], {s: self._settings(s) for s in stage.sections}]
        else:
            hashes = sorted(sub.artifact(read).hash for read, subs in self.found(name).items() for sub in subs.values())
            parts += [hashes, [p.model_dump(mode="json") for p in self.project.sweep.values() if p.replicate == 0]]
        if stage.numerics:
            parts.append({"numerics": device_class(self.source.resolved_device())})
        if stage.pool == MODEL_POOL:  # which rows share a padded forward batch moves the last bits of a model step's values
            parts.append({"forward": self.source.forward_batching()})
        if name == "activations":  # and which prompts are batched together (not the shard size: see Lineage.shard)
            parts.append({"batch_window": self.source.batch_window})
        return parts


class UndeclaredReadError(KeyError):
    """A body loaded a stage its row does not declare in ``reads``."""


@dataclass
class Output:
    """What a stage body returns: the value its format saves, and its metadata as plain values."""

    value: Any
    summary: Any = field(default_factory=dict)  # a summary dataclass of plain values (reporting.summaries), or a dict; kept in the manifest
    markdown: dict[str, str] = field(default_factory=dict)  # previews shown as markdown
    figures: dict[str, bytes] = field(default_factory=dict)  # PNGs, saved under figures/
    references: list[str] = field(default_factory=list)  # addresses of artifacts its files point into, verified with it


class StageContext:
    """What a stage body sees: the partition's dataset and point, verified inputs, the run log."""

    def __init__(
        self,
        stages: Mapping[str, Stage],
        stage: Stage,
        project: Project,
        source: Any,
        store: ArtifactStore,
        log: Any,
        dataset: DatasetEntry | None = None,
        point: SweepPoint | None = None,
        key: str | None = None,
    ):
        self.stages, self.stage, self.project, self.source, self.store, self.log = stages, stage, project, source, store, log
        self.lineage = Lineage(stages, project, store, source, dataset, point, key)
        self.read_seconds = 0.0

    @property
    def dataset(self) -> DatasetEntry:
        """The partition's dataset (2-D stages)."""
        return self.lineage.dataset

    @property
    def point(self) -> SweepPoint:
        """The partition's sweep point (2-D stages)."""
        return self.lineage.point

    @property
    def key(self) -> str:
        """The partition key of a comparison (a sweep point or a dataset)."""
        if self.lineage.key is None:
            raise ValueError(f"{self.stage.name} has no single-dimension partition key")
        return self.lineage.key

    def require(self, artifact: Artifact, what: str) -> Artifact:
        """The artifact, verified; a clear failure when it is missing or its files changed."""
        if not artifact.exists:
            raise dg.Failure(
                f"{what} has not been materialised (expected artifact {artifact.address} at {artifact.path}); materialise it first"
            )
        problems = artifact.problems()
        if problems:
            raise dg.Failure(
                f"input {what} (artifact {artifact.address}) failed verification: {'; '.join(problems)}. "
                f"Materialise {artifact.stage} again: it will be recomputed."
            )
        return artifact

    def read(self, name: str, form: type[fmt.Format[T]], lineage: Lineage | None = None, **load_kwargs: Any) -> T:
        """Load a stage's value of this partition (or of ``lineage``'s), verified and typed by its
        format ``form`` (``Format[T]`` gives a ``T``): a stage the body declares in ``reads`` (or the
        stage itself, for its checks), stored in that format; anything else is an error."""
        if name != self.stage.name and name not in self.stage.reads:
            raise UndeclaredReadError(f"{self.stage.name} reads {name!r}, which its row does not declare (reads={self.stage.reads})")
        stored = self.stages[name].format
        if not isinstance(stored, form):
            raise TypeError(f"{self.stage.name} reads {name!r} as {form.__name__}, but its row stores it as {type(stored).__name__}")
        lineage = lineage or self.lineage
        artifact = self.require(lineage.artifact(name), self.describe(name, lineage))
        t0 = time.perf_counter()
        value = stored.load(artifact.path, **load_kwargs)
        self.read_seconds += time.perf_counter() - t0
        return value

    def verified_or_discarded(self, artifact: Artifact, what: str) -> tuple[bool, str | None]:
        """(True, None) if ``artifact`` exists and verifies; otherwise (False, why it was discarded,
        or None if it was absent).  A stored artifact is used only verified, else recomputed."""
        if not artifact.exists:
            return False, None
        problems = artifact.problems()
        if not problems:
            return True, None
        why = "; ".join(problems)
        self.log.warning(f"{what} {artifact.address} failed verification ({why}); discarding it and recomputing")
        self.store.discard(artifact)
        return False, why

    def reuse_or_compute(
        self, artifact: Artifact, form: fmt.Format[T], compute: Callable[[], T], what: str, record: dict[str, Any]
    ) -> tuple[T, bool]:
        """A part of this stage's work kept in the store on its own (an activation shard): loaded
        if ``artifact`` exists and verifies, else computed under the stage's numerics and written
        atomically with ``record`` (its address parts) in the manifest; one that fails verification
        is discarded and recomputed, and if another writer finished it first, theirs is read back,
        verified.  Returns (value, reused)."""
        if self.verified_or_discarded(artifact, what)[0]:
            return form.load(artifact.path), True
        value = compute()
        writer = self.store.write(artifact, {"part_of": self.stage.name, "what": what, **record})
        with writer as folder:
            form.save(folder, value)
        if not writer.won:
            return form.load(artifact.verify().path), False
        return value, False

    def describe(self, name: str, lineage: Lineage | None = None) -> str:
        lineage = lineage or self.lineage
        if lineage.key is not None:
            return f"{name}[{lineage.key}]"
        if self.stages[name].partitioning == "none" or not lineage.partitioned:
            return name
        return f"{name}[{lineage.dataset.name}|{lineage.point.name}]"

    def progress(self, what: str) -> Callable[[int, int], None]:
        """A progress(done, total) callback that logs at most every 5 seconds."""
        last = [0.0]

        def report(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] > 5 or done == total:
                last[0] = now
                self.log.info(f"{what}: {done}/{total}")

        return report


def parameter_failure(ctx: StageContext, err: ParameterError) -> dg.Failure:
    """The failure for a parameter error: the sweep point, its section and field, the problem -- once."""
    if not ctx.lineage.partitioned:
        return dg.Failure(f"{ctx.stage.name}, field {err.field}: {err.message}")
    first = err.field.split(" / ")[0]
    own = ctx.stage.sections
    ordered = (*own, *(s for s in SECTIONS if s not in own))  # the stage's own sections first
    section = next((s for s in ordered if first in ctx.point.section(s)), None)
    where = ctx.point.point if ctx.point.replicate == 0 else f"{ctx.point.point} (replicate {ctx.point.replicate + 1})"
    field = f"{section}.{err.field}" if section else err.field
    return dg.Failure(f"sweep point {where!r}, field {field}: {err.message}")


def run_stage(ctx: StageContext, body: Callable[[StageContext], Output]) -> dg.MaterializeResult:
    """Reuse the stage's artifact if it exists and verifies, else compute it with ``body``; return its metadata."""
    if ctx.lineage.partitioned and not ctx.point.runs_on(ctx.dataset.name):
        raise dg.Failure(
            f"sweep point {ctx.point.point!r} runs on datasets {', '.join(ctx.point.datasets or ())} only (its field datasets "
            f"in {ctx.project.sweep_path.name}), not on {ctx.dataset.name!r}: this partition is never run"
        )
    artifact = ctx.lineage.artifact(ctx.stage.name)
    verified, recomputed_because = ctx.verified_or_discarded(artifact, "artifact")
    if verified:
        return _result(ctx, artifact, reused=True)
    check_libraries()
    t0 = time.perf_counter()
    with PeakMemory() as peak:
        try:
            with model_numerics(ctx.source.resolved_device()) if ctx.stage.numerics else nullcontext({}) as numerics:
                out = body(ctx)
        except ParameterError as err:
            raise parameter_failure(ctx, err) from None
        summary = summary_values(out.summary) | ({"numerics": numerics} if numerics else {})  # what decided the bytes, beside them
        t1 = time.perf_counter()
        record = {
            "inputs": ctx.lineage.inputs(ctx.stage.name),
            "params": ctx.stage.params(ctx.point) if ctx.lineage.partitioned else {},
            "summary": summary,
            "markdown": out.markdown,
            "recomputed_because": recomputed_because,
            **({"references": ctx.store.pinned(out.references)} if out.references else {}),
        }
        writer = ctx.store.write(artifact, record)
        with writer as folder:
            ctx.stage.format.save(folder, out.value)
            if out.figures:
                (folder / fmt.FIGURES_DIR).mkdir(exist_ok=True)
                for name, png in out.figures.items():
                    (folder / fmt.FIGURES_DIR / f"{name}.png").write_bytes(png)
            timing = {
                "compute_seconds": t1 - t0 - ctx.read_seconds,
                "read_seconds": ctx.read_seconds,
                "write_seconds": time.perf_counter() - t1,
                "peak_rss_mb": peak.peak_mb,
            }
            record["timing"] = timing  # the manifest is written when the block ends
    if not writer.won:  # another process finished the same artifact first: theirs stays, if it verifies
        artifact.verify()
    return _result(ctx, artifact, reused=False)


def _result(ctx: StageContext, artifact: Artifact, reused: bool) -> dg.MaterializeResult:
    manifest = artifact.manifest()
    metadata: dict[str, Any] = {
        **plain_metadata(manifest.get("summary", {})),
        **artifact_metadata(artifact, reused, ctx.stage.format.ENTRY),
    }
    if manifest.get("recomputed_because"):
        metadata["recomputed_because"] = manifest["recomputed_because"]
    metadata.update(plain_metadata(manifest.get("timing", {})))
    metadata["ran_on"] = ran_on()
    for name, text in manifest.get("markdown", {}).items():
        metadata[name] = dg.MetadataValue.md(text)
    for png in sorted((artifact.path / fmt.FIGURES_DIR).glob("*.png")) if (artifact.path / fmt.FIGURES_DIR).is_dir() else []:
        metadata[png.stem] = figure_markdown(png.read_bytes(), png.stem.replace("_", " "))
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(artifact.hash))
