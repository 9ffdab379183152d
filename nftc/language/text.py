"""Plain-text layout every stage prints with: aligned columns, and how much of a long list a message shows.

In the language package, the leftmost one, only so that every package may import it; it imports nothing.
"""

from __future__ import annotations

from typing import Iterable, Sequence

MAX_SHOWN = 20  # items of a long list in a message (diagnostics, discarded lines): the first ones, then a count


def columns(rows: Iterable[Sequence[object]]) -> str:
    """Rows (the header first) as lines of left-aligned columns two spaces apart, without trailing spaces."""
    table = [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)
