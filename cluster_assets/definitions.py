"""The code location: one ``Definitions`` object, ``defs``.

Environment: ``CLUSTER_ASSETS_MODE`` (``embedded``/``hub``), ``CLUSTER_ASSETS_SWEEP`` and
``CLUSTER_ASSETS_DATASETS`` (other sweep/registry files), ``CLUSTER_ASSETS_CACHE``
(model and corpus cache), ``DAGSTER_HOME`` (instance and artifacts).
"""

from __future__ import annotations

import os

import dagster as dg

from cluster_assets.defs.assets.model_side import activations, prompts, sae
from cluster_assets.defs.jobs import model_side_job, sae_job
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource

defs = dg.Definitions(
    assets=[prompts, sae, activations],
    jobs=[sae_job, model_side_job],
    resources={
        "source": ActivationSource(mode=os.environ.get("CLUSTER_ASSETS_MODE", "embedded")),
        "artifacts": ArtifactStoreResource(),
    },
)
