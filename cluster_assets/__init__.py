"""cluster_assets: clusters of co-firing SAE features, as Dagster assets.

Importing the package asks MKL and ATen for their reproducible CPU path before any torch work
(:mod:`cluster_assets.sources.numerics`), so a model step's bytes do not depend on the thread
count or the process it ran in.
"""

from cluster_assets.sources.numerics import configure as _configure_numerics

_configure_numerics()
