"""Bodies of the model side: prompts -> (sae) -> activations."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cluster_assets.config import DatasetEntry
from cluster_assets.defs.stages import SHARDS, Output, StageContext
from cluster_assets.reporting.summaries import activations_summary, prompts_summary, sae_evals_record, sae_evals_summary, sae_summary
from cluster_assets.storage import formats as fmt
from cluster_assets.storage.formats import Activations, ShardedActivations, ShardRows


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
    from cluster_assets.defs.dask import map_on_workers, spreads_model_work
    from cluster_assets.sources.corpora import load_texts
    from cluster_assets.sources.prompts import draw_order
    from cluster_assets.sources.shards import check_sample_tokens, plan_shards, sample_rows

    frame, src = ctx.read("prompts", fmt.PromptsFormat), ctx.source
    the_sae = ctx.read("sae", fmt.SAEFormat, device=src.resolved_device())
    params = ctx.point.prompts
    texts = load_texts(ctx.dataset, src.resolved_cache() / "corpora")
    prompt_ids = frame["prompt_id"].to_numpy()
    plan = plan_shards(draw_order(texts, params.seed)[0], prompt_ids, src.shard_prompts, src.batch_window)
    ctx.log.info(f"{ctx.dataset.name}: {frame.height} prompts in shards {plan.shards} of {src.shard_prompts} draws")
    shards = {k: ctx.lineage.shard(k) for k in plan.shards}
    missing = [k for k, (artifact, _) in shards.items() if not ctx.verified_or_discarded(artifact, f"activation shard {k}")[0]]
    timings: list[Any] = []
    workers: dict[str, str] = {}
    if len(missing) > 1 and spreads_model_work():  # spread over the cluster; each task writes its shard to the store
        job = ShardJob(src.model_dump(), ctx.dataset, str(ctx.lineage.artifact("sae").path), plan, params.max_tokens,
                       ctx.point.activations.dtype, str(ctx.store.root), {k: shards[k][1] for k in missing})  # fmt: skip
        ctx.log.info(f"extracting shards {missing} as Dask tasks")
        for k, worker, timing in map_on_workers(extract_on_worker, missing, job, name=ctx.lineage.artifact("activations").address):
            workers[str(k)] = worker
            timings.append(timing)

    def extract(k: int) -> Activations:
        values, tokens, timing = extract_shard_of(src, the_sae, texts, plan, k, params.max_tokens, ctx.point.activations.dtype,
                                                  ctx.progress(f"shard {k}: prompts extracted"))  # fmt: skip
        timings.append(timing)
        return Activations(values, tokens)

    rows, tables, nnz = [], [], 0
    for k, (artifact, parts) in shards.items():  # one shard in memory at a time
        shard, reused = ctx.reuse_or_compute(
            artifact, fmt.ActivationShardFormat(), lambda k=k: extract(k), f"activation shard {k}", {"address": parts}
        )
        how = f"extracted on Dask worker {workers[str(k)]}" if str(k) in workers else "reused" if reused else "extracted"
        ctx.log.info(f"shard {k}: {how} ({shard.n_tokens} tokens, {artifact.address})")
        start, stop = sample_rows(shard.tokens, prompt_ids)
        rows.append(ShardRows(artifact.address, start, stop))
        tables.append(shard.tokens[start:stop])
        nnz += int(shard.values.indptr[stop] - shard.values.indptr[start])
    value = ShardedActivations(pl.concat(tables), tuple(rows), int(the_sae.cfg.d_sae))
    check_sample_tokens(value.tokens, frame, plan)
    summary = activations_summary(value.n_tokens, nnz, value.n_features, timings, value.references, src.shard_prompts, workers or None)
    return Output(value, references=value.references, **summary)


def extract_shard_of(src: Any, sae: Any, texts: list[str], plan: Any, k: int, max_tokens: int, dtype: str, progress: Any = None):
    """Shard ``k`` of ``plan`` with the source's model and forward batching: (values, tokens, timing)."""
    from cluster_assets.sources.shards import extract_shard

    return extract_shard(
        src.model(), sae, src.hook_name, texts, plan, k, src.tokenizer(), max_tokens,
        src.batch_size, src.batch_tokens, src.batch_window, np.dtype(dtype), progress,
    )  # fmt: skip


@dataclass(frozen=True)
class ShardJob:
    """What a Dask worker needs to extract shards of one sample into the store (plain, picklable settings)."""

    source: dict[str, Any]  # the source resource's config
    dataset: DatasetEntry
    sae: str  # the SAE artifact's folder
    plan: Any  # the sample's ShardPlan (sources.shards)
    max_tokens: int
    dtype: str
    root: str  # the artifact root, which every worker sees
    parts: dict[int, list[Any]]  # each shard's address parts (Lineage.shard)


#: One extraction at a time in a worker process: the model is shared and the numerics set torch's threads.
_EXTRACTING = threading.Lock()


def extract_on_worker(k: int, job: ShardJob) -> tuple[int, str, Any]:
    """A Dask task: extract shard ``k`` under the model numerics and write it to the store (verified,
    atomically; if another writer finished it first, theirs stays).  Returns (k, worker, timing).
    Raises if this worker's numerics class is not the one the shard's address names."""
    from cluster_assets.defs.metadata import ran_on
    from cluster_assets.defs.resources import ActivationSource
    from cluster_assets.sources.corpora import load_texts
    from cluster_assets.sources.numerics import device_class, model_numerics
    from cluster_assets.storage import ArtifactStore

    src = ActivationSource(**job.source)
    where = ran_on()
    numerics = {"numerics": device_class(src.resolved_device())}
    if numerics not in job.parts[k]:  # its bytes would be stored under an address that promises other numerics
        raise RuntimeError(
            f"Dask worker {where.get('dask_worker')} on {where['host']} computes {numerics['numerics']}, but activation shard {k} "
            f"was addressed for {next((p for p in job.parts[k] if isinstance(p, dict) and 'numerics' in p), {})}: run model steps "
            "on workers of one numerics class (or route them with CLUSTER_ASSETS_DASK_MODEL_RESOURCES)"
        )
    texts = load_texts(job.dataset, src.resolved_cache() / "corpora")
    store = ArtifactStore(job.root)
    artifact = store.artifact(SHARDS, *job.parts[k])
    with _EXTRACTING, model_numerics(src.resolved_device()):
        sae = fmt.SAEFormat().load(Path(job.sae), device=src.resolved_device())
        values, tokens, timing = extract_shard_of(src, sae, texts, job.plan, k, job.max_tokens, job.dtype)
    with store.write(artifact, {"part_of": "activations", "what": f"activation shard {k}", "address": job.parts[k]}) as folder:
        fmt.ActivationShardFormat().save(folder, Activations(values, tokens))
    return k, str(where.get("dask_worker", where["host"])), timing
