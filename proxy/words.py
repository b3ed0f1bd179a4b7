"""Counting things in messages: ``1 frame``, ``2 frames`` (never ``1 frames``)."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` with ``noun`` in the number it takes (thousands separated)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
