"""``python -m cluster_assets.demo``: materialise the whole graph on the offline default.

Runs against the Dagster instance in ``$DAGSTER_HOME`` (so ``make ui`` shows the runs and
their metadata): first the shared ``sae``, then for every (offline dataset x sweep
point) partition the model side and the clustering side, one run each.  Prints a short
summary per partition and where the results are.
"""

from __future__ import annotations

import argparse
import sys

import dagster as dg


def main(argv: list[str] | None = None) -> int:
    from cluster_assets.definitions import defs
    from cluster_assets.defs.lineage import offline_datasets
    from cluster_assets.defs.partitions import REGISTRY, SWEEP

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="*", default=[e.name for e in offline_datasets(REGISTRY)])
    parser.add_argument("--hparams", nargs="*", default=list(SWEEP))
    args = parser.parse_args(argv)
    for name in args.datasets:
        if name not in REGISTRY:
            parser.error(f"unknown dataset {name!r}; valid: {', '.join(REGISTRY)}")
    for name in args.hparams:
        if name not in SWEEP:
            parser.error(f"unknown sweep point {name!r}; valid: {', '.join(SWEEP)}")

    instance = dg.DagsterInstance.get()
    print(f"Dagster instance: {instance.root_directory}")
    keys = [dg.MultiPartitionKey({"dataset": d, "hparams": h}) for d in args.datasets for h in args.hparams]
    runs = [("sae_job", None)] + [(job, key) for key in keys for job in ("model_side_job", "clustering_job")]
    runs += [("comparison_job", h) for h in args.hparams] + [("sweep_comparison_job", d) for d in args.datasets]
    runs += [("report_job", None)]
    for job_name, key in runs:
        label = f"{job_name}[{key}]" if key else job_name
        print(f"==> {label}", flush=True)
        outcome = defs.get_job_def(job_name).execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
        if not outcome.success:
            print(f"FAILED: {label} (run {outcome.run_id}); see `make ui`", file=sys.stderr)
            return 1
    _summary(instance, keys)
    return 0


def _latest(instance: dg.DagsterInstance, asset: str, partition: str | None):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None), limit=1
    ).records
    return records[0].asset_materialization.metadata if records else None


def _summary(instance: dg.DagsterInstance, keys: list) -> None:
    from pathlib import Path

    import polars as pl

    sae_md = _latest(instance, "sae", None)
    print(f"\nSAE: FVU {sae_md['fvu'].value:.3f}, L0 {sae_md['l0'].value:.1f}, dead {sae_md['dead_fraction'].value:.1%}  ({sae_md['path'].value})")
    for key in keys:
        mem, clu = _latest(instance, "memberships", str(key)), _latest(instance, "clusters", str(key))
        folder = Path(clu["path"].value)
        table = pl.read_parquet(folder / "clusters.parquet").filter(pl.col("size") > 1).head(3)
        top = pl.read_parquet(folder / "top_prompts.parquet")
        noise = f", noise features {clu['noise_features'].value}" if clu["method"].value != "mdl_merge" else ""
        print(f"\n[{key}] {clu['method'].value}: kept features {mem['kept_features'].value}, clusters at the cut {clu['k'].value}{noise}  ({folder})")
        for row in table.iter_rows(named=True):
            print(f"  cluster {row['cluster']}: {row['size']} features, active on {row['active_tokens']} tokens")
            for text in top.filter(pl.col("cluster") == row["cluster"]).head(2)["marked_text"]:
                print(f"      - {' '.join(text.split())[:110]}")
    report = _latest(instance, "research_report", None)
    print(f"\nResearch report: {report['report_path'].value}")
    print("Browse runs, lineage, checks and plots with `make ui` (http://127.0.0.1:3000).")


if __name__ == "__main__":
    sys.exit(main())
