"""The library is a guest in the user's process: it leaves process-wide state alone.

The garbage collector belongs to the program; every other thread of it would see
the collector paused while a library call runs. (``os.environ``: `test_runs`.)
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import elliptio as eio
from tests.catalog_conformance import record


async def test_find_leaves_the_garbage_collector_alone(tmp_path: Path) -> None:
    async with eio.AsyncHandler(
        storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'catalog.db'}"
    ) as h:
        await h.catalog.insert_many([record(n) for n in range(3000)])
        frozen = gc.get_freeze_count()
        seen: set[tuple[bool, int]] = set()

        # The collector's state is the process's: what this thread sees at every
        # call and return during find() is what any other thread would see then.
        def watch(frame: FrameType, event: str, arg: Any) -> None:
            seen.add((gc.isenabled(), gc.get_freeze_count()))

        sys.setprofile(watch)
        try:
            found = await h.find()
        finally:
            sys.setprofile(None)
        assert len(found) == 3000
        assert seen == {(True, frozen)}
        assert gc.isenabled()
        assert gc.get_freeze_count() == frozen
