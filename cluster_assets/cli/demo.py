"""``python -m cluster_assets.cli.demo``: materialise the whole graph on the offline default.

Runs against the Dagster instance in ``$DAGSTER_HOME`` (so ``make ui`` shows the runs and their
metadata): first the shared ``sae``, then every (dataset x sweep partition) through ``clusters``,
one run each, then the comparisons and the report.  Prints a short summary per partition with
the active tokens of each top prompt highlighted, and where the report is.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg


def main(argv: list[str] | None = None) -> int:
    from cluster_assets.defs.definitions import build_definitions
    from cluster_assets.defs.project import Project

    project = Project.load()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=[e.name for e in project.datasets if e.offline])
    parser.add_argument("--hparams", nargs="*", default=list(project.sweep), help="sweep partitions (points and replicates)")
    parser.add_argument("--no-summary", action="store_true")
    args = parser.parse_args(argv)
    for name in args.datasets:
        if name not in [e.name for e in project.datasets]:
            parser.error(f"unknown dataset {name!r}; valid: {', '.join(e.name for e in project.datasets)}")
    for name in args.hparams:
        if name not in project.sweep:
            parser.error(f"unknown sweep partition {name!r}; valid: {', '.join(project.sweep)}")

    defs = build_definitions(project)
    instance = dg.DagsterInstance.get()
    print(f"Dagster instance: {instance.root_directory}")
    keys = [dg.MultiPartitionKey({"dataset": d, "hparams": h}) for d in args.datasets for h in args.hparams]
    points = list(dict.fromkeys(project.point(h).point for h in args.hparams))
    runs = [("sae_job", None), ("sae_evals_job", None)] + [("partition_job", key) for key in keys]
    runs += [("dataset_comparison_job", p) for p in points] + [("sweep_comparison_job", d) for d in args.datasets]
    runs += [("ground_truth_job", None), ("research_report_job", None)]
    t_start = time.perf_counter()
    for i, (job_name, key) in enumerate(runs, 1):
        label = f"{job_name}[{key}]" if key else job_name
        t0 = time.perf_counter()
        outcome = defs.resolve_job_def(job_name).execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
        print(f"==> {i}/{len(runs)} {label}: {'ok' if outcome.success else 'FAILED'} in {time.perf_counter() - t0:.1f} s", flush=True)
        if not outcome.success:
            print(f"FAILED: {label} (run {outcome.run_id}); see the run in `make ui`", file=sys.stderr)
            return 1
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux
    print(f"\nAll {len(runs)} runs finished in {time.perf_counter() - t_start:.0f} s; peak resident memory {peak_gb:.2f} GB.")
    if not args.no_summary:
        summary(instance, keys)
    return 0


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
    print("Browse runs, lineage, checks and plots with `make ui` (http://127.0.0.1:3000).")


if __name__ == "__main__":
    sys.exit(main())
