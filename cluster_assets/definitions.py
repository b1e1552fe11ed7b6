"""The code location: ``defs``, built from the files the environment names.

Environment: ``CLUSTER_ASSETS_SWEEP`` / ``CLUSTER_ASSETS_DATASETS`` (other sweep / registry
files), ``CLUSTER_ASSETS_MODE`` (``embedded`` or ``hub``), ``CLUSTER_ASSETS_EXECUTOR`` (where
steps run), ``CLUSTER_ASSETS_CACHE`` (model and corpus cache), ``CLUSTER_ASSETS_ARTIFACTS`` and
``DAGSTER_HOME`` (artifacts and the instance).  Tests build their own with
``build_definitions(Project.load(...))``.
"""

import dagster as dg

from cluster_assets.defs.definitions import build_definitions
from cluster_assets.defs.project import Project


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Project.load())
