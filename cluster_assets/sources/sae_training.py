"""The embedded-mode SAE: trained on a token mix from every offline corpus.

Texts come from the SAE-training split of each corpus (disjoint from the analysis
prompts, see ``corpora.is_sae_training_text``), cut to ``max_tokens`` tokens; an equal
token budget per corpus; the last 5% of the shuffled tokens are held out for the
quality figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from cluster_assets.sources.corpora import load_texts
from cluster_assets.sources.extraction import collect_hook_activations
from cluster_assets.sources.prompts import usable_texts
from cluster_assets.sources.sae import SAEQuality, SAETrainingParams, evaluate_sae, train_topk_sae
from cluster_assets.sweep import DatasetEntry

HELD_OUT_FRACTION = 0.05


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


def train_embedded_sae(
    model,
    hook_name: str,
    datasets: Sequence[DatasetEntry],
    params: SAETrainingParams,
    batch_size: int,
    corpus_cache: str | None,
    device: str,
    log: Callable[[str], None] = print,
) -> TrainedSAE:
    if not datasets:
        raise ValueError("no offline dataset in the registry to train the SAE on")
    t0 = time.perf_counter()
    parts, per_dataset = [], {}
    for entry in datasets:
        lists = training_token_lists(load_texts(entry, corpus_cache), model.tokenizer, params.tokens_per_dataset)
        acts = collect_hook_activations(model, hook_name, lists, batch_size)
        per_dataset[entry.name] = int(acts.shape[0])
        log(f"collected {acts.shape[0]} training tokens from {entry.name}")
        parts.append(acts)
    acts = torch.cat(parts)
    if acts.shape[0] < params.batch_size:
        raise ValueError(f"only {acts.shape[0]} SAE training tokens from {[e.name for e in datasets]}; need at least {params.batch_size}")
    acts = acts[torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(params.seed))]
    n_eval = max(1, int(HELD_OUT_FRACTION * acts.shape[0]))
    held_out, train = acts[:n_eval], acts[n_eval:]
    t1 = time.perf_counter()
    sae = train_topk_sae(
        train, params, device=device, progress=lambda done, total: log(f"SAE training: {done}/{total} samples")
    )
    t2 = time.perf_counter()
    quality = evaluate_sae(sae, held_out)
    return TrainedSAE(sae, quality, int(train.shape[0]), per_dataset, t1 - t0, t2 - t1)
