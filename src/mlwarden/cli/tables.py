"""Plain-text tables for list commands (``--json`` prints JSON lines instead)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

from mlwarden.cli.context import print_json


def _cell(value: Any, width: int | None) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = "; ".join(str(v) for v in value) or "-"
    else:
        text = str(value)
    text = " ".join(text.split())  # one line per row, whatever a value holds
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def print_rows(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, int | None]], *, as_json: bool, empty: str
) -> None:
    """Print ``rows`` as JSON lines or as a table of ``columns`` (key, heading, max width or None)."""
    if as_json:
        for row in rows:
            print_json(row)
        return
    if not rows:
        typer.echo(empty)
        return
    cells = [[_cell(row.get(key), width) for key, _, width in columns] for row in rows]
    widths = [max(len(heading), *(len(r[i]) for r in cells)) for i, (_, heading, _) in enumerate(columns)]
    typer.echo("  ".join(h.ljust(w) for (_, h, _), w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
