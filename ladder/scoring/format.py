"""How numbers of a comparison are written, in one place: p-values and intervals."""

from __future__ import annotations


def p_text(p: float, compact: bool = False, digits: int = 3) -> str:
    """``p < 0.001`` below a thousandth, else ``p = 0.0123`` (``digits`` significant); ``compact`` drops the
    spaces (table cells)."""
    text = "p < 0.001" if p < 0.001 else f"p = {p:.{digits}g}"
    return text.replace(" ", "") if compact else text


def interval_text(low: float, high: float, signed: bool = False, digits: int = 3) -> str:
    """``[0.201, 0.375]``; ``signed``: ``[+0.120, -0.010]`` (differences)."""
    sign = "+" if signed else ""
    return f"[{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"
