"""The cost of lineage in worker processes: small artifact reads across a spawn pool.

N (default 1,000) small CSV files, each the one file of its own artifact, are read
with ``pd.read_csv(file.eio_url)`` by 2 worker processes of a
``ProcessPoolExecutor`` (spawn) on the embedded default (local disk + a SQLite
catalog file). Two modes, each on a fresh pool whose workers are started and
warmed (imports, handler, catalog connection, one read) before the clock runs:

* lineage on: the pool is started inside ``h.run()``, so the workers join the
  run, and each read of an artifact the worker has not read in the run yet is
  written to the catalog's run inputs before the bytes are handed out (what
  lets the driver's commit list every worker's reads);
* lineage off: the same pool and reads outside any run. Each worker then reads
  in its own default run, kept in its memory only, which dies with it: there is
  no switch that turns recording off, and this is what "off" means in the code.

Every artifact is new to each run, so every read of the "on" mode pays its
catalog write (the worst case; repeated reads of an artifact pay nothing more).
The modes take turns for ``--repeat`` rounds (default 3), so load drift on the
machine hits both alike; the verdict is the median of each round's on/off ratio.
After each "on" round the driver commits an artifact and checks that its
``based_on`` lists every file read.

Run:  python benchmarks/lineage_workers.py [--reads 1000] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

import elliptio as eio

BAR = 1.2  # issue 16: lineage in workers within 1.2x of the same reads without it


def _warm(barrier: Any, url: str) -> None:
    """Pool initializer: pay the first-use costs, then wait for every worker."""
    pd.read_csv(url)
    barrier.wait()


def _read(urls: list[str]) -> int:
    """The timed work of one task: read each file as a data scientist would."""
    return sum(len(pd.read_csv(url)) for url in urls)


def _round(urls: list[str], warm_url: str, workers: int, chunk: int) -> float:
    """Seconds to read ``urls`` on a fresh, warmed pool of ``workers`` spawn processes."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers + 1)
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_warm, initargs=(barrier, warm_url)
    ) as pool:
        started = [pool.submit(len, "") for _ in range(workers)]  # one process each
        barrier.wait()
        for future in started:
            future.result()
        chunks = [urls[i : i + chunk] for i in range(0, len(urls), chunk)]
        start = time.perf_counter()
        rows = sum(pool.map(_read, chunks))
        elapsed = time.perf_counter() - start
    if rows != len(urls):
        raise SystemExit(f"read {rows} rows from {len(urls)} one-row files")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=1000, help="files read per round")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per mode")
    parser.add_argument("--chunk", type=int, default=25, help="files per pool task")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # The benchmark's own process: its settings, which the workers inherit.
        os.environ["ELLIPTIO_STORAGE_URL"] = str(root / "store")
        os.environ["ELLIPTIO_CATALOG_URL"] = f"sqlite:///{root / 'catalog.db'}"
        os.environ["ELLIPTIO_CACHE_DIR"] = str(root / "cache")
        os.environ["ELLIPTIO_PROGRESS"] = "false"
        h = eio.Handler()
        src = root / "small.csv"
        urls = []
        for i in range(args.reads + 1):
            src.write_text(f"i,name\n{i},row-{i}\n")
            urls.append(h.upload(src).file.eio_url)
        warm_url = urls.pop()
        out = root / "out.txt"
        out.write_text("made from what the workers read")
        times: dict[str, list[float]] = {"lineage off": [], "lineage on": []}
        for _ in range(args.repeat):
            for mode in times:
                if mode == "lineage off":
                    times[mode].append(_round(urls, warm_url, args.workers, args.chunk))
                    continue
                with h.run():
                    times[mode].append(_round(urls, warm_url, args.workers, args.chunk))
                    based_on = h.upload(out).metadata.based_on
                if set(based_on) != {u.split("/")[2] for u in [*urls, warm_url]}:
                    raise SystemExit(f"the commit lists {len(based_on)} inputs, not all reads")
        h.close()
    off, on = (statistics.median(times[mode]) for mode in times)
    print(
        f"{args.reads} reads of one-row CSV artifacts (pd.read_csv on eio_url), "
        f"{args.workers} spawn workers, local disk + SQLite, median of {args.repeat}"
    )
    print(f"{'mode':12} {'median s':>9} {'ms/read':>8} {'x off':>6}")
    for mode, seconds in (("lineage off", off), ("lineage on", on)):
        print(f"{mode:12} {seconds:9.3f} {seconds / args.reads * 1000:8.3f} {seconds / off:5.2f}x")
    paired = [b / a for a, b in zip(times["lineage off"], times["lineage on"], strict=True)]
    print("on/off per round: " + " ".join(f"{r:.2f}" for r in paired))
    ratio = statistics.median(paired)  # neighbours in time: load drift cancels best
    verdict = "MET " if ratio <= BAR else "MISS"
    goal = f"lineage in {args.workers} workers within {BAR}x of lineage off"
    print(f"{verdict}  {goal}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
