"""The model side of the graph: prompts -> (sae) -> activations."""


import time

import dagster as dg
import numpy as np
import polars as pl
import scipy.sparse as sp

from cluster_assets.defs import lineage
from cluster_assets.defs.metadata import progress_logger, result, summary, table_preview
from cluster_assets.defs.partitions import REGISTRY, SWEEP, partition_names, partitions_def
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
from cluster_assets.sources.activation_files import write_activations
from cluster_assets.sources.corpora import load_texts
from cluster_assets.sources.prompts import sample_prompts
from cluster_assets.sweep import get_dataset, get_point

MODEL_POOL = "model"


@dg.asset(
    partitions_def=partitions_def,
    group_name="model_side",
    kinds={"polars", "parquet"},
    description="Sampled prompts of one dataset: prompt_id, text, n_tokens, truncated, token_ids.",
)
def prompts(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    dataset, hparams = partition_names(context)
    entry, point = get_dataset(dataset, REGISTRY), get_point(hparams, SWEEP)
    artifact = lineage.prompts_artifact(artifacts.store(), source, entry, point)
    reused = artifact.exists
    if not reused:
        params = point.prompts
        texts = load_texts(entry, source.resolved_cache() / "corpora")
        context.log.info(f"{dataset}: {len(texts)} texts loaded; sampling {params.n_prompts}")
        frame, report = sample_prompts(texts, params.n_prompts, params.max_tokens, params.seed, source.tokenizer(), dataset)
        with artifacts.store().write(artifact, {"dataset": dataset, "params": params.digest(), "report": report.__dict__}) as folder:
            frame.write_parquet(folder / "prompts.parquet")
    frame = pl.read_parquet(artifact.path / "prompts.parquet")
    report = artifact.manifest()["report"]
    lengths = summary(frame["n_tokens"].to_numpy())
    return result(
        artifact,
        reused,
        **{"dagster/row_count": dg.MetadataValue.int(frame.height)},
        tokens=dg.MetadataValue.int(int(frame["n_tokens"].sum())),
        token_length=dg.MetadataValue.json({k: round(float(v), 2) for k, v in lengths.items()}),
        truncated=dg.MetadataValue.int(int(frame["truncated"].sum())),
        empty_dropped=dg.MetadataValue.int(report["n_empty"]),
        duplicates_dropped=dg.MetadataValue.int(report["n_duplicates"]),
        usable_texts=dg.MetadataValue.int(report["n_usable"]),
        preview=table_preview(frame.select("prompt_id", "n_tokens", "text")),
    )


@dg.asset(
    group_name="model_side",
    kinds={"pytorch"},
    pool=MODEL_POOL,
    description="The SAE that serves every dataset (so feature ids mean the same everywhere), in sae-lens' format. "
    "Embedded mode trains a TopK SAE on the offline corpora; hub mode loads the pretrained one.",
)
def sae(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    from cluster_assets.sources.sae import evaluate_sae, save_sae
    from cluster_assets.sources.sae_training import train_embedded_sae, training_token_lists
    from cluster_assets.sources.extraction import collect_hook_activations

    artifact = lineage.sae_artifact(artifacts.store(), source, REGISTRY)
    reused = artifact.exists
    if not reused:
        t0 = time.perf_counter()
        model = source.model()
        datasets = lineage.offline_datasets(REGISTRY)
        if source.mode == "embedded":
            trained = train_embedded_sae(
                model, source.hook_name, datasets, source.training_params(), source.batch_size,
                source.resolved_cache() / "corpora", source.resolved_device(), log=context.log.info,
            )
            the_sae, quality = trained.sae, trained.quality
            stats = {"training_tokens": trained.training_tokens_collected, "samples_seen": source.sae_training_tokens,
                     "tokens_per_dataset": trained.tokens_per_dataset, "train_seconds": trained.train_seconds}
        else:
            the_sae = source.hub_sae()
            lists = [ids for e in datasets for ids in training_token_lists(load_texts(e, source.resolved_cache() / "corpora"), model.tokenizer, 5000)]
            quality = evaluate_sae(the_sae, collect_hook_activations(model, source.hook_name, lists, source.batch_size))
            stats = {"training_tokens": 0}
        wall = time.perf_counter() - t0
        manifest = {"identity": source.sae_identity([e.name for e in datasets]), "quality": quality.__dict__, **stats, "wall_seconds": wall}
        with artifacts.store().write(artifact, manifest) as folder:
            save_sae(the_sae, folder / "sae")
    manifest = artifact.manifest()
    quality = manifest["quality"]
    context.log.info(f"SAE {artifact.hash}: FVU {quality['fvu']:.3f}, L0 {quality['l0']:.1f}")
    return result(
        artifact,
        reused,
        mode=dg.MetadataValue.text(source.mode),
        l0=dg.MetadataValue.float(quality["l0"]),
        fvu=dg.MetadataValue.float(quality["fvu"]),
        dead_fraction=dg.MetadataValue.float(quality["dead_fraction"]),
        eval_tokens=dg.MetadataValue.int(quality["n_eval_tokens"]),
        training_tokens=dg.MetadataValue.int(manifest["training_tokens"]),
        wall_seconds=dg.MetadataValue.float(manifest["wall_seconds"]),
    )


@dg.asset(
    partitions_def=partitions_def,
    deps=[prompts, sae],
    group_name="model_side",
    kinds={"pytorch", "scipy"},
    pool=MODEL_POOL,
    description="Per-token SAE feature activations (sparse CSR, zeros dropped) and the token table.",
)
def activations(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    from cluster_assets.sources.extraction import iter_extraction
    from cluster_assets.sources.sae import load_sae

    dataset, hparams = partition_names(context)
    entry, point = get_dataset(dataset, REGISTRY), get_point(hparams, SWEEP)
    store = artifacts.store()
    artifact = lineage.activations_artifact(store, source, entry, point, REGISTRY)
    reused = artifact.exists
    if not reused:
        prompts_art = lineage.require(lineage.prompts_artifact(store, source, entry, point), f"prompts[{dataset}|{hparams}]")
        sae_art = lineage.require(lineage.sae_artifact(store, source, REGISTRY), "sae")
        frame = pl.read_parquet(prompts_art.path / "prompts.parquet")
        model, the_sae = source.model(), load_sae(sae_art.path / "sae", source.resolved_device())
        t0 = time.perf_counter()
        batches, forward_s, encode_s = [], 0.0, 0.0
        token_lists = frame["token_ids"].to_list()
        for batch in iter_extraction(model, the_sae, source.hook_name, token_lists, source.batch_size,
                                     np.dtype(point.activations.dtype), progress_logger(context, "prompts extracted")):
            batches.append(batch)
            forward_s += batch.forward_seconds
            encode_s += batch.encode_seconds
        wall = time.perf_counter() - t0
        acts = sp.csr_array(sp.vstack([b.activations for b in batches], format="csr"))
        prompt_ids = frame["prompt_id"].to_numpy()[np.concatenate([b.prompt_index for b in batches])]
        token_ids = np.concatenate([b.token_ids for b in batches])
        tokens = pl.DataFrame({
            "prompt_id": prompt_ids,
            "position": np.concatenate([b.position for b in batches]),
            "token_id": token_ids,
            "token": model.tokenizer.batch_decode(token_ids[:, None].tolist()),
        })
        n_tokens = acts.shape[0]
        manifest = {"dataset": dataset, "sae": sae_art.hash, "prompts": prompts_art.hash, "tokens": n_tokens, "nnz": int(acts.nnz),
                    "wall_seconds": wall, "forward_seconds": forward_s, "encode_seconds": encode_s, "d_sae": acts.shape[1]}
        with store.write(artifact, manifest) as folder:
            write_activations(folder, acts, tokens)
    m = artifact.manifest()
    return result(
        artifact,
        reused,
        tokens=dg.MetadataValue.int(m["tokens"]),
        nonzeros=dg.MetadataValue.int(m["nnz"]),
        mean_l0=dg.MetadataValue.float(m["nnz"] / max(m["tokens"], 1)),
        d_sae=dg.MetadataValue.int(m["d_sae"]),
        tokens_per_second=dg.MetadataValue.float(m["tokens"] / max(m["wall_seconds"], 1e-9)),
        forward_seconds=dg.MetadataValue.float(m["forward_seconds"]),
        encode_seconds=dg.MetadataValue.float(m["encode_seconds"]),
        upstream=dg.MetadataValue.json({"prompts": m["prompts"], "sae": m["sae"]}),
    )
