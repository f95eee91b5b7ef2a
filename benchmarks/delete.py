"""Deleting artifacts against uploading them: the cost of a tombstone.

``--n`` artifacts of one small file each are uploaded one after the other, then
deleted one after the other (each delete: read the record, check that no other
artifact references its files, rewrite the sidecar, replace the record, remove
the files). The ratio delete / upload is what the benchmark reports, on local
disk with the SQLite catalog and, with ``--s3``, on a moto S3 server (its own
process); ``--mongo`` adds the mongomock catalog on local disk.

Run:  python benchmarks/delete.py [--n 1000] [--s3] [--mongo]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import elliptio as eio

sys.path.insert(0, str(Path(__file__).parent))

from transfer import BUCKET, moto_for_elliptio, one_file_sources


def measure(storage: str, catalog: Any, sources: list[Path]) -> tuple[float, float]:
    """Seconds to upload every source as its own artifact, then to delete them all."""
    with eio.Handler(storage=storage, catalog=catalog) as h:
        start = time.perf_counter()
        ids = [h.upload(src, dedup=False).artifact_id for src in sources]
        uploaded = time.perf_counter() - start
        start = time.perf_counter()
        for artifact_id in ids:
            h.delete(artifact_id, reason="benchmark")
        deleted = time.perf_counter() - start
        assert h.count() == 0
        assert h.count(include_deleted=True) == len(ids)
    return uploaded, deleted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="artifacts")
    parser.add_argument("--s3", action="store_true", help="also on a moto S3 server")
    parser.add_argument("--mongo", action="store_true", help="also on the mongomock catalog")
    args = parser.parse_args()
    os.environ.setdefault("ELLIPTIO_PROGRESS", "false")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sources = one_file_sources(work / "src", args.n)
        cases: list[tuple[str, str, Any]] = [
            ("local disk + SQLite", str(work / "store"), f"sqlite:///{work / 'catalog.db'}")
        ]
        if args.mongo:
            from mongomock_motor import AsyncMongoMockClient

            collection = AsyncMongoMockClient()["bench"]["artifacts"]
            cases.append(("local disk + mongomock", str(work / "store-m"), collection))
        moto = None
        if args.s3:
            moto = moto_for_elliptio()
            cases.append(
                (
                    "moto S3 + SQLite",
                    f"s3://{BUCKET}/delete-{uuid.uuid4().hex[:6]}",
                    f"sqlite:///{work / 'catalog-s3.db'}",
                )
            )
        try:
            print(f"{args.n} artifacts of one {sources[0].stat().st_size}-byte file each")
            print("| store + catalog | upload s | delete s | delete / upload |")
            print("|---|---|---|---|")
            for label, storage, catalog in cases:
                uploaded, deleted = measure(storage, catalog, sources)
                print(f"| {label} | {uploaded:.2f} | {deleted:.2f} | {deleted / uploaded:.2f}x |")
        finally:
            if moto is not None:
                moto.stop()


if __name__ == "__main__":
    main()
