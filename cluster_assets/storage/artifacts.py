"""Content-addressed artifact folders with verified manifests.

Every stage output lives in ``<root>/<stage>/<hash>/``, where the hash covers everything the
stage's output depends on (its parameters and its inputs' hashes).  ``manifest.json`` is written
last and records the stage's summary and, for every file, its size and xxh3-128 checksum.
:meth:`Artifact.verify` re-checks them: an artifact whose files changed, shrank or vanished
since it was written is reported by file and must be recomputed, never used.  A manifest may
list ``references``: other artifacts whose files this one's point into (a sample's activation
shards), each with the checksums of its files when this one was written; they are verified with
it, so a bad or rewritten shard fails every sample that reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster_assets.storage.atomic import AtomicDir, atomic_path, clean_stale, remove_tree
from cluster_assets.storage.hashing import CHECKSUM, content_hash, file_checksum

MANIFEST = "manifest.json"

#: path -> (size, mtime_ns, inode, checksum) of files verified by this process: a file whose
#: stat is unchanged is not hashed again when several stages read the same artifact.
_verified: dict[str, tuple[int, int, int, str]] = {}


class VerificationError(RuntimeError):
    """An artifact's files do not match its manifest; ``problems`` name each file."""

    def __init__(self, artifact: Artifact, problems: list[str]):
        self.artifact, self.problems = artifact, problems
        super().__init__(f"artifact {artifact.stage}/{artifact.hash} at {artifact.path} failed verification: " + "; ".join(problems))


@dataclass(frozen=True)
class Artifact:
    """One stage output: ``path`` = ``<root>/<stage>/<hash>``."""

    stage: str
    hash: str
    path: Path

    @property
    def exists(self) -> bool:
        """A manifest is present (the folder is complete; whether it is intact is :meth:`verify`)."""
        return (self.path / MANIFEST).exists()

    @property
    def address(self) -> str:
        return f"{self.stage}/{self.hash}"

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST).read_text())

    @property
    def root(self) -> Path:
        """The artifact root this artifact lies in."""
        return self.path.parent.parent

    def problems(self) -> list[str]:
        """What is wrong with the files (empty when every file matches its recorded size and checksum),
        and with the artifacts the manifest lists as ``references`` (whose files this one's point into)."""
        try:
            manifest = self.manifest()
        except (OSError, ValueError) as err:
            return [f"{MANIFEST}: unreadable ({err})"]
        files = manifest.get("files")
        if not files:
            return [f"{MANIFEST}: lists no file checksums (written by an older version)"]
        problems = []
        for name, expected in files.items():
            path = self.path / name
            try:
                st = path.stat()
            except FileNotFoundError:
                problems.append(f"{name}: missing")
                continue
            if st.st_size != expected["bytes"]:
                problems.append(f"{name}: {st.st_size} bytes, expected {expected['bytes']} (truncated or replaced)")
                continue
            key = str(path)
            cached = _verified.get(key)
            if cached is not None and cached[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
                found = cached[3]
            else:
                found = file_checksum(path)
                _verified[key] = (st.st_size, st.st_mtime_ns, st.st_ino, found)
            if found != expected[CHECKSUM]:
                _verified.pop(key, None)
                problems.append(f"{name}: content changed ({CHECKSUM} {found}, expected {expected[CHECKSUM]})")
        for address, pinned in manifest.get("references", {}).items():
            referenced = ArtifactStore(self.root).at(address)
            if not referenced.exists:
                problems.append(f"{address} (referenced): missing")
                continue
            own = referenced.problems()
            problems += [f"{address} (referenced): {p}" for p in own]
            if not own and referenced.manifest().get("files") != pinned:
                problems.append(f"{address} (referenced): written again with other files than this artifact was made from")
        return problems

    def verify(self) -> Artifact:
        """This artifact, after checking every file; raises :class:`VerificationError` naming the bad files."""
        problems = self.problems()
        if problems:
            raise VerificationError(self, problems)
        return self

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


class ArtifactStore:
    """The artifact root: addresses, verified writes, removal of bad artifacts and dead writers' leftovers."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def artifact(self, stage: str, *key_parts: Any) -> Artifact:
        digest = content_hash(stage, *key_parts)
        return Artifact(stage, digest, self.root / stage / digest)

    def at(self, address: str) -> Artifact:
        """The artifact at ``address`` (``<stage>/<hash>``, as :attr:`Artifact.address` writes it)."""
        stage, _, digest = address.partition("/")
        if not stage or not digest or "/" in digest:
            raise ValueError(f"not an artifact address: {address!r} (expected <stage>/<hash>)")
        return Artifact(stage, digest, self.root / stage / digest)

    def write(self, artifact: Artifact, record: dict[str, Any]) -> ArtifactWriter:
        """Context manager: a temporary folder to fill; on success its files are checksummed,
        ``manifest.json`` (``record`` + the checksums) is written last and the folder is renamed
        onto ``artifact.path``.  If another writer finished the same artifact first, theirs stays
        (``writer.won`` is False)."""
        return ArtifactWriter(artifact, record)

    def pinned(self, addresses: list[str]) -> dict[str, Any]:
        """``references`` for a manifest: each address with its artifact's file checksums now, so
        the referring artifact verifies only against these very files."""
        return {address: self.at(address).verify().manifest()["files"] for address in addresses}

    def discard(self, artifact: Artifact) -> None:
        """Remove an artifact (one that failed verification) so it is recomputed."""
        for key in [k for k in _verified if k.startswith(str(artifact.path) + os.sep)]:
            del _verified[key]
        remove_tree(artifact.path)

    def clean_stale(self) -> list[Path]:
        """Remove the temporaries of writers that are gone, in every stage folder."""
        if not self.root.is_dir():
            return []
        return [p for stage in self.root.iterdir() if stage.is_dir() for p in clean_stale(stage)]


class ArtifactWriter:
    def __init__(self, artifact: Artifact, record: dict[str, Any]):
        self.artifact, self.record = artifact, record
        self._dir = AtomicDir(artifact.path)

    @property
    def won(self) -> bool:
        return self._dir.won

    def __enter__(self) -> Path:
        clean_stale(self.artifact.path.parent)
        return self._dir.__enter__()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            tmp = self._dir.tmp
            files = {
                p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size, CHECKSUM: file_checksum(p)}
                for p in sorted(tmp.rglob("*"))
                if p.is_file() and p.name != MANIFEST
            }
            manifest = {"stage": self.artifact.stage, "hash": self.artifact.hash, **self.record, "files": files}
            with atomic_path(tmp / MANIFEST) as path:
                path.write_text(json.dumps(manifest, indent=2, default=str))
        return self._dir.__exit__(exc_type, exc, tb)
