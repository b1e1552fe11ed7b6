"""Content-addressed artifacts on disk: hashing, verified manifests, atomic folders, and
each stage's files with their readers and writers (``formats``)."""

from cluster_assets.storage.artifacts import Artifact, ArtifactStore, VerificationError
from cluster_assets.storage.hashing import content_hash

__all__ = ["Artifact", "ArtifactStore", "VerificationError", "content_hash"]
