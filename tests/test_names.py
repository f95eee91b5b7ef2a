"""Names, versions and aliases through the public API, on every store."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._catalog import Catalog
from elliptio._sync import sync
from tests._stress_workers import named_writer
from tests.conftest import snapshot


def test_versions_count_up_and_latest_follows(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    v1 = handler.upload(data_files["train"], name="train-set")
    with handler.new("train.txt", name="train-set") as new:
        new.file.write_text("path,class\n/x.png,1\n")
    v2 = new.artifact
    unnamed = handler.upload(data_files["test"])
    assert (v1.ref, v2.ref, unnamed.ref) == ("train-set:v1", "train-set:v2", None)
    assert (v1.name, v1.name_version) == ("train-set", 1)
    assert handler.get("train-set:v1").artifact_id == v1.artifact_id
    for ref in ("train-set", "train-set:latest", "train-set:v2"):
        assert handler.get(ref).artifact_id == v2.artifact_id
    assert handler.get("train-set:v1").file.read_text() == data_files["train"].read_text()
    # The sidecar carries the name too, so reindex can restore it.
    sidecar = handler.storage.fs.cat_file(f"{v2.metadata.remote_root}/.elliptio/metadata.json")
    assert eio.Metadata.model_validate_json(sidecar).ref == "train-set:v2"
    frame = handler.find({"name": "train-set"}, sort=[("name_version", 1)])
    assert list(frame.index) == [v1.artifact_id, v2.artifact_id]
    assert list(frame["name_version"]) == [1, 2]
    assert handler.resolve("train-set:v1") == v1.artifact_id
    names = handler.names()
    assert names.loc["train-set", "versions"] == 2
    assert names.loc["train-set", "latest"] == "v2"


def test_get_by_name_records_lineage(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    source = handler.upload(data_files["train"], name="raw")
    with handler.run():
        handler.get("raw:latest").file.read_text()
        out = handler.upload(data_files["test"], name="clean")
    assert out.metadata.based_on == [source.artifact_id]
    graph = handler.lineage("clean:v1", direction="up")
    assert (source.artifact_id, out.artifact_id) in graph.edges


def test_aliases_move_only_when_moved(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    v1 = handler.upload(data_files["train"], name="model")
    assert handler.set_alias("model:v1", "production") == {"production": "v1"}
    v2 = handler.upload(data_files["test"], name="model")
    # A new version does not move an alias; only set_alias does.
    assert handler.get("model:production").artifact_id == v1.artifact_id
    assert handler.get("model:latest").artifact_id == v2.artifact_id
    assert handler.set_alias("model:latest", "production") == {"production": "v2"}
    assert handler.get("model:production").artifact_id == v2.artifact_id
    # An id of a named artifact works too; one shape everywhere: alias -> "v<n>".
    both = {"baseline": "v1", "production": "v2"}
    assert handler.set_alias(v1.artifact_id, "baseline") == both
    assert handler.aliases("model") == both
    assert list(handler.aliases("model")) == ["baseline", "production"]
    assert handler.names().loc["model", "aliases"] == both
    # The catalog's one query answers as the per-name default it replaces.
    catalog = handler.catalog
    assert (
        sync(catalog.all_aliases())
        == sync(Catalog.all_aliases(catalog))
        == {"model": {"baseline": 1, "production": 2}}
    )
    # names() asks for all aliases in one query, not once per name.
    asked: list[str] = []
    per_name = catalog.aliases

    async def counted(name: str) -> dict[str, int]:
        asked.append(name)
        return await per_name(name)

    catalog.aliases = counted  # type: ignore[method-assign]
    handler.upload(data_files["train"], name="other")
    assert list(handler.names().index) == ["model", "other"]
    assert asked == []
    del catalog.aliases
    assert handler.remove_alias("model", "production") == {"baseline": "v1"}
    assert handler.remove_alias("model", "production") == {"baseline": "v1"}
    with pytest.raises(eio.ArtifactNotFoundError, match=r"no alias 'production'.*baseline"):
        handler.get("model:production")


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("ghost", "no artifact named 'ghost'"),
        ("ghost:latest", "no artifact named 'ghost'"),
        ("model:v9", "no version v9 of 'model'"),
        ("model:staging", "no alias 'staging'"),
        ("model:v0", "no alias 'v0'"),
        ("bad name", "neither an artifact id nor a name"),
        ("model:", "neither an artifact id nor a name"),
        (":v1", "neither an artifact id nor a name"),
        ("model:v1:v2", "neither an artifact id nor a name"),
        ("a/b:v1", "neither an artifact id nor a name"),
    ],
)
def test_unknown_or_malformed_references(
    handler: eio.Handler, data_files: dict[str, Path], ref: str, needle: str
) -> None:
    handler.upload(data_files["train"], name="model")
    before = snapshot(handler)
    with pytest.raises(eio.ArtifactNotFoundError, match=needle):
        handler.get(ref)
    assert snapshot(handler) == before
    assert handler.based_on == []


@pytest.mark.parametrize(
    "name", ["", "bad name", "-leading-dash", "a" * 129, "x:v1", "a/b", "ünï", 3, "tab\tname"]
)
def test_invalid_names_write_nothing(
    handler: eio.Handler, data_files: dict[str, Path], name: Any
) -> None:
    before = snapshot(handler)
    with pytest.raises(eio.InvalidNameError, match="artifact name"):
        handler.upload(data_files["train"], name=name)
    with pytest.raises(eio.InvalidNameError, match="artifact name"):
        handler.new("x.txt", name=name)
    assert snapshot(handler) == before


@pytest.mark.parametrize(
    ("alias", "needle"),
    [("latest", "reserved"), ("v2", "reserved"), ("bad alias", "not valid"), ("", "not valid")],
)
def test_invalid_aliases_are_refused(
    handler: eio.Handler, data_files: dict[str, Path], alias: str, needle: str
) -> None:
    handler.upload(data_files["train"], name="model")
    with pytest.raises(eio.InvalidNameError, match=needle):
        handler.set_alias("model:v1", alias)
    assert handler.aliases("model") == {}


def test_aliases_of_an_unknown_name_are_an_error(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    """A typo in a name is not a name without aliases."""
    handler.upload(data_files["train"], name="model")
    assert handler.aliases("model") == {}
    with pytest.raises(eio.ArtifactNotFoundError, match="no artifact named 'modle'"):
        handler.aliases("modle")


def test_aliases_of_a_name_whose_versions_are_all_deleted(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    art = handler.upload(data_files["train"], name="ds")
    handler.set_alias("ds:v1", "prod")
    handler.delete(art.artifact_id, reason="test")  # its aliases go with it
    with pytest.raises(eio.ArtifactNotFoundError, match="every version is deleted"):
        handler.aliases("ds")
    assert handler.remove_alias("ds", "prod") == {}  # nothing to do: no error


def test_aliases_need_a_named_artifact(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    art = handler.upload(data_files["train"])
    with pytest.raises(eio.ConfigError, match="has no name"):
        handler.set_alias(art.artifact_id, "production")


def test_a_failed_commit_uses_no_version(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    handler.upload(data_files["train"], name="set")
    with pytest.raises(RuntimeError), handler.new("a.txt", name="set") as new:
        new.file.write_text("half")
        raise RuntimeError("the job failed")
    with pytest.raises(eio.CommitError), handler.new("a.txt", name="set"):
        pass  # a.txt never written
    assert handler.upload(data_files["test"], name="set").ref == "set:v2"


async def test_concurrent_tasks_get_distinct_versions(
    ahandler: eio.AsyncHandler, data_files: dict[str, Path]
) -> None:
    arts = await asyncio.gather(
        *(ahandler.upload(data_files["train"], name="shared") for _ in range(12))
    )
    assert sorted(a.name_version for a in arts) == list(range(1, 13))  # type: ignore[type-var]
    latest = await ahandler.get("shared:latest")
    assert latest.name_version == 12


def test_processes_allocate_versions_atomically(tmp_path: Path) -> None:
    """Four processes commit under one name at once: every version exactly once."""
    storage = str(tmp_path / "store")
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    workers, per_worker = 4, 10
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=named_writer,
            args=(w, storage, catalog, per_worker, str(tmp_path / "work"), start, results),
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    start.set()
    refs: list[str] = []
    errors: list[str] = []
    try:
        for _ in procs:
            _, got, failed = results.get(timeout=120)
            refs += got
            errors += failed
    except queue.Empty:  # pragma: no cover - only when a worker died
        pass
    for p in procs:
        p.join(timeout=30)
    assert errors == []
    assert sorted(refs, key=lambda r: int(r.rsplit("v", 1)[1])) == [
        f"dataset:v{n}" for n in range(1, workers * per_worker + 1)
    ]
    with eio.Handler(storage=storage, catalog=catalog) as h:
        assert h.get("dataset:latest").name_version == workers * per_worker
        frame = h.find({"name": "dataset"})
        assert sorted(frame["name_version"]) == list(range(1, workers * per_worker + 1))


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
def test_reindex_sets_aliases_again_on_a_rebuilt_catalog(
    backend: str,
    handler: eio.Handler,
    data_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    """SECURITY.md: reindex rebuilds the catalog from the store. Aliases lived in
    the catalog only, so `model:prod` was gone after a rebuild (helper-37)."""
    from datetime import timedelta

    from mongomock_motor import AsyncMongoMockClient

    arts = [handler.upload(data_files[k], name="ds") for k in ("test", "train", "test")]
    arts.append(handler.upload(data_files["train"], name="other"))
    handler.set_alias("ds:v1", "prod")
    handler.set_alias("ds:v2", "dev")
    handler.set_alias("ds:v2", "gone")
    handler.remove_alias("ds", "gone")
    handler.set_alias("ds:v3", "doomed")
    handler.delete("ds:v3", reason="test")  # its alias goes with it
    handler.set_alias("other:v1", "prod")
    # A planted file that is no copy elliptio wrote, and one naming another name.
    folder = f"{handler.storage.root}/.elliptio/aliases"
    handler.storage.fs.pipe_file(f"{folder}/bogus.json", b"not json")
    handler.storage.fs.pipe_file(f"{folder}/x.json", b'{"name": "other", "aliases": {"evil": 1}}')
    assert handler.gc(grace=timedelta(0), delete=True).removed == []
    catalog = (
        f"sqlite:///{tmp_path / 'rebuilt.db'}" if backend == "sqlite" else AsyncMongoMockClient()
    )
    with eio.Handler(
        storage=handler.storage.root_url, catalog=catalog, storage_options=handler.storage.options
    ) as rebuilt:
        assert rebuilt.reindex().aliases == []  # only when asked: a catalog in use
        assert rebuilt.aliases("ds") == {}
        report = rebuilt.reindex(aliases=True)
        assert sorted(report.aliases) == ["ds:dev", "ds:prod", "other:prod"]
        assert rebuilt.aliases("ds") == {"dev": "v2", "prod": "v1"}
        assert rebuilt.aliases("other") == {"prod": "v1"}
        assert rebuilt.get("ds:prod").artifact_id == arts[0].artifact_id
        # The catalog wins: an alias it holds is never moved back to the copy's
        # version (moved here in the catalog alone, as another client could).
        sync(rebuilt.catalog.set_alias("ds", "prod", 2))
        assert rebuilt.reindex(aliases=True).aliases == []
        assert rebuilt.aliases("ds") == {"dev": "v2", "prod": "v2"}


def test_the_store_copy_of_aliases_ends_as_the_catalog_holds_them(
    handler: eio.Handler, data_files: dict[str, Path], tmp_path: Path
) -> None:
    """Two clients move one alias at once: the copy of the first, written last,
    kept the alias where the catalog no longer had it, and a catalog rebuilt from
    the store (reindex(aliases=True)) pointed it at the wrong version."""
    handler.upload(data_files["train"], name="ds")
    handler.upload(data_files["test"], name="ds")
    other = eio.Handler(
        storage=handler.storage.root_url,
        catalog=handler.catalog,
        storage_options=handler.storage.options,
    )
    real = handler.storage.replace_bytes
    raced: list[bool] = []

    async def racing(path: str, data: bytes) -> None:
        if path.endswith("/ds.json") and not raced:
            raced.append(True)  # the other client moves it, and its copy lands first
            await other.aio.set_alias("ds:v2", "prod")
        await real(path, data)

    handler.storage.replace_bytes = racing  # type: ignore[method-assign]
    try:
        assert handler.set_alias("ds:v1", "prod") == {"prod": "v2"}
    finally:
        del handler.storage.replace_bytes
    assert raced
    assert handler.aliases("ds") == {"prod": "v2"}
    with eio.Handler(
        storage=handler.storage.root_url,
        catalog=f"sqlite:///{tmp_path / 'rebuilt.db'}",
        storage_options=handler.storage.options,
    ) as rebuilt:
        rebuilt.reindex(aliases=True)
        assert rebuilt.aliases("ds") == {"prod": "v2"}
    other.close()


def test_an_alias_change_stands_when_its_copy_cannot_be_written(
    handler: eio.Handler,
    data_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The catalog holds aliases; the store's copy is a backup for rebuilds, so a
    copy that cannot be written is logged and the change stands (helper-39)."""
    import logging

    from elliptio import _storage

    handler.upload(data_files["test"], name="m")
    handler.set_alias("m:v1", "prod")

    async def refuse(*_: object) -> None:
        raise eio.StorageError("the store refuses writes")

    monkeypatch.setattr(_storage.Storage, "replace_bytes", refuse)
    caplog.set_level(logging.WARNING, logger="elliptio")
    assert handler.remove_alias("m", "prod") == {}
    assert handler.aliases("m") == {}
    assert "could not be written" in caplog.text


def _plant_alias_rows(h: eio.Handler, rows: list[dict[str, Any]]) -> None:
    """Alias rows as someone with write access to a shared catalog may write them."""
    import sqlite3

    if hasattr(h.catalog, "_side"):  # MongoDB
        collection = sync(h.catalog._side("aliases"))
        for row in rows:
            sync(collection.insert_one(dict(row)))
        return
    with sqlite3.connect(h.aio.settings.catalog_url.removeprefix("sqlite:///")) as conn:
        for row in rows:
            conn.execute(
                "INSERT INTO aliases (name, alias, version) VALUES (?, ?, ?)",
                (row["name"], row["alias"], row.get("version")),
            )
    conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
def test_a_planted_alias_row_is_no_alias_and_blocks_nothing(
    backend: str, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """An alias row whose version is no number made names(), aliases(), get of
    any alias and set_alias raise a raw ValueError, and on MongoDB a delete
    stopped after its tombstone, its files left in the store (helper-69)."""
    from mongomock_motor import AsyncMongoMockClient

    catalog: Any = (
        f"sqlite:///{tmp_path / 'c.db'}" if backend == "sqlite" else AsyncMongoMockClient()
    )
    with eio.Handler(storage=tmp_path / "store", catalog=catalog) as h:
        art = h.upload(data_files["test"], name="ds")
        h.set_alias("ds:v1", "prod")
        planted = [{"name": "ds", "alias": "evil", "version": "abc"}]
        planted.append({"name": "ds", "alias": "zero", "version": 0})
        # A whole float, as older shells and JavaScript clients write it, counts.
        planted.append({"name": "ds", "alias": "js", "version": 1.0})
        _plant_alias_rows(h, planted)
        assert h.aliases("ds") == {"js": "v1", "prod": "v1"}
        assert h.get("ds:prod").artifact_id == art.artifact_id
        assert list(h.names().index) == ["ds"]
        with pytest.raises(eio.ElliptioError, match="evil"):
            h.get("ds:evil")
        h.set_alias("ds:v1", "evil")  # over the planted row
        assert h.aliases("ds") == {"evil": "v1", "js": "v1", "prod": "v1"}
        report = h.delete("ds:v1", reason="test")
        assert sorted(report.aliases) == ["evil", "js", "prod"]
        assert report.removed
        assert not h.storage.fs.exists(h.storage.path(art.file.url))


def test_a_planted_alias_row_holding_an_array_is_no_alias_on_mongodb(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """MongoDB matches {"name": "ds", "alias": "prod"} against arrays too: a row
    planted as {"name": "ds", "alias": ["prod"]} made set_alias('ds:v2', 'prod')
    succeed on it while get('ds:prod') stayed not found (the alias was blocked for
    good), and one planted as {"name": ["ds"], "alias": "stage"} was followed by
    get('ds:stage') though names() and aliases() listed no such alias."""
    from mongomock_motor import AsyncMongoMockClient

    with eio.Handler(storage=tmp_path / "store", catalog=AsyncMongoMockClient()) as h:
        h.upload(data_files["test"], name="ds")
        second = h.upload(data_files["train"], name="ds")
        rows = sync(h.catalog._side("aliases"))
        sync(rows.insert_one({"name": "ds", "alias": ["prod", "x"], "version": 1}))
        sync(rows.insert_one({"name": ["ds"], "alias": "stage", "version": 1}))
        assert h.aliases("ds") == {}
        with pytest.raises(eio.ArtifactNotFoundError, match="stage"):
            h.get("ds:stage")
        h.set_alias("ds:v2", "prod")  # over the planted row
        assert h.get("ds:prod").artifact_id == second.artifact_id
        assert h.aliases("ds") == {"prod": "v2"}
        assert h.names().loc["ds", "aliases"] == {"prod": "v2"}


def test_a_record_planted_with_an_array_of_versions_counts_as_no_version_on_mongodb(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """MongoDB's $type and $gte look into arrays: a record planted at name_version
    [2, 3] counted as a version of ds, so names() crashed on it (its $max is the
    array: TypeError on a server, in mongomock's own $max here), and on a server,
    which sorts an array by its largest element, every commit of ds crashed in
    int([2, 3]) and get('ds:v2') found the planted record first."""
    from mongomock_motor import AsyncMongoMockClient

    client = AsyncMongoMockClient()
    with eio.Handler(storage=tmp_path / "store", catalog=client) as h:
        h.upload(data_files["test"], name="ds")
        second = h.upload(data_files["train"], name="ds")
        doc = sync(h.catalog.get(second.artifact_id))
        planted = {**doc, "artifact_id": f"artifact_{uuid.uuid4()}", "name_version": [2, 3]}
        sync(client["elliptio"]["artifacts"].insert_one(planted))
        names = h.names()
        assert (names.loc["ds", "versions"], names.loc["ds", "latest"]) == (2, "v2")
        assert h.get("ds:v2").artifact_id == second.artifact_id
        assert h.get("ds").artifact_id == second.artifact_id
        assert h.upload(data_files["test"], name="ds").name_version == 3


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
def test_a_planted_version_counter_never_blocks_a_name(
    backend: str, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """A counter that is no number ('zz' + 1 is 1 in SQL) handed out v1 again at
    every commit on SQLite, ArtifactExistsError for good, and failed every commit
    on MongoDB (helper-69); one planted below the versions held handed out a
    version again."""
    import sqlite3

    from mongomock_motor import AsyncMongoMockClient

    catalog: Any = (
        f"sqlite:///{tmp_path / 'c.db'}" if backend == "sqlite" else AsyncMongoMockClient()
    )
    with eio.Handler(storage=tmp_path / "store", catalog=catalog) as h:
        h.upload(data_files["test"], name="ds")
        h.upload(data_files["train"], name="ds")
        for planted in ("zz", 0, 1.5):
            if backend == "sqlite":
                with sqlite3.connect(tmp_path / "c.db") as conn:
                    conn.execute("UPDATE names SET last_version = ?", (planted,))
                conn.close()
            else:
                names = sync(h.catalog._side("names"))
                sync(names.update_one({"name": "ds"}, {"$set": {"last_version": planted}}))
            art = h.upload(data_files["test"], name="ds")
        assert art.name_version == 5
        assert sorted(h.find({"name": "ds"})["name_version"]) == [1, 2, 3, 4, 5]
        # A planted record, or counter, at the top of 64 bits: one more would
        # overflow (InvalidLabelsError at every commit, helper-70).
        top = 2**63 - 1

        def plant(artifact_id: str, version: int) -> None:
            """A record of ``ds`` at ``version``, as a catalog writer can."""
            if backend == "sqlite":
                with sqlite3.connect(tmp_path / "c.db") as conn:
                    conn.execute(
                        "INSERT INTO artifacts (artifact_id, arrays, labels_json, name,"
                        " name_version) VALUES (?, '', '{}', 'ds', ?)",
                        (artifact_id, version),
                    )
                conn.close()
            else:
                doc = {"artifact_id": artifact_id, "name": "ds", "name_version": version}
                sync(sync(h.catalog._collection()).insert_one(doc))

        plant("artifact_planted", top)
        if backend == "sqlite":
            with sqlite3.connect(tmp_path / "c.db") as conn:
                conn.execute("UPDATE names SET last_version = ?", (top,))
            conn.close()
        else:
            sync(names.update_one({"name": "ds"}, {"$set": {"last_version": top}}))
        assert h.upload(data_files["test"], name="ds").name_version == 6
        # One at the ceiling itself leaves no version to give: a clear error
        # naming the way out, and nothing left behind (it was ArtifactExistsError
        # at every commit, from the second one on, for good).
        plant("artifact_ceiling", 2**53)
        before = sorted(p.name for p in (tmp_path / "store").rglob("*"))
        for _ in range(2):
            with pytest.raises(eio.InvalidNameError, match=r"no version left.*another name"):
                h.upload(data_files["test"], name="ds")
        assert sorted(p.name for p in (tmp_path / "store").rglob("*")) == before
        assert h.upload(data_files["test"], name="ds2").name_version == 1


def test_a_failed_counter_write_on_mongodb_never_hands_a_version_out_twice(
    tmp_path: Path, data_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reservation whose $inc failed once (a write conflict) returned the counter
    as it stood: the version another writer had reserved (helper-72)."""
    from mongomock_motor import AsyncMongoMockClient
    from pymongo import errors

    with eio.Handler(storage=tmp_path / "store", catalog=AsyncMongoMockClient()) as h:
        first = sync(h.catalog.reserve_version("ds"))  # reserved, not committed
        names = sync(h.catalog._side("names"))
        real = type(names).find_one_and_update
        failed: list[bool] = []

        async def once_failing(self: Any, query: Any, update: Any, *args: Any, **kw: Any) -> Any:
            if not failed and "$inc" in update:
                failed.append(True)
                raise errors.OperationFailure("WriteConflict", code=112)
            return await real(self, query, update, *args, **kw)

        monkeypatch.setattr(type(names), "find_one_and_update", once_failing)
        second = sync(h.catalog.reserve_version("ds"))
        assert failed
        assert second != first


def test_an_unknown_name_names_the_catalog_searched(tmp_path: Path) -> None:
    """elliptio://NAME URLs go through the settings' catalog unless a handler made
    or read that artifact: the error said "not in the catalog" without saying
    which one it searched (helper-74)."""
    catalog = tmp_path / "team.db"
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{catalog}") as h:
        with pytest.raises(eio.ArtifactNotFoundError, match=re.escape(str(catalog))):
            h.get("train-set:latest")
