"""Every figure of the pipeline, as PNG bytes: readable at a glance (>= 760 px wide, labelled axes)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cluster_assets.reporting.render import render_png


def entropy_vs_rate(rate: np.ndarray, entropy: np.ndarray, kept: np.ndarray) -> bytes:
    def draw(ax):
        ok = np.isfinite(entropy) & (rate > 0)
        ax.scatter(rate[ok & ~kept], entropy[ok & ~kept], s=5, c="lightgray", label=f"dropped ({int((ok & ~kept).sum())})")
        ax.scatter(rate[ok & kept], entropy[ok & kept], s=5, c="tab:blue", label=f"kept ({int((ok & kept).sum())})")
        ax.set_xscale("log")
        ax.set_xlabel("firing rate (fraction of tokens, log scale)")
        ax.set_ylabel("entropy over prompts (nats)")
        ax.legend(markerscale=3)

    return render_png(draw, title="Feature entropy vs firing rate")


def rate_histogram(rate: np.ndarray) -> bytes:
    def draw(ax):
        alive = rate[rate > 0]
        if alive.size:
            ax.hist(np.log10(alive), bins=50, color="tab:blue")
        ax.set_xlabel("log10 firing rate (features that fire at all)")
        ax.set_ylabel("features")

    return render_png(draw, title=f"Firing rates ({int((rate > 0).sum())} of {rate.size} features fire)")


def quadrant_plot(entropy: np.ndarray, varentropy: np.ndarray, quadrant: np.ndarray) -> bytes:
    colors = {"flowing": "tab:green", "careful": "tab:blue", "exploring": "tab:orange", "resampling": "tab:red"}

    def draw(ax):
        for name, color in colors.items():
            sel = quadrant == name
            ax.scatter(entropy[sel], varentropy[sel], s=5, c=color, label=f"{name} ({int(sel.sum())})")
        ax.set_xlabel("entropy over prompts (nats)")
        ax.set_ylabel("varentropy (log scale)")
        ax.set_yscale("log")
        ax.legend(markerscale=3)

    return render_png(draw, title="Entropy / varentropy quadrants of the kept features")


def mdl_curve(ks: np.ndarray, mdl: np.ndarray, cut_k: int) -> bytes:
    """MDL against the number of groups, zoomed on the minimum (the full curve inset)."""

    def draw(ax):
        best = int(np.argmin(mdl))
        lo, hi = mdl[best], np.percentile(mdl, 75)
        window = (mdl <= lo + 1.2 * (hi - lo)) if hi > lo else np.ones_like(mdl, bool)
        idx = np.flatnonzero(window)
        ax.plot(ks[idx], mdl[idx], lw=1.2, color="tab:blue")
        ax.axvline(cut_k, color="tab:red", lw=1, ls="--", label=f"cut: k = {cut_k}")
        ax.scatter([ks[best]], [lo], color="tab:red", zorder=3, label=f"MDL minimum {lo:.4g} bits/sample")
        ax.invert_xaxis()
        ax.set_xlabel("groups k (merging proceeds to the right)")
        ax.set_ylabel("MDL (bits per sample)")
        ax.legend(loc="upper left")
        inset = ax.inset_axes([0.62, 0.55, 0.35, 0.38])
        inset.plot(ks, mdl, lw=0.8, color="gray")
        inset.axvspan(ks[idx].min(), ks[idx].max(), color="tab:blue", alpha=0.15)
        inset.invert_xaxis()
        inset.set_title("whole run", fontsize=8)
        inset.tick_params(labelsize=7)

    return render_png(draw, title="MDL over the merge, around its minimum")


def size_distribution(sizes: np.ndarray) -> bytes:
    def draw(ax):
        values, counts = np.unique(sizes, return_counts=True)
        ax.bar(values, counts, color="tab:blue", width=0.8)
        ax.set_xlabel("features per cluster")
        ax.set_ylabel("clusters")
        if values.size and values.max() > 50:
            ax.set_xscale("log")

    return render_png(draw, title=f"Cluster sizes ({len(sizes)} clusters)")


def cofiring_heatmap(matrix: np.ndarray, bounds: np.ndarray, names: Sequence[str]) -> bytes:
    """log(1 + co-firing) of the largest clusters' features, each cluster's block outlined."""

    def draw(ax):
        from matplotlib.patches import Rectangle

        im = ax.imshow(matrix, cmap="viridis", interpolation="nearest")
        ax.figure.colorbar(im, ax=ax, fraction=0.046, label="log(1 + co-firing count)")
        start = 0
        for end, name in zip(bounds, names):
            ax.add_patch(Rectangle((start - 0.5, start - 0.5), end - start, end - start, fill=False, edgecolor="white", lw=1.2))
            if end - start >= 3:
                ax.text(start + (end - start) / 2, start - 1, name, color="black", ha="center", va="bottom", fontsize=8)
            start = end
        ax.set_xlabel("features of the largest clusters (cluster order)")
        ax.set_ylabel("features")

    return render_png(draw, size=(7.6, 6.4), title="Co-firing of the largest clusters (outlined)")


def labelled_heatmap(matrix: np.ndarray, labels: Sequence[str], title: str, value_label: str) -> bytes:
    """A square matrix with named rows and columns and its values written in the cells."""

    def draw(ax):
        im = ax.imshow(matrix, cmap="viridis", vmin=min(0.0, float(np.nanmin(matrix))) if matrix.size else 0, vmax=1.0)
        ax.figure.colorbar(im, ax=ax, fraction=0.046, label=value_label)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color="white" if matrix[i, j] < 0.6 else "black")

    return render_png(draw, size=(7.6, 5.6), title=title)


def scatter_labelled(x: Sequence[float], y: Sequence[float], labels: Sequence[str], xlabel: str, ylabel: str, title: str) -> bytes:
    def draw(ax):
        ax.scatter(x, y, color="tab:blue")
        for xi, yi, label in zip(x, y, labels):
            ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    return render_png(draw, title=title)


def effect_vs_floor(rows: Sequence[dict], value_label: str, title: str) -> bytes:
    """Each comparison's value with its 95% interval, beside the replicate floor drawn as a band.

    rows: dicts with ``label``, ``value``, ``low``, ``high`` and optional ``floor``,
    ``floor_low``, ``floor_high`` (the within-condition agreement between replicates).
    """

    def draw(ax):
        ys = np.arange(len(rows))
        for y, row in zip(ys, rows):
            if row.get("floor") is not None:
                ax.fill_betweenx(
                    [y - 0.4, y + 0.4],
                    row["floor_low"],
                    row["floor_high"],
                    color="tab:orange",
                    alpha=0.3,
                    label="replicate floor (95% interval)" if y == 0 else None,
                )
                ax.plot([row["floor"]] * 2, [y - 0.4, y + 0.4], color="tab:orange", lw=1.5)
            lo, hi = row.get("low", row["value"]), row.get("high", row["value"])
            ax.errorbar(
                row["value"],
                y,
                xerr=[[row["value"] - lo], [hi - row["value"]]],
                fmt="o",
                color="tab:blue",
                capsize=3,
                label="between conditions (95% interval)" if y == 0 else None,
            )
        ax.set_yticks(ys, [r["label"] for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel(value_label)
        ax.axvline(0, color="gray", lw=0.6)
        handles, _names = ax.get_legend_handles_labels()
        if handles:
            ax.legend(loc="best")  # away from the points

    height = max(3.0, 0.42 * len(rows) + 1.6)
    return render_png(draw, size=(7.8, height), title=title)


def grouped_bars(groups: Sequence[str], series: dict[str, Sequence[float]], ylabel: str, title: str) -> bytes:
    def draw(ax):
        width = 0.8 / max(len(series), 1)
        for i, (name, values) in enumerate(series.items()):
            ax.bar(np.arange(len(groups)) + i * width, values, width, label=name)
        ax.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2, groups, rotation=20, ha="right")
        ax.set_ylabel(ylabel)
        ax.legend()

    return render_png(draw, title=title)


def learning_curves(series: dict[str, Sequence[dict]], target: float, ylabel: str, title: str) -> bytes:
    """One line per name of ``series``: rows with ``tokens``, ``value``, ``low``, ``high`` (the
    floor and its 95% interval at that sample size), tokens on a log scale, ``target`` dashed."""

    def draw(ax):
        for name, rows in series.items():
            xs = [r["tokens"] for r in rows]
            line = ax.plot(xs, [r["value"] for r in rows], marker="o", label=name)[0]
            ax.fill_between(xs, [r["low"] for r in rows], [r["high"] for r in rows], color=line.get_color(), alpha=0.2)
        ax.axhline(target, color="gray", ls="--", lw=1, label=f"stable: {target}")
        ax.set_xscale("log", base=2)
        ticks: list[float] = []
        for x in sorted(r["tokens"] for rows in series.values() for r in rows):
            if not ticks or x > 1.1 * ticks[-1]:  # one tick per size: the datasets' samples differ by a few tokens
                ticks.append(x)
        ax.set_xticks(ticks, [f"{x / 1e6:.3g}M" if x >= 1e6 else f"{x / 1e3:.0f}k" for x in ticks])
        ax.minorticks_off()
        ax.set_xlabel("tokens per sample (log scale)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1)
        ax.legend(loc="best")

    return render_png(draw, title=title)
