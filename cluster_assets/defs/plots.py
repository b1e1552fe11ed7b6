"""Small PNG thumbnails for asset metadata (markdown with an embedded data URI)."""

from __future__ import annotations

import base64
from typing import Callable

import dagster as dg
import numpy as np

from cluster_assets.plotting import render_png


def thumbnail(draw: Callable, title: str, size: tuple[float, float] = (4.0, 3.0)) -> dg.MetadataValue:
    encoded = base64.b64encode(render_png(draw, size, dpi=72, title=title)).decode()
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def entropy_vs_rate(rate: np.ndarray, entropy: np.ndarray, kept: np.ndarray) -> dg.MetadataValue:
    def draw(ax):
        ok = np.isfinite(entropy) & (rate > 0)
        ax.scatter(rate[ok & ~kept], entropy[ok & ~kept], s=3, c="lightgray", label="dropped")
        ax.scatter(rate[ok & kept], entropy[ok & kept], s=3, c="tab:blue", label="kept")
        ax.set_xscale("log")
        ax.set_xlabel("firing rate", fontsize=8)
        ax.set_ylabel("entropy over prompts (nats)", fontsize=8)
        ax.legend(fontsize=7, markerscale=3)

    return thumbnail(draw, "entropy vs firing rate")


def rate_histogram(rate: np.ndarray) -> dg.MetadataValue:
    def draw(ax):
        alive = rate[rate > 0]
        if alive.size:
            ax.hist(np.log10(alive), bins=40, color="tab:blue")
        ax.set_xlabel("log10 firing rate (alive features)", fontsize=8)

    return thumbnail(draw, "firing-rate histogram")


def quadrant_plot(entropy: np.ndarray, varentropy: np.ndarray, quadrant: np.ndarray) -> dg.MetadataValue:
    colors = {"flowing": "tab:green", "careful": "tab:blue", "exploring": "tab:orange", "resampling": "tab:red"}

    def draw(ax):
        for name, color in colors.items():
            sel = quadrant == name
            ax.scatter(entropy[sel], varentropy[sel], s=3, c=color, label=f"{name} ({sel.sum()})")
        ax.set_xlabel("entropy", fontsize=8)
        ax.set_ylabel("varentropy", fontsize=8)
        ax.set_yscale("log")
        ax.legend(fontsize=6, markerscale=3)

    return thumbnail(draw, "entropy/varentropy quadrants (kept)")


def mdl_curve(ks: np.ndarray, mdl: np.ndarray, cut_k: int) -> dg.MetadataValue:
    def draw(ax):
        ax.plot(ks, mdl, lw=1)
        ax.axvline(cut_k, color="tab:red", lw=1, ls="--", label=f"cut k={cut_k}")
        ax.invert_xaxis()
        ax.set_xlabel("groups k (merging left to right)", fontsize=8)
        ax.set_ylabel("MDL (bits / sample)", fontsize=8)
        ax.legend(fontsize=7)

    return thumbnail(draw, "MDL over merge steps")


def size_distribution(sizes: np.ndarray) -> dg.MetadataValue:
    def draw(ax):
        values, counts = np.unique(sizes, return_counts=True)
        ax.bar(values.astype(str) if values.size < 25 else values, counts, color="tab:blue")
        ax.set_xlabel("features per cluster", fontsize=8)
        ax.set_ylabel("clusters", fontsize=8)

    return thumbnail(draw, "cluster sizes")


def heatmap(matrix: np.ndarray, title: str) -> dg.MetadataValue:
    def draw(ax):
        im = ax.imshow(matrix, cmap="viridis", interpolation="nearest")
        ax.figure.colorbar(im, ax=ax, fraction=0.046)

    return thumbnail(draw, title, size=(4.0, 3.6))
