"""Loading a stage's value the Dagster way: ``defs.load_asset_value`` and
``Definitions.get_asset_value_loader`` return the record a stage stored (its format's value: a
``Clusters``, an ``Activations``, the comparison ``Tables`` ...), found through the instance's
latest materialisation of that asset and partition and verified as a run verifies it on reuse.

The assets write their own content-addressed artifacts and return metadata only, so there is
nothing to handle on output; the address a value lives at is the ``artifact`` metadata of its
materialisation, so the user never handles a hash.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from cluster_assets.defs.pipeline import STAGES
from cluster_assets.defs.resources import ArtifactStoreResource
from cluster_assets.storage import Artifact


class NotMaterialisedError(LookupError):
    """The instance has no materialisation of that asset and partition (or its artifact is gone)."""


def latest_artifact(instance: dg.DagsterInstance, artifacts: ArtifactStoreResource, asset: str, partition: str | None) -> Artifact:
    """The artifact of the latest materialisation of ``asset`` (at ``partition``), verified."""
    what = f"{asset}[{partition}]" if partition else asset
    how = (
        f"materialise it (and the stages it reads) first: in the UI (asset {asset} > Materialize"
        + (f", partition {partition})" if partition else ")")
        + f", or `dagster asset materialize -m cluster_assets.definitions --select {asset}"
        + (f" --partition '{partition}'`" if partition else "`")
    )
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None or "artifact" not in materialization.metadata:
        raise NotMaterialisedError(f"{what} has not been materialised in this instance; {how}")
    address = str(materialization.metadata["artifact"].value)
    artifact = artifacts.store().at(address)
    if not artifact.exists:
        raise NotMaterialisedError(f"{what}: its artifact {address} is no longer at {artifact.path}; {how}")
    return artifact.verify()


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Loads any stage's stored record from the artifact store (see the module docstring)."""

    artifacts: ArtifactStoreResource

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is not None:  # every asset returns a MaterializeResult; its artifact is already written
            raise TypeError(f"{context.asset_key.to_user_string()}: assets store their own artifacts, not {type(obj).__name__}")

    def load_input(self, context: dg.InputContext) -> Any:
        name = context.asset_key.to_user_string()
        if name not in STAGES:
            raise KeyError(f"{name} is not a stage of the pipeline; stages: {', '.join(STAGES)}")
        partitioned = STAGES[name].partitioning != "none"
        if partitioned != context.has_partition_key:
            raise ValueError(
                f"{name} is partitioned: pass partition_key (e.g. dg.MultiPartitionKey({{'dataset': 'kjv', 'hparams': 'base'}}) "
                "or a dataset or sweep point name)"
                if partitioned
                else f"{name} is not partitioned: load it without partition_key"
            )
        try:
            instance = context.instance
        except dg.DagsterInvariantViolationError:
            raise RuntimeError(
                f"{name}: no Dagster instance to find its materialisation in; set DAGSTER_HOME (make sets it to "
                "<checkout>/.dagster_home) or pass instance= to load_asset_value"
            ) from None
        partition = context.asset_partition_key if partitioned else None
        return STAGES[name].format.load(latest_artifact(instance, self.artifacts, name, partition).path)
