"""Deduplication: bytes and time saved when a dataset is saved again, mostly unchanged.

The scenario every data team has: a dataset folder (``--files`` files of about
``--size`` KB each, sizes varying as images do) is saved as version 1; then a
new version is saved in which ``--changed`` percent of the files changed and the
rest are byte for byte the same. One run measures, on one moto S3 server (its own
process) and on local disk, each a median of ``--repeat`` runs:

* v1 with deduplication (the default) and with ``dedup=False``: the cost of
  looking for duplicates when there are none;
* v2 with deduplication and with ``dedup=False``: bytes written to storage and
  wall time.

Run:  python benchmarks/dedup.py [--files 200] [--size 512] [--changed 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec

import elliptio as eio

sys.path.insert(0, str(Path(__file__).parent))
from transfer import BUCKET, CREDS, Moto

KB = 1024


def make_dataset(root: Path, files: int, size_kb: int, seed: int = 0) -> list[Path]:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        path = root / f"img_{i:05d}.bin"
        path.write_bytes(os.urandom(int(size_kb * KB * rng.uniform(0.5, 1.5))))
        paths.append(path)
    return paths


def change(paths: list[Path], percent: float, seed: int = 1) -> int:
    rng = random.Random(seed)
    chosen = rng.sample(paths, round(len(paths) * percent / 100))
    for path in chosen:
        path.write_bytes(os.urandom(path.stat().st_size))
    return len(chosen)


def stored_bytes(url: str, options: dict[str, Any]) -> int:
    fs, root = fsspec.core.url_to_fs(url, **options)
    if not fs.exists(root):
        return 0
    return sum(
        info["size"]
        for path, info in fs.find(root, detail=True).items()
        if "/.elliptio/" not in path
    )


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(
    name: str, url_for: Callable[[str], str], options: dict[str, Any], args: Any, work: Path
) -> list[tuple[str, float, float, int]]:
    """Rows of (case, dedup seconds, copy seconds, bytes written by dedup vs copy)."""
    cells: dict[str, list[float]] = {}
    written: dict[str, int] = {}
    warm = make_dataset(work / "warm", 5, 64)
    with eio.Handler(
        storage=url_for(f"{name}-warm"), catalog="memory://", storage_options=options
    ) as h:
        h.upload(warm)  # imports, provenance capture and connections, paid once
    for repeat in range(args.repeat):
        order = (True, False) if repeat % 2 == 0 else (False, True)
        for dedup in order:
            data = work / f"data-{repeat}-{dedup}"
            paths = make_dataset(data, args.files, args.size, seed=repeat)
            url = url_for(f"{name}-{repeat}-{dedup}")
            catalog = f"sqlite:///{work / f'catalog-{name}-{repeat}-{dedup}.db'}"
            with eio.Handler(storage=url, catalog=catalog, storage_options=options) as h:
                t1 = timed(lambda: h.upload(data, dedup=dedup, name="dataset"))  # noqa: B023
                after_v1 = stored_bytes(url, options)
                change(paths, args.changed, seed=repeat + 100)
                t2 = timed(lambda: h.upload(data, dedup=dedup, name="dataset"))  # noqa: B023
                after_v2 = stored_bytes(url, options)
                assert h.verify("dataset:v2").ok
            key = "dedup" if dedup else "copy"
            cells.setdefault(f"v1 {key}", []).append(t1)
            cells.setdefault(f"v2 {key}", []).append(t2)
            written[key] = after_v2 - after_v1
    med = {k: statistics.median(v) for k, v in cells.items()}
    return [
        ("v1 (nothing to deduplicate)", med["v1 dedup"], med["v1 copy"], 0),
        ("v2 (mostly unchanged)", med["v2 dedup"], med["v2 copy"], written["dedup"]),
        ("v2 bytes written by dedup=False", 0.0, 0.0, written["copy"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", type=int, default=512, help="mean file size in KB")
    parser.add_argument("--changed", type=float, default=10.0, help="percent changed in v2")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(CREDS)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    moto = Moto()
    try:
        moto.reset()
        options = {"endpoint_url": moto.endpoint, "key": "bench", "secret": "bench"}
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            stores: list[tuple[str, Callable[[str], str], dict[str, Any]]] = [
                ("s3", lambda n: f"s3://{BUCKET}/{n}", options),
                ("local", lambda n: str(work / "stores" / n), {}),
            ]
            print(
                f"{args.files} files of ~{args.size} KB; v2 changes {args.changed:g}% of them; "
                f"median of {args.repeat}"
            )
            print(f"{'store':6} {'case':32} {'dedup s':>8} {'copy s':>8} {'copy/dedup':>10}")
            for name, url_for, opts in stores:
                rows = run(name, url_for, opts, args, work)
                for case, dedup_s, copy_s, _ in rows[:2]:
                    ratio = copy_s / dedup_s if dedup_s else float("nan")
                    print(f"{name:6} {case:32} {dedup_s:8.3f} {copy_s:8.3f} {ratio:9.2f}x")
                dedup_bytes, copy_bytes = rows[1][3], rows[2][3]
                print(
                    f"{name:6} {'v2 bytes written':32} {dedup_bytes / 2**20:7.1f}M "
                    f"{copy_bytes / 2**20:7.1f}M {copy_bytes / max(dedup_bytes, 1):9.2f}x"
                )
    finally:
        moto.stop()


if __name__ == "__main__":
    main()
