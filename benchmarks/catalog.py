"""The embedded SQLite catalog at 10k, 100k and 1M artifacts, next to montydb.

Builds catalogs of synthetic but realistic records (about 150 python packages, git
state, labels with a few ``infos``, one to three files, lineage to earlier
artifacts) and reports, side by side in one run:

- bulk insert rate (records per second, batches of 10,000 through ``insert_many``);
- median latency of an indexed query: username + datatype + creation-time range,
  newest first (the handler's default sort), limit 10;
- median latency of a query on an unindexed ``labels.infos`` key;
- median latency of ``based_on`` membership (who built on this artifact?);
- ``find()`` -> pandas DataFrame of 100,000 rows (all rows below 100k), with the
  handler's default columns: elliptio through ``AsyncHandler.find``, what users
  call; montydb through its cursor, then the same DataFrame built from the
  documents (``to_frame``), as a montydb user would.

Every latency is timed until the call returns its result; freeing the result
and collecting its garbage afterwards is not timed, for either catalog, and is
reported for the DataFrame.

montydb (MongoDB implemented in Python, on its sqlite storage) runs the same data
and queries at 10k and 100k as the anchor; install it with ``pip install montydb``
(a benchmark-only dependency). Bars: indexed query on 1M < 10 ms median,
unindexed query on 1M < 1.5 s, at least 20x faster than montydb at 100k on every
query.

Run:  python benchmarks/catalog.py [--sizes 10000,100000,1000000] [--monty 10000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from elliptio import AsyncHandler
from elliptio._catalog.sqlite import SQLiteCatalog
from elliptio._frame import plan_frame, to_frame

UTC = dt.UTC
START = dt.datetime(2024, 1, 1, tzinfo=UTC)
USERS = [f"user{i:02d}" for i in range(50)]
DATATYPES = [f"type{i}" for i in range(10)]
PROJECTS = [f"project{i:02d}" for i in range(20)]
PACKAGES = {f"package-{i:03d}": f"{i % 9}.{i % 13}.{i % 7}" for i in range(150)}
BATCH = 10_000
FRAME_ROWS = 100_000
DEFAULT_SORT = [("creation_time", -1), ("artifact_id", -1)]
REPEATS = 15


def artifact_id(n: int) -> str:
    return f"artifact_{n:08d}-0000-4000-8000-000000000000"


def record(n: int, rng: random.Random) -> dict[str, Any]:
    """One synthetic record as the handler writes it; ``n`` orders creation time."""
    created = START + dt.timedelta(seconds=n * 30, milliseconds=rng.randrange(1000))
    user = USERS[rng.randrange(len(USERS))]
    n_files = 1 + rng.randrange(3)
    relpaths = [f"data/part-{n}-{k}.csv" for k in range(n_files)]
    parents = [artifact_id(rng.randrange(n)) for _ in range(rng.randrange(4))] if n else []
    return {
        "version": 1,
        "artifact_id": artifact_id(n),
        "run_id": f"run_{n // 5:08d}",
        "creation_time": created,
        "username": user,
        "hostname": f"host{rng.randrange(20)}",
        "argv": ["train.py", "--epochs", str(rng.randrange(100))],
        "python_version": "3.11.7",
        "platform": "Linux-6.1-x86_64",
        "python_packages": PACKAGES,
        "git": {
            "commit": f"{n:040x}",
            "branch": "main",
            "dirty": rng.random() < 0.3,
            "remote": "https://github.com/org/repo",
            "diff": "",
            "diff_truncated": False,
        },
        "labels": {
            "ticket": f"AB-{rng.randrange(10_000)}",
            "project": PROJECTS[rng.randrange(len(PROJECTS))],
            "datatype": DATATYPES[rng.randrange(len(DATATYPES))],
            "dataset": f"dataset{rng.randrange(100)}",
            "description": "synthetic artifact for the catalog benchmark",
            "infos": {"seed": n, "lr": rng.choice([0.1, 0.01, 0.001]), "stage": "train"},
        },
        "files": [
            {
                "relpath": r,
                "url": f"s3://lake/2024/{user}/{r}",
                "size": rng.randrange(10**9),
                "sha256": f"{n:064x}",
            }
            for r in relpaths
        ],
        "file_relpaths": relpaths,
        "logs": [],
        "log_relpaths": [],
        "based_on": parents,
        "remote_root": f"s3://lake/2024/{user}/{artifact_id(n)}",
        "local_root": "/home/user/project",
    }


def records(size: int) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(size)
    for start in range(0, size, BATCH):
        yield [record(n, rng) for n in range(start, min(size, start + BATCH))]


def queries(size: int) -> dict[str, list[dict[str, Any]]]:
    """A few filters of each kind, chosen to match something at every size."""
    rng = random.Random(7)
    end = START + dt.timedelta(seconds=size * 30)
    indexed, unindexed, lineage = [], [], []
    for _ in range(REPEATS):
        lo = START + (end - START) * rng.random() * 0.5
        indexed.append(
            {
                "username": rng.choice(USERS),
                "labels.datatype": rng.choice(DATATYPES),
                "creation_time": {"$gte": lo, "$lt": lo + (end - START) / 2},
            }
        )
        unindexed.append({"labels.infos.seed": rng.randrange(size)})
        lineage.append({"based_on": artifact_id(rng.randrange(size // 2))})
    return {"indexed": indexed, "unindexed": unindexed, "based_on": lineage}


class Contender:
    name = ""

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    async def find(self, flt: dict[str, Any], limit: int, fields: list[str] | None) -> list[Any]:
        raise NotImplementedError

    async def frame(self, rows: int) -> Any:
        """The DataFrame of the newest ``rows`` artifacts, default columns (and
        anything else the caller should free after the timing)."""
        docs = await self.find({}, rows, ["artifact_id", *plan_frame().fields])
        return docs, to_frame(docs)

    async def close(self) -> None:
        pass


class Elliptio(Contender):
    name = "elliptio SQLite"

    def __init__(self, path: Path) -> None:
        self.catalog = SQLiteCatalog(path)
        self.handler = AsyncHandler(path.with_suffix(".store"), self.catalog)

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        await self.catalog.insert_many(docs)

    async def find(self, flt: dict[str, Any], limit: int, fields: list[str] | None) -> list[Any]:
        return await self.catalog.find(flt, sort=DEFAULT_SORT, limit=limit, fields=fields)

    async def frame(self, rows: int) -> Any:
        return await self.handler.find(max_docs=rows)

    async def close(self) -> None:
        await self.catalog.close()


class Monty(Contender):
    name = "montydb (sqlite)"

    def __init__(self, path: Path) -> None:
        from montydb import MontyClient, set_storage

        set_storage(str(path), storage="sqlite", use_bson=True)
        self.client = MontyClient(str(path))
        self.collection = self.client["bench"]["artifacts"]

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        self.collection.insert_many([dict(d) for d in docs])

    async def find(self, flt: dict[str, Any], limit: int, fields: list[str] | None) -> list[Any]:
        projection = None if fields is None else {"_id": 0, **dict.fromkeys(fields, 1)}
        cursor = self.collection.find(_naive(flt), projection).sort(DEFAULT_SORT).limit(limit)
        return list(cursor)

    async def close(self) -> None:
        self.client.close()


def _naive(value: Any) -> Any:
    """montydb decodes dates as naive UTC and cannot compare them with aware ones."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return {k: _naive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_naive(v) for v in value]
    return value


async def median_ms(
    run: Callable[[Any], Awaitable[object]], args: list[Any], freed: list[float] | None = None
) -> float:
    """Median time of ``run`` over ``args``, until it returns its result.

    Each result is freed after its timing, for every contender alike: the time
    to free what a query returned is spent when the caller drops it, not by the
    query. A full garbage collection follows, also untimed, so that no call pays
    for collecting an earlier call's garbage (montydb's results hold reference
    cycles, which only the collector frees). ``freed``, if given, receives the
    median time that freeing and collecting took.
    """
    await run(args[0])  # warm-up
    gc.collect()
    times, frees = [], []
    for arg in args:
        start = time.perf_counter()
        result = await run(arg)
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        del result
        gc.collect()
        frees.append(time.perf_counter() - start)
    if freed is not None:
        freed.append(statistics.median(frees) * 1000)
    return statistics.median(times) * 1000


async def measure(contender: Contender, size: int) -> dict[str, float]:
    start = time.perf_counter()
    for batch in records(size):
        await contender.insert_many(batch)
    result = {"insert/s": size / (time.perf_counter() - start)}
    for kind, filters in queries(size).items():
        limit = 10 if kind == "indexed" else 0
        result[kind] = await median_ms(lambda f, lim=limit: contender.find(f, lim, None), filters)
    rows = min(size, FRAME_ROWS)

    async def frame(_: object) -> Any:
        made = await contender.frame(rows)
        assert len(made if isinstance(made, pd.DataFrame) else made[1]) == rows
        return made

    freed: list[float] = []
    result["frame"] = await median_ms(frame, [None, None, None], freed)
    result["frame freed"] = freed[0]
    return result


def fmt(kind: str, value: float) -> str:
    return f"{value:,.0f}/s" if kind == "insert/s" else f"{value:,.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--monty", default="10000,100000", help="sizes to run montydb at")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    monty_sizes = {int(s) for s in args.monty.split(",") if s}
    rows: list[tuple[int, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            contenders: list[Contender] = [Elliptio(Path(tmp) / f"elliptio-{size}.db")]
            if size in monty_sizes:
                contenders.append(Monty(Path(tmp) / f"monty-{size}"))
            for contender in contenders:
                result = await measure(contender, size)
                await contender.close()
                rows.append((size, contender.name, result))
                print(
                    f"{size:>9,} {contender.name:<17} "
                    + "  ".join(f"{k}={fmt(k, v)}" for k, v in result.items()),
                    flush=True,
                )
    kinds = ["insert/s", "indexed", "unindexed", "based_on", "frame", "frame freed"]
    header = (
        "| artifacts | catalog | bulk insert | indexed query (limit 10) "
        "| unindexed labels.infos | based_on | find() -> DataFrame | freeing it |"
    )
    print()
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    for size, name, result in rows:
        cells = " | ".join(fmt(k, result[k]) for k in kinds)
        print(f"| {size:,} | {name} | {cells} |")
    by = {(size, name): result for size, name, result in rows}
    for size in sorted(monty_sizes & set(sizes)):
        ours, theirs = by[(size, Elliptio.name)], by[(size, Monty.name)]
        ratios = ", ".join(f"{k} {theirs[k] / ours[k]:,.0f}x" for k in kinds[1:-1])
        whole = (theirs["frame"] + theirs["frame freed"]) / (ours["frame"] + ours["frame freed"])
        print(f"\nfaster than montydb at {size:,}: {ratios} (frame freeing included {whole:.1f}x)")


if __name__ == "__main__":
    asyncio.run(main())
