"""Commit overhead of one small artifact on the embedded default (local disk + SQLite).

Measures, in one run, the median wall time of N commits of a 1 KiB file through
``Handler.upload`` and through ``Handler.new`` (``file.write_bytes``), next to the
bare minimum any hashing store does for the same file (``shutil.copy`` to a fresh
folder plus ``hashlib.sha256``), and prints the overhead and the ratio. Every
commit has new bytes (written into the source file first, for every contender
alike); a last row commits bytes the store holds already, which deduplication
turns into a reference.

Run:  python benchmarks/commit_overhead.py [--n 100]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import elliptio as eio


def median_ms(func: Callable[[], object], n: int) -> float:
    func()  # warm-up: first-call costs (package scan, git, schema) are per process
    times = []
    for _ in range(n):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="commits per contender")
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = root / "small.bin"
        src.write_bytes(b"x" * 1024)
        payload = src.read_bytes()
        h = eio.Handler(storage=root / "store", catalog=f"sqlite:///{root / 'catalog.db'}")

        def fresh() -> bytes:
            data = os.urandom(1024)
            src.write_bytes(data)
            return data

        def baseline() -> None:
            fresh()
            dest = root / "plain" / uuid.uuid4().hex
            dest.mkdir(parents=True)
            shutil.copy(src, dest / "small.bin")
            hashlib.sha256((dest / "small.bin").read_bytes()).hexdigest()

        def upload() -> None:
            fresh()
            h.upload(src)

        def new() -> None:
            data = fresh()
            with h.new("small.bin") as artifact:
                artifact.file.write_bytes(data)

        def upload_again() -> None:
            src.write_bytes(payload)
            h.upload(src)

        rows = [
            ("copy + sha256 (baseline)", median_ms(baseline, n)),
            ("elliptio upload()", median_ms(upload, n)),
            ("elliptio new() + write_bytes", median_ms(new, n)),
            ("elliptio upload(), bytes stored", median_ms(upload_again, n)),
        ]
        h.close()
    base = rows[0][1]
    print(f"median of {n} commits of one 1 KiB file, local disk + SQLite (WAL)")
    print(f"{'contender':32} {'median ms':>10} {'overhead ms':>12} {'ratio':>7}")
    for name, ms in rows:
        print(f"{name:32} {ms:10.2f} {ms - base:12.2f} {ms / base:7.1f}x")


if __name__ == "__main__":
    main()
