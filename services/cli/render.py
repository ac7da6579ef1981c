"""Output: a Rich table on a terminal, aligned plain text when piped, JSON with --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def print_json(data: Any) -> None:
    print(json.dumps(data, default=_default, indent=2))


def table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    columns = list(columns or (rows[0].keys() if rows else []))
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        shown = Table(title=title, title_justify="left")
        for column in columns:
            shown.add_column(column)
        for row in rows:
            shown.add_row(*(_plain(row.get(column)) for column in columns))
        Console().print(shown)
        return
    print(f"{title}:")
    if not rows:
        print("  (none)")
        return
    cells = [[_plain(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for line in cells:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())


def line(text: str, style: str = "") -> None:
    """One line; coloured on a terminal."""
    if style and sys.stdout.isatty():
        from rich.console import Console

        Console(highlight=False).print(text, style=style)
    else:
        print(text)
