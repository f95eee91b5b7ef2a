"""The files of an artifact by relpath: a dict whose missing key says what is there."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from ._errors import FileNotInArtifactError

__all__ = ["FileMap", "listing"]

V = TypeVar("V")

_SHOWN = 20


def listing(relpaths: Iterable[str]) -> str:
    """``'a.csv', 'b.csv'``, the first few of many with how many more there are."""
    names = sorted(relpaths)
    if not names:
        return "none"
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    more = len(names) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


class FileMap(dict[str, V]):
    """Files by relpath; ``files["missing"]`` raises `FileNotInArtifactError` (a
    `KeyError`) naming the artifact and listing the relpaths it has."""

    def __init__(self, items: Iterable[tuple[str, V]], owner: str, what: str = "file") -> None:
        super().__init__(items)
        self._owner = owner
        self._what = what

    def __missing__(self, key: str) -> V:
        shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
        raise FileNotInArtifactError(
            f"{self._owner} has no {self._what} {shown}; its {self._what}s: {listing(self)}"
        )
