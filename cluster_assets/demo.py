"""``python -m cluster_assets.demo``: materialise the main job on the offline default.

Runs against the Dagster instance in ``$DAGSTER_HOME`` (so ``make ui`` shows the runs and
their metadata): first the shared ``sae``, then every (offline dataset x sweep point)
partition of the model side, one run each.  Prints where the results are.
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
    runs = [("sae_job", None)] + [("model_side_job", dg.MultiPartitionKey({"dataset": d, "hparams": h})) for d in args.datasets for h in args.hparams]
    for job_name, key in runs:
        label = f"{job_name}[{key}]" if key else job_name
        print(f"==> {label}", flush=True)
        outcome = defs.get_job_def(job_name).execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
        if not outcome.success:
            print(f"FAILED: {label} (run {outcome.run_id}); see `make ui`", file=sys.stderr)
            return 1
    _summary(instance)
    return 0


def _summary(instance: dg.DagsterInstance) -> None:
    print("\nMaterialised (latest per asset partition):")
    for asset in ("sae", "prompts", "activations"):
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
        seen = set()
        for record in records:
            mat = record.asset_materialization
            if mat is None or mat.partition in seen:
                continue
            seen.add(mat.partition)
            md = mat.metadata
            figures = ", ".join(
                f"{k}={md[k].value:.3g}" if isinstance(md[k].value, float) else f"{k}={md[k].value}"
                for k in ("fvu", "l0", "dagster/row_count", "tokens", "mean_l0")
                if k in md
            )
            print(f"  {asset}[{mat.partition or '-'}]: {figures}\n      {md['path'].value}")
    print("\nBrowse runs, lineage and metadata with `make ui` (http://127.0.0.1:3000).")


if __name__ == "__main__":
    sys.exit(main())
