"""Text for people: prompt text with its active tokens highlighted (for the UI, a terminal, or
plain text), and tables as markdown."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

ANSI_ON, ANSI_OFF = "\x1b[1;4;33m", "\x1b[0m"  # bold, underlined, yellow


def highlight(text: str, starts: Sequence[int], ends: Sequence[int], style: str = "markdown", width: int | None = None) -> str:
    """``text`` with the character spans ``[starts[i], ends[i])`` highlighted, whitespace collapsed.

    style: ``markdown`` (**bold**), ``ansi`` (terminal colours) or ``brackets`` ([[...]]).
    ``width`` cuts the plain text at that many characters (highlights stay balanced).
    """
    on, off = {"markdown": ("**", "**"), "ansi": (ANSI_ON, ANSI_OFF), "brackets": ("[[", "]]")}[style]
    out, pos, shown = [], 0, 0
    pieces = []
    for start, end in zip(starts, ends):
        pieces += [(text[pos:start], False), (text[start:end], True)]
        pos = end
    pieces.append((text[pos:], False))
    for piece, active in pieces:
        piece = " ".join(piece.replace("\n", " ").split(" "))
        piece = piece.replace("|", "/") if style == "markdown" else piece
        if width is not None:
            piece = piece[: max(0, width - shown)]
        shown += len(piece)
        if active and piece.strip():
            stripped = piece.strip()
            lead, trail = piece[: len(piece) - len(piece.lstrip())], piece[len(piece.rstrip()) :]
            out.append(f"{lead}{on}{stripped}{off}{trail}")
        else:
            out.append(piece)
        if width is not None and shown >= width:
            out.append("…")
            break
    return " ".join("".join(out).split()) if style != "ansi" else "".join(out)


def markdown_table(frame: pl.DataFrame, width: int = 60) -> str:
    """A polars frame as a markdown table: floats to 3 significant digits, lists comma-joined,
    whitespace collapsed, ``|`` escaped, cells cut at ``width`` characters."""
    if frame.height == 0:
        return "_(no rows)_\n"

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.3g}"  # NaN shows as empty
        text = ", ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else str(v))
        text = " ".join(text.split()).replace("|", "/")
        return text if len(text) <= width else text[: width - 1] + "…"

    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in frame.iter_rows())
