"""Which artifact each stage of a partition reads and writes (the content-address chain).

prompts       <- dataset entry, prompts params, tokenizer identity
sae           <- model identity, hub SAE or training params + training corpora
activations   <- prompts hash, sae hash, activation params
memberships   <- activations hash, memberships params
coactivation  <- memberships hash
merge_history <- coactivation hash, merge params
clusters      <- merge_history hash, clusters params
"""

from __future__ import annotations

from cluster_assets.artifacts import Artifact, ArtifactStore
from cluster_assets.defs.resources import ActivationSource
from cluster_assets.sweep import DatasetEntry, SweepPoint


def offline_datasets(registry: dict[str, DatasetEntry]) -> list[DatasetEntry]:
    return [entry for entry in registry.values() if entry.offline]


def sae_artifact(store: ArtifactStore, source: ActivationSource, registry: dict[str, DatasetEntry]) -> Artifact:
    return store.artifact("sae", source.sae_identity([e.name for e in offline_datasets(registry)]))


def prompts_artifact(store: ArtifactStore, source: ActivationSource, entry: DatasetEntry, point: SweepPoint) -> Artifact:
    return store.artifact("prompts", entry.name, entry.loader, entry.params, point.prompts.digest(), source.model_identity())


def activations_artifact(
    store: ArtifactStore, source: ActivationSource, entry: DatasetEntry, point: SweepPoint, registry: dict[str, DatasetEntry]
) -> Artifact:
    upstream = prompts_artifact(store, source, entry, point).hash, sae_artifact(store, source, registry).hash
    return store.artifact("activations", entry.name, *upstream, point.activations.digest())


def require(artifact: Artifact, what: str) -> Artifact:
    if not artifact.exists:
        raise FileNotFoundError(
            f"{what} has not been materialised (expected artifact {artifact.stage}/{artifact.hash} at {artifact.path}); "
            "materialise it first"
        )
    return artifact


def memberships_artifact(store, source, entry, point, registry) -> Artifact:
    upstream = activations_artifact(store, source, entry, point, registry).hash
    return store.artifact("memberships", entry.name, upstream, point.memberships.digest())


def coactivation_artifact(store, source, entry, point, registry) -> Artifact:
    return store.artifact("coactivation", entry.name, memberships_artifact(store, source, entry, point, registry).hash)


def merge_history_artifact(store, source, entry, point, registry) -> Artifact:
    upstream = coactivation_artifact(store, source, entry, point, registry).hash
    return store.artifact("merge_history", entry.name, upstream, point.method_digest())


def clusters_artifact(store, source, entry, point, registry) -> Artifact:
    upstream = merge_history_artifact(store, source, entry, point, registry).hash
    return store.artifact("clusters", entry.name, upstream, point.clusters.digest())


STAGES = {
    "prompts": lambda store, source, entry, point, registry: prompts_artifact(store, source, entry, point),
    "activations": activations_artifact,
    "memberships": memberships_artifact,
    "coactivation": coactivation_artifact,
    "merge_history": merge_history_artifact,
    "clusters": clusters_artifact,
}
