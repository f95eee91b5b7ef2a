"""Deduplication: content committed once is referenced, not copied, on every store."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._sync import sync


def _data_objects(h: eio.Handler) -> list[str]:
    """Every stored file that is not a sidecar."""
    fs = h.storage.fs
    return sorted(p for p in fs.find(h.storage.root) if "/.elliptio/" not in p)


def _path(h: eio.Handler, url: str) -> str:
    return str(h.storage.fs._strip_protocol(url))


def test_same_content_is_stored_once(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    first = handler.upload(data_files["train"])
    second = handler.upload([data_files["train"], data_files["test"]])
    train, test = second.files["train.txt"], second.files["test.txt"]
    assert train.url == first.files["train.txt"].url  # a reference to the first copy
    assert test.url.startswith(second.metadata.remote_root)  # new content: copied
    assert len(_data_objects(handler)) == 2
    # Reads, downloads, integrity checks and lineage work as for any file.
    again = handler.get(second.artifact_id)
    assert again.files["train.txt"].read_text() == data_files["train"].read_text()
    assert handler.verify(second.artifact_id).ok
    assert second.metadata.based_on == []
    assert train.sha256 == first.files["train.txt"].sha256
    assert train.size == data_files["train"].stat().st_size


def test_dedup_false_copies(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    first = handler.upload(data_files["train"])
    second = handler.upload(data_files["train"], dedup=False)
    assert second.file.url != first.file.url
    assert second.file.url.startswith(second.metadata.remote_root)
    assert len(_data_objects(handler)) == 2
    with handler.new("t.txt", dedup=False) as new:
        new.file.write_text(data_files["train"].read_text())
    assert new.artifact.file.url.startswith(new.artifact.metadata.remote_root)
    assert len(_data_objects(handler)) == 3


def test_new_artifacts_reference_committed_content(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    first = handler.upload(data_files["train"])
    with handler.new(["copy.txt", "fresh.txt"]) as new:
        written = new.files["copy.txt"].url
        new.files["copy.txt"].write_text(data_files["train"].read_text())
        new.files["fresh.txt"].write_text("something new")
    art = new.artifact
    assert art.files["copy.txt"].url == first.file.url
    assert not handler.storage.fs.exists(_path(handler, written))
    # The file's URL is now the committed one, which holds the bytes (it named
    # the copy removed at the commit, helper-74).
    assert new.files["copy.txt"].url == first.file.url
    assert art.files["fresh.txt"].url == new.files["fresh.txt"].url
    assert len(_data_objects(handler)) == 2
    assert handler.verify(art.artifact_id).ok
    assert handler.get(art.artifact_id).files["copy.txt"].read_bytes() == (
        data_files["train"].read_bytes()
    )


def test_logs_are_deduplicated_too(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    first = handler.upload(data_files["train"], logs=[data_files["test"]])
    second = handler.upload(data_files["test"], logs=[data_files["test"]])
    assert second.logs["test.txt"].url == first.logs["test.txt"].url
    assert second.file.url == first.logs["test.txt"].url  # a log's bytes serve a file too
    assert handler.verify(second.artifact_id).ok


def test_a_vanished_original_is_copied_again(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    first = handler.upload(data_files["train"])
    path = _path(handler, first.file.url)
    if os.path.exists(path):
        os.chmod(path, 0o644)  # committed local files are read-only
    handler.storage.fs.rm(path)  # someone removed it behind elliptio's back
    second = handler.upload(data_files["train"])
    assert second.file.url.startswith(second.metadata.remote_root)
    assert handler.verify(second.artifact_id).ok


def test_no_references_across_stores(
    storage_url: str, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    catalog = f"sqlite:///{tmp_path / 'shared.db'}"
    # "lake" is a string prefix of "lake2": still two stores.
    with (
        eio.Handler(storage=f"{storage_url}/lake", catalog=catalog) as a,
        eio.Handler(storage=f"{storage_url}/lake2", catalog=catalog) as b,
    ):
        in_a = a.upload(data_files["train"])
        in_b = b.upload(data_files["train"])
        assert in_b.file.url.startswith(in_b.metadata.remote_root)
        assert a.upload(data_files["train"]).file.url == in_a.file.url
        assert b.upload(data_files["train"]).file.url == in_b.file.url


def test_empty_files_are_not_references(
    handler: eio.Handler, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    first = handler.upload(empty)
    second = handler.upload(empty)
    assert second.file.url != first.file.url
    assert second.file.read_bytes() == b""


@pytest.mark.parametrize("storage_url", ["file"], indirect=True)
def test_a_file_changed_between_its_hash_and_its_copy_is_recorded_as_copied(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dedup hashes a small file before asking the catalog; a file still being
    # written (a growing log) may change before it is copied. The record must
    # describe the bytes stored, never the hash seen first.
    data = tmp_path / "data.bin"
    data.write_bytes(b"a" * 1000)
    handler.upload(data)
    data.write_bytes(b"b" * 1000)
    import elliptio._handler as handler_module

    real = handler_module.hash_file

    def hash_then_change(path: Path) -> tuple[int, str]:
        result = real(path)
        path.write_bytes(b"c" * 1001)  # changes between the hash and the copy
        return result

    monkeypatch.setattr(handler_module, "hash_file", hash_then_change)
    art = handler.upload(data)
    assert art.file.read_bytes() == b"c" * 1001
    assert art.file.size == 1001
    assert art.file.sha256 == hashlib.sha256(b"c" * 1001).hexdigest()
    assert handler.verify(art.artifact_id).ok


@pytest.mark.parametrize("storage_url", ["file"], indirect=True)
def test_an_unreadable_file_is_a_storage_error_with_or_without_dedup(
    handler: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 100)
    import elliptio._backends as backends
    import elliptio._handler as handler_module

    def unreadable(path: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(handler_module, "hash_file", unreadable)
    real_open = open

    def no_read(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(data):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(backends, "open", no_read, raising=False)
    before = handler.count()
    for dedup in (True, False):
        with pytest.raises(eio.StorageError, match="Permission denied"):
            handler.upload(data, dedup=dedup)
    assert handler.count() == before


def test_references_are_checked_per_file_in_a_folder(handler: eio.Handler, tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (folder / name).write_bytes(name.encode() * 100)
    first = handler.upload(folder)
    gone = _path(handler, first.files["ds/b.bin"].url)
    if os.path.exists(gone):
        os.chmod(gone, 0o644)
    handler.storage.fs.rm(gone)
    second = handler.upload(folder)
    assert second.files["ds/a.bin"].url == first.files["ds/a.bin"].url
    assert second.files["ds/c.bin"].url == first.files["ds/c.bin"].url
    assert second.files["ds/b.bin"].url.startswith(second.metadata.remote_root)
    assert handler.verify(second.artifact_id).ok


def test_deleting_a_deduplicated_artifact_says_whose_bytes_stay(
    handler: eio.Handler, tmp_path: Path
) -> None:
    data = tmp_path / "people.csv"
    data.write_text("name\nBrenda\n")
    first = handler.upload(data)
    second = handler.upload(data, name="train-set")
    report = handler.delete("train-set:v1", reason="holds personal data")
    assert report.removed == []
    assert report.kept == {second.file.url: first.artifact_id}
    assert f"kept 1 file(s) whose bytes {first.artifact_id} stored" in str(report)
    assert first.file.read_bytes() == data.read_bytes()
    gone = handler.delete(first.artifact_id, reason="holds personal data")
    assert gone.removed == [first.file.url]
    assert gone.kept == {}


def test_a_folder_of_over_a_thousand_files_stored_before(tmp_path: Path) -> None:
    # Each file's content is in another artifact: one lookup of 1,200 owners, which
    # SQLite refuses as one $in ("Expression tree is too large"). One local store:
    # the catalog is what matters here.
    src = tmp_path / "many"
    src.mkdir()
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        firsts = []
        for i in range(1200):
            (src / f"f{i}.txt").write_text(f"content {i}")
            firsts.append(h.upload(src / f"f{i}.txt"))
        folder = h.upload(src)
        assert len(folder.files) == 1200
        for i, first in enumerate(firsts):
            assert folder.files[f"many/f{i}.txt"].url == first.file.url
        assert h.verify(folder.artifact_id).ok


@pytest.fixture(params=["sqlite", "mongomock"])
def racing(
    request: pytest.FixtureRequest,
    storage_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[eio.Handler, eio.Artifact, Path]]:
    """A handler, a committed artifact holding ``shared.txt``, and that file's local
    source; the next dedup lookup that finds it deletes the artifact right after,
    as another process's delete would while a commit is being written."""
    catalog: Any = f"sqlite:///{tmp_path / 'c.db'}"
    if request.param == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        catalog = AsyncMongoMockClient()["elliptio"]["artifacts"]
    with eio.Handler(storage=storage_url, catalog=catalog) as h:
        src = tmp_path / "shared.txt"
        src.write_text("shared bytes\n")
        owner = h.upload(src)
        lookup = eio.AsyncHandler._existing
        fired: list[bool] = []

        async def then_delete(self: eio.AsyncHandler, *args: Any) -> dict[Any, str]:
            found = await lookup(self, *args)
            if found and not fired:
                fired.append(True)
                await self.delete(owner.artifact_id, reason="meanwhile")
            return found

        monkeypatch.setattr(eio.AsyncHandler, "_existing", then_delete)
        yield h, owner, src


def test_an_upload_whose_dedup_source_is_deleted_meanwhile_copies_its_bytes(
    racing: tuple[eio.Handler, eio.Artifact, Path], tmp_path: Path
) -> None:
    """helper-80: a commit referenced a file that a concurrent delete removed after
    the dedup lookup: committed, and unreadable for good. upload() now sees the
    owner gone after its commit, takes its record back and uploads again."""
    h, owner, src = racing
    (tmp_path / "more.txt").write_text("more\n")
    art = h.upload([src, tmp_path / "more.txt"])
    assert art.files["shared.txt"].url.startswith(art.metadata.remote_root)  # copied
    again = h.get(art.artifact_id)
    assert again.files["shared.txt"].read_text() == "shared bytes\n"
    assert h.verify(art.artifact_id).ok
    with pytest.raises(eio.ArtifactDeletedError):
        h.get(owner.artifact_id)
    assert len(h.find()) == 1  # the first try took its record back


def test_a_new_artifact_whose_dedup_source_is_deleted_meanwhile_is_not_committed(
    racing: tuple[eio.Handler, eio.Artifact, Path],
) -> None:
    h, owner, _ = racing
    with pytest.raises(eio.DedupSourceDeletedError, match=owner.artifact_id) as caught:
        with h.new("copy.txt") as new:
            new.file.write_text("shared bytes\n")
    assert isinstance(caught.value, eio.CommitError)
    with pytest.raises(eio.ArtifactNotFoundError):
        h.get(new.artifact_id)
    assert len(h.find()) == 0
    assert not h.storage.fs.exists(h.storage.path(new.file.url))  # nothing left behind


def test_a_failure_after_the_commit_landed_keeps_the_artifact_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """helper-82: the owner check after a commit failed (a catalog blip, a
    cancellation), and the upload's clean-up then removed the files and sidecar of
    an artifact whose record stood. A record in the catalog keeps its files."""
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        (tmp_path / "a.txt").write_text("same bytes\n")
        (tmp_path / "b.txt").write_text("unique bytes\n")
        h.upload(tmp_path / "a.txt")
        catalog = h.aio.catalog
        real_count = catalog.count

        async def blip(flt: Any = None, **kwargs: Any) -> int:
            if flt and "deleted" in flt:
                raise eio.CatalogUnavailableError("connection reset (a blip)")
            return await real_count(flt, **kwargs)

        monkeypatch.setattr(catalog, "count", blip)
        art = h.upload([tmp_path / "a.txt", tmp_path / "b.txt"])
        with h.new("c.txt") as new:
            new.file.write_text("same bytes\n")
        monkeypatch.undo()
        for made in (art, new.artifact):
            again = h.get(made.artifact_id)
            assert h.verify(made.artifact_id).ok
            for file in again.files.values():
                assert file.read_text() in ("same bytes\n", "unique bytes\n")

        async def cancelled(flt: Any = None, **kwargs: Any) -> int:
            if flt and "deleted" in flt:
                raise asyncio.CancelledError
            return await real_count(flt, **kwargs)

        monkeypatch.setattr(catalog, "count", cancelled)
        with pytest.raises(concurrent.futures.CancelledError):  # as the sync API reports it
            h.upload([tmp_path / "a.txt", tmp_path / "b.txt"])
        monkeypatch.undo()
        assert len(h.find()) == 4
        assert all(h.verify(a).ok for a in h.find().index)


def test_a_commit_whose_call_failed_after_its_record_landed_keeps_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """helper-83: the record was in the catalog but the commit call failed (the
    lease's close, or the answer, lost), and the clean-up removed its files and
    sidecar: a record in the catalog pointing at nothing, beyond reindex's reach."""
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        catalog = h.aio.catalog
        real_commit = catalog.commit

        async def answer_lost(doc: Any) -> None:
            await real_commit(doc)
            raise eio.CatalogUnavailableError("the answer was lost")

        monkeypatch.setattr(catalog, "commit", answer_lost)
        (tmp_path / "a.txt").write_text("kept\n")
        with pytest.raises(eio.CatalogUnavailableError):
            h.upload(tmp_path / "a.txt")
        monkeypatch.undo()
        [aid] = list(h.find().index)
        assert h.get(aid).file.read_text() == "kept\n"
        assert h.verify(aid).ok


def test_a_write_that_failed_before_its_commit_cleans_up_whatever_the_catalog_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """helper-84: a failure before the record was sent still asked the catalog
    whether it had landed; a catalog blip then (or catalog='none', which cannot
    count) left the files and an open lease behind."""
    from elliptio._backends import LocalBackend

    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        (tmp_path / "a.txt").write_text("a\n")

        async def blip(*args: Any, **kwargs: Any) -> int:
            raise eio.CatalogError("blip")

        monkeypatch.setattr(h.aio.catalog, "count", blip)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise OSError("disk gone mid-upload")

        monkeypatch.setattr(LocalBackend, "_put_file", broken)
        with pytest.raises(eio.StorageError, match="disk gone"):
            h.upload(tmp_path / "a.txt", dedup=False)
        monkeypatch.undo()
        assert h.storage.fs.find(h.storage.root) == []
        later = datetime.now(UTC) + timedelta(days=1)
        assert sync(h.aio.catalog.old_leases(later)) == []  # the lease closed too
    with eio.Handler(storage=tmp_path / "none", catalog="none") as writer:
        with pytest.raises(ZeroDivisionError), writer.new("c.txt") as new:
            new.file.write_text("c")
            1 / 0  # noqa: B018
        assert writer.storage.fs.find(writer.storage.root) == []


def test_gc_finds_a_stopped_writers_sidecar_copy_in_memory(tmp_path: Path) -> None:
    """helper-84: a memory:// store's files have only 'created' times: gc never
    judged the age of a temporary sidecar copy there, and kept it for good."""
    import uuid

    from elliptio._layout import METADATA_RELPATH

    with eio.Handler(storage=f"memory://gc-{uuid.uuid4().hex}", catalog="memory://") as h:
        (tmp_path / "a.txt").write_text("a\n")
        art = h.upload(tmp_path / "a.txt")
        h.delete(art.artifact_id, reason="gone")
        folder = h.storage.path(art.metadata.remote_root)
        temp = f"{folder}/{METADATA_RELPATH}.{uuid.uuid4().hex}.tmp"
        h.storage.fs.pipe_file(temp, b"{}")
        assert h.gc(delete=True).deleted_leftovers == []  # within the grace: maybe live
        assert h.gc(delete=True, grace=timedelta(0)).deleted_leftovers == [art.metadata.remote_root]
        assert not h.storage.fs.exists(temp)
