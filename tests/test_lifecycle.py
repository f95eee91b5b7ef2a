"""Deleting with a tombstone, editing labels with history, downloading a whole artifact.

Every test runs on SQLite and on MongoDB (mongomock-motor), and on local disk and
S3 (the moto server) where files are involved.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._cli import main
from elliptio._layout import METADATA_RELPATH
from elliptio._lifecycle import tombstone


@pytest.fixture(params=["sqlite", "mongomock"])
def catalog_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()["elliptio"][f"artifacts_{uuid.uuid4().hex[:8]}"]


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / "store")
    return request.getfixturevalue("storage_url_s3")


@pytest.fixture
def storage_url_s3(s3_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    from tests.conftest import S3_BUCKET

    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    return f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def h(store: str, catalog_spec: Any) -> Iterator[eio.Handler]:
    handler = eio.Handler(storage=store, catalog=catalog_spec)
    yield handler
    handler.close()


@pytest.fixture
async def ah(store: str, catalog_spec: Any) -> AsyncIterator[eio.AsyncHandler]:
    async with eio.AsyncHandler(storage=store, catalog=catalog_spec) as handler:
        yield handler


def _folder(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    folder = tmp_path / name
    for relpath, data in files.items():
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_bytes(data)
    return folder


def _sidecar(h: eio.Handler, art: eio.Artifact) -> dict[str, Any]:
    prefix = h.storage.path(art.metadata.remote_root)
    data: dict[str, Any] = json.loads(h.storage.fs.cat_file(f"{prefix}/{METADATA_RELPATH}"))
    return data


def _stored_files(h: eio.Handler, art: eio.Artifact) -> list[str]:
    prefix = h.storage.path(art.metadata.remote_root)
    return sorted(p.removeprefix(prefix + "/") for p in h.storage.fs.find(prefix))


# -- delete ------------------------------------------------------------------------


def test_delete_leaves_a_tombstone_and_moves_latest(h: eio.Handler, tmp_path: Path) -> None:
    v1 = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="set")
    v2 = h.upload(
        _folder(tmp_path, "b", {"x.csv": b"2\n", "y.csv": b"22\n"}),
        name="set",
        labels={"project": "secret-person"},
    )
    h.set_alias("set:v2", "prod")
    h.set_alias("set:v1", "old")

    report = h.delete("set:latest", reason="holds personal data")

    assert (report.artifact_id, report.ref, report.aliases) == (v2.artifact_id, "set:v2", ["prod"])
    assert sorted(report.removed) == sorted(f.url for f in v2.files.values())
    assert "set:prod" in str(report)
    with pytest.raises(eio.ArtifactDeletedError) as caught:
        h.get(v2.artifact_id)
    assert isinstance(caught.value, eio.ArtifactNotFoundError)
    message = str(caught.value)
    assert eio.current_username() in message
    assert "holds personal data" in message
    with pytest.raises(eio.ArtifactDeletedError):
        h.get("set:v2")  # an explicit version names the tombstone
    with pytest.raises(eio.ArtifactNotFoundError):
        h.get("set:prod")  # its alias is gone
    assert h.aliases("set") == {"old": "v1"}
    assert h.get("set:latest").artifact_id == v1.artifact_id
    assert h.names().loc["set", "latest"] == "v1"
    assert list(h.find().index) == [v1.artifact_id]
    assert h.count() == 1
    assert h.count(include_deleted=True) == 2
    every = h.find(include_deleted=True)
    stone = every.loc[v2.artifact_id, "deleted"]
    assert stone["reason"] == "holds personal data"
    assert stone["deleted_by"] == eio.current_username()
    assert every.loc[v1.artifact_id, "deleted"] is None
    assert h.find({"labels.project": "secret-person"}, include_deleted=True).empty

    # Files gone, sidecar kept as the tombstone, which keeps no labels or files.
    assert _stored_files(h, v2) == [METADATA_RELPATH]
    side = _sidecar(h, v2)
    assert side["deleted"]["reason"] == "holds personal data"
    assert side["files"] == []
    assert side["labels"]["project"] == ""
    assert side["argv"] == []
    assert (side["name"], side["name_version"]) == ("set", 2)

    # Version numbers are never given again.
    v3 = h.upload(_folder(tmp_path, "c", {"x.csv": b"3\n"}), name="set")
    assert v3.ref == "set:v3"


def test_delete_needs_a_reason_and_a_live_ref(h: eio.Handler, tmp_path: Path) -> None:
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    for reason in ("", "   "):
        with pytest.raises(eio.UsageError, match="needs a reason"):
            h.delete(art.artifact_id, reason=reason)
    assert h.get(art.artifact_id).file.read_bytes() == b"1\n"
    with pytest.raises(eio.ArtifactNotFoundError):
        h.delete("artifact_" + "0" * 32, reason="typo")


def test_rerunning_a_delete_is_harmless(h: eio.Handler, tmp_path: Path) -> None:
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    first = h.delete(art.artifact_id, reason="mistake")
    again = h.delete(art.artifact_id, reason="mistake")
    assert not first.already_deleted
    assert again.already_deleted
    assert again.removed == []
    assert _sidecar(h, art)["deleted"]["deleted_at"] is not None


def test_a_dedup_source_cannot_be_deleted_while_referenced(h: eio.Handler, tmp_path: Path) -> None:
    data = b"shared bytes\n" * 100
    source = h.upload(_folder(tmp_path, "a", {"x.bin": data}))
    copy = h.upload(_folder(tmp_path, "b", {"y.bin": data}))
    assert copy.file.url == source.file.url  # deduplicated

    with pytest.raises(eio.UsageError, match=copy.artifact_id):
        h.delete(source.artifact_id, reason="cleanup")
    assert h.get(source.artifact_id).file.read_bytes() == data  # untouched

    # The copy owns no bytes: deleting it removes nothing of the source.
    assert h.delete(copy.artifact_id, reason="cleanup").removed == []
    assert h.get(source.artifact_id).file.read_bytes() == data
    h.delete(source.artifact_id, reason="cleanup")

    # Dedup never references bytes of a deleted artifact: the next one copies them.
    again = h.upload(_folder(tmp_path, "c", {"z.bin": data}))
    assert again.file.url.startswith(again.metadata.remote_root)
    assert h.get(again.artifact_id).file.read_bytes() == data


def test_tombstone_survives_reindex(h: eio.Handler, tmp_path: Path) -> None:
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="set")
    h.delete("set:v1", reason="wrong data")
    from elliptio._sync import sync

    sync(h.catalog.delete(art.artifact_id))  # the catalog lost it
    report = h.reindex()
    assert report.added == [art.artifact_id]
    with pytest.raises(eio.ArtifactDeletedError, match="wrong data"):
        h.get(art.artifact_id)
    assert h.find().empty
    assert h.reindex().unchanged == [art.artifact_id]


def test_a_delete_stopped_after_its_sidecar_is_finished_by_reindex_and_gc(
    h: eio.Handler, tmp_path: Path
) -> None:
    from datetime import timedelta

    from elliptio._sync import sync

    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n", "y.csv": b"2\n"}))
    stone = tombstone(art.metadata, "someone", art.metadata.creation_time, "crashed delete")
    prefix = h.storage.path(art.metadata.remote_root)
    # The delete wrote its sidecar and died: catalog and files are as before.
    sync(h.storage.replace_bytes(f"{prefix}/{METADATA_RELPATH}", stone.to_json(indent=2)))
    assert h.get(art.artifact_id).files["a/x.csv"].read_bytes() == b"1\n"

    assert h.reindex().updated == [art.artifact_id]
    with pytest.raises(eio.ArtifactDeletedError, match="crashed delete"):
        h.get(art.artifact_id)
    dry = h.gc(grace=timedelta(0))
    assert dry.deleted_leftovers == [art.metadata.remote_root]
    assert len(_stored_files(h, art)) == 3
    h.gc(grace=timedelta(0), delete=True)
    assert _stored_files(h, art) == [METADATA_RELPATH]
    assert h.gc(grace=timedelta(0)).deleted_leftovers == []


def test_a_delete_stopped_after_the_catalog_is_finished_by_rerunning_it(
    h: eio.Handler, tmp_path: Path
) -> None:
    from elliptio._lifecycle import revision
    from elliptio._sync import sync

    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    stone = tombstone(art.metadata, "someone", art.metadata.creation_time, "crashed delete")
    prefix = h.storage.path(art.metadata.remote_root)
    sync(h.storage.replace_bytes(f"{prefix}/{METADATA_RELPATH}", stone.to_json(indent=2)))
    assert sync(h.catalog.replace(stone.to_document(), revision(art.metadata)))
    # A second change from the same version loses.
    assert not sync(h.catalog.replace(stone.to_document(), revision(art.metadata)))
    report = h.delete(art.artifact_id, reason="finish it")
    assert report.already_deleted
    assert report.removed == [art.files["a/x.csv"].url]
    assert _stored_files(h, art) == [METADATA_RELPATH]


@pytest.mark.parametrize("stop", ["after_tombstone", "midway"])
def test_a_delete_run_again_after_a_crash_leaves_no_copy_in_this_machines_cache(
    storage_url_s3: str,
    catalog_spec: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stop: str,
) -> None:
    """SECURITY.md: a delete removes the copies of the files in the deleting
    machine's cache, and after a crash running it again finishes it. The copies
    went only at the very end, and a rerun (which finds a tombstone) never
    removed them."""
    from elliptio import _handler, _storage

    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    h = eio.Handler(storage=storage_url_s3, catalog=catalog_spec)
    art = h.upload(
        _folder(tmp_path, "a", {f"p{i}.csv": b"name\nJane Doe %d\n" % i for i in range(4)})
    )
    shas = {f.sha256 for f in art.files.values()}
    for file in h.get(art.artifact_id).files.values():  # the record kept on this machine
        file.read_bytes()  # and the bytes
    assert h.storage.cache is not None

    def cached() -> set[str]:
        return {sha for sha in shas if h.storage.cache.lookup(sha) is not None}  # type: ignore[union-attr]

    assert cached() == shas

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the process died here")

    if stop == "after_tombstone":
        monkeypatch.setattr(_handler.AsyncHandler, "_drop_aliases", crash)
    else:
        real = _storage.Storage.remove_file
        removed: list[str] = []

        async def remove_file(self: Any, path: str) -> None:
            if removed:
                crash()
            removed.append(path)
            await real(self, path)

        monkeypatch.setattr(_storage.Storage, "remove_file", remove_file)
    with pytest.raises(RuntimeError):
        h.delete(art.artifact_id, reason="holds personal data")
    monkeypatch.undo()
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    assert h.delete(art.artifact_id, reason="holds personal data").already_deleted
    assert cached() == set()
    assert _stored_files(h, art) == [METADATA_RELPATH]
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")  # the record kept here: the tombstone
    with eio.Handler(storage=storage_url_s3, catalog=h.catalog) as offline:
        with pytest.raises(eio.ArtifactDeletedError, match="personal data"):
            offline.get(art.artifact_id)
    h.close()


def test_a_tombstone_only_in_the_catalog_removes_nothing(h: eio.Handler, tmp_path: Path) -> None:
    from datetime import timedelta

    from elliptio._lifecycle import revision
    from elliptio._sync import sync

    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    forged = tombstone(art.metadata, "mallory", art.metadata.creation_time, "forged")
    assert sync(h.catalog.replace(forged.to_document(), revision(art.metadata)))
    with pytest.raises(eio.CorruptRecordError, match="sidecar"):
        h.delete(art.artifact_id, reason="again")
    for delete in (False, True):  # gc said nothing and listed it as a leftover (helper-56)
        with pytest.raises(eio.CorruptRecordError, match="sidecar"):
            h.gc(grace=timedelta(0), delete=delete)
    assert len(_stored_files(h, art)) == 2  # the file and the sidecar stay
    report = h.reindex()  # the sidecar is the older version: reported, not applied
    assert report.unchanged == [art.artifact_id]


async def _sidecar_of(ah: eio.AsyncHandler, artifact_id: str) -> dict[str, Any]:
    from elliptio._models import upgrade_record

    record = upgrade_record(await ah.catalog.get(artifact_id))
    raw = await asyncio.to_thread(ah.storage.backend.fs.cat_file, ah._sidecar(record))
    data: dict[str, Any] = json.loads(raw)
    return data


async def _other(ah: eio.AsyncHandler) -> eio.AsyncHandler:
    """A second handler on the same store and catalog, as another process has."""
    return eio.AsyncHandler(storage=ah.storage.root_url, catalog=ah.catalog)


async def _deleting_first(ah: eio.AsyncHandler, artifact_id: str, reason: str) -> Any:
    """A second handler whose first read of a record lets ``ah`` delete it right
    after: its change then races a delete that landed."""
    other = await _other(ah)
    real = other._record

    async def read_then_delete(wanted: str) -> Any:
        record = await real(wanted)
        if not getattr(read_then_delete, "done", False):
            read_then_delete.done = True  # type: ignore[attr-defined]
            await ah.delete(artifact_id, reason=reason)
        return record

    other._record = read_then_delete  # type: ignore[method-assign]
    return other


async def test_a_relabel_that_loses_to_a_delete_leaves_the_tombstone_in_the_sidecar(
    ah: eio.AsyncHandler, tmp_path: Path
) -> None:
    """A relabel read the record, a delete landed, then the relabel wrote the live
    record with new labels over the tombstone sidecar: a catalog rebuilt from the
    store brought the artifact back, and the delete could not be run again
    (helper-56)."""
    art = await ah.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), labels={"project": "a"})
    other = await _deleting_first(ah, art.artifact_id, "personal data")
    with pytest.raises(eio.ArtifactDeletedError):
        await other.set_labels(art.artifact_id, {"project": "b"})
    side = await _sidecar_of(ah, art.artifact_id)
    assert side["deleted"]["reason"] == "personal data"
    assert "files" not in side or side["files"] == []
    async with eio.AsyncHandler(
        storage=ah.storage.root_url, catalog=f"sqlite:///{tmp_path}/rebuilt.db"
    ) as rebuilt:
        assert (await rebuilt.reindex()).added == [art.artifact_id]
        with pytest.raises(eio.ArtifactDeletedError, match="personal data"):
            await rebuilt.get(art.artifact_id)
    assert (await ah.delete(art.artifact_id, reason="again")).already_deleted


async def test_a_late_sidecar_fix_never_outlives_a_delete_that_lands_after_it(
    ah: eio.AsyncHandler, tmp_path: Path
) -> None:
    """Relabel L loses to relabel W1 and rewrites the sidecar from the catalog;
    delete D wrote its tombstone sidecar meanwhile and lands after L's check: L's
    fix-up left the live record over the tombstone (helper-58). Every change now
    rewrites the sidecar from the catalog after its own catalog write."""
    art = await ah.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), labels={"project": "a"})
    aid = art.artifact_id
    late, deleter = await _other(ah), await _other(ah)
    catalog = ah.catalog
    real_replace, real_record = catalog.replace, late._record
    stone_written, checked, landed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    reads = [0]

    async def replace(doc: Any, expected: Any) -> bool:
        if doc.get("deleted"):  # the delete: its sidecar is written
            stone_written.set()
            await checked.wait()
            done = await real_replace(doc, expected)
            landed.set()
            return done
        return await real_replace(doc, expected)

    async def record(artifact_id: str) -> Any:
        reads[0] += 1
        n = reads[0]
        if n == 4:
            await landed.wait()
        found = await real_record(artifact_id)
        if n == 1:
            await ah.set_labels(aid, {"project": "w1"})  # W1 lands first
        if n == 2:  # L's fix-up read: the delete starts and writes its sidecar
            tasks.append(asyncio.create_task(deleter.delete(aid, reason="personal data")))
            await stone_written.wait()
        if n == 3:
            checked.set()
        return found

    catalog.replace = replace  # type: ignore[method-assign]
    late._record = record  # type: ignore[method-assign]
    try:
        with pytest.raises(eio.ArtifactDeletedError):
            await late.set_labels(aid, {"project": "late"})
        await tasks[0]
    finally:
        catalog.replace = real_replace  # type: ignore[method-assign]
    side = await _sidecar_of(ah, aid)
    assert side["deleted"]["reason"] == "personal data"
    async with eio.AsyncHandler(
        storage=ah.storage.root_url, catalog=f"sqlite:///{tmp_path}/rebuilt.db"
    ) as rebuilt:
        await rebuilt.reindex()
        with pytest.raises(eio.ArtifactDeletedError):
            await rebuilt.get(aid)


async def test_two_deletes_at_once_leave_one_tombstone_in_sidecar_and_catalog(
    ah: eio.AsyncHandler, tmp_path: Path
) -> None:
    art = await ah.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    other = await _deleting_first(ah, art.artifact_id, "first")
    assert (await other.delete(art.artifact_id, reason="second")).already_deleted
    side = await _sidecar_of(ah, art.artifact_id)
    assert side["deleted"]["reason"] == "first"
    assert (await ah.reindex()).conflicting == []


async def test_a_reindex_during_a_relabel_applies_it_once(
    ah: eio.AsyncHandler, tmp_path: Path
) -> None:
    """reindex (or the indexer) took the relabel from its sidecar before the
    relabel reached the catalog, which then relabelled again: two history
    entries for one edit (helper-56)."""
    art = await ah.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), labels={"project": "a"})
    catalog = ah.catalog
    real = catalog.replace

    async def reindex_first(doc: Any, expected: Any) -> bool:
        if not getattr(reindex_first, "done", False):
            reindex_first.done = True  # type: ignore[attr-defined]
            assert (await ah.reindex()).updated == [art.artifact_id]
        return await real(doc, expected)

    catalog.replace = reindex_first  # type: ignore[method-assign]
    try:
        done = await ah.set_labels(art.artifact_id, {"project": "b"})
    finally:
        catalog.replace = real  # type: ignore[method-assign]
    assert done.metadata.labels.project == "b"
    history = (await ah.get(art.artifact_id)).metadata.label_history
    assert [change.labels.project for change in history] == ["a"]


async def test_no_alias_is_left_on_a_deleted_version(ah: eio.AsyncHandler, tmp_path: Path) -> None:
    """A delete that stopped after its catalog write, and a set_alias racing a
    delete, left aliases on the tombstone that no rerun removed (helper-56)."""
    from elliptio._lifecycle import revision

    art = await ah.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="ds")
    await ah.set_alias("ds:v1", "production")
    stone = tombstone(art.metadata, "someone", art.metadata.creation_time, "stopped")
    await ah.storage.replace_bytes(ah._sidecar(art.metadata), stone.to_json(indent=2))
    assert await ah.catalog.replace(stone.to_document(), revision(art.metadata))
    report = await ah.delete("ds:v1", reason="again")
    assert report.already_deleted
    assert report.aliases == ["production"]
    assert await ah.catalog.aliases("ds") == {}

    second = await ah.upload(_folder(tmp_path, "b", {"y.csv": b"2\n"}), name="ds")
    real = ah.catalog.set_alias

    async def delete_first(name: str, alias: str, version: int) -> Any:
        await (await _other(ah)).delete(second.artifact_id, reason="gone")
        return await real(name, alias, version)

    ah.catalog.set_alias = delete_first  # type: ignore[method-assign]
    try:
        with pytest.raises(eio.ArtifactDeletedError):
            await ah.set_alias("ds:v2", "production")
    finally:
        ah.catalog.set_alias = real  # type: ignore[method-assign]
    assert await ah.catalog.aliases("ds") == {}


def test_lineage_keeps_a_deleted_node(h: eio.Handler, tmp_path: Path) -> None:
    with h.run():
        parent = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    with h.run():
        h.get(parent.artifact_id).file.read_bytes()
        child = h.upload(_folder(tmp_path, "b", {"y.csv": b"2\n"}))
    h.delete(parent.artifact_id, reason="bad input")
    graph = h.lineage(child.artifact_id, "up")
    assert graph.parents(child.artifact_id) == [parent.artifact_id]
    node = graph.nodes[parent.artifact_id]
    assert node.deleted
    assert not node.missing
    assert "(deleted)" in graph.to_text()
    assert "(deleted)" in graph.to_mermaid()
    assert 'style="dotted"' in graph.to_dot()
    assert h.get(child.artifact_id).metadata.based_on == [parent.artifact_id]


async def test_concurrent_delete_and_read_never_serve_wrong_bytes(
    ah: eio.AsyncHandler, tmp_path: Path
) -> None:
    files = {f"f{i}.bin": bytes([i]) * (50_000 + i) for i in range(8)}
    art = await ah.upload(_folder(tmp_path, "a", files))
    outcomes: list[str] = []
    stop = asyncio.Event()

    async def reader() -> None:
        while not stop.is_set():
            try:
                got = await ah.get(art.artifact_id)
                for relpath, file in sorted(got.files.items()):
                    assert await file.aread_bytes() == files[relpath.removeprefix("a/")]
                outcomes.append("bytes")
            except eio.ArtifactDeletedError:
                outcomes.append("deleted")
                return
            except eio.IntegrityError:
                outcomes.append("integrity")
            await asyncio.sleep(0)

    readers = [asyncio.create_task(reader()) for _ in range(4)]
    await asyncio.sleep(0.05)
    await ah.delete(art.artifact_id, reason="race")
    await asyncio.wait_for(asyncio.gather(*readers), timeout=60)
    stop.set()
    assert set(outcomes) <= {"bytes", "deleted", "integrity"}
    assert outcomes.count("deleted") == 4  # every reader ends on the tombstone


def test_a_read_after_the_files_went_names_the_delete(h: eio.Handler, tmp_path: Path) -> None:
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    held = h.get(art.artifact_id)  # read before the delete
    h.delete(art.artifact_id, reason="gone")
    with pytest.raises(eio.ArtifactDeletedError, match="gone"):
        held.file.read_bytes()
    with pytest.raises(eio.ArtifactDeletedError):
        held.file.download(tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_a_refused_file_removal_leaves_the_record_intact(
    h: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="kept")
    h.set_alias("kept:v1", "prod")
    backend = h.storage.backend

    async def refuse(path: str) -> None:
        raise eio.StorageError(f"AccessDenied: object lock retention on {path}")

    monkeypatch.setattr(backend, "remove_file", refuse)
    with pytest.raises(eio.StorageError, match="refused to remove 1 file") as caught:
        h.delete("kept:v1", reason="try")
    assert art.files["a/x.csv"].url in str(caught.value)
    assert "Object Lock" in str(caught.value)
    monkeypatch.undo()
    # Record, sidecar and alias as they were; the files are all there.
    assert h.get("kept:prod").file.read_bytes() == b"1\n"
    assert "deleted" not in _sidecar(h, art)
    assert h.reindex().unchanged == [art.artifact_id]
    # The store's copy of the aliases is back too: a rebuilt catalog gets them.
    assert _rebuilt_aliases(h, tmp_path, "kept") == {"prod": "v1"}


def test_a_delete_the_catalog_refused_leaves_no_tombstone_in_the_sidecar(
    h: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog refused the tombstone (a MongoDB user with insert and find rights
    only, as SECURITY.md advises for writers; a lost connection): delete raised, yet
    the sidecar kept the tombstone, so the next reindex deleted the artifact and
    gc --delete then removed its files. The sidecar goes back, as for a relabel."""
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="kept")

    async def refuse(*args: Any, **kwargs: Any) -> bool:
        raise eio.CatalogUnavailableError("not authorized on elliptio to execute command update")

    for change in (
        lambda: h.delete("kept:v1", reason="try"),
        lambda: h.set_labels("kept:v1", {"description": "relabelled"}),
    ):
        with monkeypatch.context() as m:
            m.setattr(h.catalog, "replace", refuse)
            with pytest.raises(eio.CatalogUnavailableError):
                change()
        assert "deleted" not in _sidecar(h, art)
        assert "relabelled" not in json.dumps(_sidecar(h, art))
        assert h.reindex().unchanged == [art.artifact_id]
    assert h.get("kept").file.read_bytes() == b"1\n"


def test_a_delete_that_never_landed_keeps_this_machines_cached_copy(
    storage_url_s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete the catalog refused (a reader or writer without update rights) or
    that another artifact's reference stopped leaves the artifact as it was: its
    copy in this machine's cache too, so an offline read still serves it. The
    copies went before the tombstone was even tried."""
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with eio.Handler(storage=storage_url_s3, catalog=catalog) as h:
        art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="kept")
        assert h.get("kept:v1").file.read_bytes() == b"1\n"  # cached here

        async def refuse(*args: Any, **kwargs: Any) -> bool:
            raise eio.CatalogUnavailableError("not authorized to execute command update")

        with monkeypatch.context() as m:
            m.setattr(h.catalog, "replace", refuse)
            with pytest.raises(eio.CatalogUnavailableError):
                h.delete("kept:v1", reason="try")
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    with eio.Handler(storage=storage_url_s3, catalog=catalog) as offline:
        assert offline.get(art.artifact_id).file.read_bytes() == b"1\n"


def test_a_delete_whose_answer_was_lost_finishes_when_run_again(
    h: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tombstone landed but its answer was lost with the connection, which
    stayed down for the read that followed: the sidecar was put back to the live
    record, so the catalog held a tombstone its sidecar did not confirm, and the
    delete run again (as its error says) refused as if the catalog had been
    tampered with, forever. Unsure, the sidecar keeps the change, as after a crash."""
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="lost")
    assert h.get("lost").file.read_bytes() == b"1\n"  # cached, from a remote store
    real_replace, real_get = h.catalog.replace, h.catalog.get
    down = False

    async def lost(*args: Any, **kwargs: Any) -> bool:
        nonlocal down
        await real_replace(*args, **kwargs)
        down = True
        raise eio.CatalogUnavailableError("connection closed")

    async def get(*args: Any, **kwargs: Any) -> Any:
        if down:
            raise eio.CatalogUnavailableError("connection closed")
        return await real_get(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(h.catalog, "replace", lost)
        m.setattr(h.catalog, "get", get)
        with pytest.raises(eio.CatalogUnavailableError):
            h.delete("lost:v1", reason="done")
    report = h.delete(art.artifact_id, reason="done")
    assert report.already_deleted
    assert _sidecar(h, art)["deleted"]["reason"] == "done"
    assert "x.csv" not in _stored_files(h, art)
    with pytest.raises(eio.ArtifactDeletedError):
        h.get(art.artifact_id)
    assert h.storage.cache is not None or h.storage.is_local
    if h.storage.cache is not None:  # this machine's copy went with the rerun
        assert h.storage.cache.lookup(art.file.sha256) is None, "kept"


def _rebuilt_aliases(h: eio.Handler, tmp_path: Path, name: str) -> dict[str, str]:
    """The aliases of ``name`` in a catalog rebuilt from ``h``'s store."""
    with eio.Handler(
        storage=h.storage.root_url,
        catalog=f"sqlite:///{tmp_path}/rebuilt-{uuid.uuid4().hex}.db",
        storage_options=h.storage.options,
    ) as again:
        again.reindex(aliases=True)
        return again.aliases(name)


def test_gc_finishes_a_delete_stopped_before_its_aliases_went(
    h: eio.Handler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """helper-80: a delete killed after its tombstone kept the aliases on the deleted
    version, and gc --delete removed the files but not them."""
    h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="ds")
    art = h.upload(_folder(tmp_path, "b", {"x.csv": b"2\n"}), name="ds")
    h.set_alias("ds:v2", "prod")

    async def crash(self: eio.AsyncHandler, record: Any) -> list[str]:
        raise RuntimeError("the process dies here")

    monkeypatch.setattr(eio.AsyncHandler, "_drop_aliases", crash)
    with pytest.raises(RuntimeError, match="dies here"):
        h.delete("ds:v2", reason="stopped")
    monkeypatch.undo()
    assert h.aliases("ds") == {"prod": "v2"}
    report = h.gc(delete=True, grace=dt.timedelta(0))
    assert report.deleted_leftovers == [art.metadata.remote_root]
    assert h.aliases("ds") == {}
    assert _stored_files(h, art) == [METADATA_RELPATH]
    assert _rebuilt_aliases(h, tmp_path, "ds") == {}  # the store's copy went too


def test_a_delete_leaves_the_sidecar_copy_another_writer_is_moving(
    h: eio.Handler, tmp_path: Path
) -> None:
    """helper-80: concurrent deletes of one artifact removed each other's temporary
    sidecar copies (and counted them as its files), so a deleter failed after its
    tombstone had landed."""
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    folder = h.storage.path(art.metadata.remote_root)
    temp = f"{folder}/{METADATA_RELPATH}.{uuid.uuid4().hex}.tmp"
    h.storage.fs.pipe_file(temp, b"{}")
    report = h.delete(art.artifact_id, reason="gone")
    assert report.removed == [art.files["a/x.csv"].url]
    assert h.storage.fs.exists(temp)
    # A copy within gc's grace may be a live writer's: it stays (helper-83).
    assert h.gc(delete=True).deleted_leftovers == []
    assert h.storage.fs.exists(temp)
    # A stopped writer's copy holds the whole record: gc --delete finishes it (helper-82).
    assert h.gc(delete=True, grace=dt.timedelta(0)).deleted_leftovers == [art.metadata.remote_root]
    assert not h.storage.fs.exists(temp)
    assert _stored_files(h, art) == [METADATA_RELPATH]


def test_a_link_planted_in_the_folder_is_named_by_the_delete(tmp_path: Path) -> None:
    # The delete leaves the planted link (and what it points at) alone and says
    # so, rather than blaming Object Lock; once the link is gone, it finishes.
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
        folder = Path(h.storage.path(art.metadata.remote_root))
        (folder / "planted").symlink_to(outside)
        with pytest.raises(eio.StorageError, match="symbolic link") as caught:
            h.delete(art.artifact_id, reason="gone")
        message = str(caught.value)
        assert f"{folder}/planted" in message
        assert "Object Lock" not in message
        assert "rerun the delete" in message
        assert outside.read_text() == "keep me"
        (folder / "planted").unlink()
        assert h.delete(art.artifact_id, reason="gone").already_deleted
        assert _stored_files(h, art) == [METADATA_RELPATH]


# -- labels ------------------------------------------------------------------------


def test_set_labels_keeps_history_and_files(h: eio.Handler, tmp_path: Path) -> None:
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), labels={"project": "a"})
    before = _stored_files(h, art)
    h.set_labels(art.artifact_id, {"project": "b", "infos": {"k": 1}})
    new = h.set_labels(art.artifact_id, eio.Labels(project="c"))

    record = h.get(art.artifact_id).metadata
    assert record.labels == new.metadata.labels == eio.Labels(project="c")
    assert [c.labels.project for c in record.label_history] == ["a", "b"]
    assert record.label_history[1].labels.infos == {"k": 1}
    assert {c.replaced_by for c in record.label_history} == {eio.current_username()}
    assert record.label_history[0].replaced_at <= record.label_history[1].replaced_at
    assert record.files == art.metadata.files
    assert _stored_files(h, art) == before
    assert h.get(art.artifact_id).file.read_bytes() == b"1\n"

    assert list(h.find({"labels.project": "c"}).index) == [art.artifact_id]
    assert h.find({"labels.project": "a"}).empty
    side = _sidecar(h, art)
    assert side["labels"]["project"] == "c"
    assert [c["labels"]["project"] for c in side["label_history"]] == ["a", "b"]
    assert h.reindex().unchanged == [art.artifact_id]
    history = h.find(columns=["label_history"]).loc[art.artifact_id, "label_history"]
    assert len(history) == 2


def test_set_labels_validates_like_upload(h: eio.Handler, tmp_path: Path) -> None:
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), labels={"project": "a"})
    with pytest.raises(eio.InvalidLabelsError):
        h.set_labels(art.artifact_id, {"infos": {"a.b": 1}})
    with pytest.raises(eio.InvalidLabelsError):
        h.set_labels(art.artifact_id, {"unknown": 1})
    assert h.get(art.artifact_id).metadata.label_history == []
    h.delete(art.artifact_id, reason="x")
    with pytest.raises(eio.ArtifactDeletedError):
        h.set_labels(art.artifact_id, {"project": "b"})


async def test_concurrent_label_edits_all_land_in_history(
    ah: eio.AsyncHandler, tmp_path: Path
) -> None:
    art = await ah.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    await asyncio.gather(*(ah.set_labels(art.artifact_id, {"project": f"p{i}"}) for i in range(4)))
    record = (await ah.get(art.artifact_id)).metadata
    assert len(record.label_history) == 4
    seen = {c.labels.project for c in record.label_history} | {record.labels.project}
    assert seen == {"", "p0", "p1", "p2", "p3"}


def test_an_edited_record_loads_and_an_old_one_is_unchanged(h: eio.Handler, tmp_path: Path) -> None:
    art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}))
    side = _sidecar(h, art)
    assert "label_history" not in side
    assert "deleted" not in side
    h.set_labels(art.artifact_id, {"project": "b"})
    assert eio.Metadata.model_validate(_sidecar(h, art)).label_history[0].labels == eio.Labels()


# -- download a whole artifact --------------------------------------------------------


def test_artifact_download_writes_every_file_verified(h: eio.Handler, tmp_path: Path) -> None:
    files = {"a.csv": b"1\n", "sub/b.bin": b"\x00" * 1000}
    art = h.upload(_folder(tmp_path, "data", files))
    with h.run() as run:
        written = h.get(art.artifact_id).download(tmp_path / "out")
    assert run.inputs == [art.artifact_id]
    out = tmp_path / "out"
    assert written == [(out / "data" / r).resolve() for r in sorted(files)]
    for relpath, data in files.items():
        assert (out / "data" / relpath).read_bytes() == data

    (out / "data" / "a.csv").write_bytes(b"mine")
    with pytest.raises(eio.ArtifactExistsError, match="overwrite=True"):
        art.download(out)
    assert (out / "data" / "a.csv").read_bytes() == b"mine"  # nothing written
    art.download(out, overwrite=True)
    assert (out / "data" / "a.csv").read_bytes() == b"1\n"


def test_artifact_download_shows_one_bar(
    store: str,
    catalog_spec: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ELLIPTIO_PROGRESS", "true")
    with eio.Handler(storage=store, catalog=catalog_spec) as h:
        art = h.upload(_folder(tmp_path, "data", {"a.csv": b"1\n", "b.csv": b"22\n"}))
        capsys.readouterr()
        art.download(tmp_path / "out")
    err = capsys.readouterr().err
    assert f"download {art.artifact_id}" in err
    assert "2/2" in err


async def test_async_artifact_download_refuses_damaged_bytes(
    ah: eio.AsyncHandler, tmp_path: Path
) -> None:
    art = await ah.upload(_folder(tmp_path, "data", {"a.csv": b"1\n", "b.csv": b"2\n"}))
    path = ah.storage.path(art.files["data/b.csv"].url)
    fs = ah.storage.fs
    if ah.storage.is_local:
        os.chmod(path, 0o644)
    fs.pipe_file(path, b"3\n")  # same size, other bytes
    with pytest.raises(eio.IntegrityError):
        await art.adownload(tmp_path / "out")
    # Not even the good file, nor the folders: a retry after a repair is not
    # refused by what the failed one left (helper-55).
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(eio.IntegrityError):
        await art.adownload(tmp_path / "kept")
    assert list((tmp_path / "kept").iterdir()) == []
    fs.pipe_file(path, b"2\n")
    assert len(await art.adownload(tmp_path / "out")) == 2
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(eio.InvalidPathError, match="is a file, not a folder"):
        await art.adownload(tmp_path / "a-file")
    # A link of the user's that leads nowhere is not something the download made:
    # the cleanup after a failure removed it (helper-58).
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "data").symlink_to(tmp_path / "unmounted" / "data")
    with pytest.raises(eio.ElliptioError):
        await art.adownload(tmp_path / "linked")
    assert (tmp_path / "linked" / "data").is_symlink()


# -- command line ------------------------------------------------------------------


def test_cli_delete_asks_and_needs_a_reason(
    store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    catalog = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", store)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", catalog)
    with eio.Handler() as h:
        art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="set")
    with pytest.raises(SystemExit):
        main(["delete", "set:v1"])  # no --reason
    assert main(["delete", "set:v1", "--reason", " "]) != 0
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["delete", "set:v1", "--reason", "pii"]) == 1
    said = capsys.readouterr()
    assert "nothing deleted" in said.err
    assert "for good? [y/N]" in said.err  # the question never mixes with the output
    assert said.out == ""
    with eio.Handler() as h:
        assert h.get("set:v1").artifact_id == art.artifact_id
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no answer (end of input): no
    assert main(["delete", "set:v1", "--reason", "pii"]) == 1
    assert "[y/N] \nnothing deleted" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", None)  # no standard input at all (<&-): no
    assert main(["delete", "set:v1", "--reason", "pii"]) == 1
    assert "nothing deleted (add --yes" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["delete", "set:v1", "--reason", "pii"]) == 0
    said = capsys.readouterr()
    assert "tombstone" in said.out
    assert "for good?" not in said.out
    assert main(["show", "set:v1"]) != 0
    assert "pii" in capsys.readouterr().err
    assert main(["delete", art.artifact_id, "--reason", "pii", "--yes"]) == 0


def test_cli_find_lists_tombstones_when_asked(
    store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """find()/count() leave tombstones out unless include_deleted=True; the command
    line had no way to list them (who deleted what, when and why)."""
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", store)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    with eio.Handler() as h:
        gone = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), name="set")
        kept = h.upload(_folder(tmp_path, "b", {"y.csv": b"2\n"}), name="set")
        with eio.mock_username("dora"):
            h.delete("set:v1", reason="holds personal data")
    assert main(["find", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["artifact_id"] for r in rows] == [kept.artifact_id]
    assert main(["find", "--include-deleted", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_id = {r["artifact_id"]: r for r in rows}
    assert set(by_id) == {gone.artifact_id, kept.artifact_id}
    assert by_id[gone.artifact_id]["deleted"]["deleted_by"] == "dora"
    assert by_id[gone.artifact_id]["deleted"]["reason"] == "holds personal data"
    assert by_id[kept.artifact_id]["deleted"] is None
    assert main(["find", "--include-deleted", "--where", "name=set"]) == 0
    table = capsys.readouterr().out
    line = next(row for row in table.splitlines() if gone.artifact_id in row)
    assert "set:v1" in line
    assert "dora" in line
    assert "holds personal data" in line
    assert "set:v2" in table


def test_cli_set_labels(
    store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", store)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    with eio.Handler() as h:
        art = h.upload(_folder(tmp_path, "a", {"x.csv": b"1\n"}), labels={"project": "a"})
    assert main(["set-labels", art.artifact_id, "--label", "project=b", "--infos", '{"k": 2}']) == 0
    assert json.loads(capsys.readouterr().out) == {"project": "b", "infos": {"k": 2}}
    assert main(["set-labels", art.artifact_id, "--json", '{"datatype": "csv"}']) == 0
    capsys.readouterr()
    assert main(["set-labels", art.artifact_id, "--json", "[1]"]) != 0
    with eio.Handler() as h:
        record = h.get(art.artifact_id).metadata
    assert record.labels == eio.Labels(datatype="csv")
    assert [c.labels.project for c in record.label_history] == ["a", "b"]


def test_cli_download_that_fails_leaves_nothing(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = f"sqlite:///{tmp_path / 'cli.db'}"
    with eio.Handler(storage=store, catalog=catalog) as h:
        art = h.upload(_folder(tmp_path, "data", {"a.csv": b"1\n", "b.csv": b"2\n"}))
        path = h.storage.path(art.files["data/b.csv"].url)
        if h.storage.is_local:
            os.chmod(path, 0o644)
        h.storage.fs.pipe_file(path, b"3\n")
    for extra in ([], ["data/a.csv", "data/b.csv"]):
        out = tmp_path / f"out{len(extra)}"
        argv = ["--storage", store, "--catalog", catalog, "download", art.artifact_id]
        assert main([*argv, *extra, "-o", str(out)]) == 1
        assert "IntegrityError" in capsys.readouterr().err
        assert not out.exists()
        (tmp_path / "t.csv").write_text("mine")
        assert main([*argv, *extra, "-o", str(tmp_path / "t.csv")]) == 1
        assert "is a file, not a folder" in capsys.readouterr().err
