"""Stage by stage on real activations: one partition of a given size on the embedded default.

Materialises prompts -> activations -> memberships -> coactivation -> merge_history -> clusters
(and the two comparisons over that one partition) through the real Dagster assets, then
prints per stage the compute time, the read and write time and the peak resident memory
(each stage's manifest records them) with each stage's share of the total, beside the model
forward alone on the same prompts (same length-sorted batches) measured in the same process
just before: the model is loaded once (its load time is printed apart) and both the forward
alone and the activations stage run with warm kernels.

    python benchmarks/pipeline.py [--dataset kjv] [--prompts 4000 | --tokens 250000] [--max-tokens 64] [--batch-tokens 4096]
                                  [--artifacts DIR (an artifact root holding the SAE; default $DAGSTER_HOME/artifacts)]
                                  [--stage-processes] [--keep DIR [--fresh STAGE ...]]

At several sizes (``--tokens 250000``, ``1000000``, ``2000000``) the peak memory column shows what
streaming over activation shards buys: memberships, the cluster analysis and the comparisons read
one shard at a time, so their peak grows only with what they store.  With ``--stage-processes``
each stage runs in a process of its own, as Dagster's multiprocess executor runs steps, so each
peak is the stage's own; the partition's peak is the largest of them.

The SAE must exist in the artifact root (``make demo`` trains it).  Every stage of the benchmark
partition is recomputed in a scratch copy of the root's ``sae`` folder, so nothing is reused;
with ``--keep DIR`` that copy is kept, and a later size reuses its activation shards (the stages
after activations, or those ``--fresh`` names, are recomputed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="kjv")
    parser.add_argument("--prompts", type=int, default=4000)
    parser.add_argument("--tokens", type=int, default=None, help="a token budget per sample (n_tokens) instead of --prompts")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--batch-tokens", type=int, default=None, help="the source resource's batch_tokens (default: its default)")
    parser.add_argument("--artifacts", default=None)
    parser.add_argument("--no-forward", action="store_true", help="skip timing the model forward alone (it runs the sample twice)")
    parser.add_argument(
        "--stage-processes",
        action="store_true",
        help="each stage in a process of its own (as Dagster's multiprocess executor runs steps), so a stage's peak "
        "memory is its own, not what the stages before it left in the process",
    )
    parser.add_argument(
        "--keep",
        default=None,
        help="an artifact root to keep (and reuse) instead of a scratch one: a second size reuses the shards of the first",
    )
    parser.add_argument(
        "--fresh", nargs="*", default=None, help="with --keep: stages to recompute (default: every stage after activations)"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one stage, in a process started by --stage-processes
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if args.child is not None:
        materialize(Path(args.keep), args, [args.child], _source(args))
        return

    from cluster_assets.defs.pipeline import partition_chain
    from cluster_assets.defs.resources import dagster_home

    source_root = Path(args.artifacts or os.environ.get("CLUSTER_ASSETS_ARTIFACTS") or dagster_home() / "artifacts")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    try:
        if not (root / "artifacts" / "sae").exists():
            shutil.copytree(source_root / "sae", root / "artifacts" / "sae")
        size = f"n_prompts: {args.prompts}" if args.tokens is None else f"n_tokens: {args.tokens}"
        (root / "sweep.yaml").write_text(f"points:\n  bench:\n    prompts: {{{size}, max_tokens: {args.max_tokens}}}\n")
        chain = partition_chain()
        stages = (*chain, "dataset_comparison", "sweep_comparison")
        fresh = stages[stages.index("activations") + 1 :] if args.fresh is None else args.fresh
        for stage in fresh if args.keep else ():
            shutil.rmtree(root / "artifacts" / stage, ignore_errors=True)
        source = _source(args)
        materialize(root, args, ["prompts"], source)
        forward = load = None
        if not args.stage_processes:  # the model loaded once, apart, and the forward alone timed warm
            t0 = time.perf_counter()
            source.model()
            load = time.perf_counter() - t0
            forward = None if args.no_forward else forward_alone(source, Path((root / "paths" / "prompts").read_text()), repeats=2)
        t0 = time.perf_counter()
        if args.stage_processes:
            for stage in stages[1:]:
                subprocess.run([sys.executable, __file__, *sys.argv[1:], "--keep", str(root), "--child", stage], check=True)
        else:
            materialize(root, args, list(stages[1:]), source)
        wall = time.perf_counter() - t0
        manifests = {stage: json.loads((Path((root / "paths" / stage).read_text()) / "manifest.json").read_text()) for stage in stages}
        report(manifests, forward, load, wall, args)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _source(args):
    from cluster_assets.defs.resources import ActivationSource

    return ActivationSource() if args.batch_tokens is None else ActivationSource(batch_tokens=args.batch_tokens)


def materialize(root: Path, args, stages: list[str], source) -> None:
    """Materialise ``stages`` of the benchmark partition in this process (the partition's stages in
    one run, then each comparison), everything upstream read from ``root``'s artifacts; each
    stage's artifact folder is written to ``root/paths/<stage>``."""
    import dagster as dg

    from cluster_assets.defs.definitions import build_definitions
    from cluster_assets.defs.pipeline import partition_chain
    from cluster_assets.defs.project import Project
    from cluster_assets.defs.resources import ArtifactStoreResource

    project = Project.load(sweep=root / "sweep.yaml")
    resources = {"source": source, "artifacts": ArtifactStoreResource(root=str(root / "artifacts"))}
    assets = {a.key.to_user_string(): a for a in build_definitions(project, resources).assets}
    chain = [s for s in stages if s in partition_chain()]
    runs = [(chain, dg.MultiPartitionKey({"dataset": args.dataset, "hparams": "bench"}))] if chain else []
    runs += [([s], {"dataset_comparison": "bench", "sweep_comparison": args.dataset}[s]) for s in stages if s not in chain]
    upstream = [assets[s].to_source_asset() for s in ("sae", *partition_chain()) if s not in stages]
    with dg.DagsterInstance.ephemeral() as instance:
        for names, key in runs:
            result = dg.materialize([*(assets[s] for s in names), *upstream], partition_key=key, resources=resources, instance=instance)
            assert result.success
            for stage in names:
                record = instance.fetch_materializations(dg.AssetKey(stage), limit=1).records[0]
                (root / "paths").mkdir(exist_ok=True)
                (root / "paths" / stage).write_text(str(record.asset_materialization.metadata["path"].value))


def forward_alone(source, prompts_path: Path, repeats: int) -> float:
    """Seconds of the model forward to the hooked layer on the sample's prompts, length-batched within
    windows of ``batch_window`` of them (the last of ``repeats`` passes: the first warms every batch
    shape).  The activations stage extracts whole shards, a few prompts beyond the sample's."""
    from cluster_assets.sources.extraction import hook_activations, length_batches, pad_batch
    from cluster_assets.storage.formats import PromptsFormat

    frame = PromptsFormat().load(prompts_path)
    lists = frame["token_ids"].to_list()
    model = source.model()
    batches = [
        [lists[i] for i in b]
        for b in length_batches(frame["n_tokens"].to_numpy(), source.batch_size, source.batch_tokens, source.batch_window)
    ]
    for _ in range(repeats):
        t0 = time.perf_counter()
        for batch in batches:
            hook_activations(model, pad_batch(batch, 0)[0], source.hook_name)
        seconds = time.perf_counter() - t0
    return seconds


def report(manifests: dict, forward: float | None, load: float | None, wall: float, args) -> None:
    tokens = manifests["activations"]["summary"]["tokens"]
    rows = []
    for stage in manifests:
        t = manifests[stage].get("timing", {})
        total = t.get("compute_seconds", 0) + t.get("read_seconds", 0) + t.get("write_seconds", 0)
        rows.append(
            (stage, t.get("compute_seconds", 0), t.get("read_seconds", 0), t.get("write_seconds", 0), total, t.get("peak_rss_mb", 0))
        )
    grand = sum(r[4] for r in rows)
    print(
        f"\n{args.dataset}: {manifests['prompts']['summary']['dagster/row_count']} prompts x <= {args.max_tokens} tokens = {tokens:,} tokens; "
        f"{manifests['memberships']['summary']['kept_features']} kept features; {manifests['merge_history']['summary'].get('merges', 0)} merges"
    )
    if load is not None:
        print(f"model load (once per process, not in the table): {load:.1f} s")
    else:
        print("each stage in a process of its own: its peak RSS is its own (the activations stage's includes loading the model)")
    extracted = manifests["activations"]["summary"].get("timing", {}).get("extracted_tokens", tokens)
    if forward is not None:
        print(f"model forward alone (the sample's prompts): {forward:.1f} s = {tokens / forward:,.0f} tokens/s")
    print(f"activations extracted {extracted:,} tokens (whole shards) for the sample's {tokens:,}\n")
    print("| stage | compute s | read s | write s | total s | share | peak RSS MB | total / forward |")
    print("|---|---|---|---|---|---|---|---|")
    for stage, compute, read, write, total, peak in rows:
        ratio = f"{total / forward:.3f}" if forward else "-"
        print(f"| {stage} | {compute:.2f} | {read:.2f} | {write:.2f} | {total:.2f} | {total / grand:.1%} | {peak:,.0f} | {ratio} |")
    act = next(r for r in rows if r[0] == "activations")
    versus = f"activations stage / forward alone: {act[4] / forward:.2f} " if forward else ""
    print(f"\n{versus}(extraction throughput {extracted / act[4]:,.0f} tokens/s); all stages {grand:.1f} s, materialise wall {wall:.1f} s")


if __name__ == "__main__":
    main()
