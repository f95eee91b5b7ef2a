"""The web UI on large SQLite catalogs: time to the first page and to search pages.

Builds a catalog of synthetic records (benchmarks/catalog.py's generator), starts
the UI with ``Handler.ui()`` and fetches pages over real HTTP, as a browser would:

- start: ``Handler(...)`` and ``h.ui()`` until the server answers;
- first page: the first search page (newest 50) right after start, cold;
- then the median of repeated fetches of: the first page warm, an indexed quick
  filter (user + datatype), a deep page (page 20 of a project), sorted by user,
  an unindexed ``labels.infos`` filter, free text over file names and
  descriptions (an unindexed regex), an artifact page and a lineage view.

Run:  python benchmarks/ui.py [--sizes 10000,1000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from catalog import artifact_id, records

import elliptio as eio
from elliptio._catalog.sqlite import SQLiteCatalog


async def build(path: Path, size: int) -> None:
    catalog = SQLiteCatalog(path)
    for batch in records(size):
        await catalog.insert_many(batch)
    await catalog.close()


def fetch(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as answer:
        body = answer.read()
        assert answer.status == 200, (url, answer.status)
    elapsed = time.perf_counter() - start
    assert b"Traceback" not in body
    return elapsed * 1000


def pages(size: int) -> dict[str, str]:
    middle = artifact_id(size // 2)
    seed = json.dumps({"labels.infos.seed": size // 3})
    return {
        "first page (warm)": "",
        "user + datatype": "?user=user07&datatype=type3",
        "page 20 of a project": "?project=project05&page=20",
        "sorted by user": "?sort=user&dir=asc",
        "labels.infos filter": "?" + urllib.parse.urlencode({"q": seed}),
        "free text": "?text=part-4242-",
        "artifact page": f"a/{middle}",
        "lineage, depth 2": f"lineage/{middle}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            path = Path(tmp) / f"ui-{size}.db"
            start = time.perf_counter()
            asyncio.run(build(path, size))
            print(f"{size:,} records built in {time.perf_counter() - start:.1f} s", flush=True)
            start = time.perf_counter()
            h = eio.Handler(storage=Path(tmp) / "store", catalog=f"sqlite:///{path}")
            server = h.ui()
            started = (time.perf_counter() - start) * 1000
            try:
                result = {"start": started, "first page (cold)": fetch(server.url)}
                for name, tail in pages(size).items():
                    times = [fetch(server.url + tail) for _ in range(args.repeat)]
                    result[name] = statistics.median(times)
            finally:
                server.stop()
                h.close()
            print(f"{size:>9,} " + "  ".join(f"{k}={v:,.1f} ms" for k, v in result.items()))
            rows.append((size, result))
    print()
    print("| page | " + " | ".join(f"{size:,} artifacts" for size, _ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name in rows[0][1]:
        print(f"| {name} | " + " | ".join(f"{r[name]:,.1f} ms" for _, r in rows) + " |")


if __name__ == "__main__":
    main()
