"""Small helpers that turn results into Dagster metadata."""

from __future__ import annotations

from typing import Any

import time

import dagster as dg
import numpy as np
import polars as pl

from cluster_assets.artifacts import Artifact


def artifact_metadata(artifact: Artifact, reused: bool) -> dict[str, Any]:
    return {
        "artifact": dg.MetadataValue.text(f"{artifact.stage}/{artifact.hash}"),
        "path": dg.MetadataValue.path(str(artifact.path)),
        "reused": dg.MetadataValue.bool(reused),
        "bytes_on_disk": dg.MetadataValue.int(artifact.bytes_on_disk()),
    }


def summary(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {}
    q = np.percentile(values, [0, 10, 50, 90, 100])
    return {"min": q[0], "p10": q[1], "median": q[2], "mean": float(values.mean()), "p90": q[3], "max": q[4]}


def table_preview(frame: pl.DataFrame, n: int = 5, width: int = 80) -> dg.MetadataValue:
    def cell(value: Any) -> str:
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        return text[:width].replace("\n", " ").replace("|", "/")

    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    body = "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in frame.head(n).iter_rows())
    return dg.MetadataValue.md(header + body)


def result(artifact: Artifact, reused: bool, **metadata: Any) -> dg.MaterializeResult:
    """A MaterializeResult whose data version is the artifact's content hash."""
    return dg.MaterializeResult(
        metadata={**artifact_metadata(artifact, reused), **metadata},
        data_version=dg.DataVersion(artifact.hash),
    )


def progress_logger(context: dg.AssetExecutionContext, what: str):
    """A progress(done, total) callback that logs to the run log at most every 5 seconds."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 5 or done == total:
            last[0] = now
            context.log.info(f"{what}: {done}/{total}")

    return report
