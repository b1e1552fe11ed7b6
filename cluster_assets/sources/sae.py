"""SAEs in sae-lens' own formats: train a TopK SAE offline, load from the hub, save/load.

Training uses sae-lens' ``SAETrainer`` on an iterator of (batch, d_in) activation
tensors; the result is saved with ``save_inference_model`` (``cfg.json`` +
safetensors) and read back with ``SAE.load_from_disk``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from cluster_assets.core.atomic import atomic_dir
from cluster_assets.sources.model import HubUnavailableError, require_hub


@dataclass(frozen=True)
class SAETrainingParams:
    """How the embedded-mode SAE is trained (all counts in tokens)."""

    d_sae: int = 4096
    k: int = 64
    training_tokens: int = 400_000
    tokens_per_dataset: int = 150_000
    batch_size: int = 1024
    lr: float = 2e-3
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SAEQuality:
    l0: float  # mean active features per token
    fvu: float  # fraction of variance unexplained on held-out tokens
    dead_fraction: float  # features that never fired on the held-out tokens
    n_eval_tokens: int


def _shuffled_batches(acts: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(acts.shape[0], generator=gen)
        for start in range(0, acts.shape[0] - batch_size + 1, batch_size):
            yield acts[order[start : start + batch_size]]


def train_topk_sae(
    activations: torch.Tensor,
    params: SAETrainingParams,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
):
    """Train a TopK SAE with sae-lens' trainer on (tokens, d_in) activations.

    Cycles over the shuffled tokens until ``params.training_tokens`` samples were seen.
    Returns the inference ``TopKSAE``.
    """
    from sae_lens import LoggingConfig, SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    if activations.ndim != 2 or activations.shape[0] < params.batch_size:
        raise ValueError(f"need at least batch_size={params.batch_size} training tokens, got shape {tuple(activations.shape)}")
    torch.manual_seed(params.seed)
    d_in = activations.shape[1]
    sae = TopKTrainingSAE(
        TopKTrainingSAEConfig(d_in=d_in, d_sae=params.d_sae, k=params.k, device=device, normalize_activations="expected_average_only_in")
    )
    cfg = SAETrainerConfig(
        total_training_samples=params.training_tokens,
        train_batch_size_samples=params.batch_size,
        lr=params.lr,
        lr_end=params.lr / 10,
        lr_scheduler_name="cosineannealing",
        lr_warm_up_steps=max(1, params.training_tokens // params.batch_size // 50),
        device=device,
        n_batches_for_norm_estimate=min(50, activations.shape[0] // params.batch_size),
        logger=LoggingConfig(log_to_wandb=False),
    )
    batches = _shuffled_batches(activations.to(device), params.batch_size, params.seed)
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches)
    if progress is not None:
        step, every = [0], max(1, cfg.total_training_steps // 10)
        original_step = trainer.step

        def step_with_progress(batch):
            out = original_step(batch)
            step[0] += 1
            if step[0] % every == 0:
                progress(step[0] * params.batch_size, params.training_tokens)
            return out

        trainer.step = step_with_progress
    trained = trainer.fit()
    return to_inference(trained)


def to_inference(training_sae):
    """The inference SAE of a trained ``TrainingSAE`` (via sae-lens' own save format)."""
    import tempfile

    from sae_lens import SAE

    with tempfile.TemporaryDirectory() as tmp:
        training_sae.save_inference_model(tmp)
        return SAE.load_from_disk(tmp, device=str(training_sae.W_enc.device))


@torch.no_grad()
def evaluate_sae(sae, activations: torch.Tensor, batch_size: int = 4096) -> SAEQuality:
    """L0, FVU and dead fraction of ``sae`` on (tokens, d_in) held-out activations."""
    n = activations.shape[0]
    if n == 0:
        raise ValueError("no evaluation tokens")
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    l0_sum, err_sum = 0.0, 0.0
    mean = activations.double().mean(dim=0)
    total_var = ((activations.double() - mean) ** 2).sum().item()
    for start in range(0, n, batch_size):
        x = activations[start : start + batch_size].to(sae.W_enc.device)
        feats = sae.encode(x)
        recon = sae.decode(feats)
        active = feats > 0
        l0_sum += active.sum().item()
        fired |= active.any(dim=0).cpu()
        err_sum += ((recon.double() - x.double()) ** 2).sum().item()
    return SAEQuality(l0=l0_sum / n, fvu=err_sum / total_var if total_var > 0 else math.nan, dead_fraction=1.0 - fired.float().mean().item(), n_eval_tokens=n)


def save_sae(sae, path: str | Path) -> Path:
    """Save in sae-lens' format (``cfg.json`` + safetensors), atomically."""
    with atomic_dir(path) as tmp:
        sae.save_model(tmp)
    return Path(path)


def load_sae(path: str | Path, device: str = "cpu"):
    from sae_lens import SAE

    return SAE.load_from_disk(str(path), device=device)


def load_hub_sae(release: str, sae_id: str, device: str):
    """``SAE.from_pretrained``; fails fast and clearly when offline."""
    require_hub(f"SAE {release}/{sae_id}")
    from sae_lens import SAE

    try:
        return SAE.from_pretrained(release, sae_id, device=device)
    except OSError as err:
        raise HubUnavailableError(
            f"could not load SAE {release}/{sae_id} from the Hugging Face hub ({err}). "
            "Without network, use ActivationSource(mode='embedded')."
        ) from err
