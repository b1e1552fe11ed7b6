"""Beyond one machine, with real engines started and stopped here: steps on a local Dask cluster (two
worker processes) with the instance on a real PostgreSQL server, and on a single-node Slurm cluster
through dask-jobqueue.  The artifacts are byte-identical to a local run."""

import json
import os
import shutil
import subprocess

import dagster as dg

from cluster_assets.cli.instance import POSTGRES_ENV, write_instance_config
from cluster_assets.defs.pipeline import partition_chain
from tests.conftest import FIXTURES, ROOT, Graph, fixture_project, tiny_resources, write_tiny_resources
from tests.engines import DaskCluster, PostgresServer

STAGES = list(partition_chain())
CHAIN = ",".join(STAGES)
PARTITIONS = ["kjv|base", "python_stdlib|base"]


def environment(tmp_path, **extra) -> dict:
    """What the launching process and every worker need: the instance, the artifact root, the sweep
    and registry, the resource settings (the tiny SAE), offline flags."""
    settings = write_tiny_resources(tmp_path / "resources.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "CLUSTER_ASSETS_ARTIFACTS": str(tmp_path / "artifacts"),
        "CLUSTER_ASSETS_SWEEP": str(FIXTURES / "sweep.yaml"),
        "CLUSTER_ASSETS_DATASETS": str(FIXTURES / "datasets.yaml"),
        "CLUSTER_ASSETS_RESOURCES": str(settings),
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        **extra,
    }


def materialize(env: dict, select: str, partition: str | None, timeout: float) -> None:
    cmd = [str(ROOT / ".venv" / "bin" / "dagster"), "asset", "materialize", "-m", "cluster_assets.definitions", "--select", select]
    cmd += ["--partition", partition] if partition else []
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def open_instance(env: dict) -> dg.DagsterInstance:
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"]))


def local_files(tmp_path, project) -> dict[str, dict]:
    """Each stage's (and activation shard's) file checksums from an ordinary in-process run of the
    same partitions (same SAE)."""
    root = tmp_path / "local"
    shutil.copytree(tmp_path / "artifacts" / "sae", root / "sae")
    files = {}
    with dg.DagsterInstance.ephemeral() as instance:
        graph = Graph(project, tiny_resources(root), instance)
        for partition in PARTITIONS:
            result = graph.materialize(STAGES, graph.key(*partition.split("|")))
            for stage in STAGES:
                address = graph.metadata(result, stage)["artifact"].value
                manifest = json.loads((root / address / "manifest.json").read_text())
                files[address] = manifest["files"]
                for shard in manifest.get("references", []):
                    files[shard] = json.loads((root / shard / "manifest.json").read_text())["files"]
    return files


def check_runs(env: dict, tmp_path, project, where: str) -> list[dict]:
    """Every stage of both partitions materialised, ran elsewhere, and wrote what a local run writes."""
    seen = []
    local = local_files(tmp_path, project)
    with open_instance(env) as instance:
        for stage in STAGES:
            records = instance.fetch_materializations(dg.AssetKey(stage), limit=20).records
            by_partition = {r.asset_materialization.partition: r.asset_materialization.metadata for r in records}
            assert set(PARTITIONS) <= set(by_partition), (stage, list(by_partition))
            for partition in PARTITIONS:
                md = by_partition[partition]
                ran_on = md["ran_on"].value
                assert ran_on["pid"] != os.getpid() and where in ran_on, (stage, ran_on)
                assert md["reused"].value is False
                address = md["artifact"].value
                manifest = json.loads((tmp_path / "artifacts" / address / "manifest.json").read_text())
                assert manifest["files"] == local[address], f"{stage}[{partition}] differs from a local run"
                for shard in manifest.get("references", []):  # the activation shards, wherever they were extracted
                    shard_files = json.loads((tmp_path / "artifacts" / shard / "manifest.json").read_text())["files"]
                    assert shard_files == local[shard], f"{shard} of {partition} differs from a local run"
                seen.append(ran_on)
    return seen


def test_two_partitions_on_a_dask_cluster_with_postgres(tmp_path, embedded_cache, project, monkeypatch):
    with PostgresServer() as pg:
        monkeypatch.setenv(POSTGRES_ENV, pg.url)  # this process reads the instance too
        env = environment(tmp_path, **{POSTGRES_ENV: pg.url})
        write_instance_config(env["DAGSTER_HOME"], postgres=True)
        with DaskCluster(workers=2, env=env, log_dir=tmp_path / "dask") as cluster:
            run_env = {**env, "CLUSTER_ASSETS_EXECUTOR": "dask", "CLUSTER_ASSETS_DASK_ADDRESS": cluster.address}
            materialize(run_env, "sae", None, timeout=300)
            for partition in PARTITIONS:
                materialize(run_env, CHAIN, partition, timeout=300)
        seen = check_runs(env, tmp_path, project, "dask_worker")
        with open_instance(env) as instance:
            records = instance.fetch_materializations(dg.AssetKey("activations"), limit=20).records
            placement = {r.asset_materialization.partition: r.asset_materialization.metadata["shard_workers"].value for r in records}
    assert {r["dask_worker"] for r in seen} == {"worker-1", "worker-2"}  # both workers did work
    for partition in PARTITIONS:  # and each partition's two shards ran as Dask tasks, one on each worker
        assert sorted(placement[partition]) == ["0", "1"] and set(placement[partition].values()) == {"worker-1", "worker-2"}, placement
    assert not (tmp_path / "home" / "history").exists()  # the instance was PostgreSQL, not sqlite


def test_two_partitions_on_slurm_through_dask_jobqueue(tmp_path, embedded_cache, project):
    from tests.engines import SlurmCluster

    with SlurmCluster() as slurm:
        env = environment(
            tmp_path,
            SLURM_CONF=slurm.env["SLURM_CONF"],
            CLUSTER_ASSETS_EXECUTOR="slurm",
            CLUSTER_ASSETS_SLURM_QUEUE="test",
            CLUSTER_ASSETS_SLURM_CORES="1",
            CLUSTER_ASSETS_SLURM_MEMORY="4GB",
            CLUSTER_ASSETS_SLURM_WORKERS="1",
            CLUSTER_ASSETS_SLURM_SCHEDULER_HOST="127.0.0.1",
            CLUSTER_ASSETS_SLURM_LOG_DIRECTORY=str(tmp_path / "slurm-jobs"),
        )
        write_instance_config(env["DAGSTER_HOME"], postgres=False)  # one node: sqlite on the shared disk will do
        with dg.DagsterInstance.ephemeral() as instance:  # the SAE locally; the partitions on Slurm
            assert Graph(fixture_project(), tiny_resources(tmp_path / "artifacts"), instance).sae().success
        try:
            for partition in PARTITIONS:
                materialize(env, CHAIN, partition, timeout=420)
        except AssertionError:
            print(slurm.logs())
            raise
    seen = check_runs(env, tmp_path, project, "slurm_job_id")
    assert all(r["slurm_job_id"].isdigit() for r in seen)
    assert len({r["slurm_job_id"] for r in seen}) == len(PARTITIONS)  # one Slurm job per run, every step inside it
