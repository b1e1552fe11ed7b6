"""``python -m cluster_assets.cli.demo``: materialise the whole graph on the offline default.

Runs against the Dagster instance in ``$DAGSTER_HOME`` (so ``make ui`` shows the runs and their
metadata): first the shared ``sae``, then its evals and every (dataset x sweep partition) through
``clusters``, one run each, then the comparisons, the report and the cluster explorer.  After the SAE, ``--workers``
processes take runs side by side; the ``model`` pool still lets one model-running step run at a
time, so a partition's clustering overlaps another's model steps.  Prints a short summary per
partition with the active tokens of each top prompt highlighted, and where the report is.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import multiprocessing
import resource
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg


def main(argv: list[str] | None = None) -> int:
    from cluster_assets.defs.project import Project

    project = Project.load()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=[e.name for e in project.datasets if e.offline])
    parser.add_argument("--hparams", nargs="*", default=list(project.sweep), help="sweep partitions (points and replicates)")
    parser.add_argument(
        "--workers", type=int, default=1, help="runs at once after the SAE (model-running steps still take the `model` pool one at a time)"
    )
    parser.add_argument("--no-summary", action="store_true")
    args = parser.parse_args(argv)
    for name in args.datasets:
        if name not in [e.name for e in project.datasets]:
            parser.error(f"unknown dataset {name!r}; valid: {', '.join(e.name for e in project.datasets)}")
    for name in args.hparams:
        if name not in project.sweep:
            parser.error(f"unknown sweep partition {name!r}; valid: {', '.join(project.sweep)}")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")

    instance = dg.DagsterInstance.get()
    print(f"Dagster instance: {instance.root_directory}")
    runs = project.runs(args.datasets, args.hparams)  # a point that names its datasets runs on those alone
    keys = [dg.MultiPartitionKey({"dataset": d, "hparams": h}) for d, h in runs]
    points = list(dict.fromkeys(project.point(h).point for h in args.hparams))
    # Each wave needs the one before. Within a wave runs are taken in this order, sweep partition by sweep
    # partition, so with several workers those that reuse a dataset's activations mostly start after the
    # ones that make them (two writers of one artifact are safe: the second keeps the first's, verified).
    waves: list[Sequence[tuple[str, str | dict[str, str] | None]]] = [
        [("sae_job", None)],
        [("sae_evals_job", None), ("ground_truth_job", None)] + [("partition_job", {"dataset": d, "hparams": h}) for d, h in runs],
        [("dataset_comparison_job", p) for p in points] + [("sweep_comparison_job", d) for d in args.datasets],
        [("research_report_job", None)],
        [("cluster_explorer_job", None)],  # shows the report's figures
    ]
    total, done, t_start = sum(map(len, waves)), 0, time.perf_counter()
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: torch and numba start clean in each worker
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.workers, mp_context=spawn) as pool:
        for wave in waves:
            running = {pool.submit(_execute, job_name, key): (job_name, key) for job_name, key in wave}
            for future in concurrent.futures.as_completed(running):
                job_name, key = running[future]
                label = f"{job_name}[{_partition_key(key)}]" if key else job_name
                success, run_id, seconds = future.result()
                done += 1
                print(f"==> {done}/{total} {label}: {'ok' if success else 'FAILED'} in {seconds:.1f} s", flush=True)
                if not success:
                    print(f"FAILED: {label} (run {run_id}); see the run in `make ui`", file=sys.stderr)
                    pool.shutdown(cancel_futures=True)
                    return 1
    peak_gb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 2**20  # kB
    print(f"\nAll {total} runs finished in {time.perf_counter() - t_start:.0f} s; peak resident memory {peak_gb:.2f} GB.")
    if not args.no_summary:
        summary(instance, keys)
    return 0


def _partition_key(key: str | dict[str, str] | None) -> str | None:
    """A run's partition key: a (dataset, sweep partition) pair goes between processes as a dict."""
    return dg.MultiPartitionKey(key) if isinstance(key, dict) else key


@functools.cache
def _definitions() -> dg.Definitions:
    from cluster_assets.defs.definitions import build_definitions
    from cluster_assets.defs.project import Project

    return build_definitions(Project.load())


def _execute(job_name: str, key: str | dict[str, str] | None) -> tuple[bool, str, float]:
    """Run one job (in a worker process) on the ``$DAGSTER_HOME`` instance: (success, run id, seconds)."""
    t0 = time.perf_counter()
    job = _definitions().resolve_job_def(job_name)
    outcome = job.execute_in_process(instance=dg.DagsterInstance.get(), partition_key=_partition_key(key), raise_on_error=False)
    return outcome.success, outcome.run_id, time.perf_counter() - t0


def _latest(instance: dg.DagsterInstance, asset: str, partition: str | None) -> Mapping[str, Any] | None:
    """The latest materialisation's metadata values (plain Python values) of an asset partition."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None), limit=1
    ).records
    mat = records[0].asset_materialization if records else None
    return {k: v.value for k, v in mat.metadata.items()} if mat is not None else None


def summary(instance: dg.DagsterInstance, keys: list, clusters_shown: int = 3) -> None:
    import polars as pl

    from cluster_assets.reporting.text import highlight
    from cluster_assets.storage.formats import ClustersFormat

    style = "ansi" if sys.stdout.isatty() else "brackets"
    sae = _latest(instance, "sae", None)
    if sae is not None:
        print(f"\nSAE: FVU {sae['fvu']:.3f}, L0 {sae['l0']:.1f}, dead {sae['dead_fraction']:.1%}  ({sae['path']})")
    evals = _latest(instance, "sae_evals", None)
    if evals is not None:
        for d in evals["datasets"]:
            print(
                f"  on {d}: CE loss recovered {evals['loss_recovered'][d]:.3f}, explained variance "
                f"{evals['explained_variance'][d]:.3f}, dead {evals['dead_fraction'][d]:.1%}, dense {evals['dense_fraction'][d]:.1%}"
            )
    for key in keys:
        mem, clu = _latest(instance, "memberships", str(key)), _latest(instance, "clusters", str(key))
        if mem is None or clu is None:
            continue
        folder = Path(clu["path"])
        stored = ClustersFormat().load(folder)
        noise = f", noise features {clu['noise_features']}" if "noise_features" in clu else ""
        print(f"\n[{key}] {clu['method']}: kept features {mem['kept_features']}, clusters {clu['k']}{noise}  ({folder})")
        described = stored.extra.get("descriptions")
        for row in stored.clusters.filter(pl.col("size") > 1).head(clusters_shown).iter_rows(named=True):
            what = ""
            if described is not None:
                d = described.filter(pl.col("cluster") == row["cluster"]).row(0, named=True)
                what = f"; {d['kind']}, top tokens " + ", ".join(repr(t) for t in d["top_tokens"][:4])
            print(f"  cluster {row['cluster']}: {row['size']} features, active on {row['active_tokens']} tokens{what}")
            top = stored.top_prompts.filter(pl.col("cluster") == row["cluster"]).head(2)
            for text, starts, ends in top.select("text", "span_starts", "span_ends").iter_rows():
                print(f"      - {highlight(text, starts, ends, style, width=110)}")
    report = _latest(instance, "research_report", None)
    if report is not None:
        print(f"\nResearch report: {report['path']}/report.md")
    explorer = _latest(instance, "cluster_explorer", None)
    if explorer is not None:
        print(f"Cluster explorer: {explorer['open']}  (or `make explore` serves it on http://127.0.0.1:8765)")
    print("Browse runs, lineage, checks and plots with `make ui` (http://127.0.0.1:3000).")


if __name__ == "__main__":
    sys.exit(main())
