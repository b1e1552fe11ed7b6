"""The sweep file and the corpus registry: typed models (:mod:`.models`) and reading them (:mod:`.files`).

The default files live beside this module: ``datasets.yaml`` (the corpus registry) and
``sweep.yaml`` (the sweep points); ``sweep_research.yaml`` is the research-scale sweep.
"""

from cluster_assets.config.files import ConfigFileError, datasets_path, load_registry, load_sweep, sweep_path
from cluster_assets.config.models import DatasetEntry, Registry, SweepPoint

__all__ = ["ConfigFileError", "DatasetEntry", "Registry", "SweepPoint", "datasets_path", "load_registry", "load_sweep", "sweep_path"]
