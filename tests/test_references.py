"""References to existing data: artifacts whose files stay where they are.

On local disk and S3 (the moto server), with the SQLite and MongoDB
(mongomock-motor) catalogs.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest

import elliptio as eio
from elliptio._cli import main
from elliptio._layout import METADATA_RELPATH
from tests.conftest import S3_BUCKET, snapshot


@pytest.fixture(params=["sqlite", "mongomock"])
def catalog_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()["elliptio"][f"artifacts_{uuid.uuid4().hex[:8]}"]


@dataclass
class Lake:
    store: str
    raw: str  # the reference root, outside the store
    fs: fsspec.AbstractFileSystem

    def url(self, relpath: str) -> str:
        return f"{self.raw}/{relpath}"

    def put(self, relpath: str, data: bytes) -> None:
        path = self.fs._strip_protocol(self.url(relpath))
        if self.fs.exists(path):
            self.fs.rm_file(path)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(path, data)


@pytest.fixture(params=["file", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "file":
        return Lake(str(tmp_path / "store"), str(tmp_path / "raw"), fsspec.filesystem("file"))
    options = request.getfixturevalue("s3_options")
    monkeypatch = request.getfixturevalue("monkeypatch")
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(options))
    tag = uuid.uuid4().hex[:8]
    fs = fsspec.filesystem("s3", **options)
    return Lake(f"s3://{S3_BUCKET}/lake-{tag}", f"s3://{S3_BUCKET}/raw-{tag}", fs)


@pytest.fixture
def data(lake: Lake) -> dict[str, bytes]:
    files = {
        "ds/t.csv": b"a,b\n1,2\n",
        "ds/sub/img.bin": bytes(range(256)) * 10,
        "one.txt": b"one\n",
    }
    for relpath, content in files.items():
        lake.put(relpath, content)
    return files


@pytest.fixture
def h(lake: Lake, catalog_spec: Any) -> Iterator[eio.Handler]:
    handler = eio.Handler(storage=lake.store, catalog=catalog_spec, reference_roots=[lake.raw])
    yield handler
    handler.close()


def _fresh(h: eio.Handler, lake: Lake, tmp_path: Path, **kwargs: Any) -> eio.Handler:
    """Another handler on the same store and catalog, with a cache of its own."""
    import os

    os.environ["ELLIPTIO_CACHE_DIR"] = str(tmp_path / f"cache-{uuid.uuid4().hex[:6]}")
    try:
        return eio.Handler(storage=lake.store, catalog=h.catalog, **kwargs)
    finally:
        del os.environ["ELLIPTIO_CACHE_DIR"]


def test_a_reference_pins_files_where_they_lie_and_reads_them_verified(
    h: eio.Handler, lake: Lake, data: dict[str, bytes], tmp_path: Path
) -> None:
    art = h.add_reference([lake.url("ds"), lake.url("one.txt")], {"project": "p"}, name="raw")
    assert art.ref == "raw:v1"
    assert sorted(art.files) == ["ds/sub/img.bin", "ds/t.csv", "one.txt"]
    for relpath, content in data.items():
        file = art.files[relpath]
        assert file.url == lake.url(relpath)
        assert (file.size, file.sha256) == (len(content), hashlib.sha256(content).hexdigest())
        assert file.read_bytes() == content
        assert file.local_path().read_bytes() == content
        with file.open() as f:
            assert f.read() == content
    assert art.metadata.reference is not None
    assert set(art.metadata.reference) == set(data)
    if lake.store.startswith("s3://"):  # pinned by ETag where the store has one
        assert all(art.metadata.reference.values())
    # Nothing was copied: the artifact's folder holds its sidecar only.
    folder = art.metadata.remote_root
    fs, root = fsspec.core.url_to_fs(folder, **(lake.fs.storage_options))
    assert [p.rsplit("/", 2)[-2:] for p in fs.find(root)] == [METADATA_RELPATH.split("/")]

    with h.run():
        frame = pd.read_csv(art.files["ds/t.csv"].eio_url)
        with h.new("out.txt") as new:
            new.file.write_text(str(len(frame)))
    assert new.artifact.metadata.based_on == [art.artifact_id]
    assert h.get("raw:latest").artifact_id == art.artifact_id
    assert list(h.find({"file_relpaths": "one.txt"}).index) == [art.artifact_id]
    assert h.verify("raw:v1").ok
    target = art.download(tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in target) == sorted(data)


def test_a_changed_source_raises_integrity_error_naming_its_url(
    h: eio.Handler, lake: Lake, data: dict[str, bytes], tmp_path: Path
) -> None:
    art = h.add_reference(lake.url("one.txt"))
    lake.put("one.txt", b"ONE\n")  # same size, other bytes
    reader = _fresh(h, lake, tmp_path, reference_roots=[lake.raw])
    file = reader.get(art.artifact_id).file
    for read in (file.read_bytes, file.local_path, lambda: file.download(tmp_path / "x.txt")):
        with pytest.raises(eio.IntegrityError, match=lake.url("one.txt").split("/")[-1]) as err:
            read()
        assert "source changed" in str(err.value)
    assert not (tmp_path / "x.txt").exists()
    with pytest.raises(eio.IntegrityError):
        pd.read_csv(file.eio_url)
    report = reader.verify(art.artifact_id)
    assert report.damaged == ["one.txt"]


def test_reads_need_the_reference_root(
    h: eio.Handler, lake: Lake, data: dict[str, bytes], tmp_path: Path
) -> None:
    art = h.add_reference(lake.url("one.txt"))
    reader = _fresh(h, lake, tmp_path)
    with pytest.raises(eio.ConfigError, match="ELLIPTIO_REFERENCE_ROOTS"):
        reader.get(art.artifact_id).file.read_bytes()
    assert reader.find({}).shape[0] == 1  # search needs no reading


def test_bad_references_are_refused_and_nothing_is_written(
    h: eio.Handler, lake: Lake, data: dict[str, bytes], tmp_path: Path
) -> None:
    h.upload(_local(tmp_path, "seed.txt"))  # the store exists
    lake.put("other/ds", b"a file named as the folder ds\n")
    before = snapshot(h)
    elsewhere = lake.raw.replace("raw-", "elsewhere-") if "://" in lake.raw else str(tmp_path)
    cases: list[tuple[Any, type[Exception]]] = [
        (f"{elsewhere}/x.txt", eio.ConfigError),  # below no reference root
        (lake.store, eio.InvalidPathError),  # inside the store
        (lake.url("missing.txt"), eio.InputFileNotFoundError),
        ([lake.url("ds/t.csv"), lake.url("ds/t.csv")], eio.InvalidPathError),  # twice
        # "ds" and "ds/t.csv" cannot both be files of one folder: an artifact no
        # download could write (helper-76)
        ([lake.url("other/ds"), lake.url("ds")], eio.InvalidPathError),
        (123, eio.ArgumentTypeError),
        ([], eio.ArgumentTypeError),
    ]
    if lake.store.startswith("s3://"):
        cases.append(("s3://KEY:SECRET@" + lake.url("one.txt")[5:], eio.ConfigError))
        cases.append(("gs://other/x.txt", eio.InvalidPathError))  # not the store's filesystem
    for urls, error in cases:
        with pytest.raises(error) as err:
            h.add_reference(urls)
        assert "SECRET" not in str(err.value)
    with pytest.raises(eio.UsageError):
        eio.Handler(storage=lake.store, catalog="none", reference_roots=[lake.raw]).add_reference(
            lake.url("one.txt"), name="n"
        )
    assert snapshot(h) == before


def test_deleting_a_reference_and_gc_never_touch_its_sources(
    h: eio.Handler, lake: Lake, data: dict[str, bytes]
) -> None:
    art = h.add_reference(lake.url("ds"))
    report = h.delete(art.artifact_id, reason="registered by mistake")
    assert report.removed == []
    h.gc(grace=timedelta(0), delete=True)
    for relpath, content in data.items():
        assert lake.fs.cat_file(lake.fs._strip_protocol(lake.url(relpath))) == content
    with pytest.raises(eio.ArtifactDeletedError):
        h.get(art.artifact_id)


def test_reindex_restores_a_reference(
    h: eio.Handler, lake: Lake, data: dict[str, bytes], tmp_path: Path
) -> None:
    art = h.add_reference(lake.url("one.txt"), name="one")
    with eio.Handler(
        storage=lake.store, catalog=f"sqlite:///{tmp_path / 'new.db'}", reference_roots=[lake.raw]
    ) as fresh:
        assert fresh.reindex().added == [art.artifact_id]
        assert fresh.get("one:v1").file.read_bytes() == data["one.txt"]


def test_a_planted_sidecar_reads_no_file_outside_the_reference_roots(
    h: eio.Handler, lake: Lake, data: dict[str, bytes], tmp_path: Path
) -> None:
    """A storage writer turns a normal artifact's sidecar into a reference to a file
    outside the store: reindex may index it, but no read opens that file unless it
    lies below a reference root the reader allows."""
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"private")
    normal = eio.Handler(storage=lake.store, catalog="none").upload(_local(tmp_path, "a.txt"))
    sidecar = f"{normal.metadata.remote_root}/{METADATA_RELPATH}"
    fs, path = fsspec.core.url_to_fs(sidecar, **lake.fs.storage_options)
    record = json.loads(fs.cat_file(path))
    target = str(secret) if "://" not in lake.store else f"s3://{S3_BUCKET}/secret-{uuid.uuid4()}"
    if "://" in lake.store:
        lake.fs.pipe_file(target[5:], b"private")
    record["files"][0].update(url=target, sha256=hashlib.sha256(b"private").hexdigest(), size=7)
    record["reference"] = {"a.txt": ""}
    if "://" not in lake.store:
        Path(path).chmod(0o644)
    fs.pipe_file(path, json.dumps(record).encode())
    h.reindex()
    with pytest.raises(eio.ConfigError, match="reference roots"):
        h.get(normal.artifact_id).file.read_bytes()
    with pytest.raises(eio.ConfigError):
        h.verify(normal.artifact_id)


def test_cli_upload_reference(
    lake: Lake, data: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ELLIPTIO_REFERENCE_ROOTS", json.dumps([lake.raw]))
    base = ["--storage", lake.store, "--catalog", f"sqlite:///{tmp_path / 'c.db'}"]
    assert main([*base, "upload", "--reference", lake.url("ds"), "--name", "raw"]) == 0
    out = capsys.readouterr()
    artifact_id = out.out.strip()
    assert "committed as raw:v1" in out.err
    assert lake.url("ds/t.csv") in out.err
    assert main([*base, "cat", "raw:v1", "ds/t.csv"]) == 0
    assert capsys.readouterr().out == data["ds/t.csv"].decode()
    for wrong in ([], [str(tmp_path), "--reference", lake.url("ds")]):
        with pytest.raises(SystemExit) as exit_:
            main([*base, "upload", *wrong])
        assert exit_.value.code == 2
        assert "--reference" in capsys.readouterr().err
    assert artifact_id.startswith("artifact_")


def _local(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "local" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(name)
    return path


def test_pickled_filesystems_carry_the_reference_roots(
    lake: Lake, data: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker gets its elliptio:// filesystem pickled (Dask, Ray, process pools):
    the reference roots travel with it, as the store and catalog settings do."""
    import pickle
    from collections import OrderedDict

    import elliptio._protocol as protocol

    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with eio.Handler(storage=lake.store, catalog=catalog, reference_roots=[lake.raw]) as h:
        art = h.add_reference(lake.url("one.txt"))
        sent = pickle.dumps(fsspec.filesystem("elliptio"))
    # The worker's process knows no handler and has no ELLIPTIO_REFERENCE_ROOTS.
    monkeypatch.setattr(protocol, "_made", OrderedDict())
    monkeypatch.setattr(protocol, "_handlers", {})
    monkeypatch.setattr(protocol, "_by_source", {})
    monkeypatch.delenv("ELLIPTIO_REFERENCE_ROOTS", raising=False)
    worker = pickle.loads(sent)
    assert worker.cat_file(art.file.eio_url) == data["one.txt"]
    assert worker.handler.storage.reference_roots


def test_a_reference_written_before_with_files_a_and_a_slash_b_stays_readable(
    h: eio.Handler, lake: Lake, data: dict[str, bytes], tmp_path: Path
) -> None:
    """Before 0.11, add_reference refused only duplicate relpaths, so a reference
    could hold files "a" and "a/b"; the check of clashing relpaths made such a
    record unreadable for good (helper-77). It reads file by file; a download
    into one folder, which cannot hold both, says so."""
    from elliptio._layout import new_artifact_id
    from elliptio._sync import sync

    art = h.add_reference([lake.url("one.txt"), lake.url("ds/t.csv")])
    doc = art.metadata.to_document()
    aid = new_artifact_id()
    renamed = {"one.txt": "a", "t.csv": "a/b"}
    doc["files"] = [{**f, "relpath": renamed[f["relpath"]]} for f in doc["files"]]
    doc["file_relpaths"] = [renamed[r] for r in doc["file_relpaths"]]
    doc["reference"] = {renamed[k]: v for k, v in doc["reference"].items()}
    doc.update(artifact_id=aid, remote_root=doc["remote_root"].replace(art.artifact_id, aid))
    sync(h.catalog.insert(doc))
    old = h.get(aid)
    assert old.files["a"].read_bytes() == data["one.txt"]
    assert old.files["a/b"].read_bytes() == data["ds/t.csv"]
    with pytest.raises(eio.InvalidPathError, match="one by one"):
        old.download(tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # Two files of one relpath were never allowed: one would hide the other.
    doc["files"] = [{**f, "relpath": "a"} for f in doc["files"]]
    doc.update(artifact_id=new_artifact_id())
    sync(h.catalog.insert(doc))
    with pytest.raises(eio.CorruptRecordError, match="given twice"):
        h.get(doc["artifact_id"])


def test_a_folder_that_holds_the_store_is_refused_and_nothing_is_written(
    lake: Lake, data: dict[str, bytes], catalog_spec: Any, tmp_path: Path
) -> None:
    """The store lies inside the folder referenced: walking it met the store's own
    files (other artifacts' files and sidecars), and the reference committed them,
    an artifact no read could serve that blocked deleting the artifacts it swept in."""
    store = lake.url("ds/lake")
    with eio.Handler(storage=store, catalog=catalog_spec, reference_roots=[lake.raw]) as h:
        stored = h.upload(_local(tmp_path, "a.txt"), name="stored")
        before = snapshot(h)
        for folder in (lake.url("ds"), lake.url("ds") + "/"):
            with pytest.raises(eio.InvalidPathError, match="holds the store") as err:
                h.add_reference(folder, name="raw")
            assert h.storage.safe_url in str(err.value)
        assert snapshot(h) == before
        h.delete("stored:v1", reason="holds personal data")  # nothing blocks it
        with pytest.raises(eio.ArtifactDeletedError):
            h.get(stored.artifact_id)


def test_the_tombstone_of_a_reference_keeps_none_of_its_relpaths(
    h: eio.Handler, lake: Lake, data: dict[str, bytes]
) -> None:
    """A tombstone drops the files (SECURITY.md): their relpaths may be what the
    delete is for. A reference's tombstone kept them, as the keys of the ETags
    of ``metadata.reference``, in the catalog and in the sidecar."""
    from elliptio._sync import sync

    lake.put("patients/jane-doe-diagnosis.csv", b"name\nJane Doe\n")
    art = h.add_reference(lake.url("patients"))
    h.delete(art.artifact_id, reason="holds personal data")
    sidecar = f"{h.storage.path(art.metadata.remote_root)}/{METADATA_RELPATH}"
    kept = [json.dumps(sync(h.catalog.get(art.artifact_id)), default=str)]
    kept.append(h.storage.fs.cat_file(sidecar).decode())
    for text in kept:
        assert "jane-doe" not in text
        assert '"deleted"' in text
    assert h.reindex().unchanged == [art.artifact_id]
    with pytest.raises(eio.ArtifactDeletedError, match="personal data"):
        h.get(art.artifact_id)
    assert lake.fs.cat_file(lake.fs._strip_protocol(lake.url("patients/jane-doe-diagnosis.csv")))


def test_a_reference_root_itself_can_be_referenced(
    h: eio.Handler, lake: Lake, data: dict[str, bytes], tmp_path: Path
) -> None:
    """ELLIPTIO_REFERENCE_ROOTS='["s3://raw-bucket/data"]', then
    add_reference("s3://raw-bucket/data"): its files lie below the root, yet it
    was refused as lying below none, with the advice to add it to the roots."""
    top = lake.raw.rstrip("/").rpartition("/")[2]
    for url in (lake.raw, lake.raw + "/"):
        art = h.add_reference(url, name="raw")
        assert sorted(art.files) == sorted(f"{top}/{relpath}" for relpath in data)
    reader = _fresh(h, lake, tmp_path, reference_roots=[lake.raw])
    for relpath, content in data.items():
        assert reader.get("raw:v2").files[f"{top}/{relpath}"].read_bytes() == content
    # A root that is a file names nothing below it: no read could open it.
    as_root = _fresh(h, lake, tmp_path, reference_roots=[lake.url("one.txt")])
    with pytest.raises(eio.ConfigError, match="reference roots"):
        as_root.add_reference(lake.url("one.txt"))


def test_folder_markers_in_a_bucket_are_no_files_of_a_reference(
    s3_options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    catalog_spec: Any,
    tmp_path: Path,
) -> None:
    """The S3 console's "Create folder" leaves an empty object named ``folder/``:
    add_reference of a prefix holding one failed on an "empty segment" relpath."""
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    fs = fsspec.filesystem("s3", **s3_options)
    raw = f"s3://{S3_BUCKET}/raw-{uuid.uuid4().hex[:8]}"
    fs.pipe({f"{raw}/ds/a.txt": b"a", f"{raw}/ds/sub/": b"", f"{raw}/ds/sub/b.txt": b"b"})
    fs.pipe({f"{raw}/ds/empty/": b"", f"{raw}/only-markers/x/": b""})
    store = f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}"
    with eio.Handler(storage=store, catalog=catalog_spec, reference_roots=[raw]) as h:
        art = h.add_reference(f"{raw}/ds/")
        assert sorted(art.files) == ["ds/a.txt", "ds/sub/b.txt"]
        assert art.files["ds/sub/b.txt"].read_bytes() == b"b"
        before = snapshot(h)
        with pytest.raises(eio.InvalidPathError, match="without files"):
            h.add_reference(f"{raw}/only-markers")
        assert snapshot(h) == before


def test_a_reference_under_a_linked_folder_names_where_it_really_lies(
    tmp_path: Path, catalog_spec: Any
) -> None:
    """/data linked to /mnt/disk1/data: elliptio reads no reference through a link,
    but the error blamed a link "inside the store" planted by someone with write
    access to it, with no way on. It names the file's real place, which works."""
    real = tmp_path / "disk1" / "data"
    (real / "ds").mkdir(parents=True)
    (real / "ds" / "a.txt").write_bytes(b"a\n")
    (tmp_path / "data").symlink_to(real)
    linked = eio.Handler(
        storage=str(tmp_path / "lake"),
        catalog=catalog_spec,
        reference_roots=[str(tmp_path / "data")],
    )
    with linked, pytest.raises(eio.ElliptioError) as err:
        linked.add_reference(str(tmp_path / "data" / "ds"))
    assert "inside the store" not in str(err.value)
    assert str(real / "ds" / "a.txt") in str(err.value)
    with eio.Handler(
        storage=str(tmp_path / "lake"), catalog=catalog_spec, reference_roots=[str(real)]
    ) as h:
        assert h.add_reference(str(real / "ds")).file.read_bytes() == b"a\n"


def test_a_store_reached_through_a_link_references_files_beside_it(
    tmp_path: Path, catalog_spec: Any
) -> None:
    """The store at /data/lake with /data linked to /mnt/disk1/data (or /tmp to
    /private/tmp on macOS): every reference, even to a file with no link on its way,
    was refused as lying under a symbolic link, "really" lying where it was given.
    The store's own link says nothing of a file outside it."""
    real = tmp_path / "disk1" / "data"
    real.mkdir(parents=True)
    (tmp_path / "data").symlink_to(real)
    (tmp_path / "raw" / "ds").mkdir(parents=True)
    (tmp_path / "raw" / "ds" / "x.txt").write_bytes(b"x\n")
    with eio.Handler(
        storage=str(tmp_path / "data" / "lake"),
        catalog=catalog_spec,
        reference_roots=[str(tmp_path / "raw")],
    ) as h:
        one = h.add_reference(str(tmp_path / "raw" / "ds" / "x.txt"), name="one")
        folder = h.add_reference(str(tmp_path / "raw" / "ds"), name="folder")
        assert h.get("one").file.read_bytes() == b"x\n"
        assert h.get("folder").files["ds/x.txt"].read_bytes() == b"x\n"
        assert one.file.url == str(tmp_path / "raw" / "ds" / "x.txt")
        assert folder.artifact_id != one.artifact_id


def test_a_store_reached_through_a_link_is_no_reference_by_its_real_path(
    tmp_path: Path, catalog_spec: Any
) -> None:
    """The store at /data/lake with /data linked to /mnt/disk1/data: referencing
    /mnt/disk1/data (where the error for a linked reference sends the user) walked
    into the store by its real path and took in its files and sidecars, and a file
    of the store by its real path was taken too. Both are refused, as by the store's
    own path."""
    real = tmp_path / "disk1" / "data"
    real.mkdir(parents=True)
    (real / "x.txt").write_bytes(b"x\n")
    (tmp_path / "data").symlink_to(real)
    with eio.Handler(
        storage=str(tmp_path / "data" / "lake"),
        catalog=catalog_spec,
        reference_roots=[str(tmp_path / "disk1")],
    ) as h:
        stored = h.upload(_local(tmp_path, "a.txt"), name="stored")
        own = stored.file.url.replace(str(tmp_path / "data"), str(real), 1)
        assert Path(own).read_bytes() == stored.file.read_bytes()
        before = snapshot(h)
        with pytest.raises(eio.InvalidPathError, match="holds the store"):
            h.add_reference(str(real), name="raw")
        with pytest.raises(eio.InvalidPathError, match="inside the store"):
            h.add_reference(own, name="raw")
        assert snapshot(h) == before
        assert h.add_reference(str(real / "x.txt")).file.read_bytes() == b"x\n"


class _UnreachableFS(fsspec.AbstractFileSystem):
    """A synchronous filesystem a network away (as SFTP or FTP) whose server
    refuses every connection; ``exists`` is fsspec's own, which answers False
    to any error."""

    protocol = "unreachablefs"
    root_marker = ""

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        raise ConnectionRefusedError(111, "Connection refused")

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        raise ConnectionRefusedError(111, "Connection refused")


def test_a_reference_on_a_store_that_cannot_be_reached_is_no_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a filesystem whose ``exists`` answers False to every error (fsspec's
    default, kept by synchronous filesystems), add_reference to a store that
    refused the connection said the file does not exist (InputFileNotFoundError, a
    FileNotFoundError); on S3 the same is a StorageError saying to check that
    the storage is reachable. Both are that StorageError now."""
    import importlib

    registry = importlib.import_module("fsspec.registry")._registry
    monkeypatch.setitem(registry, "unreachablefs", _UnreachableFS)
    with eio.Handler(
        storage="unreachablefs://bkt/lake",
        catalog=f"sqlite:///{tmp_path / 'c.db'}",
        reference_roots=["unreachablefs://bkt/raw"],
    ) as h:
        with pytest.raises(eio.StorageError, match="check that the storage is reachable") as err:
            h.add_reference(["unreachablefs://bkt/raw/table.csv"])
        assert not isinstance(err.value, FileNotFoundError)
        assert "ConnectionRefusedError" in str(err.value)
        assert h.find({}).empty
