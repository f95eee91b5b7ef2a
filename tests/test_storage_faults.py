"""Storage faults on S3: transient ones are retried, persistent ones fail cleanly.

Every test talks to the session's moto server through `tests.fault_proxy.FaultProxy`,
which answers some requests with 5xx, resets connections (before, during or after
the server acted on a request), or answers slowly. With transient faults the
upload or download completes and its bytes verify; with persistent ones the call
ends in a typed elliptio error naming the URL, with no secret, in bounded time,
and nothing is committed or left behind.

The handlers keep elliptio's retry mode (botocore "standard": exponential backoff
with jitter) but, through their storage options, retry twice instead of three
times and time out reads after 2 s, so a persistent fault fails in seconds.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import s3fs

import elliptio as eio
from elliptio._storage import Storage
from tests.conftest import S3_BUCKET
from tests.fault_proxy import Event, FaultProxy

MiB = 2**20
PART = 5 * MiB  # the smallest part S3 accepts
READ_TIMEOUT = 2
# moto takes any credentials; these must never show in an error message.
KEY_ID = "AKIDFAULTPROXYTEST"
SECRET = "fault-proxy-secret-Zq9xW"
# Generous: a persistent fault must fail in seconds, not hang; never a timing test.
BOUNDED = 45.0


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _options(proxy: FaultProxy) -> dict[str, Any]:
    return {
        "endpoint_url": proxy.url,
        "key": KEY_ID,
        "secret": SECRET,
        "config_kwargs": {
            "connect_timeout": 1,
            "read_timeout": READ_TIMEOUT,
            "retries": {"max_attempts": 2, "mode": "standard"},
        },
    }


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(s3_endpoint) as p:
        yield p


@pytest.fixture
def direct(s3_endpoint: str) -> s3fs.S3FileSystem:
    """The moto server without the proxy, to see what really is stored."""
    return s3fs.S3FileSystem(
        endpoint_url=s3_endpoint, key=KEY_ID, secret=SECRET, skip_instance_cache=True
    )


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("ELLIPTIO_PART_SIZE", str(PART))
    return PART


@pytest.fixture
def h(proxy: FaultProxy, tmp_path: Path) -> Iterator[eio.Handler]:
    handler = eio.Handler(
        storage=f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}",
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        storage_options=_options(proxy),
    )
    yield handler
    handler.close()


def _write(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


def _stored(direct: s3fs.S3FileSystem, h: eio.Handler | eio.AsyncHandler) -> list[str]:
    direct.invalidate_cache()
    return sorted(direct.find(h.storage.root))


def _open_uploads(direct: s3fs.S3FileSystem) -> list[Any]:
    return list(direct.call_s3("list_multipart_uploads", Bucket=S3_BUCKET).get("Uploads", []))


def _committed_ok(
    h: eio.Handler, art: eio.Artifact, files: dict[str, bytes], direct: s3fs.S3FileSystem
) -> None:
    """The artifact is committed, its records and stored bytes match ``files``."""
    assert h.count() == 1
    assert {r: f.sha256 for r, f in art.files.items()} == {r: _sha(d) for r, d in files.items()}
    assert h.verify(art.artifact_id).ok
    prefix = art.metadata.remote_root.removeprefix("s3://")
    assert _stored(direct, h) == sorted(
        [f"{prefix}/{r}" for r in files] + [f"{prefix}/.elliptio/metadata.json"]
    )


def _gets(proxy: FaultProxy, name: str) -> list[Event]:
    return [e for e in proxy.events if e.op == "GetObject" and e.path.endswith(f"/{name}")]


def _clear_error(err: BaseException, h: eio.Handler) -> str:
    message = str(err)
    assert h.storage.root_url in message
    assert "retry" in message
    for secret in (SECRET, KEY_ID):
        assert secret not in message
        assert secret not in repr(err)
    return message


def test_proxy_forwards_chunked_bodies(proxy: FaultProxy, direct: s3fs.S3FileSystem) -> None:
    # botocore sends Content-Length (with Expect: 100-continue) over http; other
    # clients stream chunked bodies, which the proxy must pass on whole.
    host, port = proxy.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    parts = [b"abc", b"defg", os.urandom(70_000)]
    path = f"/{S3_BUCKET}/chunked-{uuid.uuid4().hex[:8]}"
    conn.request("PUT", path, body=iter(parts), encode_chunked=True)
    assert conn.getresponse().status == 200
    conn.close()
    assert direct.cat_file(path.lstrip("/")) == b"".join(parts)
    assert [(e.op, e.fault) for e in proxy.events] == [("PutObject", None)]


def test_retry_options_stay_as_given(h: eio.Handler, proxy: FaultProxy, tmp_path: Path) -> None:
    # botocore rewrites its retries dict in place; other readers get the options as given.
    art = h.upload(_write(tmp_path / "in", {"a.txt": b"alpha"}))
    assert art.storage_options == _options(proxy)


# -- transient faults: the transfer completes and verifies ----------------------
def test_5xx_and_resets_on_small_puts_are_retried(
    h: eio.Handler, proxy: FaultProxy, tmp_path: Path, direct: s3fs.S3FileSystem
) -> None:
    files = {
        "a.txt": b"alpha\n" * 100,
        "b.txt": b"beta\n" * 100,
        "c.txt": b"gamma",
        "d.bin": os.urandom(300_000),
        "e.txt": b"epsilon",
    }
    proxy.add("status", "PutObject", key=r"/a\.txt$", times=2, status=503, code="SlowDown")
    proxy.add("status", "PutObject", key=r"/b\.txt$", status=500, code="InternalError")
    proxy.add("reset", "PutObject", key=r"/c\.txt$")
    proxy.add("reset_upload", "PutObject", key=r"/d\.bin$")  # halfway through the body
    proxy.add("status", "PutObject", key=r"metadata\.json$", status=503, code="SlowDown")
    proxy.add("reset", "PutObject", key=r"metadata\.json$")
    art = h.upload(_write(tmp_path / "in", files))
    assert proxy.faults == {"status": 4, "reset": 2, "reset_upload": 1}
    assert proxy.served("PutObject") >= len(files) + 1 + 7  # files, sidecar, retries
    _committed_ok(h, art, files, direct)


async def test_lost_answer_to_a_conditional_put_counts_as_written(
    proxy: FaultProxy, tmp_path: Path, direct: s3fs.S3FileSystem
) -> None:
    # S3 stores the object, the answer is lost; botocore's retry meets the stored
    # object (412 to If-None-Match), which carries this write's own token.
    files = {"a.txt": b"alpha" * 1000, "b.txt": b"beta"}
    proxy.add("drop_response", "PutObject", key=r"/a\.txt$")
    proxy.add("drop_response", "PutObject", key=r"metadata\.json$")
    async with eio.AsyncHandler(
        storage=f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}",
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        storage_options=_options(proxy),
    ) as h:
        art = await h.upload(_write(tmp_path / "in", files))
        assert proxy.faults == {"drop_response": 2}
        sent = [e.path.rsplit("/", 1)[1] for e in proxy.events if e.op == "PutObject"]
        assert sorted(sent) == ["a.txt", "a.txt", "b.txt", "metadata.json", "metadata.json"]
        assert await h.count() == 1
        assert (await h.verify(art.artifact_id)).ok
        assert await art.files["a.txt"].aread_bytes() == files["a.txt"]
        assert len(_stored(direct, h)) == 3


async def test_a_real_conflict_after_a_lost_answer_is_still_refused(
    proxy: FaultProxy, direct: s3fs.S3FileSystem
) -> None:
    # Even the very bytes being written: the object was there before this write.
    root = f"{S3_BUCKET}/conflict-{uuid.uuid4().hex[:8]}"
    direct.pipe_file(f"{root}/taken.bin", b"x" * 4096)
    storage = Storage(f"s3://{root}", _options(proxy))
    try:
        proxy.add("drop_response", "PutObject")
        with pytest.raises(eio.ArtifactExistsError, match=r"taken\.bin"):
            await storage.write_bytes(f"{root}/taken.bin", b"x" * 4096)
        assert direct.cat_file(f"{root}/taken.bin") == b"x" * 4096
        assert proxy.faults == {"drop_response": 1}  # the first 412 was lost, too
    finally:
        storage.close()


def test_multipart_upload_survives_faults_at_every_step(
    small_parts: int,
    h: eio.Handler,
    proxy: FaultProxy,
    tmp_path: Path,
    direct: s3fs.S3FileSystem,
) -> None:
    files = {"big.bin": os.urandom(2 * small_parts + 12345), "small.txt": b"small"}
    proxy.add("status", "CreateMultipartUpload", status=500, code="InternalError")
    proxy.add("status", "UploadPart", status=503, code="SlowDown")
    proxy.add("reset_upload", "UploadPart")
    proxy.add("drop_response", "UploadPart")
    proxy.add("status", "CompleteMultipartUpload", status=503, code="SlowDown")
    proxy.add("drop_response", "CompleteMultipartUpload")
    art = h.upload(_write(tmp_path / "in", files))
    assert proxy.faults == {"status": 3, "reset_upload": 1, "drop_response": 2}
    assert proxy.served("CompleteMultipartUpload") == 3
    _committed_ok(h, art, files, direct)
    assert _open_uploads(direct) == []


def test_every_third_request_failing_is_survivable(
    h: eio.Handler, proxy: FaultProxy, tmp_path: Path, direct: s3fs.S3FileSystem
) -> None:
    files = {f"f{i}.txt": f"file {i}\n".encode() * (i + 1) for i in range(5)}
    proxy.add("status", every=3, times=None, status=503, code="SlowDown")
    art = h.upload(_write(tmp_path / "in", files))
    _committed_ok(h, art, files, direct)  # verify reads every file back, faults still on
    assert proxy.faults["status"] == proxy.requests // 3 >= 4


def test_slow_answers_complete_and_timed_out_ones_are_retried(
    proxy: FaultProxy, tmp_path: Path, direct: s3fs.S3FileSystem
) -> None:
    options = _options(proxy)
    options["config_kwargs"]["read_timeout"] = 1
    h = eio.Handler(
        storage=f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}",
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        storage_options=options,
    )
    files = {"a.txt": b"alpha" * 100, "b.txt": b"beta" * 100}
    late = 2.0
    # a.txt is stored but answered after the client gave up: its retry meets it.
    proxy.add("slow", "PutObject", key=r"/a\.txt$", delay=late)
    proxy.add("slow", delay=0.2, times=None)  # everything else: slow, within the timeout
    art = h.upload(_write(tmp_path / "in", files))
    proxy.clear()
    proxy.add("slow", "GetObject", key=r"/b\.txt$", delay=late)
    assert art.files["b.txt"].read_bytes() == files["b.txt"]
    assert proxy.faults["slow"] >= 5
    assert [e.fault for e in _gets(proxy, "b.txt")] == ["slow", None]
    _committed_ok(h, art, files, direct)
    h.close()


def test_downloads_resume_after_resets_and_retry_5xx(
    small_parts: int,
    h: eio.Handler,
    proxy: FaultProxy,
    tmp_path: Path,
    direct: s3fs.S3FileSystem,
) -> None:
    files = {"big.bin": os.urandom(2 * small_parts + 777), "small.txt": b"small\n" * 500}
    art = h.upload(_write(tmp_path / "in", files))
    proxy.add("reset_download", "GetObject", key=r"/big\.bin$", times=2)
    proxy.add("status", "GetObject", key=r"/big\.bin$", status=500, code="InternalError")
    proxy.add("reset_download", "GetObject", key=r"/small\.txt$")
    proxy.add("reset", "GetObject", key=r"/small\.txt$")
    out = tmp_path / "out"
    assert art.files["big.bin"].download(out / "big.bin") == (out / "big.bin").resolve()
    assert (out / "big.bin").read_bytes() == files["big.bin"]
    assert art.files["small.txt"].read_bytes() == files["small.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["big.bin"]
    assert proxy.faults == {"reset_download": 3, "status": 1, "reset": 1}
    # A cut-off body resumes from the first byte not received, not from the start.
    first = len(files["big.bin"]) // 2
    second = first + (len(files["big.bin"]) - first) // 2
    assert [e.range for e in _gets(proxy, "big.bin")] == [
        None,
        f"bytes={first}-",
        f"bytes={second}-",  # answered 500, retried as it was
        f"bytes={second}-",
    ]
    assert [e.range for e in _gets(proxy, "small.txt")] == [
        None,
        "bytes=1500-",  # reset: retried as it was
        "bytes=1500-",
    ]
    proxy.add("reset_download", "GetObject", times=2)
    assert h.verify(art.artifact_id).ok  # re-hashing streams through the same path
    assert proxy.faults["reset_download"] == 5


# -- persistent faults: a clear error, nothing committed -------------------------
@pytest.mark.parametrize(
    ("kind", "op"),
    [("status", "PutObject"), ("reset", "PutObject"), ("reset_upload", "UploadPart")],
)
def test_persistent_upload_faults_fail_cleanly(
    kind: Any,
    op: str,
    small_parts: int,
    h: eio.Handler,
    proxy: FaultProxy,
    tmp_path: Path,
    direct: s3fs.S3FileSystem,
) -> None:
    files = {"a.txt": b"alpha", "b.txt": b"beta"}
    if op == "UploadPart":
        files["big.bin"] = os.urandom(small_parts + 1)
    paths = _write(tmp_path / "in", files)
    proxy.add(kind, op, times=None, status=500, code="InternalError")
    start = time.monotonic()
    with pytest.raises(eio.StorageError) as caught:
        h.upload(paths, labels={"project": "faults"})
    assert time.monotonic() - start < BOUNDED
    message = _clear_error(caught.value, h)
    assert any(name in message for name in files)
    assert proxy.faults[kind] >= 3  # retried before giving up
    assert h.count() == 0
    assert h.find({}).empty
    assert _stored(direct, h) == []
    assert _open_uploads(direct) == []


def test_gc_lists_and_aborts_a_multipart_upload_left_open(
    small_parts: int,
    h: eio.Handler,
    proxy: FaultProxy,
    tmp_path: Path,
    direct: s3fs.S3FileSystem,
) -> None:
    """An upload whose parts and whose abort both fail (the endpoint went away; or
    the writer was killed) leaves its parts on S3, billed and in no listing: gc
    names the open upload, and with delete aborts it."""
    paths = _write(tmp_path / "in", {"big.bin": os.urandom(2 * small_parts + 1)})
    proxy.add("status", "UploadPart", times=None, status=500, code="InternalError")
    proxy.add("status", "AbortMultipartUpload", times=None, status=500, code="InternalError")
    with pytest.raises(eio.StorageError):
        h.upload(paths)
    left = [f"s3://{S3_BUCKET}/{u['Key']}" for u in _open_uploads(direct)]
    assert len(left) == 1
    assert left[0].startswith(h.storage.root_url + "/")
    proxy.clear()
    report = h.gc(grace=timedelta(0))
    assert report.incomplete_uploads == left
    assert report.aborted_uploads == []
    assert len(_open_uploads(direct)) == 1  # a dry run aborts nothing
    report = h.gc(grace=timedelta(0), delete=True)
    assert report.aborted_uploads == left
    assert _open_uploads(direct) == []


_CTRL_C_MID_UPLOAD = """
import os, signal, sys
import elliptio as eio
from elliptio import _s3

call = _s3.S3Backend._call
parts = 0


async def interrupted(self, method, **kwargs):
    global parts
    if method == "upload_part":
        parts += 1
        if parts == 2:  # Ctrl-C while the second part is on its way
            os.kill(os.getpid(), signal.SIGINT)
    return await call(self, method, **kwargs)


_s3.S3Backend._call = interrupted
h = eio.Handler(storage=sys.argv[1], catalog=sys.argv[2])
h.upload(sys.argv[3], dedup=False)
"""


def test_ctrl_c_mid_multipart_upload_aborts_it_and_closes_the_lease(
    small_parts: int,
    s3_options: dict[str, Any],
    tmp_path: Path,
    direct: s3fs.S3FileSystem,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C during a sync upload stops it with KeyboardInterrupt only once its
    clean-up ran: the multipart upload is aborted (its parts are not left billed)
    and the writer's lease closed, rather than the process exiting under them."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(4 * small_parts))
    root = f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}"
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C_MID_UPLOAD, root, catalog, str(big)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode != 0
    assert "KeyboardInterrupt" in done.stderr
    assert "never retrieved" not in done.stderr
    assert _open_uploads(direct) == []
    with eio.Handler(storage=root, catalog=catalog, storage_options=s3_options) as h:
        report = h.gc(grace=timedelta(0))
    assert (report.orphans, report.stale_leases, report.incomplete_uploads) == ([], [], [])


@pytest.mark.parametrize("how", ["upload", "new"])
def test_persistent_fault_writing_the_sidecar_commits_nothing(
    how: str, h: eio.Handler, proxy: FaultProxy, tmp_path: Path, direct: s3fs.S3FileSystem
) -> None:
    data = os.urandom(10_000)
    proxy.add(
        "status",
        "PutObject",
        key=r"/\.elliptio/metadata\.json$",
        times=None,
        code="ServiceUnavailable",
    )
    with pytest.raises(eio.StorageError) as caught:
        if how == "upload":
            h.upload(_write(tmp_path / "in", {"model.bin": data}))
        else:
            with h.new("model.bin") as new:
                new.file.write_bytes(data)
    message = _clear_error(caught.value, h)
    assert ".elliptio/metadata.json" in message
    assert proxy.faults["status"] >= 3
    assert h.count() == 0
    assert _stored(direct, h) == []  # the files written first were discarded


@pytest.mark.parametrize("kind", ["status", "reset", "reset_download"])
def test_persistent_download_fault_leaves_no_file(
    kind: Any, h: eio.Handler, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = os.urandom(2000)
    art = h.upload(_write(tmp_path / "in", {"big.bin": data}))
    proxy.add(kind, "GetObject", times=None, status=500, code="InternalError")
    out = tmp_path / "out"
    out.mkdir()
    start = time.monotonic()
    with pytest.raises(eio.ElliptioError) as caught:
        art.files["big.bin"].download(out / "big.bin")
    assert time.monotonic() - start < BOUNDED
    assert isinstance(caught.value, eio.StorageError | eio.OfflineError)
    assert "big.bin" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert list(out.iterdir()) == []
    cache = h.storage.cache
    assert cache is not None
    assert cache.lookup(art.files["big.bin"].sha256) is None
    assert proxy.faults[kind] >= 3
    proxy.clear()  # the fault is gone: the same call now works
    assert art.files["big.bin"].download(out / "big.bin").read_bytes() == data
