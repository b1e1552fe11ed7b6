"""Metadata as plain values: rounded numbers, the artifact, where a step ran, figures, peak memory."""

from __future__ import annotations

import base64
import math
import os
import sys
import threading
from pathlib import Path
from typing import Any

import dagster as dg

from cluster_assets.storage import Artifact
from cluster_assets.storage.atomic import HOST

#: Significant digits kept for floats in metadata (timings keep two decimals).
DIGITS = 4


def rounded(value: Any, key: str = "") -> Any:
    """Floats to :data:`DIGITS` significant digits (seconds to 0.01 s), recursively."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value == 0:
            return value
        if key.endswith("seconds"):
            return round(value, 2)
        return round(value, DIGITS - 1 - math.floor(math.log10(abs(value))))
    if isinstance(value, dict):
        return {k: rounded(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, key) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return rounded(value.item(), key)
    return value


def plain_metadata(values: dict[str, Any]) -> dict[str, Any]:
    """Rounded plain values (Dagster turns them into int/float/text/json metadata); None dropped."""
    return {k: rounded(v, k) for k, v in values.items() if v is not None}


def artifact_metadata(artifact: Artifact, reused: bool, entry: str | None = None) -> dict[str, Any]:
    """Where the artifact is; ``entry``: the file in it a person opens (a link to it, as ``open``)."""
    return {
        "artifact": artifact.address,
        "path": dg.MetadataValue.path(str(artifact.path)),
        **({"open": dg.MetadataValue.url((artifact.path / entry).as_uri())} if entry else {}),
        "reused": reused,
        "bytes_on_disk": artifact.bytes_on_disk(),
    }


def ran_on() -> dict[str, Any]:
    """Where this step ran: host, process, and the Dask worker / Slurm job when there is one."""
    where: dict[str, Any] = {"host": HOST, "pid": os.getpid()}
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            where["dask_worker"] = str(get_worker().name)
        except ValueError:  # not inside a worker
            pass
    if os.environ.get("SLURM_JOB_ID"):
        where["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return where


def figure_markdown(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG shown inline in the UI (markdown with a data URI)."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


class PeakMemory:
    """Context manager: the peak resident memory (MB) of this process while the block ran,
    sampled every 20 ms from /proc (0 where /proc is missing)."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak_mb = interval, 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss_mb() -> float:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            return 0.0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self._rss_mb())

    def __enter__(self) -> PeakMemory:
        self.peak_mb = self._rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())
