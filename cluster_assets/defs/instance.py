"""Runs whose process died hold nothing: they are marked failed and their pool slots freed.

Dagster's run monitoring cannot tell that the process of a run launched by the default run
launcher, or of an in-process run (``make demo``, ``dagster asset materialize``), was killed;
such a run stays STARTED and keeps its ``model`` pool slot for good.  So each run records its
process (host, pid and the process's start time, from its RUN_START event) as a tag, and runs
whose recorded process no longer exists on this host are failed and their slots freed -- at
the start of every run (the ``artifacts`` resource) and by the ``dead_run_sensor``.  Runs on
other hosts, or without the tag, are left to their own host and to Dagster.
"""

import os

import dagster as dg

from cluster_assets.storage.atomic import owner_alive, owner_tag

PROCESS_TAG = "cluster_assets/process"
_ACTIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def tag_run_process(instance: dg.DagsterInstance, run_id: str) -> None:
    """Record the run's own process, if this is it or its direct child (not a remote worker)."""
    run = instance.get_run_by_id(run_id)
    if run is None or PROCESS_TAG in run.tags:
        return
    starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    pid = starts[0].dagster_event.pid if starts and starts[0].dagster_event else None
    if pid is not None and pid in (os.getpid(), os.getppid()):
        instance.add_run_tags(run_id, {PROCESS_TAG: owner_tag(pid)})


def reap_dead_runs(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """Fail the active runs whose recorded process is gone; return (run id, why) of each."""
    reaped = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=_ACTIVE)):
        run = record.dagster_run
        tag = run.tags.get(PROCESS_TAG)
        if tag is None or owner_alive(tag) is not False:
            continue
        why = f"lost its process ({tag.split('~')[0]}, pid {tag.split('~')[1]}: no longer running)"
        instance.report_run_failed(run, f"Run {why}; marked failed by cluster_assets so it holds no pool slot.")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append((run.run_id, why))
    return reaped


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process died (killed, out of memory) as failed and frees their pool slots.",
)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    reaped = reap_dead_runs(context.instance)
    if not reaped:
        return dg.SkipReason("no dead runs")
    return dg.SkipReason("; ".join(f"run {run_id} {why}: failed, slots freed" for run_id, why in reaped))
