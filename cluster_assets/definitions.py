"""The code location: one ``Definitions`` object, ``defs``.

Environment: ``CLUSTER_ASSETS_MODE`` (``embedded``/``hub``), ``CLUSTER_ASSETS_SWEEP`` and
``CLUSTER_ASSETS_DATASETS`` (other sweep/registry files), ``CLUSTER_ASSETS_CACHE``
(model and corpus cache), ``DAGSTER_HOME`` (instance and artifacts).
"""

import os

import dagster as dg

from cluster_assets.defs.assets.clustering import clusters, coactivation, memberships, merge_history
from cluster_assets.defs.assets.comparisons import dataset_comparison, research_report, sweep_comparison
from cluster_assets.defs.assets.model_side import activations, prompts, sae
from cluster_assets.defs.checks import CHECKS
from cluster_assets.defs.jobs import (
    clustering_job,
    comparison_job,
    sweep_comparison_job,
    model_side_job,
    nightly_missing_partitions,
    report_job,
    sae_job,
    sweep_files_sensor,
)
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource

defs = dg.Definitions(
    assets=[prompts, sae, activations, memberships, coactivation, merge_history, clusters,
            dataset_comparison, sweep_comparison, research_report],
    asset_checks=CHECKS,
    jobs=[sae_job, model_side_job, clustering_job, comparison_job, sweep_comparison_job, report_job],
    schedules=[nightly_missing_partitions],
    sensors=[sweep_files_sensor],
    resources={
        "source": ActivationSource(mode=os.environ.get("CLUSTER_ASSETS_MODE", "embedded")),
        "artifacts": ArtifactStoreResource(),
    },
)
