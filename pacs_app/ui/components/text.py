"""Wording shared by the pages."""

from __future__ import annotations

from datetime import date
from typing import Any


def count_of(n: int, one: str, many: str) -> str:
    """``"1 study"``, ``"2 studies"``."""
    return f"{n} {one if n == 1 else many}"


def file_size(n: int) -> str:
    """Bytes as people read them: ``"812 B"``, ``"16 KB"``, ``"4.2 MB"``, ``"1.3 GB"``."""
    if n < 1024:
        return f"{n} B"
    for unit, scale in (("KB", 1024), ("MB", 1024**2), ("GB", 1024**3)):
        value = n / scale
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "KB" or value >= 100 else f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def optional_day(value: str, which: str) -> date | None:
    """A date input's ``YYYY-MM-DD`` value; ``None`` when empty. Raises ``ValueError`` naming
    the ``which`` date ("start", "end") when it is not a date."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"The {which} date {value!r} is not a date (YYYY-MM-DD).") from None


def audit_detail(detail: dict[str, Any] | None) -> str:
    """An audit event's detail as read on the page: ``{"instances": 12, "new_study": True}``
    to ``"instances: 12 · new study: yes"``; ``""`` when there is none."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if v is None or v == "":
            return "—"
        if isinstance(v, list | tuple):
            return ", ".join(value(x) for x in v) or "none"
        return str(v)

    return " · ".join(f"{k.replace('_', ' ')}: {value(v)}" for k, v in (detail or {}).items())
