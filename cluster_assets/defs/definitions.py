"""``build_definitions(project)``: the whole code location from a registry and a sweep."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import yaml

from cluster_assets.config import ConfigFileError
from cluster_assets.defs.assets import build_assets
from cluster_assets.defs.automation import automation_sensors, sweep_files_sensor
from cluster_assets.defs.checks import build_checks
from cluster_assets.defs.executors import executor_from_environment
from cluster_assets.defs.instance import dead_run_sensor
from cluster_assets.defs.jobs import build_jobs
from cluster_assets.defs.partitions import Partitions
from cluster_assets.defs.pipeline import STAGES
from cluster_assets.defs.project import Project
from cluster_assets.defs.resources import MODE_ENV, ActivationSource, ArtifactStoreResource
from cluster_assets.defs.stages import Stage, validate_table

# Two Dagster features this project relies on are marked beta/preview in 1.13 and would warn in
# every process that loads the code location: partitioned asset checks (a check per partition)
# and MultiToSingleDimensionPartitionMapping (sweep_comparison reads one dataset's clusters).
warnings.filterwarnings("ignore", message=r".*MultiToSingleDimensionPartitionMapping.*", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message=r"Specifying a partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning)


RESOURCES_ENV = "CLUSTER_ASSETS_RESOURCES"


def resources_from_environment(project: Project) -> dict:
    """The default resources, with the settings of the YAML file ``CLUSTER_ASSETS_RESOURCES`` names
    (keys ``source`` and ``artifacts``: the resources' fields) -- one deployment's batch size,
    device, SAE training size or artifact root, without changing code."""
    settings: dict = {}
    path = os.environ.get(RESOURCES_ENV)
    if path:
        try:
            settings = yaml.safe_load(Path(path).read_text()) or {}
            if "mode" in settings.get("source", {}):
                raise ValueError("source.mode is set by CLUSTER_ASSETS_MODE (the partitions depend on it), not here")
            return {
                "source": ActivationSource(**{"mode": project.mode, **settings.get("source", {})}),
                "artifacts": ArtifactStoreResource(**settings.get("artifacts", {})),
            }
        except (OSError, yaml.YAMLError, ValueError, TypeError) as err:
            raise ConfigFileError(f"{path} ({RESOURCES_ENV}): {' '.join(str(err).split())}") from None
    return {"source": ActivationSource(mode=project.mode), "artifacts": ArtifactStoreResource()}


def with_io_manager(resources: dict) -> dict:
    """``resources`` with the IO manager that loads stored records (``load_asset_value``) over their artifact store."""
    from cluster_assets.defs.io_manager import ArtifactIOManager

    if "artifacts" in resources and "io_manager" not in resources:
        return {**resources, "io_manager": ArtifactIOManager(artifacts=resources["artifacts"])}
    return resources


def build_definitions(
    project: Project,
    resources: dict | None = None,
    executor: dg.ExecutorDefinition | None = None,
    stages: Mapping[str, Stage] = STAGES,
) -> dg.Definitions:
    """Assets, checks, jobs, automation and sensors for ``project`` from the stage table ``stages``;
    ``resources`` replace the defaults."""
    validate_table(stages)
    partitions = Partitions.of(project)
    default_resources = resources_from_environment(project) if resources is None else {}
    return dg.Definitions(
        assets=build_assets(project, partitions, stages),
        asset_checks=build_checks(project, partitions, stages),
        jobs=build_jobs(stages),
        sensors=[*automation_sensors(), sweep_files_sensor(project), dead_run_sensor],
        resources=with_io_manager({**default_resources, **(resources or {})}),
        executor=executor or executor_from_environment(),
    )


__all__ = ["MODE_ENV", "build_definitions"]
