"""Wording shared by the pages."""

from __future__ import annotations


def count_of(n: int, one: str, many: str) -> str:
    """``"1 study"``, ``"2 studies"``."""
    return f"{n} {one if n == 1 else many}"
