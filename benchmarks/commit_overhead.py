"""Commit overhead of one small artifact on the embedded default (local disk + SQLite).

Measures, in one run, the median wall time of N commits of a 1 KiB file through
``Handler.upload`` and through ``Handler.new`` (``file.write_bytes``), next to the
floor any hashing store with a catalog must pay for the same file: fsspec
``put_file`` into a fresh folder, ``hashlib.sha256`` of the file, and one SQLite
insert of the same record (the JSON of a committed artifact's
``metadata.to_document()``, into a plain table of a WAL database with elliptio's
``synchronous=NORMAL``, committed per insert). It prints each contender's
overhead and ratio to the floor, and the issue's bar (upload within 3x of the
floor). Every commit has new bytes (written into the source file before the
clock starts, for every contender alike); a last row commits bytes the store
holds already, which deduplication turns into a reference. The contenders take
turns, one commit each per round, so load drift on the machine hits them alike.

Run:  python benchmarks/commit_overhead.py [--n 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import fsspec

import elliptio as eio

BAR = 3.0  # issue 15: a 1 KiB commit within 3x of the floor


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
        fs = fsspec.filesystem("file")
        # The record the floor inserts: that of a real commit of this file.
        record = h.upload(src).metadata.to_document()
        db = sqlite3.connect(root / "floor.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE records (artifact_id TEXT PRIMARY KEY, body TEXT NOT NULL)")

        data = [payload]

        def fresh() -> None:
            data[0] = os.urandom(1024)
            src.write_bytes(data[0])

        def stored() -> None:
            src.write_bytes(payload)

        def floor() -> None:
            dest = root / "plain" / uuid.uuid4().hex
            dest.mkdir(parents=True)
            fs.put_file(str(src), str(dest / "small.bin"))
            sha256 = hashlib.sha256((dest / "small.bin").read_bytes()).hexdigest()
            doc = {**record, "artifact_id": str(uuid.uuid4())}
            doc["files"] = [{**doc["files"][0], "sha256": sha256}]
            db.execute("BEGIN")
            db.execute(
                "INSERT INTO records VALUES (?, ?)",
                (doc["artifact_id"], json.dumps(doc, default=str)),
            )
            db.execute("COMMIT")

        def upload() -> None:
            h.upload(src)

        def new() -> None:
            with h.new("small.bin") as artifact:
                artifact.file.write_bytes(data[0])

        # (name, untimed preparation, timed commit)
        contenders: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
            ("floor: put_file+sha256+insert", fresh, floor),
            ("elliptio upload()", fresh, upload),
            ("elliptio new() + write_bytes", fresh, new),
            ("elliptio upload(), bytes stored", stored, upload),
        ]
        times: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
        for _, prepare, func in contenders:
            prepare()
            func()  # warm-up: first-call costs (package scan, git, schema) are per process
        for _ in range(n):
            for name, prepare, func in contenders:
                prepare()
                start = time.perf_counter()
                func()
                times[name].append(time.perf_counter() - start)
        h.close()
        db.close()
    rows = [(name, statistics.median(ts) * 1000) for name, ts in times.items()]
    base = rows[0][1]
    print(f"median of {n} commits of one 1 KiB file, local disk + SQLite (WAL)")
    print(f"{'contender':32} {'median ms':>10} {'overhead ms':>12} {'x floor':>8}")
    for name, ms in rows:
        print(f"{name:32} {ms:10.2f} {ms - base:12.2f} {ms / base:7.1f}x")
    ratio = rows[1][1] / base
    verdict = "MET " if ratio <= BAR else "MISS"
    print(f"{verdict}  upload() of 1 KiB within {BAR:.0f}x of the floor: {ratio:.2f}x")


if __name__ == "__main__":
    main()
