"""gather_all: all or nothing, and no exception left unretrieved."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from elliptio._transfer import gather_all


async def test_results_in_order() -> None:
    async def value(n: int) -> int:
        await asyncio.sleep(0.01 * (3 - n))
        return n

    assert await gather_all(value(n) for n in range(3)) == [0, 1, 2]
    assert await gather_all([]) == []


SCRIPT = """
import asyncio, gc
from elliptio._transfer import gather_all

finished = []

async def fail(name):
    await asyncio.sleep(0)
    raise OSError(name)

async def slow():
    await asyncio.sleep(10)
    finished.append("slow")

async def main():
    try:
        await gather_all([fail("first"), fail("second")])
    except OSError as err:
        print("raised", err)
    try:
        await gather_all([fail("third"), slow()])
    except OSError as err:
        print("raised", err)
    gc.collect()
    await asyncio.sleep(0)
    print("finished", finished)

asyncio.run(main())
"""


def test_first_failure_cancels_the_rest_and_every_error_is_retrieved() -> None:
    # asyncio logs "Task exception was never retrieved" to stderr when a failed
    # task dies unobserved: a fresh interpreter shows whether any did.
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.splitlines() == ["raised first", "raised third", "finished []"]
    assert "never retrieved" not in result.stderr, result.stderr
