"""Long ``$in`` lists on the embedded catalog, beside pandas ``isin`` on the same records.

Builds a SQLite catalog of ``--size`` records of `benchmarks/catalog.py`'s
generator (bulk path), then times, once each (a list's first query pays for
preparing its statement, which is what a user's one query pays), ``$in`` of
``--values`` values on: the id, an ``infos`` key (integers), ``based_on`` (an
array of ids), ``username`` and ``labels.datatype`` (plain columns). Half the
values match a record where the field allows it. The floor beside each is
``isin`` on an in-memory pandas frame of the same field.

Run:  python benchmarks/in_lists.py [--size 20000] [--values 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import catalog as bench

from elliptio._catalog.sqlite import SQLiteCatalog


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--values", type=int, default=100_000)
    args = parser.parse_args()
    n = args.values
    ids = [bench.artifact_id(i) for i in range(0, 2 * n, 2)]
    lists = {
        "artifact_id": ids,
        "labels.infos.seed": list(range(0, 2 * n, 2)),
        "based_on": ids,
        "username": [*bench.USERS, *(f"nobody{i}" for i in range(n - len(bench.USERS)))],
        "labels.datatype": [*bench.DATATYPES, *(f"none{i}" for i in range(n))][:n],
    }
    rows = [doc for batch in bench.records(args.size) for doc in batch]
    frame = pd.DataFrame(
        {
            "artifact_id": [d["artifact_id"] for d in rows],
            "labels.infos.seed": [d["labels"]["infos"]["seed"] for d in rows],
            "username": [d["username"] for d in rows],
            "labels.datatype": [d["labels"]["datatype"] for d in rows],
        }
    )
    based_on = frame.assign(b=[d["based_on"] for d in rows]).explode("b")
    with tempfile.TemporaryDirectory() as tmp:
        catalog = SQLiteCatalog(Path(tmp) / "c.db")
        for batch in bench.records(args.size):
            await catalog.insert_many(batch)
        print(f"$in of {n:,} values, catalog of {args.size:,} records (seconds)")
        print("| field | SQLite find() | matches | pandas isin | x floor |")
        print("|---|---:|---:|---:|---:|")
        for field, values in lists.items():
            start = time.perf_counter()
            found = await catalog.find({field: {"$in": values}}, fields=["artifact_id"])
            took = time.perf_counter() - start
            start = time.perf_counter()
            if field == "based_on":
                based_on[based_on["b"].isin(values)]["artifact_id"].unique()
            else:
                frame[frame[field].isin(values)]
            floor = time.perf_counter() - start
            print(f"| {field} | {took:.2f} | {len(found):,} | {floor:.3f} | {took / floor:.0f}x |")
        await catalog.close()


if __name__ == "__main__":
    asyncio.run(main())
