"""Where steps run: one switch, ``CLUSTER_ASSETS_EXECUTOR``.

- ``local`` (default): every step of a run in the run's own process (no per-step process that
  re-imports the code location, so a run that reuses its artifacts takes seconds);
- ``dask``: an existing Dask cluster at ``CLUSTER_ASSETS_DASK_ADDRESS`` (dagster-dask);
- ``slurm``: Dask workers started as Slurm jobs by dask-jobqueue, configured by
  ``CLUSTER_ASSETS_SLURM_*`` (see the README).
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "CLUSTER_ASSETS_EXECUTOR"
EXECUTORS = ("local", "dask", "slurm")


def executor_from_environment() -> dg.ExecutorDefinition:
    kind = os.environ.get(EXECUTOR_ENV, "local")
    if kind not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV}={kind!r}: expected one of {', '.join(EXECUTORS)}")
    if kind == "local":
        return dg.in_process_executor
    from cluster_assets.defs.dask import dask_executor_for

    return dask_executor_for(kind)
