"""``python -m cluster_assets.cli.cluster_demo``: the demo partitions on a local Dask cluster.

Starts a PostgreSQL server (where its binaries exist; else the instance is sqlite in a temporary
folder), a Dask scheduler and two worker processes, all on 127.0.0.1; materialises the chosen
partitions with ``CLUSTER_ASSETS_EXECUTOR=dask`` (each step runs in a worker), prints where each
step ran, and stops everything it started.  The artifact root is a temporary copy holding the SAE
from ``$DAGSTER_HOME/artifacts`` (trained on the cluster when there is none), so the steps compute
rather than reuse; the artifacts and the instance are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from cluster_assets.defs.pipeline import partition_chain

CHAIN = ",".join(partition_chain())


def main(argv: list[str] | None = None) -> int:
    from cluster_assets.defs.project import Project
    from cluster_assets.defs.resources import default_artifact_root

    project = Project.load()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=[e.name for e in project.datasets if e.offline])
    parser.add_argument(
        "--hparams",
        nargs="*",
        default=[p.name for p in project.replicates_of(project.reference.point)],
        help="sweep partitions (default: the reference point and its replicates)",
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="cluster-demo-"))
    env = {**os.environ, "DAGSTER_HOME": str(scratch / "home"), "CLUSTER_ASSETS_ARTIFACTS": str(scratch / "artifacts")}
    existing_sae = default_artifact_root() / "sae"
    try:
        if existing_sae.is_dir():
            shutil.copytree(existing_sae, scratch / "artifacts" / "sae")
        return _run(args, env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(args: argparse.Namespace, env: dict) -> int:
    """Start PostgreSQL and the Dask cluster, materialise every run, stop what was started."""
    from cluster_assets.cli.instance import POSTGRES_ENV, write_instance_config
    from cluster_assets.cli.local_cluster import DaskCluster, PostgresServer

    with contextlib.ExitStack() as stack:
        try:
            pg = stack.enter_context(PostgresServer())
            env[POSTGRES_ENV] = os.environ[POSTGRES_ENV] = pg.url
            print(f"PostgreSQL on 127.0.0.1:{pg.port} (temporary)")
        except (FileNotFoundError, subprocess.SubprocessError) as err:
            print(f"no PostgreSQL ({err}); the instance is sqlite in {env['DAGSTER_HOME']}")
        write_instance_config(env["DAGSTER_HOME"], postgres=POSTGRES_ENV in env)
        cluster = stack.enter_context(DaskCluster(workers=args.workers, env=env))
        print(f"Dask scheduler {cluster.address}, workers: {', '.join(sorted(w['name'] for w in cluster.workers().values()))}")
        run_env = {**env, "CLUSTER_ASSETS_EXECUTOR": "dask", "CLUSTER_ASSETS_DASK_ADDRESS": cluster.address}
        runs = [("sae", None)] + [(CHAIN, f"{d}|{h}") for d in args.datasets for h in args.hparams]
        started = time.perf_counter()
        for select, partition in runs:
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "cluster_assets.definitions", "--select", select]
            done = subprocess.run([*cmd, *(["--partition", partition] if partition else [])], env=run_env, capture_output=True, text=True)
            print(
                f"==> {partition or select}: {'ok' if done.returncode == 0 else 'FAILED'} in {time.perf_counter() - t0:.1f} s", flush=True
            )
            if done.returncode != 0:
                print(done.stdout[-4000:] + done.stderr[-4000:], file=sys.stderr)
                return 1
        print(f"\nAll {len(runs)} runs in {time.perf_counter() - started:.0f} s. Where each step ran:")
        report_where(env)
    print("Stopped the workers, the scheduler and PostgreSQL; removed the temporary instance and artifacts.")
    return 0


def report_where(env: dict) -> None:
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"])) as instance:
        for stage in ["sae", *CHAIN.split(",")]:
            for record in instance.fetch_materializations(dg.AssetKey(stage), limit=100).records:
                mat = record.asset_materialization
                where = mat.metadata["ran_on"].value if mat is not None else None
                if mat is None or not isinstance(where, dict):
                    continue
                print(
                    f"  {stage:>14}[{mat.partition or '-'}]: {where.get('dask_worker', 'launching process')} "
                    f"(host {where['host']}, pid {where['pid']})"
                )


if __name__ == "__main__":
    sys.exit(main())
