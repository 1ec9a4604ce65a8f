"""A table of record rows (dicts of display strings), the shape every list page shows."""

from __future__ import annotations

from collections.abc import Sequence

import reflex as rx


def record_table(
    rows: rx.Var, columns: Sequence[tuple[str, str]], *, id: str, size: str = "2"
) -> rx.Component:
    """One row per record; ``columns`` are (header, key) pairs. No header row when every
    header is empty."""
    parts = []
    if any(header for header, _ in columns):
        parts.append(
            rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h, _ in columns]))
        )
    parts.append(
        rx.table.body(
            rx.foreach(rows, lambda r: rx.table.row(*[rx.table.cell(r[k]) for _, k in columns]))
        )
    )
    return rx.table.root(*parts, width="100%", size=size, id=id)
