"""The catalog at scale: issue 17's bars, this tree beside an earlier release, in one run.

Builds SQLite catalogs of synthetic but realistic records (about 150 python
packages, git state, labels with a few ``infos``, one to three files, lineage to
earlier artifacts) with the bulk path (``insert_many`` in batches of 10,000, one
transaction each) and reports, for this tree and for the baseline release (0.3.1
by default, its code taken from git and run in its own process):

- catalog bytes per artifact (the SQLite file, and on MongoDB the BSON of the
  stored records plus their environments, divided by the number of artifacts);
- bulk insert rate on the way to the size (the time in ``insert_many`` only,
  not making the records);
- median latency of: an equality on an ``infos`` key; a ``$regex`` on file
  names (literal, and a pattern); user + creation-time range, newest first,
  limit 100 (indexed); ``find()`` -> pandas DataFrame of 100,000 rows (all rows
  below 100k) through ``AsyncHandler.find``, what users call;
- lines of code in ``elliptio/_catalog/``.

Beside each latency is its floor: the same filter on an in-memory pandas frame
of the same records (built once, untimed), and for the DataFrame, pandas
building the same frame from documents already in memory.

Every latency is timed until the call returns its result; freeing the result and
a full garbage collection follow, untimed, for every contender alike.

Run:  python benchmarks/catalog.py [--sizes 100000,1000000] [--baseline fa13802]
      [--baseline-sizes 100000]
(0.3.1 builds 1M records at ~1,000/s, 18 minutes: it runs at the baseline sizes only.)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
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
# Records whose stored MongoDB form is measured (they are all alike in size).
MONGO_SAMPLE = 100_000


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
    out: dict[str, list[dict[str, Any]]] = {
        "infos": [],
        "regex literal": [],
        "regex pattern": [],
        "user+time": [],
    }
    for _ in range(REPEATS):
        lo = START + (end - START) * rng.random() * 0.5
        out["infos"].append({"labels.infos.seed": rng.randrange(size)})
        out["regex literal"].append({"file_relpaths": {"$regex": f"part-{rng.randrange(size)}-"}})
        out["regex pattern"].append(
            {"file_relpaths": {"$regex": f"^data/part-{rng.randrange(size)}-[0-9]\\.csv$"}}
        )
        out["user+time"].append(
            {
                "username": rng.choice(USERS),
                "creation_time": {"$gte": lo, "$lt": lo + (end - START) / 2},
            }
        )
    return out


async def median_ms(run: Callable[[Any], Awaitable[object]], args: list[Any]) -> float:
    """Median time of ``run`` over ``args``, until it returns its result; each
    result is freed and garbage collected after its timing, untimed."""
    await run(args[0])  # warm-up
    gc.collect()
    times = []
    for arg in args:
        start = time.perf_counter()
        result = await run(arg)
        times.append(time.perf_counter() - start)
        del result
        gc.collect()
    return statistics.median(times) * 1000


# -- one contender, in its own process --------------------------------------------


async def worker(size: int, path: Path) -> dict[str, float]:
    """Build a catalog of ``size`` records at ``path`` with whichever elliptio is
    first on the path, and measure it."""
    from elliptio import AsyncHandler
    from elliptio._catalog.sqlite import SQLiteCatalog

    catalog = SQLiteCatalog(path)
    inserting = 0.0  # only insert_many is timed, not making the records
    for batch in records(size):
        start = time.perf_counter()
        await catalog.insert_many(batch)
        inserting += time.perf_counter() - start
    result = {"insert/s": size / inserting}
    await catalog.close()
    result["bytes"] = file_bytes(path) / size
    result["mongo bytes"] = mongo_bytes(size)

    catalog = SQLiteCatalog(path)
    handler = AsyncHandler(path.with_suffix(".store"), catalog)
    for kind, filters in queries(size).items():
        limit = 100 if kind == "user+time" else 0
        result[kind] = await median_ms(
            lambda f, lim=limit: catalog.find(f, sort=DEFAULT_SORT, limit=lim), filters
        )
    rows = min(size, FRAME_ROWS)

    async def frame(_: object) -> Any:
        made = await handler.find(max_docs=rows)
        assert len(made) == rows
        return made

    result["frame"] = await median_ms(frame, [None, None, None])
    await catalog.close()
    return result


def file_bytes(path: Path) -> int:
    """The size of a closed SQLite catalog file, with its WAL if one is left."""
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def mongo_bytes(size: int) -> float:
    """BSON bytes per record as the MongoDB catalog stores it, its environments
    included, over the first records (they are all alike)."""
    import bson

    from elliptio._catalog import codec, mongo

    split = getattr(mongo, "environment_of", None)  # absent before environments
    n = min(size, MONGO_SAMPLE)
    total, environments = 0, {}
    for batch in records(n):
        for doc in batch:
            stored, environment = (
                split(codec.normalize(doc)) if split else (codec.normalize(doc), None)
            )
            total += len(bson.encode(stored))
            if environment is not None:
                environments[environment["_id"]] = len(bson.encode(environment))
    return (total + sum(environments.values())) / n


# -- floors: the same records in an in-memory pandas frame ---------------------------


def floors(size: int) -> dict[str, float]:
    import pandas as pd

    from elliptio._frame import to_frame

    columns: dict[str, list[Any]] = {"seed": [], "username": [], "created": [], "relpaths": []}
    docs = []
    for batch in records(size):
        for doc in batch:
            columns["seed"].append(doc["labels"]["infos"]["seed"])
            columns["username"].append(doc["username"])
            columns["created"].append(doc["creation_time"])
            columns["relpaths"].append(doc["file_relpaths"])
            if len(docs) < FRAME_ROWS:
                docs.append(doc)
    frame = pd.DataFrame(columns)
    frame["created"] = pd.to_datetime(frame["created"], utc=True)
    names = frame["relpaths"].explode()

    def timed(run: Callable[[Any], object], args: list[Any]) -> float:
        run(args[0])
        times = []
        for arg in args:
            start = time.perf_counter()
            run(arg)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000

    def user_time(flt: dict[str, Any]) -> object:
        span = flt["creation_time"]
        hit = frame[
            (frame["username"] == flt["username"])
            & (frame["created"] >= span["$gte"])
            & (frame["created"] < span["$lt"])
        ]
        return hit.sort_values("created", ascending=False).head(100)

    def regex(flt: dict[str, Any]) -> object:
        hit = names[names.str.contains(flt["file_relpaths"]["$regex"], regex=True)]
        return frame.loc[hit.index.unique()]

    wanted = queries(size)
    return {
        "infos": timed(lambda f: frame[frame["seed"] == f["labels.infos.seed"]], wanted["infos"]),
        "regex literal": timed(regex, wanted["regex literal"]),
        "regex pattern": timed(regex, wanted["regex pattern"]),
        "user+time": timed(user_time, wanted["user+time"]),
        # pandas building the handler's default frame from documents in memory
        "frame": timed(lambda _: to_frame(docs), [None, None, None]),
    }


# -- the run ---------------------------------------------------------------------


def run_worker(tree: Path, size: int, tmp: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(ROOT / "benchmarks")])}
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(size), "--db", str(tmp / f"{size}.db")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp,
    )
    if done.returncode != 0:
        raise SystemExit(f"the worker on {tree} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def catalog_lines(tree: Path) -> int:
    return sum(
        len(p.read_text().splitlines()) for p in (tree / "elliptio" / "_catalog").glob("*.py")
    )


def baseline_tree(ref: str, into: Path) -> Path:
    """The ``elliptio`` package of ``ref``, taken from git."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "elliptio"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def fmt(kind: str, value: float | None) -> str:
    if value is None:
        return "-"
    if kind == "insert/s":
        return f"{value:,.0f}/s"
    if kind in ("bytes", "mongo bytes", "lines"):
        return f"{value:,.0f}"
    return f"{value:,.1f} ms"


ROWS = [
    ("bytes", "catalog bytes per artifact (SQLite file / N)"),
    ("mongo bytes", "MongoDB: BSON of records + environments / N"),
    ("insert/s", "bulk inserts/s on the way to N (SQLite)"),
    ("infos", "equality on labels.infos.seed"),
    ("regex literal", "$regex on file names, literal ('part-123-')"),
    ("regex pattern", "$regex on file names, pattern ('^data/part-123-[0-9]\\.csv$')"),
    ("user+time", "indexed: username + time range, newest first, limit 100"),
    ("frame", "find() -> DataFrame of min(N, 100k) rows"),
]


def print_table(
    size: int,
    name: str,
    now: dict[str, float],
    old: dict[str, float] | None,
    floor: dict[str, float],
    lines: dict[str, int],
) -> None:
    print(f"| {size:,} artifacts | {name} | now | now / {name} | in-memory pandas floor |")
    print("|---|---|---|---|---|")
    for kind, what in ROWS:
        before = fmt(kind, old[kind] if old else None)
        ratio = f"{now[kind] / old[kind]:.2f}x" if old else "-"
        after, best = fmt(kind, now[kind]), fmt(kind, floor.get(kind))
        print(f"| {what} | {before} | {after} | {ratio} | {best} |")
    base = f"{lines['base']:,}" if "base" in lines else "-"
    print(f"| lines in elliptio/_catalog/ | {base} | {lines['now']:,} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument(
        "--baseline", default="fa13802", help="git ref of the baseline ('' for none)"
    )
    parser.add_argument("--baseline-sizes", default="100000")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(args.worker, args.db))))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    baseline_sizes = (
        {int(s) for s in args.baseline_sizes.split(",") if s} if args.baseline else set()
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_tree(args.baseline, Path(tmp)) if baseline_sizes else None
        lines = {"now": catalog_lines(ROOT)}
        if base is not None:
            lines["base"] = catalog_lines(base)
        print(
            f"lines in elliptio/_catalog/: now {lines['now']:,}"
            + (f", {args.baseline} {lines['base']:,}" if base is not None else ""),
            flush=True,
        )
        for size in sizes:
            work = Path(tmp) / f"run-{size}"
            work.mkdir()
            now = run_worker(ROOT, size, work)
            print(f"{size:,} now: {json.dumps(now)}", flush=True)
            old = None
            if base is not None and size in baseline_sizes:
                (work / "base").mkdir()
                old = run_worker(base, size, work / "base")
                print(f"{size:,} {args.baseline}: {json.dumps(old)}", flush=True)
            floor = floors(size)
            print(f"{size:,} floor: {json.dumps(floor)}", flush=True)
            print()
            print_table(size, args.baseline or "baseline", now, old, floor, lines)
            print(flush=True)


if __name__ == "__main__":
    main()
