"""The SAE of a deployment: trained on the registry's ``sae_training`` datasets (embedded mode), or
the pretrained hub SAE evaluated on them (hub mode).

Texts come from the SAE-training split of each corpus (disjoint from the analysis prompts, see
``corpora.is_sae_training_text``), cut to ``max_tokens`` tokens, an equal token budget per
corpus; the first 5% of the shuffled tokens are held out for the quality figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cluster_assets.config.models import DatasetEntry
from cluster_assets.sources.corpora import load_texts
from cluster_assets.sources.extraction import collect_hook_activations
from cluster_assets.sources.prompts import usable_texts
from cluster_assets.sources.sae import SAEQuality, evaluate_sae, train_topk_sae

HELD_OUT_FRACTION = 0.05
#: Tokens per dataset the quality figures of a hub SAE are measured on.
HUB_EVAL_TOKENS = 5000


@dataclass
class TrainedSAE:
    sae: object
    quality: SAEQuality
    training_tokens_collected: int
    tokens_per_dataset: dict[str, int]
    collect_seconds: float
    train_seconds: float


def training_token_lists(texts: list[str], tokenizer, n_tokens: int, max_tokens: int = 128) -> list[list[int]]:
    rows, _ = usable_texts(texts, for_sae=True)
    out, total = [], 0
    for start in range(0, len(rows), 512):
        chunk = [texts[i] for i in rows[start : start + 512]]
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            if len(ids) < 2:
                continue
            out.append(ids[:max_tokens])
            total += len(out[-1])
            if total >= n_tokens:
                return out
    return out


@dataclass(frozen=True)
class SAEPlan:
    """How a deployment's SAE is made, besides the model: the hook, the ``datasets`` whose SAE
    split it is trained (or evaluated) on, ``training`` (the keyword arguments of
    :func:`train_topk_sae` plus ``tokens_per_dataset``, distinct tokens collected per corpus), the
    forward batches (``batch_size`` prompts, ``batch_tokens``; see
    :func:`~cluster_assets.sources.extraction.length_batches`), the corpus cache and the device."""

    hook_name: str
    datasets: Sequence[DatasetEntry]
    training: Mapping[str, Any]
    batch_size: int
    batch_tokens: int | None
    corpus_cache: str | Path | None
    device: str


def sae_split_activations(
    model, plan: SAEPlan, tokens_per_dataset: int, log: Callable[[str], None] = print
) -> tuple[torch.Tensor, dict[str, int]]:
    """(tokens, d_model) hook activations of each dataset's SAE split, and the tokens taken from each."""
    parts, per_dataset = [], {}
    for entry in plan.datasets:
        lists = training_token_lists(load_texts(entry, plan.corpus_cache), model.tokenizer, tokens_per_dataset)
        acts = collect_hook_activations(model, plan.hook_name, lists, plan.batch_size, plan.batch_tokens)
        per_dataset[entry.name] = int(acts.shape[0])
        log(f"collected {acts.shape[0]} SAE-split tokens from {entry.name}")
        parts.append(acts)
    return torch.cat(parts), per_dataset


def train_embedded_sae(model, plan: SAEPlan, log: Callable[[str], None] = print) -> TrainedSAE:
    """Collect hook activations from each dataset's SAE split and train a TopK SAE on them."""
    if not plan.datasets:
        raise ValueError("no SAE training datasets named (the registry's sae_training list is empty)")
    training = dict(plan.training)
    tokens_per_dataset = training.pop("tokens_per_dataset")
    t0 = time.perf_counter()
    acts, per_dataset = sae_split_activations(model, plan, tokens_per_dataset, log)
    if acts.shape[0] < training["batch_size"]:
        raise ValueError(
            f"only {acts.shape[0]} SAE training tokens from {[e.name for e in plan.datasets]}; need at least {training['batch_size']}"
        )
    acts = acts[torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(training["seed"]))]
    n_eval = max(1, int(HELD_OUT_FRACTION * acts.shape[0]))
    held_out, train = acts[:n_eval], acts[n_eval:]
    t1 = time.perf_counter()
    sae = train_topk_sae(train, **training, device=plan.device, progress=lambda done, total: log(f"SAE training: {done}/{total} samples"))
    t2 = time.perf_counter()
    quality = evaluate_sae(sae, held_out)
    return TrainedSAE(sae, quality, int(train.shape[0]), per_dataset, t1 - t0, t2 - t1)


def prepare_sae(mode: str, model, plan: SAEPlan, load_hub_sae: Callable[[], Any], log: Callable[[str], None] = print) -> TrainedSAE:
    """The SAE of a deployment: trained by ``plan`` (embedded mode), or the pretrained hub SAE
    evaluated on the same datasets' SAE split (hub mode)."""
    if mode == "embedded":
        return train_embedded_sae(model, plan, log)
    t0 = time.perf_counter()
    sae = load_hub_sae()
    acts, per_dataset = sae_split_activations(model, plan, HUB_EVAL_TOKENS, log)
    return TrainedSAE(sae, evaluate_sae(sae, acts), 0, per_dataset, time.perf_counter() - t0, 0.0)
