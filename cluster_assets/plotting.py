"""Render a matplotlib drawing to PNG bytes (headless), for metadata thumbnails and the report."""

from __future__ import annotations

import io
from typing import Callable


def render_png(draw: Callable, size: tuple[float, float], dpi: int = 72, title: str | None = None) -> bytes:
    """Call ``draw(ax)`` on a fresh figure and return it as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    try:
        draw(ax)
        if title:
            ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()
