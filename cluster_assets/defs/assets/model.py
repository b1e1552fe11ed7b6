"""Bodies of the model side: prompts -> (sae) -> activations."""

from __future__ import annotations

import numpy as np

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
    from cluster_assets.sources.corpora import load_texts
    from cluster_assets.sources.prompts import draw_order
    from cluster_assets.sources.shards import assemble_shards, extract_shard, plan_shards

    frame, src = ctx.read("prompts", fmt.PromptsFormat), ctx.source
    the_sae = ctx.read("sae", fmt.SAEFormat, device=src.resolved_device())
    params, dtype = ctx.point.prompts, np.dtype(ctx.point.activations.dtype)
    texts = load_texts(ctx.dataset, src.resolved_cache() / "corpora")
    plan = plan_shards(draw_order(texts, params.seed)[0], frame["prompt_id"].to_numpy(), src.shard_prompts, src.batch_window)
    ctx.log.info(f"{ctx.dataset.name}: {frame.height} prompts in shards {plan.shards} of {src.shard_prompts} draws")
    shards, timings = [], []

    def extract(k: int) -> Activations:
        values, tokens, timing = extract_shard(
            src.model(), the_sae, src.hook_name, texts, plan, k, src.tokenizer(), params.max_tokens,
            src.batch_size, src.batch_tokens, src.batch_window, dtype, ctx.progress(f"shard {k}: prompts extracted"),
        )  # fmt: skip
        timings.append(timing)
        return Activations(values, tokens)

    addresses = []
    for k in plan.shards:
        artifact, parts = ctx.lineage.shard(k)
        shard, reused = ctx.reuse_or_compute(
            artifact, fmt.ActivationsFormat(), lambda k=k: extract(k), f"activation shard {k}", {"address": parts}
        )
        ctx.log.info(f"shard {k}: {'reused' if reused else 'extracted'} ({shard.values.shape[0]} tokens, {artifact.address})")
        shards.append((shard.values, shard.tokens))
        addresses.append(artifact.address)
    values, tokens = assemble_shards(shards, frame)
    return Output(Activations(values, tokens), **activations_summary(values, timings, addresses, src.shard_prompts))
