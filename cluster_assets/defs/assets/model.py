"""Bodies of the model side: prompts -> (sae) -> activations."""

from __future__ import annotations

import numpy as np
import polars as pl

from cluster_assets.defs.stages import Output, StageContext
from cluster_assets.reporting.text import highlight
from cluster_assets.storage.formats import Activations


def prompts(ctx: StageContext) -> Output:
    from cluster_assets.sources.corpora import load_texts
    from cluster_assets.sources.prompts import sample_prompts

    params = ctx.point.prompts
    texts = load_texts(ctx.dataset, ctx.source.resolved_cache() / "corpora")
    size = f"{params.n_prompts} prompts" if params.n_tokens is None else f"prompts worth {params.n_tokens} tokens"
    ctx.log.info(f"{ctx.dataset.name}: {len(texts)} texts; sampling {size} (replicate {ctx.point.replicate + 1} of {params.replicates})")
    frame, report = sample_prompts(
        texts,
        params.n_prompts,
        params.max_tokens,
        params.seed,
        ctx.source.tokenizer(),
        ctx.dataset.name,
        ctx.point.replicate,
        params.replicates,
        params.n_tokens,
    )
    lengths = frame["n_tokens"]
    summary = {
        "dagster/row_count": frame.height,
        "tokens": int(lengths.sum()),
        "tokens_per_prompt_median": float(np.median(lengths.to_numpy())),
        "truncated": int(frame["truncated"].sum()),
        "empty_dropped": report.n_empty,
        "duplicates_dropped": report.n_duplicates,
        "usable_texts": report.n_usable,
    }
    preview = "\n".join(
        f"- `{pid}` ({n} tokens): {highlight(text, [], [], width=140)}"
        for pid, n, text in frame.head(5).select("prompt_id", "n_tokens", "text").iter_rows()
    )
    return Output(frame, summary, markdown={"preview": preview})


def sae(ctx: StageContext) -> Output:
    from cluster_assets.sources.sae_training import prepare_sae

    src = ctx.source
    prepared = prepare_sae(
        src.mode,
        src.model(),
        src.hook_name,
        ctx.project.registry.training_entries(),
        src.sae_training.model_dump(),
        src.batch_size,
        src.batch_tokens,
        src.resolved_cache() / "corpora",
        src.resolved_device(),
        src.hub_sae,
        log=ctx.log.info,
    )
    ctx.log.info(f"SAE: FVU {prepared.quality.fvu:.3f}, L0 {prepared.quality.l0:.1f}")
    return Output(
        prepared.sae,
        {
            "mode": src.mode,
            **prepared.quality.__dict__,
            "training_tokens": prepared.training_tokens_collected,
            "tokens_per_dataset": prepared.tokens_per_dataset,
            "train_seconds": prepared.train_seconds,
        },
    )


def activations(ctx: StageContext) -> Output:
    from cluster_assets.sources.extraction import extract_activations

    frame = ctx.read("prompts")
    the_sae = ctx.read("sae", device=ctx.source.resolved_device())
    values, tokens, timing = extract_activations(
        ctx.source.model(),
        the_sae,
        ctx.source.hook_name,
        frame["token_ids"].to_list(),
        frame["prompt_id"].to_numpy(),
        ctx.source.batch_size,
        ctx.source.batch_tokens,
        np.dtype(ctx.point.activations.dtype),
        ctx.progress("prompts extracted"),
    )
    n = values.shape[0]
    seconds = timing.forward_seconds + timing.encode_seconds + timing.assemble_seconds
    return Output(
        Activations(values, pl.DataFrame(tokens)),
        {
            "tokens": n,
            "nonzeros": int(values.nnz),
            "mean_l0": values.nnz / max(n, 1),
            "d_sae": values.shape[1],
            "tokens_per_second": n / max(seconds, 1e-9),
            **timing.__dict__,
        },
    )
