"""Steps on a Dask cluster (dagster-dask): an existing cluster by address, or Dask workers that
dask-jobqueue starts as Slurm jobs.  Everything comes from the environment, so the launching
process and every worker build the same code location.

- ``CLUSTER_ASSETS_DASK_ADDRESS``: the scheduler (``tcp://host:8786``) for ``CLUSTER_ASSETS_EXECUTOR=dask``.
- ``CLUSTER_ASSETS_SLURM_*`` for ``CLUSTER_ASSETS_EXECUTOR=slurm`` (dask-jobqueue's SLURMCluster):
  ``QUEUE`` (partition), ``CORES``, ``MEMORY`` (e.g. ``16GB``), ``WALLTIME``, ``WORKERS`` (jobs
  started per run), ``JOB_EXTRA`` (more ``#SBATCH`` lines, ``;``-separated), ``SCHEDULER_HOST``
  (the address Slurm jobs reach the run's scheduler on; default this host's name).
- ``CLUSTER_ASSETS_DASK_MODEL_RESOURCES``: Dask worker resources the model-running steps
  (``sae``, ``activations``) require, e.g. ``GPU=1``; start GPU workers with ``--resources GPU=1``.

A step running on a worker can spread its own work over the cluster (:func:`map_on_workers`): the
``activations`` step extracts its missing activation shards as Dask tasks, one per shard.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dagster as dg

T = TypeVar("T")
ADDRESS_ENV = "CLUSTER_ASSETS_DASK_ADDRESS"
MODEL_RESOURCES_ENV = "CLUSTER_ASSETS_DASK_MODEL_RESOURCES"
SLURM_PREFIX = "CLUSTER_ASSETS_SLURM_"
#: Variables a Slurm-started worker needs to build the same code location and instance.
FORWARDED = (
    "DAGSTER_HOME",
    "CLUSTER_ASSETS_POSTGRES_URL",
    "CLUSTER_ASSETS_ARTIFACTS",
    "CLUSTER_ASSETS_CACHE",
    "CLUSTER_ASSETS_SWEEP",
    "CLUSTER_ASSETS_DATASETS",
    "CLUSTER_ASSETS_MODE",
    "CLUSTER_ASSETS_RESOURCES",
    "CLUSTER_ASSETS_DASK_MODEL_RESOURCES",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "HF_HOME",
    "PYTHONPATH",
)


def model_step_tags() -> dict[str, str]:
    """Op tags that route the model-running steps to workers with the resources named in the environment."""
    spec = os.environ.get(MODEL_RESOURCES_ENV)
    if not spec:
        return {}
    resources = {name.strip(): float(amount) for name, amount in (part.split("=") for part in spec.split(","))}
    return {"dagster-dask/resource_requirements": json.dumps(resources)}


def on_dask_worker() -> bool:
    """Whether this code runs inside a Dask worker (a step of the Dask or Slurm executor)."""
    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def spreads_model_work() -> bool:
    """Whether a model step may hand its work to other workers as Dask tasks: it runs on a Dask
    worker, and model steps need no worker resources.  (A seceded step keeps the resources it
    holds, so with ``GPU=1`` workers, tasks asking for a GPU could wait on their own step forever:
    those steps extract in their own process, on the GPU they hold.)"""
    return on_dask_worker() and not os.environ.get(MODEL_RESOURCES_ENV)


def map_on_workers(fn: Callable[..., T], items: Sequence[Any], *args: Any, name: str) -> list[T]:
    """``[fn(item, *args) for item in items]`` as Dask tasks from within a step running on a worker:
    the step's thread secedes while they run, and item ``i`` goes to the ``i``-th worker in turn
    (any other may take it: ``allow_other_workers``)."""
    from distributed import worker_client

    with worker_client() as client:
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        futures = [
            client.submit(
                fn,
                item,
                *args,
                key=f"{name}-{item}",
                workers=[workers[i % len(workers)]],
                allow_other_workers=True,
                pure=False,
            )
            for i, item in enumerate(items)
        ]
        return [future.result() for future in futures]


def slurm_cluster_config() -> dict:
    """dask-jobqueue SLURMCluster keyword arguments from ``CLUSTER_ASSETS_SLURM_*``."""
    env = {k[len(SLURM_PREFIX) :]: v for k, v in os.environ.items() if k.startswith(SLURM_PREFIX)}
    exports = [f"export {k}={os.environ[k]}" for k in FORWARDED if os.environ.get(k)]
    config = {
        "cores": int(env.get("CORES", "1")),
        "processes": 1,
        "memory": env.get("MEMORY", "8GB"),
        "walltime": env.get("WALLTIME", "01:00:00"),
        "n_workers": int(env.get("WORKERS", "1")),
        "python": sys.executable,
        "job_script_prologue": exports,
        "worker_extra_args": ["--nthreads", "1"],
        "scheduler_options": {"host": env.get("SCHEDULER_HOST", socket.gethostname())},
        "job_extra_directives": [d for d in env.get("JOB_EXTRA", "").split(";") if d],
        "log_directory": env.get("LOG_DIRECTORY") or None,
    }
    if env.get("QUEUE"):
        config["queue"] = env["QUEUE"]
    return {k: v for k, v in config.items() if v is not None}


class _Opaque:
    """Holds a step's arguments where dask's task-spec parser does not look: it walks tuples, and
    dagster's run records are tuples that refuse iteration (dagster-dask 0.29 with dask 2026.8)."""

    def __init__(self, *args: object):
        self.args = args


def _execute_step(dependencies: list, payload: _Opaque):
    from dagster_dask.executor import query_on_dask_worker

    return query_on_dask_worker(dependencies, *payload.args)  # pyright: ignore[reportArgumentType]


def _make_executor_class():
    import dask.distributed
    from dagster._core.errors import raise_execution_interrupts
    from dagster._utils import iterate_with_context
    from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements

    class StepsOnDask(DaskExecutor):
        """dagster-dask's executor, submitting each step's arguments inside :class:`_Opaque`."""

        def execute(self, plan_context, execution_plan):
            if not plan_context.instance.is_persistent:
                raise ValueError("steps on Dask need a persistent Dagster instance (sqlite on a shared disk, or PostgreSQL)")
            if self.cluster_type == "existing":
                cluster = self.cluster_configuration["address"]
            else:
                from dask_jobqueue import SLURMCluster  # pyright: ignore[reportPrivateImportUsage]

                cluster = SLURMCluster(**self.build_dict(plan_context.job_name))
            with dask.distributed.Client(cluster) as client:
                futures, by_step = [], {}
                for level in execution_plan.get_steps_to_execute_by_level():
                    for step in level:
                        dependencies = [by_step[key] for step_input in step.step_inputs for key in step_input.dependency_keys]
                        payload = _Opaque(
                            plan_context.reconstructable_job,
                            plan_context.dagster_run,
                            plan_context.run_config,
                            [step.key],
                            plan_context.instance.get_ref(),
                            execution_plan.known_state,
                        )
                        future = client.submit(
                            _execute_step,
                            dependencies,
                            payload,
                            key=f"{plan_context.job_name}.{step.key}",
                            resources=get_dask_resource_requirements(step.tags),
                            pure=False,
                        )
                        futures.append(future)
                        by_step[step.key] = future
                for _, events in iterate_with_context(
                    raise_execution_interrupts, dask.distributed.as_completed(futures, with_results=True)
                ):
                    yield from events
            if not isinstance(cluster, str):
                cluster.close()

    return StepsOnDask


def dask_executor_for(kind: str) -> dg.ExecutorDefinition:
    """The executor for ``kind`` (``dask``: an existing cluster; ``slurm``: workers started by dask-jobqueue)."""
    if kind == "dask":
        address = os.environ.get(ADDRESS_ENV)
        if not address:
            raise ValueError(f"CLUSTER_ASSETS_EXECUTOR=dask needs {ADDRESS_ENV} (the scheduler, e.g. tcp://127.0.0.1:8786)")
        cluster_type, config = "existing", {"address": address}
    else:
        cluster_type, config = "slurm", slurm_cluster_config()

    @dg.executor(name=f"steps_on_{kind}", requirements=dg.multiple_process_executor_requirements())
    def steps_on_dask(_init_context):
        return _make_executor_class()(cluster_type, config)

    return steps_on_dask
