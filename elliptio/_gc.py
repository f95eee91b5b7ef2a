"""Holding the cyclic garbage collector while many acyclic objects are built."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector for the block (restored after it).

    Decoding documents and building a DataFrame make millions of young objects
    that hold no cycles; each collection their allocations would trigger rescans
    them all, for nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
