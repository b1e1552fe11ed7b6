"""Content addresses (what an artifact was made from) and file checksums (what it holds)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import xxhash

#: The checksum recorded per file in a manifest: xxh3 (128-bit), ~10 GB/s, not cryptographic.
CHECKSUM = "xxh3_128"
_CHUNK = 8 << 20


def content_hash(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts (key order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_checksum(path: str | Path) -> str:
    """xxh3-128 hex digest of a file's bytes, read in 8 MiB chunks."""
    digest = xxhash.xxh3_128()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()
