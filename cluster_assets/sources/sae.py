"""SAEs in sae-lens' own formats: train a TopK SAE offline, load a pretrained one from the hub.

Training uses sae-lens' ``SAETrainer`` on an iterator of (batch, d_in) activation tensors;
the trained SAE is turned into the inference ``TopKSAE`` through sae-lens' own save format.
Saving and loading artifacts is :class:`cluster_assets.storage.formats.SAEFormat`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from cluster_assets.sources.model import hub_error
from cluster_assets.sources.numerics import fixed_threads, threads


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
    *,
    d_sae: int,
    k: int,
    training_tokens: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
):
    """Train a TopK SAE with sae-lens' trainer on (tokens, d_in) activations.

    Cycles over the shuffled tokens until ``training_tokens`` samples were seen.  Returns the
    inference ``TopKSAE``.  On the CPU, training (the norm estimate and the steps, whose batch
    reductions split by thread count) runs on the numerics mode's fixed thread count
    (:func:`~cluster_assets.sources.numerics.threads`), whatever the machine.
    """
    from sae_lens import LoggingConfig, SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    if activations.ndim != 2 or activations.shape[0] < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} training tokens, got shape {tuple(activations.shape)}")
    torch.manual_seed(seed)
    sae = TopKTrainingSAE(
        TopKTrainingSAEConfig(d_in=activations.shape[1], d_sae=d_sae, k=k, device=device, normalize_activations="expected_average_only_in")
    )
    cfg = SAETrainerConfig(
        total_training_samples=training_tokens,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr / 10,
        lr_scheduler_name="cosineannealing",
        lr_warm_up_steps=max(1, training_tokens // batch_size // 50),
        device=device,
        n_batches_for_norm_estimate=min(50, activations.shape[0] // batch_size),
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=_shuffled_batches(activations.to(device), batch_size, seed))
    if progress is not None:
        step, every = [0], max(1, cfg.total_training_steps // 10)
        original_step = trainer.step

        def step_with_progress(batch):
            out = original_step(batch)
            step[0] += 1
            if step[0] % every == 0:
                progress(step[0] * batch_size, training_tokens)
            return out

        trainer.step = step_with_progress
    with fixed_threads(threads(device, training=True)):
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
    return SAEQuality(
        l0=l0_sum / n,
        fvu=err_sum / total_var if total_var > 0 else math.nan,
        dead_fraction=1.0 - fired.float().mean().item(),
        n_eval_tokens=n,
    )


def load_hub_sae(release: str, sae_id: str, device: str):
    """``SAE.from_pretrained`` (sae-lens' registry): from the hub, or from the local cache when
    HF_HUB_OFFLINE=1, where an SAE that is not cached fails at once."""
    from sae_lens import SAE

    try:
        return SAE.from_pretrained(release, sae_id, device=device)
    except (OSError, ValueError) as err:
        raise hub_error(f"SAE {release}/{sae_id}", err) from err


def neuronpedia_id(release: str, sae_id: str) -> str | None:
    """The Neuronpedia id sae-lens' registry gives this SAE (``<model>/<set>``), if any."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    lookup = get_pretrained_saes_directory().get(release)
    return None if lookup is None else (lookup.neuronpedia_id or {}).get(sae_id)
