"""Nothing read back from the catalog or storage is trusted, on every store and read path.

Each test plays someone with write access to a shared catalog or to the store
(SECURITY.md, "Who can make elliptio do what") or a damaged disk, through the
public API and the CLI, on local disk, in memory and on S3 over HTTP (moto).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow.dataset as ds
import pytest

import elliptio as eio
from elliptio._layout import METADATA_RELPATH, artifact_prefix, new_artifact_id
from elliptio._models import Metadata
from elliptio._protocol import ElliptioFileSystem
from elliptio._sync import sync
from tests.conftest import S3_BUCKET, count_delivered, snapshot

ROOT = Path(__file__).resolve().parent.parent
GOOD = b"path,class\n/a.png,0\n/b.png,1\n"
BAD = b"path,class\n/a.png,1\n/b.png,0\n"  # same size, other bytes


def _fs(h: eio.Handler) -> Any:
    return h.storage.fs


def _outside(h: eio.Handler, tmp_path: Path) -> tuple[str, str]:
    """A file outside the store's root holding GOOD: (its storage path, its URL)."""
    if h.storage.is_local:
        target = tmp_path / "outside" / "secret.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(GOOD)
        return str(target), str(target)
    path = h.storage.root.rsplit("/", 1)[0] + "/outside-store/secret.csv"
    _fs(h).pipe_file(path, GOOD)
    return path, h.storage.url(path)


def _tamper(h: eio.Handler, url: str, data: bytes) -> None:
    """Replace a stored file behind elliptio's back, as a faulty disk or a user would."""
    path = h.storage.path(url)
    if h.storage.is_local:
        os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
        Path(path).write_bytes(data)
    else:
        _fs(h).pipe_file(path, data)


def _upload_good(h: eio.Handler, tmp_path: Path, **kwargs: Any) -> eio.Artifact:
    """Commit one file holding GOOD (``table.csv``, also left at ``tmp_path``)."""
    src = tmp_path / "table.csv"
    src.write_bytes(GOOD)
    return h.upload(src, **kwargs)


def _unsealed(art: eio.Artifact) -> Path:
    """The stored file of a local artifact, gone, its folder writable: for a plant."""
    stored = Path(art.file.url)
    os.chmod(stored.parent, 0o755)
    stored.unlink()
    return stored


def _export_settings(h: eio.Handler, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the ELLIPTIO_* settings at ``h``'s store and catalog, as the URL tools
    and elliptio:// read them."""
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", h.storage.root_url)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", h.aio.settings.resolved_catalog_url())
    if h.storage.options:
        monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(h.storage.options))


def _read(tools: Any, url: str) -> bytes:
    """What the URL tools ``tools`` (``eio`` or ``h.urls``) read at ``url``."""
    with tools.open(url) as f:
        return f.read()  # type: ignore[no-any-return]


def _cli_cat_refuses(h: eio.Handler, tmp_path: Path, url: str, needle: str) -> None:
    """`elliptio cat URL` in another process fails naming ``needle``, printing none
    of the tampered bytes (a store in memory cannot be reached from there)."""
    if h.storage.root_url.startswith("memory://"):
        return
    h.close()
    out = _cli(h, tmp_path, "cat", url)
    assert out.returncode == 1
    assert needle in out.stderr
    assert BAD.decode() not in out.stdout


def _cli(h: eio.Handler, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if h.storage.root_url.startswith("memory://"):
        pytest.skip("an in-memory store lives in one process; the CLI runs in another")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ELLIPTIO_STORAGE_URL": h.storage.root_url,
        "ELLIPTIO_CATALOG_URL": h.aio.settings.resolved_catalog_url(),
    }
    return subprocess.run(
        [sys.executable, "-m", "elliptio", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


# -- 1. gc acts only on folders the layout gives -----------------------------------
def test_gc_never_removes_a_folder_a_lease_names_outside_the_store(
    handler: eio.Handler, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    kept = handler.upload(data_files["test"])
    outside_path, _ = _outside(handler, tmp_path)
    outside_folder = outside_path.rsplit("/", 1)[0]
    old = datetime.now(tz=UTC) - timedelta(days=3)
    escape = f"{handler.storage.root}/../{outside_folder.rsplit('/', 1)[1]}"
    sync(handler.catalog.open_lease(new_artifact_id(), escape, old))
    with pytest.raises(eio.CorruptRecordError, match="lease"):
        handler.gc(grace=timedelta(0), delete=True)
    assert _fs(handler).cat_file(outside_path) == GOOD
    assert handler.get(kept.artifact_id).file.read_bytes() == data_files["test"].read_bytes()


def test_gc_never_removes_a_committed_artifact_named_by_a_lease(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    victim = handler.upload(data_files["test"])
    prefix = handler.storage.path(victim.metadata.remote_root)
    old = datetime.now(tz=UTC) - timedelta(days=3)
    # A lease under another id naming the victim's folder, and one under its own id.
    sync(handler.catalog.open_lease(new_artifact_id(), prefix, old))
    with pytest.raises(eio.CorruptRecordError, match="not that artifact's own folder"):
        handler.gc(grace=timedelta(0), delete=True)
    sync(handler.catalog.close_lease(victim.artifact_id))
    sync(handler.catalog.open_lease(victim.artifact_id, prefix, old))
    future = datetime.now(tz=UTC) + timedelta(days=30)
    from elliptio._maintenance import gc

    with pytest.raises(eio.CorruptRecordError):  # the planted foreign lease is still there
        sync(gc(handler.storage, handler.catalog, delete=True, now=future))
    assert handler.get(victim.artifact_id).file.read_bytes() == data_files["test"].read_bytes()
    assert handler.verify(victim.artifact_id).ok


def test_gc_cli_reports_a_corrupt_lease_in_one_line(
    handler: eio.Handler, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    handler.upload(data_files["test"])
    old = datetime.now(tz=UTC) - timedelta(days=3)
    sync(handler.catalog.open_lease(new_artifact_id(), f"{handler.storage.root}/../x/y", old))
    handler.close()
    out = _cli(handler, tmp_path, "gc", "--grace-hours", "0", "--delete", "--yes")
    assert out.returncode == 1
    assert "CorruptRecordError" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
def test_a_malformed_planted_lease_stops_gc_with_corrupt_record_error(
    backend: str, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """A planted lease missing a field, or holding one of another type, made gc
    raise a raw KeyError, AttributeError or TypeError on MongoDB (and a
    start time that is no date, a raw ValueError on SQLite) (helper-73)."""
    import sqlite3

    from mongomock_motor import AsyncMongoMockClient

    old = datetime(2020, 1, 1, tzinfo=UTC)
    catalog: Any = (
        f"sqlite:///{tmp_path / 'c.db'}" if backend == "sqlite" else AsyncMongoMockClient()
    )
    planted: list[dict[str, Any]] = [
        {"artifact_id": new_artifact_id(), "started": old, "prefix": "x", "state": "gone"},
    ]
    if backend == "sqlite":  # a text that sorts as old but is no date
        planted.append(
            {
                "artifact_id": new_artifact_id(),
                "started": "2020-13-45",
                "prefix": "x",
                "state": "open",
            }
        )
    else:
        planted += [
            {"artifact_id": new_artifact_id(), "started": old, "state": "open"},
            {"started": old, "prefix": "x", "state": "open"},
            {"artifact_id": new_artifact_id(), "started": old, "prefix": 5, "state": "open"},
        ]
    with eio.Handler(storage=tmp_path / "store", catalog=catalog) as h:
        h.upload(data_files["test"])
        for doc in planted:
            if backend == "sqlite":
                with sqlite3.connect(tmp_path / "c.db") as conn:
                    conn.execute("DELETE FROM leases")
                    started = doc["started"]
                    row = (doc["artifact_id"], doc["prefix"], str(started), doc["state"])
                    conn.execute("INSERT INTO leases VALUES (?, ?, ?, ?)", row)
                conn.close()
            else:
                leases = sync(h.catalog._side("leases"))
                sync(leases.delete_many({}))
                sync(leases.insert_one(dict(doc)))
            with pytest.raises(eio.CorruptRecordError, match=r"lease .* elliptio did not write"):
                h.gc()


# -- 2. records and sidecars naming files outside the layout -----------------------
def _planted_record(h: eio.Handler, template: eio.Artifact, url: str) -> Metadata:
    """A record like ``template`` under a new id whose file URL is ``url``."""
    aid = new_artifact_id()
    created = datetime.now(tz=UTC).replace(microsecond=0)
    prefix = artifact_prefix(h.storage.root, created, "mallory", aid)
    doc = template.metadata.model_dump()
    doc["files"] = [{**doc["files"][0], "url": url, "size": len(GOOD)}]
    doc["files"][0]["sha256"] = __import__("hashlib").sha256(GOOD).hexdigest()
    doc.update(artifact_id=aid, creation_time=created, remote_root=h.storage.url(prefix))
    doc.pop("name", None)
    doc.pop("name_version", None)
    return Metadata.model_validate(doc)


def test_reindex_refuses_a_sidecar_naming_a_file_outside_the_store(
    handler: eio.Handler, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    template = handler.upload(data_files["test"])
    outside_path, outside_url = _outside(handler, tmp_path)
    mode_before = os.stat(outside_path).st_mode if handler.storage.is_local else None
    record = _planted_record(handler, template, outside_url)
    prefix = handler.storage.path(record.remote_root)
    _fs(handler).makedirs(f"{prefix}/.elliptio", exist_ok=True)
    _fs(handler).pipe_file(f"{prefix}/{METADATA_RELPATH}", record.model_dump_json().encode())
    report = handler.reindex()
    assert record.artifact_id in report.unreadable
    assert record.artifact_id not in report.added
    assert handler.find({"artifact_id": record.artifact_id}).empty
    if mode_before is not None:
        assert os.stat(outside_path).st_mode == mode_before  # not sealed
    handler.close()
    out = _cli(handler, tmp_path, "reindex")
    assert out.returncode == 1
    assert record.artifact_id in out.stderr


def test_reads_refuse_a_record_naming_a_file_outside_the_store(
    handler: eio.Handler, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """A shared-catalog writer inserts a record pointing at any file it likes."""
    template = handler.upload(data_files["test"])
    _, outside_url = _outside(handler, tmp_path)
    for url in (
        outside_url,
        template.file.url,  # another artifact's file, but at a relpath that is not its own
        handler.storage.url(
            f"{handler.storage.path(template.metadata.remote_root)}/{METADATA_RELPATH}"
        ),
    ):
        record = _planted_record(handler, template, url)
        if url == template.file.url:
            # Its own id in the path, with another relpath: not where the layout puts it.
            own = handler.storage.path(record.remote_root) + "/elsewhere.csv"
            record = record.model_copy(
                update={
                    "files": [record.files[0].model_copy(update={"url": handler.storage.url(own)})]
                }
            )
        sync(handler.catalog.insert(record.to_document()))
        art = handler.get(record.artifact_id)
        file = art.file
        for read in (
            file.read_bytes,
            file.read_text,
            file.local_path,
            lambda f=file: f.open().read(),
            lambda f=file: f.download(tmp_path / "dl" / "x.csv"),
        ):
            with pytest.raises(eio.CorruptRecordError):
                read()
        assert not (tmp_path / "dl" / "x.csv").exists()
        with pytest.raises(eio.CorruptRecordError):
            handler.verify(record.artifact_id)


# -- 3. a same-size tamper is an IntegrityError on every read path -----------------
@pytest.fixture
def tampered(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[eio.Handler, eio.Artifact]:
    art = _upload_good(handler, tmp_path)
    _tamper(handler, art.file.url, BAD)
    # elliptio:// resolves through the settings of the process.
    _export_settings(handler, monkeypatch)
    return handler, art


def test_every_read_path_refuses_a_same_size_tamper(
    tampered: tuple[eio.Handler, eio.Artifact], tmp_path: Path
) -> None:
    h, art = tampered
    file = h.get(art.artifact_id).file
    eio_url = file.eio_url
    reads = {
        "read_bytes": file.read_bytes,
        "read_text": file.read_text,
        "open": lambda: file.open().read(),
        "open text": lambda: file.open("r").read(),
        "local_path": file.local_path,
        "download": lambda: file.download(tmp_path / "out" / "table.csv"),
        "fsspec.open": lambda: fsspec.open(eio_url, "rb").open().read(),
        "cat_file": lambda: ElliptioFileSystem().cat_file(eio_url),
        "cat_file range": lambda: ElliptioFileSystem().cat_file(eio_url, start=0, end=4),
        "get_file": lambda: ElliptioFileSystem().get_file(eio_url, str(tmp_path / "got.csv")),
        "pandas": lambda: pd.read_csv(eio_url),
    }
    for name, read in reads.items():
        with pytest.raises(eio.IntegrityError):
            read()
            pytest.fail(f"{name} served tampered bytes")
    assert not (tmp_path / "out" / "table.csv").exists()
    assert not (tmp_path / "got.csv").exists()
    assert not h.verify(art.artifact_id).ok


def _whole(f: Any) -> bytes:
    with f:
        return f.read()  # type: ignore[no-any-return]


def _local_copy(url: str) -> bytes:
    with eio.local_copy(url) as path:
        return path.read_bytes()


def test_a_read_refused_as_damaged_is_no_input_of_the_run(
    tampered: tuple[eio.Handler, eio.Artifact], tmp_path: Path
) -> None:
    """A reader that got IntegrityError used none of the bytes: a commit of the same
    run must not list the artifact as built on it, whichever way it was read."""
    h, art = tampered
    file = art.file  # from upload: not read yet
    url = file.eio_url
    (tmp_path / "out.txt").write_text("derived")
    reads = {
        "read_bytes": file.read_bytes,
        "open": lambda: _whole(file.open()),
        "local_path": file.local_path,
        "download": lambda: file.download(tmp_path / "out" / "table.csv"),
        "pandas": lambda: pd.read_csv(url),
        "fsspec.open": lambda: _whole(fsspec.open(url, "rb").open()),
        "cat_file": lambda: ElliptioFileSystem().cat_file(url),
        "get_file": lambda: ElliptioFileSystem().get_file(url, str(tmp_path / "got.csv")),
        "pyarrow": lambda: ds.dataset(
            url, format="csv", filesystem=fsspec.filesystem("elliptio")
        ).to_table(),
        "eio.open": lambda: _whole(eio.open(file.url)),
        "h.urls.open": lambda: _whole(h.urls.open(file.url)),
        "eio.local_copy": lambda: _local_copy(file.url),
        "eio.cp": lambda: eio.cp(file.url, str(tmp_path / "cp.csv")),
    }
    for name, read in reads.items():
        with h.run():
            with pytest.raises(eio.IntegrityError):
                read()
            assert h.upload(tmp_path / "out.txt").metadata.based_on == [], name
    with h.run():  # nor is a file the artifact does not have
        with pytest.raises(FileNotFoundError):
            pd.read_csv(f"elliptio://{art.artifact_id}/missing.csv")
        assert h.upload(tmp_path / "out.txt").metadata.based_on == []
    _tamper(h, art.file.url, GOOD)
    for name, read in reads.items():  # a read that succeeds is one
        with h.run():
            read()
            assert h.upload(tmp_path / "out.txt").metadata.based_on == [art.artifact_id], name


async def test_async_reads_refuse_a_same_size_tamper(
    tampered: tuple[eio.Handler, eio.Artifact],
) -> None:
    h, art = tampered
    file = h.get(art.artifact_id).file
    for read in (file.aread_bytes, file.aread_text, file.alocal_path):
        with pytest.raises(eio.IntegrityError):
            await read()


def test_cli_reads_refuse_a_same_size_tamper(
    tampered: tuple[eio.Handler, eio.Artifact], tmp_path: Path
) -> None:
    h, art = tampered
    h.close()
    for args in (
        ["cat", art.artifact_id, "table.csv"],
        ["cat", art.file.eio_url],
        ["download", art.artifact_id, "-o", str(tmp_path / "cli")],
        ["verify", art.artifact_id],
    ):
        out = _cli(h, tmp_path, *args)
        assert out.returncode == 1, args
        assert "Traceback" not in out.stderr
        assert GOOD.decode() not in out.stdout
        assert BAD.decode() not in out.stdout
    assert not (tmp_path / "cli" / "table.csv").exists()


# -- 4. dedup references only bytes it confirmed ------------------------------------
def test_dedup_copies_instead_of_referencing_a_damaged_object(
    handler: eio.Handler, tmp_path: Path
) -> None:
    first = _upload_good(handler, tmp_path)
    _tamper(handler, first.file.url, BAD)
    again = handler.upload(tmp_path / "table.csv")
    assert again.file.url != first.file.url  # copied, not a reference to damaged bytes
    assert again.file.read_bytes() == GOOD
    assert handler.verify(again.artifact_id).ok
    assert not handler.verify(first.artifact_id).ok


def test_dedup_still_references_intact_objects(handler: eio.Handler, tmp_path: Path) -> None:
    first = _upload_good(handler, tmp_path)
    again = handler.upload(tmp_path / "table.csv")
    assert again.file.url == first.file.url
    assert again.file.read_bytes() == GOOD


def test_dedup_never_references_a_url_outside_the_store(
    handler: eio.Handler, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """A catalog writer claims that a file outside the store holds some content."""
    template = handler.upload(data_files["test"])
    _, outside_url = _outside(handler, tmp_path)
    sync(handler.catalog.insert(_planted_record(handler, template, outside_url).to_document()))
    art = _upload_good(handler, tmp_path)
    assert art.file.url != outside_url
    assert art.file.url.startswith(handler.storage.root_url)
    assert art.file.read_bytes() == GOOD


# -- symlinks planted in a local store are never followed --------------------------
@pytest.fixture
def local(tmp_path: Path) -> Any:
    h = eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}")
    yield h
    h.close()


def test_a_symlink_planted_in_the_store_is_never_read_or_sealed(
    local: eio.Handler, tmp_path: Path
) -> None:
    art = _upload_good(local, tmp_path)
    outside = tmp_path / "outside.csv"
    outside.write_bytes(GOOD)  # the same bytes: the sha256 alone would not notice
    stored = _unsealed(art)
    stored.symlink_to(outside)
    file = local.get(art.artifact_id).file
    for read in (file.read_bytes, file.local_path, lambda: file.open().read()):
        with pytest.raises(eio.StorageError, match="symbolic link"):
            read()
    # reindex of a record whose file is such a link restores the record, seals nothing
    sync(local.catalog.delete(art.artifact_id))
    mode = outside.stat().st_mode
    report = local.reindex()
    assert art.artifact_id in report.added
    assert outside.stat().st_mode == mode


@pytest.mark.parametrize("planted", ["sidecar folder", "artifact folder"])
def test_a_symlink_planted_while_a_commit_writes_its_sidecar_is_never_sealed_through(
    local: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planted: str
) -> None:
    """A storage writer swaps a folder of the commit for a link to a folder outside
    the store once elliptio made it: the commit is refused and nothing outside is
    sealed (the folders are looked at after the sidecar's bytes are written)."""
    from elliptio._backends import LocalBackend

    outside = tmp_path / "outside"
    outside.mkdir()
    create = LocalBackend._create

    def swapped(self: LocalBackend, path: str) -> int:
        if path.endswith(METADATA_RELPATH):
            sidecar_folder = os.path.dirname(path)
            if planted == "sidecar folder":
                os.rmdir(sidecar_folder)
                os.symlink(outside, sidecar_folder)
            else:
                folder = os.path.dirname(sidecar_folder)
                os.rename(folder, outside / "moved")
                os.symlink(outside / "moved", folder)
        return create(self, path)

    monkeypatch.setattr(LocalBackend, "_create", swapped)
    with pytest.raises(eio.StorageError, match="symbolic link"):
        _upload_good(local, tmp_path)
    monkeypatch.undo()
    assert local.count() == 0
    written = [p for p in outside.rglob("*") if p.is_file()]
    assert written  # the link was really followed by the write
    assert all(p.stat().st_mode & stat.S_IWUSR for p in written)


def test_gc_never_removes_through_a_symlink_planted_in_the_store(
    local: eio.Handler, tmp_path: Path
) -> None:
    """A lease whose folder follows the layout, under a date folder linked elsewhere."""
    elsewhere = tmp_path / "elsewhere"
    aid = new_artifact_id()
    orphan = elsewhere / "01" / "01" / "eve" / f"000000_{aid}"
    orphan.mkdir(parents=True)
    (orphan / "keep.bin").write_bytes(b"not elliptio's")
    root = Path(local.storage.root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "2020").symlink_to(elsewhere, target_is_directory=True)
    old = datetime.now(tz=UTC) - timedelta(days=3)
    sync(local.catalog.open_lease(aid, f"{root}/2020/01/01/eve/000000_{aid}", old))
    local.gc(grace=timedelta(0), delete=True)
    assert (orphan / "keep.bin").read_bytes() == b"not elliptio's"


# -- found in review: orphans, URL tools, odd files, links and version suffixes -------
def test_dedup_never_references_bytes_in_a_folder_without_a_record(
    handler: eio.Handler, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """A planted record naming an orphan's file must not lure an honest upload."""
    template = handler.upload(data_files["test"])
    orphan = artifact_prefix(
        handler.storage.root, datetime.now(tz=UTC) - timedelta(days=3), "eve", new_artifact_id()
    )
    if handler.storage.is_local:
        Path(orphan).mkdir(parents=True)
    _fs(handler).pipe_file(f"{orphan}/table.csv", GOOD)
    planted = _planted_record(handler, template, handler.storage.url(f"{orphan}/table.csv"))
    sync(handler.catalog.insert(planted.to_document()))
    honest = _upload_good(handler, tmp_path)
    assert not honest.file.url.startswith(handler.storage.url(orphan))
    handler.gc(grace=timedelta(hours=1), delete=True)
    assert handler.get(honest.artifact_id).file.read_bytes() == GOOD
    assert handler.verify(honest.artifact_id).ok


def test_url_tools_read_artifact_files_verified_and_never_change_them(
    tampered: tuple[eio.Handler, eio.Artifact], tmp_path: Path
) -> None:
    h, art = tampered
    url = art.file.url

    def read_open() -> None:
        with eio.open(url) as f:
            f.read()

    def read_copy() -> None:
        with eio.local_copy(url) as path:
            path.read_bytes()

    def write_at() -> None:
        with eio.write(url) as path:
            path.write_bytes(GOOD)

    def open_to_write() -> None:
        with eio.open(url, "wb") as f:
            f.write(GOOD)

    for read in (read_open, read_copy, lambda: eio.cp(url, str(tmp_path / "copy.csv"))):
        with pytest.raises(eio.IntegrityError):
            read()
    assert not (tmp_path / "copy.csv").exists()
    for change in (
        lambda: eio.rm(url),
        lambda: eio.mv(url, str(tmp_path / "moved.csv")),
        open_to_write,
        write_at,
        lambda: eio.cp(str(tmp_path / "table.csv"), url),
    ):
        with pytest.raises(eio.InvalidPathError, match="never change"):
            change()
    assert _fs(h).cat_file(h.storage.path(url)) == BAD  # still there, still as it was
    _cli_cat_refuses(h, tmp_path, url, "IntegrityError")


def test_module_url_tools_never_change_the_store_of_a_handler_of_this_process(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eio.rm(art.file.url) removed a committed file when the handler's store was
    given in code rather than in the settings (helper-64): the stores of every
    handler of the process are never written, moved or removed by the URL tools."""
    monkeypatch.delenv("ELLIPTIO_STORAGE_URL", raising=False)  # settings name another
    art = _upload_good(handler, tmp_path)
    url, root = art.file.url, handler.storage.root_url
    folder = url.rsplit("/", 1)[0]
    for change in (
        lambda: eio.rm(url),
        lambda: eio.mv(url, str(tmp_path / "moved.csv")),
        lambda: eio.cp(str(tmp_path / "table.csv"), url),
        lambda: eio.rm(folder, recursive=True),
        lambda: eio.rm(root, recursive=True),
        lambda: eio.cp(str(tmp_path / "table.csv"), f"{folder}/new.csv"),
    ):
        with pytest.raises(eio.InvalidPathError, match="elliptio store"):
            change()
    assert handler.verify(art.artifact_id).ok
    assert handler.get(art.artifact_id).file.read_bytes() == GOOD


@pytest.mark.parametrize("where", ["file", "s3"])
def test_module_url_tools_read_the_store_of_a_handler_built_in_code_verified(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """helper-79: eio.open / local_copy / cp served a tampered file of a handler's
    store given in code (the settings naming another store) unverified, counted no
    input, and copied the whole store out; on S3 they lacked the handler's options."""
    for name in ("ELLIPTIO_STORAGE_URL", "ELLIPTIO_STORAGE_OPTIONS", "ELLIPTIO_CATALOG_URL"):
        monkeypatch.delenv(name, raising=False)
    options: dict[str, Any] = {}
    store = str(tmp_path / "store")
    if where == "s3":
        options = request.getfixturevalue("s3_options")
        store = f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}"
    with eio.Handler(
        storage=store, catalog=f"sqlite:///{tmp_path / 'c.db'}", storage_options=options
    ) as h:
        good = _upload_good(h, tmp_path)
        _tamper(h, good.file.url, BAD)  # before any read: no cached copy of the good bytes
        (tmp_path / "other.csv").write_bytes(b"x,y\n1,2\n")
        other = h.upload(tmp_path / "other.csv", dedup=False)
        with h.run():
            assert _read(eio, other.file.url) == b"x,y\n1,2\n"
            assert h.upload(tmp_path / "other.csv", dedup=False).metadata.based_on == [
                other.artifact_id
            ]
        # A folder's files go verified, its sidecar as it is.
        eio.cp(other.file.url.rsplit("/", 1)[0], str(tmp_path / "copied"), recursive=True)
        copied = tmp_path / "copied"
        assert (copied / "other.csv").read_bytes() == b"x,y\n1,2\n"
        sidecar = json.loads((copied / ".elliptio" / "metadata.json").read_text())
        assert sidecar["artifact_id"] == other.artifact_id
        folder = good.file.url.rsplit("/", 1)[0]
        for read in (
            lambda: _read(eio, good.file.url),
            lambda: eio.local_copy(good.file.url).__enter__(),
            lambda: eio.cp(good.file.url, str(tmp_path / "out.csv")),
            lambda: eio.cp(folder, str(tmp_path / "out"), recursive=True),
        ):
            with pytest.raises(eio.IntegrityError):
                read()
        assert not (tmp_path / "out.csv").exists()
        assert not (tmp_path / "out").exists()
        with pytest.raises(eio.InvalidPathError, match=r"Artifact\.download"):
            eio.cp(h.storage.root_url, str(tmp_path / "whole"), recursive=True)
        assert not (tmp_path / "whole").exists()


def test_a_storage_only_writer_never_stands_in_the_way_of_a_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """helper-82: with an indexer's writer (catalog='none') open on the store, the
    URL tools asked it first and failed (UsageError), though another open handler
    held the record; a catalog that cannot answer now steps aside."""
    for name in ("ELLIPTIO_STORAGE_URL", "ELLIPTIO_CATALOG_URL"):
        monkeypatch.delenv(name, raising=False)
    store = str(tmp_path / "store")
    writers = [eio.Handler(storage=store, catalog="none") for _ in range(5)]  # whichever first
    try:
        with eio.Handler(storage=store, catalog=f"sqlite:///{tmp_path / 'c.db'}") as reader:
            art = _upload_good(writers[0], tmp_path)
            # The reader's catalog has no record yet: that is what the error says,
            # not the writers' "storage only" (helper-84).
            with pytest.raises(eio.ArtifactNotFoundError, match="no record vouches"):
                _read(eio, art.file.url)
            reader.reindex()
            assert _read(eio, art.file.url) == GOOD
            _tamper(reader, art.file.url, BAD)
            with pytest.raises(eio.IntegrityError):
                _read(eio, art.file.url)
        # With only the writers open, their store still counts: refused, never read
        # unchecked (helper-83).
        with pytest.raises(eio.UsageError, match="storage only"):
            _read(eio, art.file.url)
        with pytest.raises(eio.UsageError, match="storage only"):
            eio.cp(art.file.url, str(tmp_path / "out.csv"))
        assert not (tmp_path / "out.csv").exists()
    finally:
        for writer in writers:
            writer.close()


def test_a_chained_url_never_hides_the_store_from_the_url_tools(
    tampered: tuple[eio.Handler, eio.Artifact], tmp_path: Path
) -> None:
    """fsspec chains (simplecache::, filecache::, blockcache::) wrapped store paths
    so that they passed for URLs outside the store: unverified reads, writes into a
    committed folder, removal of the whole store. Every URL with '::' is refused."""
    h, art = tampered
    url = art.file.url if "://" in art.file.url else f"file://{art.file.url}"
    root = h.storage.root_url if "://" in h.storage.root_url else f"file://{h.storage.root_url}"
    folder = url.rsplit("/", 1)[0]
    calls = [
        lambda: eio.open(f"simplecache::{url}").read(),
        lambda: eio.local_copy(f"filecache::{url}").__enter__(),
        lambda: eio.cp(f"blockcache::{url}", str(tmp_path / "copy.csv")),
        lambda: eio.cp(str(tmp_path / "table.csv"), f"simplecache::{folder}/planted.csv"),
        lambda: eio.rm(f"filecache::{url}"),
        lambda: eio.rm(f"filecache::{root}", recursive=True),
        lambda: eio.mv(f"simplecache::{url}", str(tmp_path / "moved.csv")),
        lambda: eio.ls(f"simplecache::{folder}"),
    ]
    for call in calls:
        with pytest.raises(eio.ElliptioError, match="chain of filesystems"):
            call()
    assert not (tmp_path / "copy.csv").exists()
    assert _fs(h).cat_file(h.storage.path(art.file.url)) == BAD  # still there, as it was
    assert not _fs(h).exists(h.storage.path(art.file.url).rsplit("/", 1)[0] + "/planted.csv")
    with pytest.raises(eio.ConfigError, match="chain of filesystems"):
        eio.Handler(storage=f"simplecache::{root}", catalog="memory://")
    if not h.storage.root_url.startswith("memory://"):
        h.close()
        for args in (["cat", f"simplecache::{url}"], ["rm", "-r", f"filecache::{root}"]):
            out = _cli(h, tmp_path, *args)
            assert out.returncode == 1
            assert "chain of filesystems" in out.stderr
            assert BAD.decode() not in out.stdout
        assert _fs(h).cat_file(h.storage.path(art.file.url)) == BAD


@pytest.mark.parametrize("wrapper", ["simplecache", "filecache", "blockcache", "dir"])
def test_a_filesystem_wrapped_through_storage_options_is_refused_as_a_chain_is(
    wrapper: str, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """'simplecache::memory://...' is refused, but the same wrapper given as
    'simplecache://...' with storage_options={'target_protocol': 'memory'} (or
    'dir://' with a path) made a store: its records named the wrapped
    filesystem's URLs (memory://...), which the URL tools took for URLs outside
    the store, so eio.cp wrote over a committed file and eio.rm removed it."""
    folder = f"/wrapped-{uuid.uuid4().hex}"
    if wrapper == "dir":
        url, options = "dir://lake", {"path": folder, "target_protocol": "memory"}
    else:
        url, options = f"{wrapper}://{folder}/lake", {"target_protocol": "memory"}
    with pytest.raises(eio.ConfigError, match="wraps another filesystem") as err:
        eio.Handler(storage=url, catalog=f"sqlite:///{tmp_path / 'c.db'}", storage_options=options)
    assert "target_protocol" in str(err.value)
    assert not fsspec.filesystem("memory").exists(folder)


def test_url_tools_never_read_a_store_file_no_record_vouches_for(
    tampered: tuple[eio.Handler, eio.Artifact], tmp_path: Path
) -> None:
    """A file in an artifact's folder that the catalog has no record of (a commit
    that never finished, a delete's leftovers) was read unverified, as any file."""
    h, art = tampered
    orphan_id = new_artifact_id()
    prefix = artifact_prefix(h.storage.root, datetime.now(tz=UTC), "mallory", orphan_id)
    orphan = f"{prefix}/table.csv"
    _fs(h).makedirs(prefix, exist_ok=True)
    _fs(h).pipe_file(orphan, BAD)
    url = h.storage.url(orphan)
    for read in (
        lambda: eio.open(url).read(),
        lambda: eio.local_copy(url).__enter__(),
        lambda: eio.cp(url, str(tmp_path / "copy.csv")),
    ):
        with pytest.raises(eio.ArtifactNotFoundError, match="no record vouches for its bytes"):
            read()
    assert not (tmp_path / "copy.csv").exists()
    # A deleted artifact's file put back behind elliptio's back: not served either.
    h.delete(art.artifact_id, reason="test")
    _fs(h).pipe_file(h.storage.path(art.file.url), BAD)
    with pytest.raises(eio.ArtifactNotFoundError, match="no record vouches for its bytes"):
        eio.open(art.file.url).read()
    _cli_cat_refuses(h, tmp_path, url, "no record vouches for its bytes")


def test_url_tools_never_read_unverified_with_a_catalog_private_to_a_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unnamed memory:// catalog lives in one handler: the URL tools' own handler
    finds no record of the artifact, and then read its tampered file unchecked."""
    store = tmp_path / "store"
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(store))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", "memory://")
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    with eio.Handler() as h:
        art = _upload_good(h, tmp_path)
        _tamper(h, art.file.url, BAD)
        with pytest.raises(eio.IntegrityError):
            art.file.read_bytes()
        # The settings' catalog (another memory://) holds no record of it; the open
        # handler whose store holds it does: the read is verified there.
        with pytest.raises(eio.IntegrityError):
            eio.open(art.file.url).read()
        # The handler's own tools look in its own catalog: verified, and readable.
        with pytest.raises(eio.IntegrityError):
            _read(h.urls, art.file.url)
        _tamper(h, art.file.url, GOOD)
        assert _read(h.urls, art.file.url) == GOOD
    # With that handler closed, no catalog the process knows vouches for the bytes.
    with pytest.raises(eio.ArtifactNotFoundError, match="no record vouches for its bytes"):
        eio.open(art.file.url).read()


def test_a_handlers_url_tools_use_its_own_catalog_object(tmp_path: Path) -> None:
    """h.urls rebuilt a handler from the settings' catalog URL, so with a Catalog
    object it found no record of the handler's own artifacts (helper-38)."""
    from elliptio._catalog import open_catalog

    with eio.Handler(
        storage=str(tmp_path / "store"), catalog=open_catalog(f"sqlite:///{tmp_path / 'c.db'}")
    ) as h:
        art = _upload_good(h, tmp_path)
        assert _read(h.urls, art.file.url) == GOOD
        _tamper(h, art.file.url, BAD)
        with pytest.raises(eio.IntegrityError):
            _read(h.urls, art.file.url)


def test_url_tools_never_read_a_file_planted_in_a_live_artifacts_folder(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    art = _upload_good(handler, tmp_path)
    _export_settings(handler, monkeypatch)
    folder = handler.storage.path(art.file.url).rsplit("/", 1)[0]
    planted = f"{folder}/planted.csv"
    if handler.storage.is_local:
        os.chmod(folder, 0o755)
    _fs(handler).pipe_file(planted, BAD)
    # Beside the sidecar, and outside any artifact's folder (helper-69: read as they
    # were, unverified, on every filesystem).
    beside = f"{folder}/.elliptio/planted.csv"
    loose = f"{handler.storage.root}/2001/01/01/x/loose.csv"
    # Named as sidecars, but none by the layout (helper-70).
    named = [
        f"{handler.storage.root}/loose/{METADATA_RELPATH}",
        f"{handler.storage.root}/{METADATA_RELPATH}",
        f"{folder}/sub/{METADATA_RELPATH}",
        f"{folder}/.elliptio/x/{METADATA_RELPATH}",
    ]
    for path in (beside, loose, *named):
        _fs(handler).makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        _fs(handler).pipe_file(path, BAD)
    for tools in (eio, handler.urls):
        with pytest.raises(eio.FileNotInArtifactError, match="no file of its record"):
            _read(tools, handler.storage.url(planted))
        for path in (beside, loose, *named):
            with pytest.raises(eio.FileNotInArtifactError, match="no file of"):
                _read(tools, handler.storage.url(path))
            with (
                pytest.raises(eio.FileNotInArtifactError),
                tools.local_copy(handler.storage.url(path)),
            ):
                pass
        # The sidecar, a copy of the record, stays readable.
        sidecar = handler.storage.url(f"{folder}/{METADATA_RELPATH}")
        assert json.loads(_read(tools, sidecar))["artifact_id"] == art.artifact_id


def test_url_tools_never_follow_a_link_planted_in_a_local_store(
    local: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symbolic link planted in the store, as a folder or as a sidecar, led reads
    of the URL tools to a file outside it (helper-69)."""
    art = _upload_good(local, tmp_path)
    _export_settings(local, monkeypatch)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"SECRET")
    folder = Path(local.storage.path(art.file.url)).parent
    os.chmod(folder.parent, 0o755)
    (folder.parent / "lnk").symlink_to(outside, target_is_directory=True)
    sidecar = folder / METADATA_RELPATH
    os.chmod(sidecar.parent, 0o755)
    sidecar.unlink()
    sidecar.symlink_to(outside / "secret.txt")
    for tools in (eio, local.urls):
        for path in (folder.parent / "lnk" / "secret.txt", sidecar):
            with pytest.raises(eio.FileNotInArtifactError):
                _read(tools, str(path))


def test_url_tools_read_intact_artifact_files_and_record_lineage(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    art = _upload_good(handler, tmp_path)
    _export_settings(handler, monkeypatch)
    tools = eio.Handler(
        storage=handler.storage.root_url, catalog=handler.aio.settings.resolved_catalog_url()
    ).urls
    with handler.run():
        with tools.open(art.file.url) as f:
            assert f.read() == GOOD
        assert art.artifact_id in handler.based_on


def _finishes(func: Any, seconds: float = 20) -> Any:
    import threading

    result: list[Any] = []

    def run() -> None:
        try:
            result.append(func())
        except BaseException as err:
            result.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "it hangs"
    return result[0]


def test_a_fifo_planted_in_the_store_is_refused_not_waited_on(
    local: eio.Handler, tmp_path: Path
) -> None:
    art = _upload_good(local, tmp_path)
    stored = _unsealed(art)
    os.mkfifo(stored)
    err = _finishes(lambda: local.get(art.artifact_id).file.read_bytes())
    assert isinstance(err, eio.StorageError)
    assert "not a regular file" in str(err)
    report = _finishes(lambda: local.verify(art.artifact_id))
    assert isinstance(report, eio.StorageError) or not report.ok


@pytest.mark.parametrize("planted", ["fifo", "symlink", "deep"])
def test_a_planted_sidecar_is_reported_while_reindex_and_gc_go_on(
    tmp_path: Path, planted: str
) -> None:
    """One FIFO or symbolic link planted as a sidecar stopped reindex (rebuilding
    a lost catalog restored nothing) and gc at the first folder (helper-51); so
    did JSON nested too deeply to decode, with a raw RecursionError (helper-69)."""
    from elliptio._layout import METADATA_RELPATH

    store, catalog = tmp_path / "store", f"sqlite:///{tmp_path / 'c.db'}"
    with eio.Handler(storage=store, catalog=catalog) as h:
        art = _upload_good(h, tmp_path)
    fake = "artifact_11111111-1111-4111-8111-111111111111"
    sidecar = store / "2000/01/01/x" / f"000000_{fake}" / METADATA_RELPATH
    sidecar.parent.mkdir(parents=True)
    if planted == "fifo":
        os.mkfifo(sidecar)
    elif planted == "deep":
        sidecar.write_text(f'{{"artifact_id": "{fake}", "x": {"[" * 20000}{"]" * 20000}}}')
    else:
        sidecar.symlink_to(tmp_path / "table.csv")
    with eio.Handler(storage=store, catalog=f"sqlite:///{tmp_path / 'lost.db'}") as h:
        report = _finishes(h.reindex)
        assert not isinstance(report, BaseException), report
        assert report.added == [art.artifact_id]
        assert report.unreadable == [fake]
        assert h.get(art.artifact_id).file.read_bytes() == GOOD
        swept = _finishes(lambda: h.gc(grace=timedelta(0)))
        assert not isinstance(swept, BaseException), swept
        assert [p.endswith(f"_{fake}") for p in swept.orphans] == [True]
    assert (tmp_path / "table.csv").read_bytes() == GOOD


def test_uploads_never_write_through_a_symlink_planted_in_the_store(
    local: eio.Handler, tmp_path: Path
) -> None:
    from elliptio._provenance import current_username

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    day = Path(local.storage.root) / datetime.now(tz=UTC).strftime("%Y/%m/%d")
    day.mkdir(parents=True)
    (day / current_username()).symlink_to(elsewhere, target_is_directory=True)
    src = tmp_path / "table.csv"
    src.write_bytes(GOOD)
    with pytest.raises(eio.StorageError, match="symbolic link"):
        local.upload(src)
    with pytest.raises(eio.StorageError, match="symbolic link"), local.new("sub/t.csv") as new:
        new.file.write_bytes(GOOD)
    assert list(elsewhere.iterdir()) == []
    assert local.find().empty


def test_reindex_never_seals_a_hard_link_to_a_file_outside_the_store(
    local: eio.Handler, tmp_path: Path
) -> None:
    art = _upload_good(local, tmp_path)
    outside = tmp_path / "outside.csv"
    outside.write_bytes(GOOD)
    os.link(outside, _unsealed(art))
    sync(local.catalog.delete(art.artifact_id))
    mode = outside.stat().st_mode
    local.reindex()
    assert outside.stat().st_mode == mode


def test_a_version_suffix_never_passes_the_layout_check_on_s3(
    s3_options: dict[str, Any], tmp_path: Path, data_files: dict[str, Path]
) -> None:
    h = eio.Handler(
        storage="s3://elliptio-test/lake",
        catalog=f"sqlite:///{tmp_path / 'c.db'}",
        storage_options=s3_options,
    )
    template = h.upload(data_files["test"])
    record = _planted_record(h, template, "s3://x")
    prefix = h.storage.path(record.remote_root)
    user_folder, own = prefix.rsplit("/", 1)
    _fs(h).pipe_file(user_folder, GOOD)  # the object s3fs would read
    url = h.storage.url(f"{user_folder}?versionId=1/{own}/table.csv")
    record = record.model_copy(update={"files": [record.files[0].model_copy(update={"url": url})]})
    sync(h.catalog.insert(record.to_document()))
    with pytest.raises(eio.CorruptRecordError):
        h.get(record.artifact_id).file.read_bytes()
    with pytest.raises(eio.CorruptRecordError):
        h.verify(record.artifact_id)
    h.close()


@pytest.mark.parametrize("how", ["upload", "upload a folder", "new", "log"])
def test_a_file_name_s3_reads_as_a_version_is_refused_before_anything_is_written(
    s3_options: dict[str, Any], tmp_path: Path, how: str
) -> None:
    """s3fs reads '?versionId=' in a key as a version: 'x.csv?versionId=abc' would
    land at key 'x.csv' and every read of the artifact fail (helper-64)."""
    h = eio.Handler(
        storage="s3://elliptio-test/lake",
        catalog=f"sqlite:///{tmp_path / 'c.db'}",
        storage_options=s3_options,
    )
    folder = tmp_path / "d"
    folder.mkdir()
    odd = folder / "x.csv?versionId=abc"
    odd.write_bytes(GOOD)
    plain = tmp_path / "plain.csv"
    plain.write_bytes(GOOD)
    before = snapshot(h)
    with pytest.raises(eio.InvalidPathError, match="versionId"):
        if how == "upload":
            h.upload(odd)
        elif how == "upload a folder":
            h.upload(folder)
        elif how == "log":
            h.upload(plain, logs=[odd])
        else:
            with h.new(["x.csv?versionId=abc"]) as new:
                new.file.write_bytes(GOOD)
    assert snapshot(h) == before
    h.close()


def test_a_download_to_an_impossible_target_is_a_typed_error(
    handler: eio.Handler, tmp_path: Path
) -> None:
    art = _upload_good(handler, tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(eio.InvalidPathError, match="cannot download to"):
        art.file.download(blocker / "sub" / "table.csv")


def test_a_reader_changes_nothing_in_the_store_or_the_catalog(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import snapshot

    art = _upload_good(handler, tmp_path, name="table")
    _export_settings(handler, monkeypatch)
    before = snapshot(handler)
    file = handler.get("table:latest").file
    assert file.read_bytes() == GOOD
    assert file.local_path().read_bytes() == GOOD
    with file.open() as f:
        assert f.read() == GOOD
    file.download(tmp_path / "out.csv")
    assert pd.read_csv(file.eio_url).shape == (2, 2)
    with eio.open(file.url) as f:
        assert f.read() == GOOD
    assert handler.verify(art.artifact_id).ok
    handler.find({"labels.datatype": {"$exists": False}})
    handler.lineage(art.artifact_id)
    handler.gc()  # a dry run
    assert snapshot(handler) == before


async def test_a_changed_environment_is_refused_on_every_read(tmp_path: Path) -> None:
    """A catalog writer who changes a MongoDB environment document makes reads of
    its records fail, never shows the changed package list as theirs."""
    from mongomock_motor import AsyncMongoMockClient

    from elliptio._errors import CorruptRecordError

    client = AsyncMongoMockClient()
    (tmp_path / "a.txt").write_text("a")
    async with eio.AsyncHandler(storage=tmp_path / "store", catalog=client) as h:
        art = await h.upload([tmp_path / "a.txt"])
        assert art.metadata.python_packages
        await client["elliptio"]["artifacts.environments"].update_many(
            {}, {"$set": {"python_packages.elliptio": "0.0.1-planted"}}
        )
        with pytest.raises(CorruptRecordError, match="does not hash to its id"):
            await h.get(art.artifact_id)
        with pytest.raises(CorruptRecordError):
            await h.find({"artifact_id": art.artifact_id}, columns=["python_packages"])


def test_a_failed_download_leaves_nothing_behind(handler: eio.Handler, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.csv").write_bytes(GOOD)
    (src / "b.bin").write_bytes(os.urandom(3_000_000))
    art = handler.upload(src)
    _tamper(handler, art.files["src/a.csv"].url, BAD)
    fresh = handler.get(art.artifact_id)
    with pytest.raises(eio.IntegrityError):
        fresh.files["src/a.csv"].download(tmp_path / "new1" / "new2" / "a.csv")
    assert not (tmp_path / "new1").exists()  # no empty folders left either
    out = tmp_path / "out"
    with pytest.raises(eio.IntegrityError):
        fresh.download(out)
    left = sorted(p.name for p in out.rglob("*") if p.is_file()) if out.exists() else []
    assert not [name for name in left if name.endswith(".part")]
    assert "a.csv" not in left
    time.sleep(0.5)  # nothing keeps arriving once the call has raised
    assert (sorted(p.name for p in out.rglob("*") if p.is_file()) if out.exists() else []) == left


def test_downloads_have_the_mode_of_a_new_file_and_never_replace_a_folder(
    handler: eio.Handler, tmp_path: Path
) -> None:
    art = _upload_good(handler, tmp_path)
    umask = os.umask(0o022)
    os.umask(umask)
    got = art.file.download(tmp_path / "copy.csv")
    assert stat.S_IMODE(got.stat().st_mode) == 0o666 & ~umask
    (tmp_path / "dl" / "table.csv").mkdir(parents=True)
    with pytest.raises(eio.InvalidPathError, match="is a folder"):
        art.download(tmp_path / "dl", overwrite=True)


def test_a_download_never_writes_into_a_local_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: committed files never change. file.download(path) replaced a file at
    ``path`` even when it was another artifact's committed file in the store (its
    bytes, then its read-only mode, changed; verify then found it damaged), and
    artifact.download(folder) wrote into the store's folders; the URL tools refuse
    both. Also through the CLI and a store reached by a link."""
    from elliptio._cli import main

    store = tmp_path / "store"
    (tmp_path / "a.txt").write_bytes(b"AAA\n")
    (tmp_path / "b.txt").write_bytes(b"BBB\n")
    os.symlink(store, tmp_path / "alias")
    with eio.Handler(storage=str(store), catalog=f"sqlite:///{tmp_path}/c.db") as h:
        a, b = h.upload(tmp_path / "a.txt"), h.upload(tmp_path / "b.txt")
        into = Path(b.file.url)
        linked = tmp_path / "alias" / into.relative_to(store)
        for call in (
            lambda: a.file.download(into),
            lambda: a.file.download(linked),
            lambda: a.file.download(str(into.parent) + "/"),
            lambda: a.download(into.parent, overwrite=True),
            lambda: a.download(store / "elsewhere"),
            lambda: fsspec.filesystem("elliptio").get_file(a.file.eio_url, str(into)),
        ):
            with pytest.raises(eio.InvalidPathError, match="lies in the elliptio store"):
                call()
        capsys.readouterr()
        args = ["--storage", str(store), "--catalog", f"sqlite:///{tmp_path}/c.db"]
        assert main([*args, "download", a.artifact_id, "-o", str(into.parent), "--overwrite"]) == 1
        assert "lies in the elliptio store" in capsys.readouterr().err
        assert into.read_bytes() == b"BBB\n"
        assert stat.S_IMODE(into.stat().st_mode) & 0o222 == 0
        assert h.verify(b).damaged == []
        assert not (into.parent / "a.txt").exists()
        assert not (store / "elsewhere").exists()
        assert a.file.download(tmp_path / "out" / "a.txt").read_bytes() == b"AAA\n"


def test_lineage_output_never_lands_in_a_local_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`elliptio lineage REF -o PATH` wrote its drawing wherever -o said: onto a
    committed file of the store (for a user who may write it, root in a
    container: the file's bytes changed) or as a new file among the artifacts."""
    from elliptio._cli import main

    store = tmp_path / "store"
    (tmp_path / "a.txt").write_bytes(b"AAA\n")
    args = ["--storage", str(store), "--catalog", f"sqlite:///{tmp_path}/c.db"]
    with eio.Handler(storage=str(store), catalog=f"sqlite:///{tmp_path}/c.db") as h:
        art = h.upload(tmp_path / "a.txt")
    committed = Path(art.file.url)
    for target in (committed, committed.parent / "lineage.svg", store / "lineage.txt"):
        capsys.readouterr()
        assert main([*args, "lineage", art.artifact_id, "-o", str(target)]) == 1
        assert "lies in the elliptio store" in capsys.readouterr().err
    assert committed.read_bytes() == b"AAA\n"
    assert sorted(p.name for p in committed.parent.iterdir()) == [".elliptio", "a.txt"]
    assert not (store / "lineage.txt").exists()
    assert main([*args, "lineage", art.artifact_id, "-o", str(tmp_path / "l.txt")]) == 0
    assert art.artifact_id in (tmp_path / "l.txt").read_text()


def test_a_store_path_reached_through_a_link_outside_the_store_is_the_store_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /home/me/lake -> /data/me/lake: the same store under another spelling.
    store = tmp_path / "store"
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(store))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    with eio.Handler() as h:
        art = _upload_good(h, tmp_path)
        _tamper(h, art.file.url, BAD)
    os.symlink(store, tmp_path / "alias")
    alias = str(tmp_path / "alias") + art.file.url[len(str(store)) :]
    with pytest.raises(eio.IntegrityError):
        with eio.open(alias) as f:
            f.read()
    with pytest.raises(eio.IntegrityError):
        with eio.local_copy(alias):
            pass
    for change in (lambda: eio.rm(alias), lambda: eio.cp(str(tmp_path / "table.csv"), alias)):
        with pytest.raises(eio.InvalidPathError, match="lies in the elliptio store"):
            change()
    assert Path(art.file.url).exists()
    done = subprocess.run(
        [sys.executable, "-m", "elliptio", "cat", alias], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "IntegrityError" in done.stderr
    assert BAD.decode() not in done.stdout


def test_the_url_tools_never_remove_or_move_a_folder_that_holds_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "parent" / "store"
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(store))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    with eio.Handler() as h:
        art = _upload_good(h, tmp_path)
    os.symlink(tmp_path / "parent", tmp_path / "alias")
    for folder in (tmp_path / "parent", tmp_path / "alias", tmp_path):
        with pytest.raises(eio.InvalidPathError, match="the elliptio store lies in it"):
            eio.rm(str(folder), recursive=True)
        with pytest.raises(eio.InvalidPathError, match="the elliptio store lies in it"):
            eio.mv(str(folder), str(tmp_path / "moved"), recursive=True)
    assert Path(art.file.url).read_bytes() == GOOD
    # The root folder: refused before anything is asked of the filesystem (which a
    # test must never be allowed to reach).
    from elliptio._urls import default_tools

    tools = default_tools()
    backend, _ = tools._backend("/")
    monkeypatch.setattr(backend.fs, "rm", lambda *a, **k: pytest.fail("rm reached"))
    with pytest.raises(eio.InvalidPathError):
        eio.rm("/", recursive=True)
    done = subprocess.run(
        [sys.executable, "-m", "elliptio", "rm", "-r", str(tmp_path / "parent")],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "the elliptio store lies in it" in done.stderr
    assert Path(art.file.url).read_bytes() == GOOD


def test_a_closed_handlers_url_tools_still_read_through_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """h.urls after h.close() read through the handler and failed with 'catalog is
    closed' (helper-39); a catalog named by URL is opened again from the settings."""
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    h = eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'c.db'}")
    art = _upload_good(h, tmp_path)
    h.close()
    assert _read(h.urls, art.file.url) == GOOD


def test_open_on_a_local_store_catches_a_change_made_while_the_file_is_open(
    tmp_path: Path,
) -> None:
    """A storage writer (or the file's owner) rewrites bytes in place after open():
    a read from start to end raises before its last bytes, and never returns a
    whole file that is not the recorded one."""
    h = eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path}/c.db")
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * 2**20))
    file = h.upload(src).file
    path = h.storage.path(file.url)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)

    def overwrite(offset: int) -> None:  # same size, in place: what `dd conv=notrunc` does
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, b"\0" * 4096, offset)
        finally:
            os.close(fd)

    with file.open() as f:
        assert f.read() == src.read_bytes()  # untouched: served whole
    with file.open() as f:
        f.read(1000)
        overwrite(2**20)
        with pytest.raises(eio.IntegrityError, match="changed while it was being read"):
            f.read()
    os.pwrite(fd := os.open(path, os.O_WRONLY), src.read_bytes(), 0)
    os.close(fd)
    with file.open() as f, open(tmp_path / "copy.bin", "wb") as out:
        out.write(f.read(100))
        overwrite(2 * 2**20)
        with pytest.raises(eio.IntegrityError):
            shutil.copyfileobj(f, out)
    with pytest.raises(eio.IntegrityError):  # the next open sees it at once
        file.open()
    h.close()


def test_url_tools_on_a_local_store_catch_a_change_made_while_the_file_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eio.open (and `elliptio cat URL`) of a store file re-hashed it, then opened
    its path afresh: a change made while it was open was read without a word,
    where the file's own open() raises (SECURITY.md: the URL tools read through
    the same routine)."""
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    h = eio.Handler()
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(2**20))
    file = h.upload(src).file
    path = h.storage.path(file.url)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    for opened in (lambda: eio.open(file.url), lambda: h.urls.open(file.url, "rb")):
        with opened() as f:
            f.read(100)
            fd = os.open(path, os.O_WRONLY)  # same size, in place
            os.pwrite(fd, bytes(b ^ 1 for b in src.read_bytes()[2**19 : 2**19 + 10]), 2**19)
            os.close(fd)
            with pytest.raises(eio.IntegrityError, match="changed while it was being read"):
                f.read()
        os.pwrite(fd := os.open(path, os.O_WRONLY), src.read_bytes(), 0)
        os.close(fd)
    with eio.open(file.url, "r", encoding="latin-1", newline="") as text:
        assert text.read() == src.read_bytes().decode("latin-1")
    h.close()


@pytest.mark.parametrize("store", ["local", "memory"])
def test_file_open_takes_the_keyword_arguments_of_open(store: str, tmp_path: Path) -> None:
    """On a local store file.open("r", buffering=1) raised TypeError from
    TextIOWrapper (and so did eio.open of the store file, which opens it), where
    a remote store's file, opened with open(), took it; "rb" dropped encoding
    without a word."""
    root = str(tmp_path / "store") if store == "local" else f"memory://k-{uuid.uuid4().hex}"
    h = eio.Handler(storage=root, catalog=f"sqlite:///{tmp_path}/c.db")
    (tmp_path / "a.txt").write_bytes(b"x\r\ny\n")
    file = h.upload(tmp_path / "a.txt").file
    with file.open("r", buffering=1) as f:
        assert f.read() == "x\ny\n"
    with file.open("r", encoding="latin-1", newline="") as f:
        assert f.read() == "x\r\ny\n"
    for buffering in (0, 64, -1):
        with file.open("rb", buffering=buffering) as f:
            assert f.read() == b"x\r\ny\n"
    with pytest.raises(eio.UsageError, match="encoding"):
        file.open("rb", encoding="utf-8")
    with pytest.raises(eio.UsageError, match="unbuffered"):
        file.open("r", buffering=0)
    h.close()


def test_an_empty_read_of_a_checked_local_file_is_no_integrity_error(tmp_path: Path) -> None:
    """read(0) of the unbuffered file (file.open("rb", buffering=0), which
    eio.open gives too) read nothing at the start, took that for the end of a
    short file and raised IntegrityError, then refused every later read."""
    h = eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path}/c.db")
    (tmp_path / "a.bin").write_bytes(b"0123456789")
    file = h.upload(tmp_path / "a.bin").file
    with file.open("rb", buffering=0) as f:
        assert f.read(0) == b""
        assert f.readinto(bytearray()) == 0
        assert f.read() == b"0123456789"
    with eio.open(file.url, "rb", buffering=0) as f:
        f.seek(4)
        assert f.read(0) == b""
        assert f.read(3) == b"456"
    h.close()


@pytest.mark.parametrize("store", ["local", "memory"])
def test_file_open_takes_what_open_takes_as_open_does(store: str, tmp_path: Path) -> None:
    """open(path, "rb", encoding=None) is fine (None is open()'s default), and so
    was eio.open of a store file before it went through File.open, which said
    binary mode takes no encoding; the text file had no .mode; a bad encoding
    was found only after the file was opened and its read noted as an input of
    the run (on a local store a descriptor left to the garbage collector), and an
    argument File.open does not take was a TypeError on one store only."""
    root = str(tmp_path / "store") if store == "local" else f"memory://k-{uuid.uuid4().hex}"
    h = eio.Handler(storage=root, catalog=f"sqlite:///{tmp_path}/c.db")
    (tmp_path / "a.txt").write_bytes(b"x\r\ny\n")
    file = h.upload(tmp_path / "a.txt").file
    with file.open("rb", encoding=None, errors=None, newline=None) as f:
        assert f.read() == b"x\r\ny\n"
    with eio.open(file.url, "rb", encoding=None) as f:
        assert f.read() == b"x\r\ny\n"
    with file.open("r") as f, open(tmp_path / "a.txt") as plain:
        assert (f.mode, f.read()) == (plain.mode, plain.read())
    for mode in ("rt", "tr", "br"):  # open()'s spellings of the two read modes
        with file.open(mode) as f:
            assert f.read() in ("x\ny\n", b"x\r\ny\n")
    with h.run() as run:
        with pytest.raises(LookupError):
            file.open("r", encoding="no-such-codec")
        with pytest.raises(ValueError, match="newline"):
            file.open("r", newline="\t")
        for mode in ("r", "rb"):
            with pytest.raises(eio.UsageError, match="closefd"):
                file.open(mode, closefd=True)
        # A mistyped mode is no write to an immutable file (helper-94).
        for mode in ("b", "rr", "t"):
            with pytest.raises(eio.UsageError, match="invalid mode"):
                file.open(mode)
        for mode in ("wb", "r+", "a"):
            with pytest.raises(eio.ImmutableError):
                file.open(mode)
        assert run.inputs == []
    h.close()


def test_random_access_reads_on_a_local_store_catch_a_change_made_while_the_file_is_open(
    tmp_path: Path,
) -> None:
    """Readers that seek (parquet reads its footer, then the row groups it needs;
    zip its central directory, then a member) read bytes the sequential check
    never hashes: a same-size change made after open() was served as data."""
    import zipfile

    import pyarrow.parquet as pq

    h = eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path}/c.db")
    table = pd.DataFrame({"a": range(20_000)})
    table.to_parquet(tmp_path / "t.parquet", row_group_size=2_000, compression=None)
    with zipfile.ZipFile(tmp_path / "arc.zip", "w") as z:
        z.writestr("a.txt", "A" * 50_000)
        z.writestr("b.txt", "B" * 50_000)
    art = h.upload([tmp_path / "t.parquet", tmp_path / "arc.zip"])

    def flip(file: eio.File, offset: int) -> None:  # same size, in place
        path = h.storage.path(file.url)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        fd = os.open(path, os.O_RDWR)
        try:
            os.pwrite(fd, bytes([os.pread(fd, 1, offset)[0] ^ 0x55]), offset)
            # The write moves the modification time, by a clock tick that an old
            # kernel may not tell from the open's: a second makes it plain.
            st = os.fstat(fd)
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        finally:
            os.close(fd)
        os.chmod(path, stat.S_IRUSR)

    parquet = art.files["t.parquet"]
    for opened in (parquet.open, lambda: fsspec.open(parquet.eio_url).open()):
        with opened() as f:
            pf = pq.ParquetFile(f)
            offset = pf.metadata.row_group(5).column(0).data_page_offset + 100
            assert pf.read_row_group(4).column(0).to_pylist() == list(range(8_000, 10_000))
            flip(parquet, offset)
            with pytest.raises(eio.IntegrityError, match="changed while it was being read"):
                pf.read_row_group(5)
        flip(parquet, offset)  # back as it was
    archive = art.files["arc.zip"]
    with archive.open() as f, zipfile.ZipFile(f) as z:
        offset = z.getinfo("b.txt").header_offset + 100
        flip(archive, offset)
        with pytest.raises(eio.IntegrityError):
            z.read("b.txt")
    flip(archive, offset)
    with archive.open() as f, zipfile.ZipFile(f) as z:  # a status change alone is no error
        os.chmod(h.storage.path(archive.url), stat.S_IRUSR | stat.S_IWUSR)
        assert z.read("b.txt") == b"B" * 50_000
    h.close()


def test_a_read_from_the_start_after_a_seek_catches_a_change_made_while_the_file_is_open(
    tmp_path: Path,
) -> None:
    """zip reads its central directory at the end, then seeks back to 0 for its
    first member: a read from the start, which only the hash at the end of the
    file checked, so a part of that member changed after open() was served."""
    import zipfile

    h = eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path}/c.db")
    with zipfile.ZipFile(tmp_path / "arc.zip", "w") as z:
        z.writestr("a.txt", "A" * 50_000)
        z.writestr("b.txt", "B" * 50_000)
    archive = h.upload(tmp_path / "arc.zip").file
    path = h.storage.path(archive.url)
    with archive.open() as f, zipfile.ZipFile(f) as z:
        assert z.getinfo("a.txt").header_offset == 0
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        fd = os.open(path, os.O_RDWR)
        os.pwrite(fd, b"Z", 100)  # same size, in place
        st = os.fstat(fd)  # a second later, plain to an old kernel too
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        os.close(fd)
        with pytest.raises(eio.IntegrityError), z.open("a.txt") as member:
            member.read(1000)
    h.close()


def test_cp_out_of_a_local_store_copies_the_bytes_it_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cp of a store file checked it (local_path re-hashes it), then opened its
    path afresh to copy it: a same-size change made in between (or a path swapped)
    was copied without a word, where eio.open reads through the checked file."""
    import elliptio._artifact as artifact_module

    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    h = eio.Handler()
    (tmp_path / "a.txt").write_bytes(b"good bytes")
    file = h.upload(tmp_path / "a.txt").file
    path = h.storage.path(file.url)
    checked = artifact_module.File.local_path

    def then_changed(self: eio.File) -> Path:
        found = checked(self)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        Path(path).write_bytes(b"evil bytes")  # same size, right after the check
        return found

    monkeypatch.setattr(artifact_module.File, "local_path", then_changed)
    with pytest.raises(eio.IntegrityError):
        eio.cp(file.url, str(tmp_path / "out.txt"))
    assert not (tmp_path / "out.txt").exists()
    h.close()


def test_a_checked_local_file_still_looks_like_the_file_open_gives(tmp_path: Path) -> None:
    """Readers name files by ``.name`` and check ``.mode``; ``readinto`` of a
    buffer of wider items (an ``array('d')``, a numpy array) hashed a byte count
    as if it were an item count (helper-49)."""
    import array

    h = eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path}/c.db")
    src = tmp_path / "values.bin"
    values = array.array("d", range(1000))
    src.write_bytes(values.tobytes())
    file = h.upload(src).file
    with file.open() as f:
        assert f.name == str(file.local_path())
        assert f.mode == "rb"
        raw = f.raw
        assert raw.name == f.name
        assert raw.mode == "rb"
        into = array.array("d", bytes(8 * 1000))
        assert f.readinto(memoryview(into).cast("B")) == 8000
        assert into == values
        assert f.read() == b""  # reached the end whole: checked, no error
    with file.open() as f:  # the checked file itself, under the buffer
        into = array.array("d", bytes(8 * 2000))  # larger than the file
        assert f.raw.readinto(into) == 8000
        assert into[:1000] == values
        assert f.raw.readinto(into) == 0  # the end, whole: checked, no error
    h.close()


def _spellings(url: str) -> list[str]:
    """Other spellings of a store file's URL that its filesystem reads as the same
    object: 's3:///bucket/key', a doubled or '.' segment, a '..' that comes back."""
    scheme, sep, path = url.rpartition("://")
    head, _, rest = path.lstrip("/").partition("/")
    lead = "/" if path.startswith("/") else ""
    return [
        f"{scheme}{sep}/{path}",
        f"{scheme}{sep}{lead}{head}//{rest}",
        f"{scheme}{sep}{lead}{head}/./{rest}",
        f"{scheme}{sep}{lead}{head}/x/../{rest}",
    ]


def test_another_spelling_of_a_store_file_is_the_store_file(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """s3fs reads 's3:///lake/key' as 's3://lake/key': the URL tools took it for
    a URL outside the store, so they read a committed file unverified, wrote over
    it and removed it (helper-51). A spelling the filesystem reads as the store's
    file is that file, read verified; none is ever written or removed."""
    art = _upload_good(handler, tmp_path)
    _export_settings(handler, monkeypatch)
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    url = art.file.url
    _tamper(handler, url, BAD)
    read = []
    for other in _spellings(url):
        try:
            got = _read(eio, other)
        except eio.IntegrityError:
            read.append(other)
        except (eio.UrlNotFoundError, eio.FileNotInArtifactError):
            continue  # a spelling this filesystem reads as another object: not read
        else:
            pytest.fail(f"{other} read {got!r}, not the recorded bytes")
        for change in (
            lambda o=other: eio.rm(o),
            lambda o=other: eio.cp(str(tmp_path / "table.csv"), o),
        ):
            with pytest.raises(eio.InvalidPathError, match="lies in the elliptio store"):
                change()
    assert read
    if url.startswith("s3://"):
        assert "s3:///" + url[len("s3://") :] in read
    _tamper(handler, url, GOOD)
    assert handler.verify(art.artifact_id).ok
    if not url.startswith("memory://"):  # the CLI, in another process
        copy = _cli(handler, tmp_path, "cp", str(tmp_path / "table.csv"), read[0])
        assert copy.returncode == 1
        assert "lies in the elliptio store" in copy.stderr
        _tamper(handler, url, BAD)
        _cli_cat_refuses(handler, tmp_path, read[0], "IntegrityError")


def _patterns(h: eio.Handler, url: str) -> list[str]:
    """Glob patterns fsspec would expand to a store file's URL, or to the store."""
    root = h.storage.root_url.rstrip("/")
    rest = url[len(root) :]
    top = root[: root.rindex("/") + 1]
    name = root[len(top) :]
    return [
        f"{top}[{name[0]}]{name[1:]}{rest}",
        f"{top}{name[:-1]}?{rest}",
        f"{top}{name[:-1]}*{rest}",
    ]


def test_glob_characters_in_a_url_are_names_never_patterns(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsspec's rm and copy expand '[l]ake', 'lak?' and 'lak*': the URL tools
    checked the URL as written, so `eio.rm`, `eio.cp` and `eio.mv` (and the CLI)
    removed the store and copied tampered bytes out unchecked (helper-55)."""
    art = _upload_good(handler, tmp_path)
    _export_settings(handler, monkeypatch)
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    url = art.file.url
    _tamper(handler, url, BAD)
    root = handler.storage.root_url.rstrip("/")
    for pattern in [*_patterns(handler, url), *_patterns(handler, root)]:
        with pytest.raises(eio.UrlNotFoundError):
            eio.rm(pattern, recursive=True)
        with pytest.raises(eio.UrlNotFoundError):
            eio.cp(pattern, str(tmp_path / "out.csv"))
        with pytest.raises(eio.UrlNotFoundError):
            eio.mv(pattern, str(tmp_path / "moved.csv"))
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "moved.csv").exists()
    _tamper(handler, url, GOOD)
    assert handler.verify(art.artifact_id).ok
    if not url.startswith("memory://"):  # the CLI, in another process
        for pattern in _patterns(handler, root):
            out = _cli(handler, tmp_path, "rm", "-r", pattern)
            assert out.returncode == 1, out.stderr
        assert handler.verify(art.artifact_id).ok


def test_a_recursive_copy_never_goes_through_a_folder_holding_the_store(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eio.cp(folder, parent_of_store, recursive=True)` wrote over committed files
    with plain PUTs, and a copy out of such a folder read them unverified
    (helper-55)."""
    art = _upload_good(handler, tmp_path)
    _export_settings(handler, monkeypatch)
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    root = handler.storage.root_url.rstrip("/")
    parent = root[: root.rindex("/") + 1]
    relative = art.file.url[len(parent) :]
    evil = tmp_path / "evil"
    (evil / relative).parent.mkdir(parents=True)
    (evil / relative).write_bytes(BAD)
    with pytest.raises(eio.InvalidPathError, match="the elliptio store lies in it"):
        eio.cp(str(evil), parent, recursive=True)
    with pytest.raises(eio.InvalidPathError, match="the elliptio store lies in it"):
        eio.cp(parent, str(tmp_path / "out"), recursive=True)
    assert not (tmp_path / "out").exists()
    assert handler.verify(art.artifact_id).ok
    if not root.startswith("memory://"):
        out = _cli(handler, tmp_path, "cp", "-r", str(evil), parent)
        assert out.returncode == 1
        assert "the elliptio store lies in it" in out.stderr
        assert handler.verify(art.artifact_id).ok


def test_names_with_glob_characters_are_removed_copied_and_moved_as_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Escaping glob characters for fsspec's generic rm broke the local one, which
    takes names as they are: eio.rm, mv and gc failed on 'report [final].txt'
    (helper-58). A recursive copy keeps fsspec's rule (into an existing folder
    the source keeps its name) for such names too."""
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    (tmp_path / "work" / "runs" / "run[1]").mkdir(parents=True)
    (tmp_path / "work" / "backup").mkdir()
    for root in (str(tmp_path / "work"), "memory://glob-names"):
        for name in ("report [final].txt", "b*.txt", "run?"):
            with eio.write(f"{root}/{name}") as path:
                path.write_text("x")
            eio.mv(f"{root}/{name}", f"{root}/moved")
            assert not eio.exists(f"{root}/{name}")
            eio.rm(f"{root}/moved")
        with eio.write(f"{root}/runs/run[1]/results.csv") as path:
            path.write_text("new")
        with eio.write(f"{root}/backup/results.csv") as path:
            path.write_text("precious")
        eio.cp(f"{root}/runs/run[1]", f"{root}/backup", recursive=True)
        with eio.open(f"{root}/backup/results.csv") as f:
            assert f.read() == b"precious"
        with eio.open(f"{root}/backup/run[1]/results.csv") as f:
            assert f.read() == b"new"
        eio.rm(f"{root}/runs", recursive=True)
        assert not eio.exists(f"{root}/runs")
    with eio.Handler() as h, eio.mock_username("ci[bot]"):
        with pytest.raises(RuntimeError), h.new("a.txt") as new:
            new.file.write_bytes(b"1")
            raise RuntimeError("a writer that fails")
        left = [p for p in Path(h.storage.root).rglob("*") if "_artifact_" in p.name]
        assert left == []  # its folder went


def test_a_link_inside_the_target_of_a_recursive_copy_never_leads_into_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dst/lake -> <store>`: the check looked at dst alone, so the copy wrote
    through the link into committed folders (helper-58)."""
    with eio.Handler(storage=tmp_path / "lake", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        art = _upload_good(h, tmp_path)
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    relative = Path(art.file.url).relative_to(tmp_path / "lake")
    payload = tmp_path / "payload" / "lake"
    (payload / relative).parent.mkdir(parents=True)
    (payload / relative).write_bytes(BAD)
    (payload / "planted.txt").write_text("x")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "lake").symlink_to(tmp_path / "lake")
    with pytest.raises(eio.InvalidPathError, match="lies in the elliptio store"):
        eio.cp(str(payload), str(dst), recursive=True)
    assert not (tmp_path / "lake" / "planted.txt").exists()
    assert Path(art.file.url).read_bytes() == GOOD


def test_a_user_name_with_glob_characters_relabels_and_deletes(
    handler: eio.Handler, tmp_path: Path
) -> None:
    """A sidecar is replaced with one move; fsspec's mv read 'ci[bot]' in its
    folder as a pattern, so on a memory store set_labels and delete failed for
    such a user (helper-55)."""
    with eio.mock_username("ci[bot]"):
        art = _upload_good(handler, tmp_path)
        handler.set_labels(art.artifact_id, {"project": "p"})
        assert handler.get(art.artifact_id).metadata.labels.project == "p"
        handler.delete(art.artifact_id, reason="test")
    with pytest.raises(eio.ArtifactDeletedError):
        handler.get(art.artifact_id)
    assert handler.reindex().conflicting == []


def test_a_sidecar_changes_an_existing_record_only_as_a_relabel_or_delete_would(
    tmp_path: Path,
) -> None:
    """reindex finishes a relabel or delete that stopped after its sidecar. A
    sidecar that passed for one replaced the whole record: a storage writer
    changed its creator, command line, lineage and name (helper-51). Only the
    labels (with their history) or the tombstone of the record it holds count."""
    from elliptio._lifecycle import relabeled, tombstone
    from elliptio._models import Labels, Metadata

    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        art = _upload_good(h, tmp_path, name="model")
        sidecar = Path(h.storage.path(art.metadata.remote_root)) / ".elliptio/metadata.json"
        stored = Metadata.model_validate_json(sidecar.read_text())
        now = datetime.now(tz=UTC)
        relabel = relabeled(stored, Labels(project="p"), "alice", now)
        delete = tombstone(stored, "alice", now, "a removal request")
        forged = {
            "username": "bob",
            "argv": ["train.py", "--seed", "1"],
            "based_on": ["artifact_00000000-0000-4000-8000-000000000000"],
            "name": "approved-model",
            "name_version": 7,
        }
        os.chmod(sidecar, 0o644)
        for change in (relabel, delete):
            for field, value in forged.items():
                sidecar.write_text(change.model_copy(update={field: value}).model_dump_json())
                assert h.reindex().conflicting == [art.artifact_id], field
                assert h.get(art.artifact_id).metadata == art.metadata
        assert h.names().index.tolist() == ["model"]
        # A history the record never had: two changes at once, the current labels
        # replaced by others in the history, a change dated before the record.
        from elliptio._models import LabelsChange

        twice = relabeled(relabel, Labels(project="q"), "cfo", now)
        rewritten = relabel.model_copy(
            update={
                "label_history": [
                    LabelsChange(labels=Labels(project="NO"), replaced_by="ceo", replaced_at=now)
                ]
            }
        )
        backdated = relabeled(
            stored, Labels(project="p"), "alice", datetime(2000, 1, 1, tzinfo=UTC)
        )
        for forgery in (twice, rewritten, backdated):
            sidecar.write_text(forgery.model_dump_json())
            assert h.reindex().conflicting == [art.artifact_id]
            assert h.get(art.artifact_id).metadata == art.metadata
        sidecar.write_text(relabel.model_dump_json())  # as a relabel that stopped there
        assert h.reindex().updated == [art.artifact_id]
        assert h.get(art.artifact_id).metadata.labels.project == "p"
        sidecar.write_text(tombstone(relabel, "alice", now, "removal").model_dump_json())
        assert h.reindex().updated == [art.artifact_id]
        with pytest.raises(eio.ArtifactDeletedError, match="removal"):
            h.get(art.artifact_id)
        h.close()
        env = {
            **os.environ,
            "ELLIPTIO_STORAGE_URL": str(tmp_path / "store"),
            "ELLIPTIO_CATALOG_URL": f"sqlite:///{tmp_path}/c.db",
        }
        swept = subprocess.run(
            [sys.executable, "-m", "elliptio", "gc", "--grace-hours", "0", "--delete", "--yes"],
            capture_output=True,
            text=True,
            env=env,
        )
        # The CLI says what gc removed: it printed "0 removed" here (helper-51).
        assert swept.returncode == 0, swept.stderr
        assert f"removed {art.metadata.remote_root}" in swept.stdout
        assert "1 folders of deleted artifacts holding files, 1 removed" in swept.stdout
        assert not Path(art.file.url).exists()


def test_a_version_of_a_store_file_is_never_read_unverified(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a versioned bucket opened with version_aware, 'url?versionId=<id>' is
    read by s3fs as that version: the URL tools took it for no store file and
    served a storage writer's bytes unverified (helper-53)."""
    import boto3

    bucket = f"versioned-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    options = {
        "endpoint_url": s3_endpoint,
        "key": "testing",
        "secret": "testing",
        "version_aware": True,
    }
    h = eio.Handler(
        storage=f"s3://{bucket}/store",
        catalog=f"sqlite:///{tmp_path}/c.db",
        storage_options=options,
    )
    art = _upload_good(h, tmp_path)
    _export_settings(h, monkeypatch)
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    key = art.file.url.split("/", 3)[3]
    s3.put_object(Bucket=bucket, Key=key, Body=BAD)  # a storage writer
    version = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    versioned = f"{art.file.url}?versionId={version}"
    with pytest.raises(eio.FileNotInArtifactError, match="version"):
        _read(eio, versioned)
    with pytest.raises(eio.FileNotInArtifactError), eio.local_copy(versioned):
        pass
    with pytest.raises(eio.IntegrityError):
        _read(eio, art.file.url)
    h.close()


def test_a_read_stops_where_a_grown_file_passes_its_recorded_size(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorded size bounded previews, but read_bytes buffered the whole
    stored object before the sha256 told it apart: a 6-byte file grown to 1 GiB
    was read into memory whole (helper-59)."""
    art = _upload_good(handler, tmp_path)
    grown = GOOD + b"x" * (64 * 2**20)
    _tamper(handler, art.file.url, grown)
    delivered = count_delivered(handler.storage.backend, monkeypatch)
    with pytest.raises(eio.IntegrityError):
        handler.get(art.artifact_id).file.read_bytes()
    assert 0 < delivered[0] < 32 * 2**20


def _plant_field(h: eio.Handler, template: eio.Artifact, path: str, value: Any) -> str:
    """Insert a copy of ``template``'s record whose field at dotted ``path`` is
    ``value``, as a catalog writer can; its artifact id."""
    import copy

    doc = copy.deepcopy(template.metadata.to_document())
    aid = new_artifact_id()
    doc["artifact_id"] = aid
    doc["remote_root"] = doc["remote_root"].replace(template.artifact_id, aid)
    *parents, last = path.split(".")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    sync(h.catalog.insert(doc))
    return aid


MALFORMED_CREATION = ["yesterday", True, [1], 1e300, 5]


@pytest.mark.parametrize("catalog", ["sqlite", "mongomock"])
@pytest.mark.parametrize("value", MALFORMED_CREATION, ids=repr)
def test_a_planted_creation_time_that_is_no_date_is_a_corrupt_record_in_find(
    tmp_path: Path, catalog: str, value: Any
) -> None:
    """find() builds a date column: a record holding anything else there is
    CorruptRecordError naming the record and the field, on every backend
    (it was a raw pandas DateParseError, TypeError or OutOfBoundsDatetime)."""
    from mongomock_motor import AsyncMongoMockClient

    target: Any = (
        f"sqlite:///{tmp_path / 'c.db'}" if catalog == "sqlite" else AsyncMongoMockClient()["db"]
    )
    h = eio.Handler(storage=str(tmp_path / "store"), catalog=target)
    (tmp_path / "a.txt").write_text("a")
    template = h.upload(tmp_path / "a.txt")
    aid = _plant_field(h, template, "creation_time", value)
    for columns in (None, ["creation_time"]):
        with pytest.raises(eio.CorruptRecordError, match=f"{aid}.*creation_time"):
            h.find(columns=columns)
    assert list(h.find({"artifact_id": template.artifact_id}).index) == [template.artifact_id]
    h.close()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("creation_time", "yesterday"),
        ("files.0.size", "12"),
        ("files", {"a": 1}),
        ("files", [None]),
        ("file_relpaths", [1]),
        ("file_relpaths", "abc"),
        ("based_on", [1]),
        ("based_on", "artifact_x"),
    ],
)
def test_a_planted_malformed_record_is_named_by_the_cli_table(
    cli_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: str,
    value: Any,
) -> None:
    """`elliptio find` names the malformed record in one line, exit 1, instead of
    a TypeError from summing its sizes or joining its file names."""
    from elliptio._cli import main

    env = cli_env
    h = eio.Handler(storage=env["ELLIPTIO_STORAGE_URL"], catalog=env["ELLIPTIO_CATALOG_URL"])
    (tmp_path / "a.txt").write_text("a")
    aid = _plant_field(h, h.upload(tmp_path / "a.txt"), path, value)
    h.close()
    assert main(["find"]) == 1
    err = capsys.readouterr().err
    assert "CorruptRecordError" in err
    assert aid in err
    assert repr(path.split(".")[0]) in err
    assert "Traceback" not in err
    # Only the table sums and joins these fields; JSON shows them as stored.
    assert main(["find", "--format", "json"]) == (1 if path == "creation_time" else 0)


def test_the_cli_table_sums_sizes_a_real_mongodb_returns_as_int64() -> None:
    """pymongo hands sizes of 2 GiB and more back as bson.Int64 (an int): the table's
    check of malformed records must take them (helper-65)."""
    from bson.int64 import Int64

    from elliptio._cli import _SUMMARY_COLUMNS, _summary
    from elliptio._frame import to_frame

    doc = {
        "artifact_id": new_artifact_id(),
        "creation_time": datetime(2026, 1, 1, tzinfo=UTC),
        "username": "andy",
        "labels": {"datatype": "table"},
        "file_relpaths": ["big.bin"],
        "files": [{"relpath": "big.bin", "url": "s3://b/k", "size": Int64(3 * 2**30)}],
        "based_on": [],
        "name": None,
        "name_version": None,
    }
    shown = _summary(to_frame([doc], columns=_SUMMARY_COLUMNS), exact=True)
    assert shown["size"].tolist() == [str(3 * 2**30)]


def test_a_store_root_re_pointed_after_a_check_is_still_the_store(tmp_path: Path) -> None:
    """The URL tools resolve each store's root at every check: a root that is a
    link re-pointed to a copy of the store, after a first check, still protects
    the copy (a cached resolution let rm and cp through, helper-67)."""
    import shutil

    disk1, disk2, lake = tmp_path / "disk1", tmp_path / "disk2", tmp_path / "lake"
    disk1.mkdir()
    lake.symlink_to(disk1)
    h = eio.Handler(storage=str(lake), catalog=f"sqlite:///{tmp_path / 'c.db'}")
    art = _upload_good(h, tmp_path)
    eio.cp(str(tmp_path / "table.csv"), str(tmp_path / "copy.csv"))  # a first check
    shutil.copytree(disk1, disk2, symlinks=True)
    lake.unlink()
    lake.symlink_to(disk2)
    stored = disk2 / Path(art.file.url).relative_to(lake)
    for change in (
        lambda: eio.rm(str(stored)),
        lambda: eio.cp(str(tmp_path / "table.csv"), str(stored)),
        lambda: eio.rm(str(disk2), recursive=True),
    ):
        with pytest.raises(eio.InvalidPathError, match="elliptio store"):
            change()
    assert stored.read_bytes() == GOOD
    h.close()


def test_a_record_nested_too_deeply_is_corrupt_and_reindex_goes_on(
    tmp_path: Path,
) -> None:
    """Labels nested 600 deep in a planted row made get(), show and reindex raise a
    raw RecursionError (and reindex stop for the whole store); the same labels as
    input did too (helper-70)."""
    import sqlite3

    store, catalog = tmp_path / "store", f"sqlite:///{tmp_path / 'c.db'}"
    deep = "[" * 600 + "]" * 600
    with eio.Handler(storage=store, catalog=catalog) as h:
        nested: list[Any] = []
        for _ in range(600):
            nested = [nested]
        with pytest.raises(eio.InvalidLabelsError, match="nested too deeply"):
            eio.Labels(infos={"deep": nested})
        art = _upload_good(h, tmp_path)
        with sqlite3.connect(tmp_path / "c.db") as conn:
            conn.execute(
                "UPDATE artifacts SET labels_json = ?",
                ('{"labels": {"infos": {"deep": ' + deep + "}}}",),
            )
        conn.close()
        with pytest.raises(eio.CorruptRecordError, match="nested too deeply"):
            h.get(art.artifact_id)
        report = h.reindex()  # reported, never replaced from a sidecar (helper-72)
        assert report.unreadable == [art.artifact_id]
        with pytest.raises(eio.CorruptRecordError, match="nested too deeply") as caught:
            h.get(art.artifact_id)
        # The message names the step that works: reindex restores the record
        # once it is gone from the catalog (it said "restore it with reindex").
        assert "once it is removed from the catalog" in str(caught.value)
        sync(h.catalog.delete(art.artifact_id))
        assert h.reindex().added == [art.artifact_id]
        assert h.get(art.artifact_id).files["table.csv"].read_bytes() == GOOD


def test_a_record_planted_in_another_catalog_never_stands_in_for_a_kept_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records kept in the cache were kept by artifact id alone: one get() through
    catalog A, whose writer planted a record under the id of catalog B's
    artifact naming another file of B's store, replaced what B's readers read
    offline, or with B's server down, and served that file's bytes, verified
    (helper-73)."""
    import asyncio
    import copy

    from mongomock_motor import AsyncMongoMockClient

    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "model.bin").write_bytes(GOOD)
    (tmp_path / "evil.bin").write_bytes(b"EVIL")
    client_b = AsyncMongoMockClient("mongodb://team-b:27017")
    client_a = AsyncMongoMockClient("mongodb://other-a:27017")
    store = tmp_path / "store"
    with eio.Handler(storage=store, catalog=client_b) as hb:
        x = hb.upload(tmp_path / "model.bin", name="model")
        y = hb.upload(tmp_path / "evil.bin")
        assert hb.get(x.artifact_id).files["model.bin"].read_bytes() == GOOD  # kept
    records = client_b["elliptio"]["artifacts"]
    planted = copy.deepcopy(
        asyncio.run(records.find_one({"artifact_id": x.artifact_id}, {"_id": 0}))
    )
    evil = asyncio.run(records.find_one({"artifact_id": y.artifact_id}, {"_id": 0}))
    planted["files"] = [{**evil["files"][0], "relpath": "model.bin"}]
    planted.pop("_environment", None)
    planted["python_packages"] = {}
    asyncio.run(client_a["elliptio"]["artifacts"].insert_one(planted))
    with eio.Handler(storage=tmp_path / "other", catalog=client_a) as ha:
        ha.get(x.artifact_id)  # a mere look-up through catalog A
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    with eio.Handler(storage=store, catalog=client_b) as hb:
        assert hb.get(x.artifact_id).files["model.bin"].read_bytes() == GOOD


def test_planted_mongodb_documents_are_corrupt_records_never_raw_errors(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """On MongoDB a record with no artifact_id made find, get by name, delete and
    lineage raise a raw KeyError or TypeError; an environment holding a BSON
    value JSON does not hold, a raw TypeError; a run_inputs row with no id, or
    one that is no text, stopped every commit of the run (helper-73)."""
    from bson import Binary
    from mongomock_motor import AsyncMongoMockClient

    client = AsyncMongoMockClient()
    db = client["elliptio"]
    with eio.Handler(storage=tmp_path / "store", catalog=client) as h:
        art = h.upload(data_files["test"], name="ds")
        with h.run() as run:
            run.env()  # the run is shared: its inputs are read from the catalog
            rows = [{}, {"artifact_id": 5}, {"artifact_id": {"x": 1}}]
            sync(
                db["artifacts.run_inputs"].insert_many([{"run_id": run.run_id, **r} for r in rows])
            )
            h.get(art.artifact_id)
            assert h.upload(data_files["train"]).metadata.based_on == [art.artifact_id]
        sync(
            db["artifacts.environments"].update_many(
                {}, {"$set": {"python_packages.x": Binary(b"\0")}}
            )
        )
        with pytest.raises(eio.CorruptRecordError, match="environment"):
            h.get(art.artifact_id)
        sync(db["artifacts"].insert_one({"name": "ds", "name_version": 9, "based_on": []}))
        for call in (lambda: h.get("ds"), lambda: h.get("ds:v9")):
            with pytest.raises(eio.CorruptRecordError, match="no artifact_id"):
                call()
        # A search leaves it out, with a warning: one such record must not stop
        # every search of everyone (helper-75).
        assert len(h.find(include_deleted=True)) == 2


def test_a_record_whose_files_clash_is_corrupt_before_a_download(tmp_path: Path) -> None:
    """A planted record with files "a" and "a/b" (both intact references) made
    download raise a raw IsADirectoryError, CLI too; add_reference could make
    such an artifact (helper-76)."""
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "p").write_bytes(b"P" * 10)
        (tmp_path / "src" / "q").write_bytes(b"Q" * 10)
        template = h.upload(tmp_path / "src")
        p, q = template.files["src/p"], template.files["src/q"]
        files = [
            {"relpath": "a", "url": p.url, "size": p.size, "sha256": p.sha256},
            {"relpath": "a/b", "url": q.url, "size": q.size, "sha256": q.sha256},
        ]
        aid = _plant_field(h, template, "files", files)
        with pytest.raises(eio.CorruptRecordError, match="lies inside 'a'"):
            h.get(aid)
        from elliptio._cli import main

        cli = ["--storage", str(tmp_path / "store"), "--catalog", f"sqlite:///{tmp_path / 'c.db'}"]
        assert main([*cli, "download", aid, "-o", str(tmp_path / "out")]) == 1
        assert not (tmp_path / "out").exists()


def test_a_sidecar_or_copy_of_aliases_past_64_bits_never_stops_reindex(
    handler: eio.Handler, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """A planted sidecar with a file size of 2**64 (or a version past the ceiling)
    stopped reindex for every later folder with InvalidLabelsError; a planted
    copy of aliases with a version of 2**70 raised a raw OverflowError
    (helper-76)."""
    import json as json_mod

    real = handler.upload(data_files["test"], name="ds")
    planted = _planted_record(handler, real, real.file.url)
    doc = json_mod.loads(planted.to_json())
    doc["files"][0]["size"] = 2**64
    sidecar = handler.storage.path(planted.remote_root) + "/.elliptio/metadata.json"
    handler.storage.fs.makedirs(sidecar.rsplit("/", 1)[0], exist_ok=True)
    handler.storage.fs.pipe(sidecar, json_mod.dumps(doc).encode())
    handler.storage.fs.makedirs(f"{handler.storage.root}/.elliptio/aliases", exist_ok=True)
    aliases = f"{handler.storage.root}/.elliptio/aliases/ds.json"
    handler.storage.fs.pipe(
        aliases, json_mod.dumps({"name": "ds", "aliases": {"prod": 2**70}}).encode()
    )
    sync(handler.catalog.delete(real.artifact_id))
    report = handler.reindex(aliases=True)
    assert report.added == [real.artifact_id]
    assert report.unreadable == [planted.artifact_id]
    assert handler.aliases("ds") == {}
    assert handler.get("ds:v1").artifact_id == real.artifact_id


def test_planted_sqlite_columns_of_another_type_are_no_raw_errors(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """An environment id or a name_version of text in one SQLite row made find()
    or names() raise a raw TypeError or ValueError, in the CLI and the UI too
    (helper-76)."""
    import sqlite3

    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        first = h.upload(data_files["test"], name="ds")
        h.upload(data_files["train"], name="ds")
        with sqlite3.connect(tmp_path / "c.db") as conn:
            conn.execute(
                "UPDATE artifacts SET environment = 'x' WHERE artifact_id = ?", (first.artifact_id,)
            )
            conn.execute(
                "UPDATE artifacts SET name_version = 'x' WHERE artifact_id = ?",
                (first.artifact_id,),
            )
        conn.close()
        assert len(h.find()) == 2  # the default frame reads no packages
        with pytest.raises(eio.CorruptRecordError):
            h.get(first.artifact_id)
        assert h.names().to_dict("records")[0]["versions"] == 1


def test_the_identity_of_a_mongodb_client_object_is_the_same_in_every_process() -> None:
    """Records kept for offline reads are kept per catalog: the identity of a
    client object held object addresses (ServerApi) and hosts in set order, so
    another process never found them (helper-75). Other hosts, another catalog."""
    import pymongo
    from pymongo.server_api import ServerApi

    from elliptio._catalog import open_catalog

    def identity(uri: str, **kwargs: Any) -> str:
        client: Any = pymongo.AsyncMongoClient(uri, connect=False, **kwargs)
        return str(open_catalog(client).identity)

    one = identity("mongodb://h2:27017,h1:27018/?replicaSet=rs", server_api=ServerApi("1"))
    assert one == identity("mongodb://h1:27018,h2:27017/?replicaSet=rs", server_api=ServerApi("1"))
    assert "0x" not in one
    assert one != identity("mongodb://h3:27017/?replicaSet=rs")
    # IPv6 servers are told apart (only their last group was kept, helper-77);
    # a URL's identity holds no option and no host order.
    assert identity("mongodb://[2001:db8::1]:27017") != identity("mongodb://[fd00::1]:27017")
    # the same servers by URL and by client object, IPv6 and sockets too (helper-78)
    for uri in ("mongodb://[::1]:27017/elliptio", "mongodb://%2Ftmp%2Fm.sock/elliptio"):
        assert open_catalog(uri).identity == identity(uri.replace("/elliptio", ""))
    assert identity("mongodb://%2Ftmp%2FA.sock") != identity("mongodb://%2Ftmp%2Fa.sock")
    urls = ["mongodb://h2,h1:27017/db?serverSelectionTimeoutMS=5", "mongodb://h1,h2/db"]
    assert len({open_catalog(url).identity for url in urls}) == 1
    assert open_catalog("mongodb://h1/db").identity != open_catalog("mongodb://h1/other").identity


@pytest.mark.parametrize("catalog", ["sqlite", "mongodb"])
@pytest.mark.parametrize("relpaths", [5, 1.5, True, "a.txt"])
def test_a_planted_record_whose_relpaths_are_no_list_never_stops_lineage(
    tmp_path: Path, data_files: dict[str, Path], catalog: str, relpaths: Any
) -> None:
    """A record built on a real artifact, planted with ``file_relpaths`` that is
    no list: `lineage` of that artifact raised a raw TypeError ('int' object is
    not iterable), in the library and the CLI, or showed a text as its letters
    (helper-99). The node shows no files; the rest of the graph is drawn."""
    from mongomock_motor import AsyncMongoMockClient

    client = AsyncMongoMockClient()
    where: Any = client if catalog == "mongodb" else f"sqlite:///{tmp_path / 'c.db'}"
    with eio.Handler(storage=tmp_path / "store", catalog=where) as h:
        art = h.upload(data_files["test"])
        doc = sync(h.catalog.get(art.artifact_id))
        planted_id = new_artifact_id()
        planted = {**doc, "artifact_id": planted_id, "based_on": [art.artifact_id]}
        planted["file_relpaths"] = relpaths
        if catalog == "mongodb":
            planted.pop("python_packages", None)
            sync(client["elliptio"]["artifacts"].insert_one(planted))
        else:
            sync(h.catalog.insert(planted))
        for direction in ("down", "both"):
            graph = h.lineage(art.artifact_id, direction=direction)  # type: ignore[arg-type]
            assert graph.children(art.artifact_id) == [planted_id]
            assert graph.nodes[planted_id].file_relpaths == ()
            assert planted_id in graph.to_text()
        assert h.lineage(planted_id, direction="up").parents(planted_id) == [art.artifact_id]
        if catalog == "sqlite":
            h.close()
            out = _cli(h, tmp_path, "lineage", art.artifact_id)
            assert out.returncode == 0, out.stderr
            assert planted_id[:17] in out.stdout


def test_a_record_planted_on_mongodb_never_shares_a_version_silently(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """MongoDB has no unique index on (name, name_version): a record inserted by
    someone with insert rights could claim ds:v1 beside the one committed as v1,
    and which of them `get('ds:v1')` returned was up to the server's order
    (helper-99). Both are named in a CorruptRecordError; the ids still read."""
    from mongomock_motor import AsyncMongoMockClient

    client = AsyncMongoMockClient()
    with eio.Handler(storage=tmp_path / "store", catalog=client) as h:
        art = h.upload(data_files["test"], name="ds")
        doc = sync(h.catalog.get(art.artifact_id))
        planted = {**doc, "artifact_id": new_artifact_id(), "labels": {"description": "mine"}}
        planted.pop("python_packages", None)
        sync(client["elliptio"]["artifacts"].insert_one(planted))
        for ref in ("ds:v1", "ds", "ds:latest"):
            with pytest.raises(eio.CorruptRecordError, match="claimed by two") as err:
                h.get(ref)
            assert art.artifact_id in str(err.value)
            assert planted["artifact_id"] in str(err.value)
        assert h.get(art.artifact_id).file.read_bytes() == data_files["test"].read_bytes()


def test_a_record_planted_at_a_deleted_version_never_becomes_the_latest(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """A tombstone keeps its version (numbers are never reused), but the latest
    version was looked up among records not deleted only: a record planted at the
    deleted ds:v2 made get('ds') return it silently, while get('ds:v2') named
    both. Every reference to that version now names both."""
    from mongomock_motor import AsyncMongoMockClient

    client = AsyncMongoMockClient()
    with eio.Handler(storage=tmp_path / "store", catalog=client) as h:
        first = h.upload(data_files["test"], name="ds")
        second = h.upload(data_files["test"], name="ds")
        doc = sync(h.catalog.get(second.artifact_id))
        h.delete("ds:v2", reason="test")
        # A whole record, as a catalog writer inserts it (its own package list).
        planted = {**doc, "artifact_id": new_artifact_id(), "labels": {"description": "mine"}}
        sync(client["elliptio"]["artifacts"].insert_one(planted))
        for ref in ("ds:v2", "ds", "ds:latest"):
            with pytest.raises(eio.CorruptRecordError, match="claimed by two") as err:
                h.get(ref)
            assert second.artifact_id in str(err.value)
            assert planted["artifact_id"] in str(err.value)
        assert h.get("ds:v1").artifact_id == first.artifact_id
