"""Cached reads of one artifact file, side by side against the same moto S3 server.

Contenders, in one run, on one file (default 1 MiB) stored on a local moto server:

* warm: the file read N times (default 100) when already cached (reported as
  the median read times N): elliptio's
  ``File.read_bytes()`` (content-addressed cache, no request), s3stasher's
  ``s3open`` (a HEAD per open, then the cached copy), raw ``s3fs.cat``, and a
  plain ``open().read()`` of the same bytes from a local file (the floor any
  cache's hit pays);
* cold: one first read with an empty cache, elliptio vs raw ``s3fs.cat``
  (median of 5, each with a fresh cache folder).

Requests are counted at the server. The last line checks issue 15's goal for
warm reads: no request, and at most 2x the plain read. s3stasher is a
benchmark-only dependency (``pip install s3stasher``).

Run:  python benchmarks/cache.py [--n 100] [--size-kib 1024]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.moto_server import CountingMotoServer  # noqa: E402

BUCKET = "bench"
BAR = 2.0  # issue 15: a warm cached read within 2x of a plain local read


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="warm reads per contender")
    parser.add_argument("--size-kib", type=int, default=1024, help="file size")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log
    server = CountingMotoServer()
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="elliptio-bench-cache-"))
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        S3STASHER_CACHE_DIR=str(tmp / "s3stasher"),
        XDG_CACHE_HOME=str(tmp / "xdg-cache"),
    )
    import s3fs

    import elliptio as eio

    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    raw = s3fs.S3FileSystem(**options)
    raw.mkdir(BUCKET)
    source = tmp / "data.bin"
    source.write_bytes(os.urandom(args.size_kib * 1024))
    h = eio.Handler(
        storage=f"s3://{BUCKET}/lake",
        catalog=f"sqlite:///{tmp / 'catalog.db'}",
        storage_options=options,
    )
    art = h.upload(source)
    file = h.get(art.artifact_id).file
    key = file.url.removeprefix("s3://")

    rows: list[tuple[str, str, float, int]] = []

    def measure(name: str, kind: str, func: Callable[[], object], repeat: int) -> None:
        # The median read, times the count: robust to a busy machine's hiccups.
        server.reset_count()
        times = [timed(func) for _ in range(repeat)]
        rows.append((name, kind, statistics.median(times) * repeat, server.requests))

    # -- warm -------------------------------------------------------------------------
    file.read_bytes()  # fill elliptio's cache
    measure("elliptio File.read_bytes()", f"warm x{args.n}", file.read_bytes, args.n)

    from s3stasher import S3

    def stasher_read() -> bytes:
        with S3.s3open(file.url) as path:
            return Path(path).read_bytes()

    stasher_read()  # fill s3stasher's cache
    measure("s3stasher s3open + read", f"warm x{args.n}", stasher_read, args.n)
    measure("raw s3fs cat", f"warm x{args.n}", lambda: raw.cat_file(key), args.n)

    def plain_read() -> bytes:
        with open(source, "rb") as f:
            return f.read()

    plain_read()
    measure("plain open().read()", f"warm x{args.n}", plain_read, args.n)

    # -- cold -------------------------------------------------------------------------
    cold_elliptio: list[float] = []
    cold_requests = 0
    for trial in range(5):
        cache = eio.Handler(
            storage=f"s3://{BUCKET}/lake",
            catalog=f"sqlite:///{tmp / 'catalog.db'}",
            storage_options=options,
        )
        cache.storage.cache.root = tmp / f"cold-{trial}"  # an empty cache each time
        cold_file = cache.get(art.artifact_id).file
        server.reset_count()
        cold_elliptio.append(timed(cold_file.read_bytes))
        cold_requests = server.requests
        cache.close()
    server.reset_count()
    cold_raw = [timed(lambda: raw.cat_file(key)) for _ in range(5)]
    raw_requests = server.requests // 5
    rows.append(
        (
            "elliptio File.read_bytes()",
            "cold (median of 5)",
            statistics.median(cold_elliptio),
            cold_requests,
        )
    )
    rows.append(("raw s3fs cat", "cold (median of 5)", statistics.median(cold_raw), raw_requests))
    h.close()
    server.stop()

    print(f"one {args.size_kib} KiB artifact file on a local moto S3 server")
    print(f"{'contender':30} {'reads':20} {'seconds':>9} {'requests':>9} {'x elliptio':>11}")
    base = {kind: s for name, kind, s, _ in rows if name.startswith("elliptio")}
    for name, kind, seconds, requests in rows:
        print(f"{name:30} {kind:20} {seconds:9.4f} {requests:9d} {seconds / base[kind]:10.1f}x")
    warm = rows[0]
    plain = next(row for row in rows if row[0] == "plain open().read()")
    ratio = warm[2] / plain[2]
    verdict = "MET " if ratio <= BAR and warm[3] == 0 else "MISS"
    print(
        f"{verdict}  warm read x{args.n}: {warm[3]} requests (bar 0), "
        f"{ratio:.2f}x plain open().read() (bar <= {BAR:.0f}x)"
    )


if __name__ == "__main__":
    main()
