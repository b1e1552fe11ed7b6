"""Bodies of the model side: prompts -> (sae) -> activations."""

from __future__ import annotations

import numpy as np
import polars as pl

from cluster_assets.defs.stages import Output, StageContext
from cluster_assets.reporting.summaries import activations_summary, prompts_summary, sae_evals_record, sae_evals_summary, sae_summary
from cluster_assets.storage import formats as fmt
from cluster_assets.storage.formats import Activations


def prompts(ctx: StageContext) -> Output:
    from cluster_assets.sources.corpora import load_texts
    from cluster_assets.sources.prompts import sample_prompts

    params = ctx.point.prompts
    texts = load_texts(ctx.dataset, ctx.source.resolved_cache() / "corpora")
    size = f"{params.n_prompts} prompts" if params.n_tokens is None else f"prompts worth {params.n_tokens} tokens"
    ctx.log.info(f"{ctx.dataset.name}: {len(texts)} texts; sampling {size} (replicate {ctx.point.replicate + 1} of {params.replicates})")
    tokenizer = ctx.source.tokenizer()
    frame, report = sample_prompts(
        texts, tokenizer=tokenizer, dataset=ctx.dataset.name, replicate=ctx.point.replicate, **params.model_dump()
    )
    return Output(frame, **prompts_summary(frame, report))


def sae(ctx: StageContext) -> Output:
    from cluster_assets.sources.sae_training import prepare_sae

    src = ctx.source
    prepared = prepare_sae(src.mode, src.model(), src.sae_plan(ctx.project.registry.training_entries()), src.hub_sae, log=ctx.log.info)
    ctx.log.info(f"SAE: FVU {prepared.quality.fvu:.3f}, L0 {prepared.quality.l0:.1f}")
    return Output(prepared.sae, **sae_summary(prepared, src.mode))


def sae_evals(ctx: StageContext) -> Output:
    from cluster_assets.sources.sae_evals import evaluate_datasets

    src = ctx.source
    the_sae = ctx.read("sae", fmt.SAEFormat, device=src.resolved_device())
    settings, cache = ctx.project.registry.sae_evaluation, src.resolved_cache() / "corpora"
    evals = evaluate_datasets(the_sae, src.model(), src.hook_name, ctx.project.datasets, settings, cache, log=ctx.log.info)
    return Output(sae_evals_record(evals), **sae_evals_summary(evals))


def activations(ctx: StageContext) -> Output:
    from cluster_assets.sources.extraction import extract_activations

    frame, src = ctx.read("prompts", fmt.PromptsFormat), ctx.source
    the_sae = ctx.read("sae", fmt.SAEFormat, device=src.resolved_device())
    lists, ids = frame["token_ids"].to_list(), frame["prompt_id"].to_numpy()
    dtype, progress = np.dtype(ctx.point.activations.dtype), ctx.progress("prompts extracted")
    values, tokens, timing = extract_activations(
        src.model(), the_sae, src.hook_name, lists, ids, src.batch_size, src.batch_tokens, dtype, progress
    )
    return Output(Activations(values, pl.DataFrame(tokens)), **activations_summary(values, timing))
