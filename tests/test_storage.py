"""Storage behaviour on every filesystem (file://, memory://, s3:// over HTTP to moto).

The conformance suite of `elliptio._storage`: transfers hash in the same pass,
large files go multipart, downloads are verified, committed files are never
overwritten, bytes go in and out without temporary files, progress is drawn on
request only.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import fsspec
import pytest

import elliptio as eio
from elliptio._storage import Storage
from elliptio._sync import sync

MiB = 2**20
PART = 5 * MiB  # the smallest part S3 accepts, so a few MiB exercise multipart


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("ELLIPTIO_PART_SIZE", str(PART))
    return PART


@pytest.fixture
def blob() -> bytes:
    """Larger than two parts, not a multiple of the part size."""
    return os.urandom(2 * PART + 12345)


def _tamper(h: eio.Handler, url: str, data: bytes) -> None:
    """Replace a stored file behind elliptio's back, as a faulty disk or user would."""
    fs, path = fsspec.core.url_to_fs(url, **h.storage.options)
    if h.storage.is_local:
        os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
    fs.pipe_file(path, data)


def test_many_files_and_one_large_in_one_artifact(
    small_parts: int, handler: eio.Handler, tmp_path: Path, blob: bytes
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    contents = {f"data/f{i:03d}.bin": os.urandom(100 + i) for i in range(40)}
    for relpath, data in contents.items():
        (tmp_path / relpath).write_bytes(data)
    (folder / "large.bin").write_bytes(blob)
    contents["data/large.bin"] = blob
    art = handler.upload(folder)
    assert sorted(art.files) == sorted(contents)
    for relpath, data in contents.items():
        file = art.files[relpath]
        assert (file.size, file.sha256) == (len(data), _sha(data))
    assert art.files["data/large.bin"].read_bytes() == blob
    out = art.files["data/large.bin"].download(tmp_path / "copy.bin")
    assert out.read_bytes() == blob
    assert art.files["data/f007.bin"].read_bytes() == contents["data/f007.bin"]


def test_bytes_in_and_out_without_temporary_files(
    small_parts: int,
    handler: eio.Handler,
    blob: bytes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = tmp_path / "tmp"
    spy.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spy))
    with handler.new(["model.bin", "small.json"]) as new:
        new.files["model.bin"].write_bytes(blob)  # multipart on S3
        new.files["small.json"].write_bytes(b'{"a": 1}')
    art = handler.get(new.artifact_id)
    assert art.files["model.bin"].sha256 == _sha(blob)
    assert art.files["model.bin"].read_bytes() == blob
    assert art.files["small.json"].read_text() == '{"a": 1}'
    assert list(spy.iterdir()) == []


async def test_async_bytes_in_and_out(ahandler: eio.AsyncHandler) -> None:
    async with ahandler.new("a.bin") as new:
        await new.file.awrite_bytes(bytearray(b"abc"))
    art = await ahandler.get(new.artifact_id)
    assert await art.file.aread_bytes() == b"abc"


def test_a_file_is_written_once(handler: eio.Handler) -> None:
    with handler.new("a.txt") as new:
        new.file.write_text("one")
        with pytest.raises(eio.ElliptioError, match="written already"):
            new.file.write_text("two")
    assert handler.get(new.artifact_id).file.read_text() == "one"


def test_download_detects_corruption_and_leaves_nothing(
    handler: eio.Handler, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    art = handler.upload(data_files["test"])
    _tamper(handler, art.file.url, b"path,class\nevil,1\n")
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(eio.IntegrityError, match=r"does not match its recorded sha256") as err:
        art.file.download(target / "test.txt")
    assert "test.txt" in str(err.value)
    assert list(target.iterdir()) == []  # neither the file nor a temporary .part
    with pytest.raises(eio.IntegrityError):
        art.file.read_bytes()


def test_large_download_detects_corruption(
    small_parts: int, handler: eio.Handler, tmp_path: Path, blob: bytes
) -> None:
    source = tmp_path / "large.bin"
    source.write_bytes(blob)
    art = handler.upload(source)
    _tamper(handler, art.file.url, blob[:-1] + bytes([blob[-1] ^ 1]))  # always a change
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(eio.IntegrityError):
        art.file.download(target)
    assert list(target.iterdir()) == []


def _storage(handler: eio.Handler, part_size: int = PART) -> Storage:
    s = handler.storage
    return Storage(s.root_url, s.options, max_workers=4, part_size=part_size)


async def test_existing_paths_are_never_overwritten(
    storage_url: str, handler: eio.Handler, tmp_path: Path, blob: bytes
) -> None:
    storage = _storage(handler)
    small = tmp_path / "small.txt"
    small.write_bytes(b"first")
    large = tmp_path / "large.bin"
    large.write_bytes(blob)
    base = f"{storage.root}/exists"
    assert await storage.put_file(small, f"{base}/a") == (5, _sha(b"first"))
    assert await storage.write_bytes(f"{base}/b", b"first") == (5, _sha(b"first"))
    await storage.put_file(large, f"{base}/c")
    for attempt in (
        storage.put_file(small, f"{base}/a"),
        storage.put_file(large, f"{base}/a"),  # multipart on S3
        storage.write_bytes(f"{base}/b", b"second"),
        storage.write_bytes(f"{base}/c", blob),
    ):
        with pytest.raises(eio.ArtifactExistsError, match="exists already") as err:
            await attempt
        assert storage.url(base) in str(err.value)
    assert await storage.read_bytes(f"{base}/a") == b"first"
    assert await storage.read_bytes(f"{base}/b") == b"first"
    assert await storage.hash_file(f"{base}/c") == (len(blob), _sha(blob))
    storage.close()


def test_committed_local_files_are_read_only(
    tmp_path: Path, catalog_url: str, data_files: dict[str, Path]
) -> None:
    with eio.Handler(storage=tmp_path / "store", catalog=catalog_url) as h:
        art = h.upload(data_files["test"], logs=[data_files["train"]])
        with h.new("model.pt") as new:
            Path(new.file.url).write_text("written at the url")
    sidecar = Path(art.metadata.remote_root) / ".elliptio" / "metadata.json"
    for path in (Path(art.file.url), Path(art.logs["train.txt"].url), sidecar):
        assert stat.S_IMODE(path.stat().st_mode) & 0o222 == 0, path
    assert stat.S_IMODE(Path(new.artifact.file.url).stat().st_mode) & 0o222 == 0
    # (Writing to them would raise PermissionError, except for root, who runs CI here.)


async def test_s3_without_conditional_writes_still_refuses(
    s3_options: dict[str, Any], tmp_path: Path
) -> None:
    """Stores that answer 501 to If-None-Match get the HEAD-check fallback."""
    storage = Storage("s3://elliptio-test/fallback", s3_options, part_size=PART)
    from elliptio._s3 import S3Backend

    assert isinstance(storage.backend, S3Backend)
    storage.backend.conditional_writes = False
    local = tmp_path / "a.txt"
    local.write_bytes(b"first")
    await storage.put_file(local, "elliptio-test/fallback/a.txt")
    with pytest.raises(eio.ArtifactExistsError):
        await storage.put_file(local, "elliptio-test/fallback/a.txt")
    with pytest.raises(eio.ArtifactExistsError):
        await storage.write_bytes("elliptio-test/fallback/a.txt", b"second")
    assert await storage.read_bytes("elliptio-test/fallback/a.txt") == b"first"
    storage.close()


def test_s3_object_lock_bucket_takes_every_commit(
    s3_options: dict[str, Any], tmp_path: Path, catalog_url: str, small_parts: int, blob: bytes
) -> None:
    """docs/storage.md advises S3 Object Lock: a bucket with a default retention
    refuses a PUT that carries neither Content-MD5 nor x-amz-sdk-checksum-algorithm,
    so every write must name its checksum algorithm (small files, large ones, the
    sidecar, aliases, bytes written through `new`)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_options["endpoint_url"])
    s3.create_bucket(Bucket="locked-lake", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket="locked-lake",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    (tmp_path / "small.txt").write_text("a,b\n1,2\n")
    (tmp_path / "large.bin").write_bytes(blob)
    with eio.Handler(
        storage="s3://locked-lake/lake", catalog=catalog_url, storage_options=s3_options
    ) as h:
        art = h.upload([tmp_path / "small.txt", tmp_path / "large.bin"], name="locked")
        h.set_alias("locked:v1", "production")
        with h.new(["w.bin"]) as new:
            new.file.write_bytes(b"written")
        assert h.verify(art).ok
        assert h.get("locked:production").files["large.bin"].read_bytes() == blob
        assert h.get(new.artifact_id).file.read_bytes() == b"written"


def test_a_name_past_s3s_key_limit_is_refused_before_any_write(
    s3_options: dict[str, Any], tmp_path: Path, catalog_url: str
) -> None:
    """S3 keys hold at most 1024 bytes: a relpath within elliptio's own limit that
    passes it once below the artifact's folder is refused up front, naming it,
    rather than by S3 halfway through the upload (KeyTooLongError)."""
    folder = tmp_path / "data"
    deep = folder.joinpath(*["d" * 200] * 4)
    deep.mkdir(parents=True)
    (folder / "first.txt").write_text("first")
    (deep / ("f" * 150 + ".txt")).write_text("deep")
    with eio.Handler(
        storage="s3://elliptio-test/lake", catalog=catalog_url, storage_options=s3_options
    ) as h:
        with pytest.raises(eio.InvalidPathError, match="1024 bytes"):
            h.upload(folder)
        with pytest.raises(eio.InvalidPathError, match="1024 bytes"):
            h.new(["ok.txt", "/".join(["e" * 250] * 4) + "/f.txt"])
        fs = fsspec.filesystem("s3", **s3_options)
        assert not fs.exists("elliptio-test/lake")
        report = h.gc(grace=timedelta(0))
        assert (report.orphans, report.stale_leases) == ([], [])
    # A store root so long that the sidecar's key would not fit, whatever the
    # files are called: refused up front too (helper-90).
    root = "s3://elliptio-test/" + "/".join(["r" * 200] * 5)
    with eio.Handler(storage=root, catalog=catalog_url, storage_options=s3_options) as h:
        with pytest.raises(eio.ConfigError, match=r"storage URL .* is too long"):
            h.upload(folder / "first.txt")
        assert not fs.exists(root.removeprefix("s3://"))


def test_s3_errors_name_the_url_without_credentials(
    s3_endpoint: str, tmp_path: Path, catalog_url: str
) -> None:
    options = {"key": "AKIDSECRETKEY", "secret": "hunter2", "endpoint_url": s3_endpoint}
    with eio.Handler(
        storage="s3://no-such-bucket/lake", catalog=catalog_url, storage_options=options
    ) as h:
        local = tmp_path / "a.txt"
        local.write_text("a")
        with pytest.raises(eio.StorageError) as err:
            h.upload(local)
    message = str(err.value)
    assert "s3://no-such-bucket/lake/" in message
    assert "hunter2" not in message
    assert "AKIDSECRETKEY" not in message


def test_storage_options_reach_other_readers(
    s3_options: dict[str, Any], catalog_url: str, tmp_path: Path
) -> None:
    import pandas as pd

    with eio.Handler(
        storage="s3://elliptio-test/lake", catalog=catalog_url, storage_options=s3_options
    ) as h:
        csv = tmp_path / "t.csv"
        csv.write_text("a,b\n1,2\n")
        art = h.upload(csv)
        assert art.storage_options == s3_options
        frame = pd.read_csv(art.file.url, storage_options=art.storage_options)
        assert frame.to_dict("list") == {"a": [1], "b": [2]}
        with fsspec.open(art.file.url, "rb", **art.file.storage_options) as f:
            assert f.read() == b"a,b\n1,2\n"


def test_progress_bars_when_asked(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    storage_url: str,
    catalog_url: str,
    data_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("ELLIPTIO_PROGRESS", "true")
    with eio.Handler(storage=storage_url, catalog=catalog_url) as h:
        art = h.upload([data_files["train"], data_files["test"]])
        art.files["test.txt"].download(tmp_path / "copy.txt")
    err = capsys.readouterr().err
    assert f"upload {art.artifact_id}" in err
    assert "files" in err
    assert "2/2" in err
    assert "download test.txt" in err
    # A second download is served from the local cache (remote stores): the bar
    # still ends complete.
    with eio.Handler(storage=storage_url, catalog=catalog_url) as h:
        h.get(art.artifact_id).files["test.txt"].download(tmp_path / "again.txt")
    err = capsys.readouterr().err
    assert "download test.txt" in err
    assert "100%" in err.rsplit("\r", 1)[-1]


def test_no_progress_bars_when_not_interactive_or_off(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    handler: eio.Handler,
    data_files: dict[str, Path],
) -> None:
    handler.upload([data_files["train"], data_files["test"]])  # stderr is not a tty here
    monkeypatch.setenv("ELLIPTIO_PROGRESS", "false")
    with eio.Handler(storage=handler.storage.root_url, catalog="memory://") as h:
        h.upload(data_files["test"])
    assert capsys.readouterr().err == ""


def test_is_interactive_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from elliptio._progress import is_interactive

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    assert is_interactive()
    monkeypatch.setattr("sys.stderr", None)
    assert not is_interactive()


def _stored_whole(tmp_path: Path, data: bytes) -> None:
    """Upload ``data`` from a local file into a local store; its record and every
    read of it must be the bytes given."""
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    with eio.Handler(storage=str(tmp_path / "lake"), catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        art = h.upload(source, name="big")
        assert art.file.sha256 == _sha(data)
        assert art.file.size == len(data)
        assert h.get(art.artifact_id).file.read_bytes() == data
        assert Path(art.file.local_path()).read_bytes() == data


def _refuse(name: str, code: int) -> Any:
    def refuse(*args: Any) -> int:
        raise OSError(code, f"{name} refused")

    return refuse


@pytest.mark.parametrize(
    "kernel", ["copy_file_range", "sendfile", "user space", "sandboxed (EPERM)"]
)
def test_a_large_local_file_is_stored_and_hashed_whichever_way_it_is_copied(
    kernel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large local files are copied inside the kernel and hashed as read back from the
    store; where the kernel cannot copy between the two files (another filesystem,
    another system), the next way takes over and the record is the same."""
    import errno

    if kernel == "sandboxed (EPERM)":  # a seccomp filter's answer (helper-63)
        monkeypatch.setattr(os, "copy_file_range", _refuse("copy_file_range", errno.EPERM))
        monkeypatch.setattr(os, "sendfile", _refuse("sendfile", errno.EACCES))
    elif kernel != "copy_file_range":
        monkeypatch.setattr(os, "copy_file_range", _refuse("copy_file_range", errno.EXDEV))
    if kernel == "user space":
        monkeypatch.setattr(os, "sendfile", _refuse("sendfile", errno.EINVAL))
    _stored_whole(tmp_path, os.urandom(3 * 16 * MiB + 12345))  # steps, not a multiple


def test_a_disk_error_in_a_kernel_copy_fails_the_upload_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a kernel that cannot copy between the two files at all hands over to
    another way; a disk error mid-copy fails the upload, with nothing left."""
    import errno

    real = os.copy_file_range
    calls: list[int] = []

    def fails_second_time(src: int, dst: int, count: int, *args: Any) -> int:
        calls.append(count)
        if len(calls) == 2:
            raise OSError(errno.EIO, "disk failed")
        return real(src, dst, count, *args)

    monkeypatch.setattr(os, "copy_file_range", fails_second_time)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(40 * MiB))
    h = eio.Handler(storage=str(tmp_path / "lake"), catalog=f"sqlite:///{tmp_path / 'c.db'}")
    with h:
        with pytest.raises(eio.StorageError):
            h.upload(source, name="big")
        assert h.find({}).empty
    assert not [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]


def test_a_kernel_copy_that_stops_early_is_finished_by_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Some filesystems' kernel copies report the end before it (as /proc files
    do): the end is the one a read finds, so nothing is stored short."""
    real = os.copy_file_range
    calls: list[int] = []

    def stops_after_one(src: int, dst: int, count: int, *args: Any) -> int:
        calls.append(count)
        return real(src, dst, count, *args) if len(calls) == 1 else 0

    monkeypatch.setattr(os, "copy_file_range", stops_after_one)
    _stored_whole(tmp_path, os.urandom(20 * MiB + 7))
    assert len(calls) == 2


def test_a_source_changed_during_a_large_local_upload_is_recorded_as_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record holds the sha256 of the bytes that landed in the store, even when
    the source changes while it is copied: the artifact stays readable and verified."""
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(24 * MiB))
    real = os.copy_file_range

    def changes_source_midway(src: int, dst: int, count: int, *args: Any) -> int:
        n = real(src, dst, count, *args)
        with open(source, "r+b") as f:  # someone rewrites the tail meanwhile
            f.seek(20 * MiB)
            f.write(os.urandom(MiB))
        return n

    monkeypatch.setattr(os, "copy_file_range", changes_source_midway)
    h = eio.Handler(storage=str(tmp_path / "lake"), catalog=f"sqlite:///{tmp_path / 'c.db'}")
    with h:
        art = h.upload(source, name="big")
        stored = Path(art.file.local_path()).read_bytes()
        assert art.file.sha256 == _sha(stored)
        assert h.get(art.artifact_id).file.read_bytes() == stored
        assert h.verify(art.artifact_id).ok


def test_the_abort_of_a_failed_upload_gives_up_on_a_silent_store(
    s3_options: dict[str, Any], tmp_path: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that stopped answering holds the abort of a multipart upload no
    longer than its bound (a Ctrl-C waits for it; gc ends what it leaves), rather
    than for every read timeout and retry (helper-90: minutes)."""
    import elliptio._s3 as s3

    monkeypatch.setattr(s3, "ABORT_SECONDS", 0.2)
    with eio.Handler(
        storage="s3://elliptio-test/lake", catalog=catalog_url, storage_options=s3_options
    ) as h:
        backend = h.storage.backend
        real = backend._call

        async def silent(method: str, **kwargs: Any) -> Any:
            if method == "abort_multipart_upload":
                await asyncio.Event().wait()  # never answers
            return await real(method, **kwargs)

        monkeypatch.setattr(backend, "_call", silent)

        async def abort() -> None:
            await asyncio.wait_for(
                backend._on_fs_loop(backend._abort("elliptio-test", "lake/x", "id")), 30
            )

        sync(abort())  # returns (old: TimeoutError after 30 s)


def test_a_store_url_in_a_spelling_the_filesystem_reads_otherwise_is_named_up_front(
    storage_url: str, catalog_url: str, tmp_path: Path
) -> None:
    """A store URL with a '.' segment (or '//', or 's3:///bucket') opened, then every
    upload failed with InvalidPathError telling the user to rename their file,
    and every read of a record written through the plain URL was a
    CorruptRecordError blaming someone with write access. The URL is refused
    when the handler is made, naming the URL to give (local paths are made
    absolute and normalised, as before)."""
    head, tail = storage_url.rsplit("/", 1)
    spelled = f"{head}/./{tail}"
    local = tmp_path / "a.txt"
    local.write_bytes(b"a")
    if storage_url.startswith("/"):
        with eio.Handler(storage=spelled, catalog=catalog_url) as h:
            assert h.upload(local).file.url.startswith(storage_url + "/")
        return
    with pytest.raises(eio.ConfigError) as err:
        eio.Handler(storage=spelled, catalog=catalog_url)
    assert repr(storage_url.replace(":///", "://")) in str(err.value).replace(":///", "://")
    assert "ELLIPTIO_STORAGE_URL" in str(err.value)


class _AbsolutePathFS(fsspec.implementations.memory.MemoryFileSystem):
    """A filesystem that, as SFTP, SMB and WebHDFS do, keeps the host in its
    options and paths absolute ('sftp://host/home/me/lake' is '/home/me/lake')
    with no root marker of its own; its bytes live in memory."""

    protocol = "abspathfs"
    root_marker = ""
    store: dict[str, Any] = {}  # noqa: RUF012 (fsspec's own class attribute)
    pseudo_dirs = [""]  # noqa: RUF012

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        from fsspec.utils import infer_storage_options

        return str(infer_storage_options(path)["path"]).rstrip("/") or "/"


def test_a_store_on_a_filesystem_with_absolute_paths_opens_and_takes_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SFTP, SMB and WebHDFS a path is absolute ('/home/me/lake') while the
    filesystem has no root marker: the store check of 6efb4a2 took the leading
    '/' for a spelling of another path and refused 'sftp://host/home/me/lake',
    telling the user to give 'sftp://home/me/lake' (the host dropped); before
    it, every upload was refused as a file name to rename. The plain URL opens
    and takes uploads; a '..' segment is still refused."""
    import importlib

    registry = importlib.import_module("fsspec.registry")._registry
    monkeypatch.setitem(registry, "abspathfs", _AbsolutePathFS)
    local = tmp_path / "a.txt"
    local.write_bytes(b"abc")
    catalog = f"sqlite:///{tmp_path / 'c.db'}"
    with eio.Handler(storage="abspathfs://host/home/me/lake", catalog=catalog) as h:
        art = h.upload(local, name="a")
        assert art.file.url.startswith("abspathfs:///home/me/lake/")
        assert h.find({"name": "a"}).shape[0] == 1
        assert art.file.read_bytes() == b"abc"
    with pytest.raises(eio.ConfigError, match="ELLIPTIO_STORAGE_URL"):
        eio.Handler(storage="abspathfs://host/home/me/x/../lake", catalog=catalog)
