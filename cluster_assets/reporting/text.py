"""Prompt text with its active tokens highlighted, for the UI (markdown), a terminal, or plain text."""

from __future__ import annotations

from collections.abc import Sequence

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
