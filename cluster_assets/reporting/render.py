"""Render a matplotlib drawing to PNG bytes (headless), for metadata figures and the report."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable

#: Figures are at least this many pixels wide (readable in the UI and in the report).
WIDTH_PX = 760
DPI = 100


def render_png(draw: Callable, size: tuple[float, float] = (WIDTH_PX / DPI, 4.4), title: str | None = None) -> bytes:
    """Call ``draw(ax)`` on a fresh figure of ``size`` inches at 100 dpi; return PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(
        {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9}
    ):
        fig, ax = plt.subplots(figsize=size, dpi=DPI)
        try:
            draw(ax)
            if title:  # wrapped to the figure (about 7 characters per inch at 11 pt): long titles are not cut off
                ax.set_title(textwrap.fill(title, width=int(size[0] * 7)))
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
        finally:
            plt.close(fig)
    return buf.getvalue()
