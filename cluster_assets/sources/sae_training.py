"""The SAE of a deployment: trained on the registry's ``sae_training`` datasets (embedded mode), or
the pretrained hub SAE evaluated on them (hub mode).

Texts come from the SAE-training split of each corpus (disjoint from the analysis prompts, see
``corpora.is_sae_training_text``), cut into pieces of at most ``max_tokens`` tokens, up to an
equal token budget per corpus.  5% of the pieces are held out for the quality figures.  Training
streams hook activations from the model through sae-lens' mixing buffer: only the buffer, never
the whole training set, is in memory, and each pass over the pieces takes them in a new order.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cluster_assets.config.models import DatasetEntry
from cluster_assets.sources.corpora import load_texts
from cluster_assets.sources.extraction import collect_hook_activations
from cluster_assets.sources.numerics import fixed_threads, threads
from cluster_assets.sources.prompts import usable_texts
from cluster_assets.sources.sae import SAEQuality, evaluate_sae, samples_seen, train_topk_sae

HELD_OUT_FRACTION = 0.05
#: Tokens per dataset the quality figures of a hub SAE are measured on.
HUB_EVAL_TOKENS = 5000
#: Pieces per forward chunk of the activation stream: bounds its memory.  Not a setting: which
#: pieces share a padded forward batch moves the last bits of their activations.
STREAM_CHUNK_PIECES = 256


@dataclass
class TrainedSAE:
    sae: object
    quality: SAEQuality
    training_tokens_collected: int
    tokens_per_dataset: dict[str, int]
    collect_seconds: float
    train_seconds: float
    samples_seen: int = 0  # by the trainer (0: a hub SAE)


def training_token_lists(texts: list[str], tokenizer, n_tokens: int, max_tokens: int = 128) -> list[list[int]]:
    """Token lists of the SAE split: each usable text cut into consecutive pieces of at most
    ``max_tokens`` (a last piece under 2 tokens dropped), in corpus order, until ``n_tokens``."""
    rows, _ = usable_texts(texts, for_sae=True)
    out, total = [], 0
    for start in range(0, len(rows), 512):
        chunk = [texts[i] for i in rows[start : start + 512]]
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            for piece in range(0, len(ids), max_tokens):
                if len(ids) - piece < 2:
                    continue
                out.append(ids[piece : piece + max_tokens][: n_tokens - total])
                total += len(out[-1])
                if total >= n_tokens:
                    return out
    return out


@dataclass(frozen=True)
class SAEPlan:
    """How a deployment's SAE is made, besides the model: the hook, the ``datasets`` whose SAE
    split it is trained (or evaluated) on, ``training`` (the fields of
    :class:`~cluster_assets.defs.resources.SAETraining`), the forward batches (``batch_size``
    prompts, ``batch_tokens``; see :func:`~cluster_assets.sources.extraction.length_batches`), the
    corpus cache and the device."""

    hook_name: str
    datasets: Sequence[DatasetEntry]
    training: Mapping[str, Any]
    batch_size: int
    batch_tokens: int | None
    corpus_cache: str | Path | None
    device: str


def sae_split(model, plan: SAEPlan, tokens_per_dataset: int, log: Callable[[str], None] = print) -> tuple[list[list[int]], dict[str, int]]:
    """The token lists of every dataset's SAE split, datasets in ``plan`` order, and the tokens taken from each."""
    lists, per_dataset = [], {}
    for entry in plan.datasets:
        pieces = training_token_lists(load_texts(entry, plan.corpus_cache), model.tokenizer, tokens_per_dataset)
        per_dataset[entry.name] = sum(map(len, pieces))
        log(f"SAE split of {entry.name}: {per_dataset[entry.name]} tokens in {len(pieces)} pieces")
        lists += pieces
    return lists, per_dataset


def activation_stream(
    model, plan: SAEPlan, lists: Sequence[Sequence[int]], block: int, seed: int, log: Callable[[str], None] = print
) -> Iterator[torch.Tensor]:
    """(block, d_model) hook activations of ``lists``, endlessly.

    Each pass takes the pieces in a new seeded order; their tokens (piece, then position order)
    are cut into blocks, which may span pieces and passes.  The model runs in the first pass only,
    on :data:`STREAM_CHUNK_PIECES` pieces at a time, in ``plan``'s forward batches, on the
    forward's thread count of the numerics mode (the caller's count, taken now: the trainer pulls
    blocks while it runs on training's fixed count).  Each piece's activations go to an unlinked
    temporary file as they are made, and later passes read them back from it: memory holds one
    chunk, and a piece has the same bytes in every pass.
    """
    forward_threads = threads(plan.device) or torch.get_num_threads()
    return _stream(model, plan, lists, block, seed, forward_threads, log)


def _stream(model, plan: SAEPlan, lists, block: int, seed: int, forward_threads: int, log) -> Iterator[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    d_model = model.cfg.d_model
    offsets, written = [0] * len(lists), 0  # each piece's first row in the file (in pass 1's order), rows written
    rest = torch.zeros((0, d_model))  # tokens not yet served, carried into the next chunk
    epoch = 0
    with tempfile.TemporaryFile(prefix="sae-stream-") as cache:  # unlinked: a killed run leaves nothing behind
        while True:
            epoch += 1
            log(f"SAE training: pass {epoch} over {len(lists)} pieces" + (" (the model's activations)" if epoch == 1 else " (read back)"))
            order = torch.randperm(len(lists), generator=gen).tolist()
            for start in range(0, len(order), STREAM_CHUNK_PIECES):
                pieces = order[start : start + STREAM_CHUNK_PIECES]
                if epoch == 1:
                    with fixed_threads(forward_threads):
                        acts = collect_hook_activations(
                            model, plan.hook_name, [lists[i] for i in pieces], plan.batch_size, plan.batch_tokens
                        )
                    _write_rows(cache, written, acts)
                    for i in pieces:
                        offsets[i], written = written, written + len(lists[i])
                else:
                    acts = torch.cat([_rows(cache, offsets[i], len(lists[i]), d_model) for i in pieces])
                rest = torch.cat([rest, acts])
                while rest.shape[0] >= block:
                    yield rest[:block]
                    rest = rest[block:]


def _write_rows(cache, first: int, acts: torch.Tensor) -> None:
    """Write (n, d_model) float32 ``acts`` into the stream's cache file from row ``first``."""
    data = acts.contiguous().numpy().data.cast("B")
    offset = first * acts.shape[1] * 4
    while data:
        n = os.pwrite(cache.fileno(), data, offset)
        data, offset = data[n:], offset + n


def _rows(cache, first: int, n: int, d_model: int) -> torch.Tensor:
    """(n, d_model) float32 rows of the stream's cache file from row ``first``."""
    out = np.empty((n, d_model), dtype=np.float32)
    view, offset = out.data.cast("B"), first * d_model * 4
    while view:
        got = os.preadv(cache.fileno(), [view], offset)
        if got == 0:
            raise EOFError(f"the SAE stream's cache ends before row {first + n}")
        view, offset = view[got:], offset + got
    return torch.from_numpy(out)


def train_embedded_sae(model, plan: SAEPlan, log: Callable[[str], None] = print, **snapshots: Any) -> TrainedSAE:
    """Train a TopK SAE on hook activations streamed from each dataset's SAE split (``snapshots``:
    ``checkpoints`` and ``on_checkpoint`` of :func:`~cluster_assets.sources.sae.train_topk_sae`)."""
    from sae_lens.training.mixing_buffer import mixing_buffer

    if not plan.datasets:
        raise ValueError("no SAE training datasets named (the registry's sae_training list is empty)")
    training = dict(plan.training)
    tokens_per_dataset, buffer_batches = training.pop("tokens_per_dataset"), training.pop("buffer_batches")
    batch_size, seed = training["batch_size"], training["seed"]
    t0 = time.perf_counter()
    lists, per_dataset = sae_split(model, plan, tokens_per_dataset, log)
    order = torch.randperm(len(lists), generator=torch.Generator().manual_seed(seed)).tolist()
    n_held = max(1, int(HELD_OUT_FRACTION * len(lists)))
    held_lists, train_lists = [lists[i] for i in order[:n_held]], [lists[i] for i in order[n_held:]]
    distinct = sum(map(len, train_lists))
    if distinct < batch_size * buffer_batches:  # else one buffer would hold the same tokens twice
        raise ValueError(
            f"only {distinct} distinct SAE training tokens from {[e.name for e in plan.datasets]}, fewer than one mixing "
            f"buffer (sae_training.batch_size x sae_training.buffer_batches = {batch_size * buffer_batches}): "
            "lower buffer_batches or batch_size, or raise tokens_per_dataset"
        )
    held_out = collect_hook_activations(model, plan.hook_name, held_lists, plan.batch_size, plan.batch_tokens)
    t1 = time.perf_counter()
    log(f"SAE training: {training['training_tokens']} samples streamed from {distinct} distinct tokens")
    stream = mixing_buffer(
        batch_size * buffer_batches, batch_size, activation_stream(model, plan, train_lists, batch_size * buffer_batches // 2, seed, log)
    )
    sae = train_topk_sae(
        stream,
        model.cfg.d_model,
        **training,
        device=plan.device,
        progress=lambda done, total: log(f"SAE training: {done}/{total} samples"),
        **snapshots,
    )
    t2 = time.perf_counter()
    quality = evaluate_sae(sae, held_out.to(plan.device))
    return TrainedSAE(sae, quality, distinct, per_dataset, t1 - t0, t2 - t1, samples_seen(training["training_tokens"], batch_size))


def prepare_sae(mode: str, model, plan: SAEPlan, load_hub_sae: Callable[[], Any], log: Callable[[str], None] = print) -> TrainedSAE:
    """The SAE of a deployment: trained by ``plan`` (embedded mode), or the pretrained hub SAE
    evaluated on the same datasets' SAE split (hub mode)."""
    if mode == "embedded":
        return train_embedded_sae(model, plan, log)
    t0 = time.perf_counter()
    sae = load_hub_sae()
    lists, per_dataset = sae_split(model, plan, HUB_EVAL_TOKENS, log)
    acts = collect_hook_activations(model, plan.hook_name, lists, plan.batch_size, plan.batch_tokens)
    return TrainedSAE(sae, evaluate_sae(sae, acts), 0, per_dataset, time.perf_counter() - t0, 0.0)
