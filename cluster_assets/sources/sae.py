"""SAEs in sae-lens' own formats: train a TopK SAE offline, load a pretrained one from the hub.

Training uses sae-lens' ``SAETrainer`` on an iterator of (batch, d_in) activation tensors (streamed
from the model by :mod:`cluster_assets.sources.sae_training`);
the trained SAE is turned into the inference ``TopKSAE`` through sae-lens' own save format.
Saving and loading artifacts is :class:`cluster_assets.storage.formats.SAEFormat`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from cluster_assets.sources.model import hub_error
from cluster_assets.sources.numerics import fixed_threads, threads


@dataclass(frozen=True)
class SAEQuality:
    l0: float  # mean active features per token
    fvu: float  # fraction of variance unexplained on held-out tokens
    dead_fraction: float  # features that never fired on the held-out tokens
    n_eval_tokens: int


def samples_seen(training_tokens: int, batch_size: int) -> int:
    """Samples sae-lens' trainer sees for ``training_tokens``: whole batches until it reaches them."""
    return -(-training_tokens // batch_size) * batch_size


def train_topk_sae(
    batches: Iterator[torch.Tensor],
    d_in: int,
    *,
    d_sae: int,
    k: int,
    training_tokens: int,
    batch_size: int,
    lr: float,
    seed: int,
    dead_feature_window: int,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    checkpoints: int = 0,
    on_checkpoint: Callable[[int, Any], None] | None = None,
):
    """Train a TopK SAE with sae-lens' trainer on ``batches``, an iterator of (batch_size, d_in)
    activations that lasts for ``training_tokens`` samples (and the norm estimate's batches first).

    The schedule is sae-lens': linear warm-up, cosine decay to lr/10, and TopK's AuxK loss on
    features that have not fired for ``dead_feature_window`` steps.  Returns the inference
    ``TopKSAE``.  On the CPU, training (the norm estimate and the steps, whose batch reductions
    split by thread count) runs on the numerics mode's fixed thread count
    (:func:`~cluster_assets.sources.numerics.threads`), whatever the machine.  ``batches`` is
    pulled inside that block: a stream that runs the model sets its own thread count
    (:func:`~cluster_assets.sources.sae_training.activation_stream`).

    With ``on_checkpoint``, ``checkpoints`` evenly spaced snapshots before the end are handed to it
    as (samples seen, inference SAE), for curves of quality against training tokens; the training
    itself is unchanged.
    """
    from sae_lens import LoggingConfig, SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig

    steps = samples_seen(training_tokens, batch_size) // batch_size
    torch.manual_seed(seed)
    sae = TopKTrainingSAE(
        TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k, device=device, normalize_activations="expected_average_only_in")
    )
    cfg = SAETrainerConfig(
        total_training_samples=training_tokens,
        train_batch_size_samples=batch_size,
        lr=lr,
        lr_end=lr / 10,
        lr_scheduler_name="cosineannealing",
        lr_warm_up_steps=max(1, steps // 50),
        device=device,
        dead_feature_window=dead_feature_window,
        n_batches_for_norm_estimate=min(50, steps),
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=(b.to(device) for b in batches))
    every = max(1, steps // 10)
    marks = {steps * (i + 1) // (checkpoints + 1) for i in range(checkpoints)} if on_checkpoint is not None else set()
    original_step, done = trainer.step, [0]

    def step_with_progress(batch):
        out = original_step(batch)
        done[0] += 1
        if progress is not None and done[0] % every == 0:
            progress(done[0] * batch_size, training_tokens)
        if on_checkpoint is not None and done[0] in marks:
            rng = torch.get_rng_state()  # loading the snapshot draws initial weights; the mixing buffer's order must not move
            on_checkpoint(done[0] * batch_size, _snapshot(trainer))
            torch.set_rng_state(rng)
        return out

    trainer.step = step_with_progress
    with fixed_threads(threads(device, training=True)):
        trained = trainer.fit()
    return to_inference(trained)


def _snapshot(trainer):
    """The inference SAE of ``trainer``'s SAE as it is now, the activation scaling folded in as
    ``fit`` folds it at the end."""
    import copy

    sae = copy.deepcopy(trainer.sae)
    if trainer.activation_scaler.scaling_factor is not None:
        sae.fold_activation_norm_scaling_factor(trainer.activation_scaler.scaling_factor)
    return to_inference(sae)


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
