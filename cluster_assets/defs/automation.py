"""Declarative automation: the answers keep themselves current; missing partitions fill on request.

- Comparisons and the report (``answers_automation``, on by default): when ``clusters``
  partitions land, the comparisons that read them and then the report are brought up to date
  -- once the partitions in progress have finished, so a backfill of many partitions gives one
  run per comparison rather than one per landing partition.
- The partition chain (``missing_partitions_automation``, off by default: it starts model runs):
  partitions that appear after a code-location reload (a new dataset or sweep point) at once,
  and every other missing partition nightly at 02:00 UTC; never a partition whose point names
  other datasets (:class:`RunsOnItsDatasets`, evaluated on the code server).
- ``sweep_files_sensor`` says when the sweep or registry file changed and a reload is due.
"""

import dagster as dg

from cluster_assets.defs.project import Project

NIGHTLY = "0 2 * * *"


def answers_condition() -> dg.AutomationCondition:
    AC = dg.AutomationCondition
    return ((AC.newly_missing() | AC.any_deps_updated()).since_last_handled() & ~AC.any_deps_in_progress() & ~AC.in_progress()).with_label(
        "current with its clusters (after partitions in progress finish)"
    )


class RunsOnItsDatasets(dg.AutomationCondition):
    """True for the (dataset, sweep partition) pairs the project runs: a sweep point that names its
    datasets (``Project.runs``) leaves the other datasets' partitions of it never requested."""

    def __init__(self, keys: frozenset[str]):
        self.keys = keys  # "dataset|hparams", as Dagster writes a 2-D key

    @property
    def name(self) -> str:
        return "runs_on_its_datasets"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        return dg.AutomationResult(context, true_subset=context.candidate_subset.compute_intersection_with_partition_keys(self.keys))


def missing_condition(project: Project) -> dg.AutomationCondition:
    AC = dg.AutomationCondition
    condition = (
        AC.missing()
        & (AC.missing().newly_true() | AC.cron_tick_passed(NIGHTLY, "UTC")).since_last_handled()  # pyright: ignore[reportAttributeAccessIssue]
        & ~AC.any_deps_missing()
        & ~AC.in_progress()
    )
    runs = frozenset(f"{d}|{h}" for d, h in project.runs())
    # evaluated on the code server (the sensor's use_user_code_server): the daemon cannot run this class
    return (RunsOnItsDatasets(runs) & condition).with_label("missing: new partitions at once, the rest nightly")


def automation_sensors() -> list[dg.AutomationConditionSensorDefinition]:
    return [
        dg.AutomationConditionSensorDefinition(
            "answers_automation",
            target=dg.AssetSelection.groups("comparisons"),
            default_status=dg.DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=30,
            description="Keeps the comparisons and the report current as clusters partitions land.",
        ),
        dg.AutomationConditionSensorDefinition(
            "missing_partitions_automation",
            target=dg.AssetSelection.groups("model_side", "clustering"),
            use_user_code_server=True,  # its condition runs the project's code (RunsOnItsDatasets)
            default_status=dg.DefaultSensorStatus.STOPPED,
            minimum_interval_seconds=60,
            description="Materialises partitions that appear after a reload at once, and every missing one nightly (starts model runs).",
        ),
    ]


def sweep_files_sensor(project: Project) -> dg.SensorDefinition:
    loaded = project.files_digest()

    @dg.sensor(
        name="sweep_files_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Says when the sweep or registry file changed since the code location loaded: reload it so the "
        "new partitions appear (then backfill them, or turn on missing_partitions_automation).",
    )
    def sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        if project.files_digest() != loaded:
            return dg.SkipReason(
                f"{project.sweep_path.name} or {project.registry_path.name} changed since the code location "
                "loaded: reload it (UI: Deployment > Reload) so the new partitions appear"
            )
        return dg.SkipReason(f"sweep and registry unchanged ({len(project.sweep)} sweep partitions, {len(project.datasets)} datasets)")

    return sensor
