"""Byte counts as people read them: ``200 MB``. Pure."""

from __future__ import annotations

__all__ = ["human_size"]

_UNITS = ("kB", "MB", "GB", "TB", "PB")


def human_size(nbytes: int) -> str:
    """``nbytes`` in decimal units with three significant digits: ``1.5 kB``, ``200 MB``.

    Example: ``human_size(200_000_000) == "200 MB"``; ``human_size(512) == "512 B"``.
    """
    if nbytes < 1000:
        return f"{nbytes} B"
    value, unit = float(nbytes), "B"
    for unit in _UNITS:  # noqa: B007  # used after the loop: the unit reached
        value /= 1000
        if value < 999.5:
            break
    return f"{value:.3g} {unit}" if value < 999.5 else f"{value:.0f} {unit}"
