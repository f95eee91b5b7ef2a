"""Indexing sidecars against uploading with a catalog: the cost of storage-only writers.

``--n`` artifacts of one small file each are written by a writer with storage
credentials only (``catalog="none"``: files and sidecar), then indexed into an
empty SQLite catalog, once by ``reindex(prefix=<today>)`` and once by
``index_event`` with one S3-style event per sidecar (as S3 sends them to a
Lambda function). Both are compared with uploading the same artifacts through a
handler with a catalog (which writes files, sidecar and record). On local disk,
and with ``--s3`` on a moto S3 server (its own process), where events are real
S3 keys.

Run:  python benchmarks/index.py [--n 1000] [--s3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import elliptio as eio

sys.path.insert(0, str(Path(__file__).parent))

from transfer import BUCKET, moto_for_elliptio, one_file_sources


def _event(keys: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": urllib.parse.quote(key)}},
            }
            for bucket, key in keys
        ]
    }


def measure(storage: str, work: Path, sources: list[Path], s3: bool) -> dict[str, float]:
    """Seconds: upload with a catalog; write storage-only; reindex a day; index events."""
    times: dict[str, float] = {}
    with eio.Handler(storage=f"{storage}/with", catalog=f"sqlite:///{work / 'with.db'}") as h:
        start = time.perf_counter()
        for src in sources:
            h.upload(src, dedup=False)
        times["upload with a catalog"] = time.perf_counter() - start
    with eio.Handler(storage=f"{storage}/only", catalog="none") as h:
        start = time.perf_counter()
        arts = [h.upload(src, dedup=False) for src in sources]
        times["write, storage only"] = time.perf_counter() - start

    day = "{:04d}/{:02d}/{:02d}".format(*time.gmtime()[:3])
    with eio.Handler(storage=f"{storage}/only", catalog=f"sqlite:///{work / 'a.db'}") as h:
        start = time.perf_counter()
        report = h.reindex(prefix=day)
        times["reindex --prefix <day>"] = time.perf_counter() - start
        assert len(report.added) == len(sources), report
    if s3:
        keys = []
        for art in arts:
            folder = next(iter(art.files.values())).url.rsplit("/", 1)[0]
            bucket, _, key = folder.removeprefix("s3://").partition("/")
            keys.append((bucket, f"{key}/.elliptio/metadata.json"))
        with eio.Handler(storage=f"{storage}/only", catalog=f"sqlite:///{work / 'b.db'}") as h:
            start = time.perf_counter()
            for one in keys:  # one event per sidecar, as S3 sends them
                assert eio.index_event(_event([one]), h)["added"]
            times["index_event, one per sidecar"] = time.perf_counter() - start

    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="artifacts")
    parser.add_argument("--s3", action="store_true", help="also on a moto S3 server")
    args = parser.parse_args()
    os.environ.setdefault("ELLIPTIO_PROGRESS", "false")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sources = one_file_sources(work / "src", args.n)
        cases: list[tuple[str, str, bool]] = [("local disk", str(work / "store"), False)]
        moto = None
        if args.s3:
            moto = moto_for_elliptio()
            cases.append(("moto S3", f"s3://{BUCKET}/index-{uuid.uuid4().hex[:6]}", True))
        try:
            print(f"{args.n} artifacts of one {sources[0].stat().st_size}-byte file each")
            print("| store | what | s | / upload with a catalog |")
            print("|---|---|---|---|")
            for label, storage, s3 in cases:
                case = work / uuid.uuid4().hex[:6]
                case.mkdir()
                times = measure(storage, case, sources, s3)
                base = times["upload with a catalog"]
                for what, seconds in times.items():
                    print(f"| {label} | {what} | {seconds:.2f} | {seconds / base:.2f}x |")
        finally:
            if moto is not None:
                moto.stop()


if __name__ == "__main__":
    main()
