"""Holding the cyclic garbage collector while many acyclic objects are built."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused(promote: bool = False) -> Iterator[None]:
    """Hold the cyclic garbage collector for the block (restored after it).

    Decoding documents and building a DataFrame make millions of young objects
    that hold no cycles; each collection their allocations would trigger rescans
    them all, for nothing.

    Args:
        promote: also move every tracked object to the oldest generation when
            the block ends, so that the first collection after it does not scan
            the objects just built (about 0.3 s for a DataFrame of 100,000
            records): CPython's ``gc.freeze()`` then ``gc.unfreeze()``. Nothing is
            kept from collection; young objects of other code are scanned at the
            next full collection instead of the next young one. Skipped when the
            program froze objects itself (``gc.get_freeze_count()``), so that its
            frozen objects stay frozen.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if promote and enabled and gc.get_freeze_count() == 0:
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()
