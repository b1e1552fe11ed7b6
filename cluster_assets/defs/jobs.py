"""Jobs (one per half of the graph), the nightly schedule and the sweep-file sensor."""

from __future__ import annotations

import dagster as dg

from cluster_assets.defs.assets.clustering import clusters, coactivation, memberships, merge_history
from cluster_assets.defs.assets.model_side import activations, prompts, sae
from cluster_assets.defs.partitions import SWEEP_FILES_DIGEST, dataset_partitions, hparams_partitions, partitions_def, sweep_files_digest

sae_job = dg.define_asset_job("sae_job", selection=[sae], description="Train (embedded) or fetch (hub) the shared SAE.")

model_side_job = dg.define_asset_job(
    "model_side_job",
    selection=[prompts, activations],
    partitions_def=partitions_def,
    description="Prompts and SAE activations of one dataset x sweep-point partition (runs in the 'model' pool; needs the sae asset).",
)

clustering_job = dg.define_asset_job(
    "clustering_job",
    selection=[memberships, coactivation, merge_history, clusters],
    partitions_def=partitions_def,
    description="Memberships, exact coactivation, MDL merge and cluster analysis of one partition.",
)

report_job = dg.define_asset_job("report_job", selection=["research_report"], description="The research report from the comparisons so far.")


comparison_job = dg.define_asset_job(
    "comparison_job", selection=["dataset_comparison"], partitions_def=hparams_partitions,
    description="Compare the clusterings of all datasets at one sweep point.",
)
sweep_comparison_job = dg.define_asset_job(
    "sweep_comparison_job", selection=["sweep_comparison"], partitions_def=dataset_partitions,
    description="Compare the clusterings of one dataset across all sweep points.",
)

MAX_RUNS_PER_TICK = 50


def missing_partitions(instance: dg.DagsterInstance) -> list[str]:
    """Sweep partitions whose ``clusters`` has never been materialised."""
    done = instance.get_materialized_partitions(dg.AssetKey("clusters"))
    return [key for key in partitions_def.get_partition_keys() if key not in done]


@dg.schedule(cron_schedule="0 2 * * *", target=[prompts, activations, memberships, coactivation, merge_history, clusters],
             execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Nightly: materialise the whole graph for sweep partitions that have no clusters yet.")
def nightly_missing_partitions(context: dg.ScheduleEvaluationContext):
    missing = missing_partitions(context.instance)
    if not missing:
        return dg.SkipReason("every sweep partition has clusters")
    return [dg.RunRequest(run_key=f"{context.scheduled_execution_time:%Y%m%d}:{key}", partition_key=key) for key in missing[:MAX_RUNS_PER_TICK]]


@dg.sensor(target=[prompts, activations, memberships, coactivation, merge_history, clusters], minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Watches the sweep and registry files. After an edit it asks for a code-location reload "
           "(static partitions are read at load); once reloaded it materialises the new partitions.")
def sweep_files_sensor(context: dg.SensorEvaluationContext):
    current = sweep_files_digest()
    if current != SWEEP_FILES_DIGEST:
        return dg.SkipReason("the sweep or registry file changed since this code location loaded: reload it "
                             "(UI: Deployment > Reload, or restart `dagster dev`) so the new partitions appear")
    missing = missing_partitions(context.instance)
    if not missing:
        return dg.SkipReason("no new partitions")
    return [dg.RunRequest(run_key=f"{current}:{key}", partition_key=key) for key in missing[:MAX_RUNS_PER_TICK]]
