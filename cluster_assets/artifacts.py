"""Content-addressed artifact folders.

Every stage output lives in ``<root>/<stage>/<hash>/``, where the hash covers the
dataset, the stage's own parameters and the upstream stage's hash (see
``shared/design.md``).  Two sweep points that agree on everything a stage reads share
its folder, so the second one reuses it.  Folders appear atomically (built in a
temporary folder, then renamed), so a folder that exists is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster_assets.core.atomic import atomic_dir, atomic_path
from cluster_assets.sweep import content_hash

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    stage: str
    hash: str
    path: Path

    @property
    def exists(self) -> bool:
        return (self.path / MANIFEST).exists()

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST).read_text())

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def artifact(self, stage: str, *key_parts: Any) -> Artifact:
        digest = content_hash(stage, *key_parts)
        return Artifact(stage, digest, self.root / stage / digest)

    def write(self, artifact: Artifact, manifest: dict[str, Any]):
        """Context manager: a temporary folder to fill; on success it becomes ``artifact.path``
        with ``manifest.json`` (the stage's key and summary) written last."""
        return _ArtifactWriter(artifact, manifest)


class _ArtifactWriter:
    def __init__(self, artifact: Artifact, manifest: dict[str, Any]):
        self.artifact, self.manifest = artifact, manifest
        self._ctx = atomic_dir(artifact.path)

    def __enter__(self) -> Path:
        self.tmp = self._ctx.__enter__()
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            with atomic_path(self.tmp / MANIFEST) as tmp:
                tmp.write_text(json.dumps({"stage": self.artifact.stage, "hash": self.artifact.hash, **self.manifest}, indent=2, default=str))
        return self._ctx.__exit__(exc_type, exc, tb)
