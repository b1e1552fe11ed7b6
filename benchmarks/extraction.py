"""Extraction speed: the model forward alone vs the full extraction.

Full extraction = forward to the hooked layer + SAE encode + sparsification (CSR of
non-zeros, pads dropped).  Both on the same real prompts (KJV passages), embedded
SmolLM2-135M, hook blocks.3.hook_mlp_out, a TopK SAE of the pipeline's default shape
(d_sae 4096, k 64; random weights: the cost does not depend on them).
Prints tokens/s for each and their ratio (the extraction overhead).

    python benchmarks/extraction.py [--prompts 256] [--max-tokens 64] [--batch-size 64] [--batch-tokens 4096] [--device auto]

Both run the same batches (:func:`length_batches`); ``--batch-tokens 0`` batches by prompt count only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from cluster_assets.defs.resources import SAETraining


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--d-sae", type=int, default=SAETraining().d_sae)
    parser.add_argument("--k", type=int, default=SAETraining().k)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from sae_lens import TopKSAE, TopKSAEConfig

    from cluster_assets.sources.corpora import kjv_passages
    from cluster_assets.sources.extraction import hook_activations, iter_extraction, length_batches, pad_batch
    from cluster_assets.sources.model import default_device, load_embedded_model

    device = default_device() if args.device == "auto" else args.device
    cache = Path(os.environ.get("CLUSTER_ASSETS_CACHE", ".cache")) / "models" / "smollm2"
    model = load_embedded_model(cache, device)
    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=model.cfg.d_model, d_sae=args.d_sae, k=args.k, device=device)).to(device)
    texts = [t for _, t in zip(range(args.prompts), kjv_passages(verses_per_passage=4))]
    lists = [ids[: args.max_tokens] for ids in model.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    n_tokens = sum(map(len, lists))
    hook = "blocks.3.hook_mlp_out"
    batches = length_batches([len(ids) for ids in lists], args.batch_size, args.batch_tokens or None)

    def forward_only() -> None:
        for batch in batches:
            tokens, _ = pad_batch([lists[i] for i in batch], 0)
            hook_activations(model, tokens, hook)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    split = {"forward": 0.0, "encode": 0.0}

    def full() -> None:
        split["forward"] = split["encode"] = 0.0
        for batch in iter_extraction(model, sae, hook, lists, batches):
            assert batch.activations.nnz > 0
            split["forward"] += batch.forward_seconds
            split["encode"] += batch.encode_seconds
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def once(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    forward_only(), full()  # warm-up
    # interleave the two so that machine noise hits both alike; report medians
    t_forward, t_full, splits = [], [], []
    for _ in range(args.repeats):
        t_forward.append(once(forward_only))
        t_full.append(once(full))
        splits.append(split["encode"] / split["forward"])
    t_forward, t_full = statistics.median(t_forward), statistics.median(t_full)
    print(
        f"device={device} threads={torch.get_num_threads()} prompts={len(lists)} tokens={n_tokens} "
        f"batch={args.batch_size} batch_tokens={args.batch_tokens} d_sae={args.d_sae} k={args.k} repeats={args.repeats} (medians)"
    )
    print(f"{'forward alone':<34}{n_tokens / t_forward:>10.0f} tokens/s  ({t_forward:.3f} s)")
    print(f"{'full extraction':<34}{n_tokens / t_full:>10.0f} tokens/s  ({t_full:.3f} s)")
    print(f"{'full / forward time':<34}{t_full / t_forward:>10.3f}")
    print(f"{'in-run encode+sparsify / forward':<34}{statistics.median(splits):>10.3f}  (same run, so noise-free)")


if __name__ == "__main__":
    main()
