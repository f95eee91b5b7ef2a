"""The SQLite catalog: storage, lookup, URLs, persistence and concurrent writers."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from elliptio._catalog import query
from elliptio._catalog.sqlite import SCHEMA_VERSION, SQLiteCatalog, open_sqlite_catalog
from elliptio._errors import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    CatalogError,
    ConfigError,
    CorruptRecordError,
    InvalidLabelsError,
    QueryError,
)

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def record(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "artifact_id": f"artifact_{i:04d}",
        "username": "andy" if i % 2 else "bob",
        "creation_time": T0 + dt.timedelta(minutes=i),
        "labels": {"datatype": "annotation_file", "infos": {"i": i, "ratio": i / 4}},
        "file_relpaths": [f"f{i}.txt"],
        **extra,
    }


@pytest.fixture
async def catalog() -> AsyncIterator[SQLiteCatalog]:
    cat = SQLiteCatalog(None)
    yield cat
    await cat.close()


async def test_insert_then_get_returns_an_equal_document(catalog: SQLiteCatalog) -> None:
    doc = record(
        1,
        unicode="héllo \u2603 \x01",
        nested={"list": [1, 2.5, None, True, {"deep": []}], "empty": {}},
        big=2**62,
        neg=-0.0,
    )
    doc["creation_time"] = T0.astimezone(dt.timezone(dt.timedelta(hours=-7)))
    await catalog.insert(doc)
    back = await catalog.get(doc["artifact_id"])
    assert back == doc
    assert back["creation_time"].tzinfo == UTC
    assert isinstance(back["nested"]["list"][1], float)
    assert isinstance(back["big"], int)


async def test_find_sort_skip_limit_count(catalog: SQLiteCatalog) -> None:
    await catalog.insert_many([record(i) for i in range(10)])
    assert await catalog.count() == 10
    assert await catalog.count({"username": "andy"}) == 5
    ids = [d["artifact_id"] for d in await catalog.find()]
    assert ids == [f"artifact_{i:04d}" for i in range(10)]  # insertion order
    newest = await catalog.find({"username": "bob"}, sort=[("creation_time", -1)], limit=2)
    assert [d["labels"]["infos"]["i"] for d in newest] == [8, 6]
    page = await catalog.find(sort=[("labels.infos.i", 1)], skip=3, limit=4)
    assert [d["labels"]["infos"]["i"] for d in page] == [3, 4, 5, 6]
    assert await catalog.find({"username": "nobody"}) == []
    assert len(await catalog.find(skip=8)) == 2


async def test_find_by_datetime_round_trips_aware(catalog: SQLiteCatalog) -> None:
    await catalog.insert_many([record(i) for i in range(5)])
    since = (T0 + dt.timedelta(minutes=3)).astimezone(dt.timezone(dt.timedelta(hours=5)))
    docs = await catalog.find({"creation_time": {"$gte": since}}, sort=[("creation_time", 1)])
    assert [d["creation_time"] for d in docs] == [T0 + dt.timedelta(minutes=m) for m in (3, 4)]
    assert all(d["creation_time"].tzinfo == UTC for d in docs)


async def test_bad_skip_or_limit(catalog: SQLiteCatalog) -> None:
    with pytest.raises(QueryError, match="skip"):
        await catalog.find(skip=-1)
    with pytest.raises(QueryError, match="limit"):
        await catalog.find(limit=-5)


async def test_a_filter_too_large_for_sqlite_is_a_query_error(catalog: SQLiteCatalog) -> None:
    # SQLite cannot parse an expression this wide; that is the query's fault, not
    # the file's, so the error says to split the query, not to check for corruption.
    await catalog.insert(record(1))
    too_wide = {"extra.i": {"$in": [*range(2000), True]}}
    too_long = {"extra." + ".".join(["a"] * 31): 1}
    for flt in (too_wide, too_long):
        with pytest.raises(QueryError, match="split it into several queries") as info:
            await catalog.find(flt)
        assert "corrupt" not in str(info.value)
    # On a label path the same filters are lookups in the label index.
    assert await catalog.count({"labels.infos.i": {"$in": list(range(2000))}}) == 1
    assert await catalog.count({"labels." + ".".join(["a"] * 31): 1}) == 0


async def test_duplicate_id_is_refused(catalog: SQLiteCatalog) -> None:
    await catalog.insert(record(1))
    with pytest.raises(ArtifactExistsError, match="artifact_0001"):
        await catalog.insert(record(1, other=True))
    assert (await catalog.get("artifact_0001")).get("other") is None


async def test_insert_many_is_all_or_nothing(catalog: SQLiteCatalog) -> None:
    await catalog.insert(record(5))
    with pytest.raises(ArtifactExistsError, match="artifact_0005"):
        await catalog.insert_many([record(4), record(5), record(6)])
    assert await catalog.count() == 1
    with pytest.raises(ArtifactExistsError, match="artifact_0007"):
        await catalog.insert_many([record(7), record(7)])
    assert await catalog.count() == 1


async def test_unknown_id(catalog: SQLiteCatalog) -> None:
    with pytest.raises(ArtifactNotFoundError, match="artifact_nope") as info:
        await catalog.get("artifact_nope")
    assert "find()" in str(info.value)
    assert isinstance(info.value, KeyError)


async def test_delete(catalog: SQLiteCatalog) -> None:
    await catalog.insert_many([record(1), record(2)])
    await catalog.delete("artifact_0001")
    await catalog.delete("artifact_0001")  # absent: nothing to do
    assert [d["artifact_id"] for d in await catalog.find()] == ["artifact_0002"]


async def test_unstorable_values_are_refused(catalog: SQLiteCatalog) -> None:
    with pytest.raises(InvalidLabelsError, match=r"labels\.infos\.bad"):
        await catalog.insert(record(1, labels={"infos": {"bad": {1, 2}}}))
    with pytest.raises(InvalidLabelsError, match="naive"):
        await catalog.insert(record(2, when=dt.datetime(2020, 1, 1)))
    with pytest.raises(InvalidLabelsError, match="not finite"):
        await catalog.insert(record(3, x=float("inf")))
    with pytest.raises(CatalogError, match="artifact_id"):
        await catalog.insert({"username": "x"})
    assert await catalog.count() == 0


async def test_close_is_idempotent_and_final() -> None:
    cat = SQLiteCatalog(None)
    await cat.insert(record(1))
    await cat.close()
    await cat.close()
    with pytest.raises(CatalogError, match="closed"):
        await cat.get("artifact_0001")


async def test_close_without_use() -> None:
    cat = SQLiteCatalog(None)
    await cat.close()


async def test_file_db_persists_and_dirs_are_made_lazily(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "catalog.db"
    cat = open_sqlite_catalog(f"sqlite:///{path}")
    assert not path.parent.exists()
    await cat.insert(record(1))
    await cat.close()
    assert path.exists()
    again = open_sqlite_catalog(f"sqlite:///{path}")
    assert await again.get("artifact_0001") == record(1)
    assert await again.count({"creation_time": T0 + dt.timedelta(minutes=1)}) == 1
    await again.close()


async def test_relative_sqlite_url_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cat = open_sqlite_catalog("sqlite:///sub/cat.db")
    monkeypatch.chdir(tmp_path.parent)  # resolved when opened, not when used
    await cat.insert(record(1))
    await cat.close()
    assert (tmp_path / "sub" / "cat.db").exists()


async def test_memory_urls() -> None:
    private_a, private_b = open_sqlite_catalog("memory://"), open_sqlite_catalog("memory://")
    await private_a.insert(record(1))
    assert await private_b.count() == 0
    shared_a = open_sqlite_catalog("memory://team")
    shared_b = open_sqlite_catalog("memory://team")
    other = open_sqlite_catalog("memory://other")
    await shared_a.insert(record(2))
    assert await shared_b.get("artifact_0002") == record(2)
    assert await other.count() == 0
    await asyncio.gather(*(c.close() for c in (private_a, private_b, shared_a, shared_b, other)))
    # the named database lives only while a catalog holds it open
    fresh = open_sqlite_catalog("memory://team")
    assert await fresh.count() == 0
    await fresh.close()


async def test_shared_memory_catalogs_write_concurrently() -> None:
    cats = [open_sqlite_catalog("memory://busy") for _ in range(3)]
    await asyncio.gather(
        *(cat.insert(record(i * 100 + j)) for i, cat in enumerate(cats) for j in range(20))
    )
    assert await cats[0].count() == 60
    await asyncio.gather(*(c.close() for c in cats))


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///", "sqlite:///a.db?mode=ro", "postgres://x", "memory://a/b", "x.db"],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_sqlite_catalog(url)
    assert url in str(info.value)
    assert "memory://" in str(info.value)


async def test_unusable_path_is_a_catalog_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cat = SQLiteCatalog(str(blocker / "cat.db"))
    with pytest.raises(CatalogError, match=r"cat\.db"):
        await cat.insert(record(1))
    await cat.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    cat = SQLiteCatalog(str(garbage))
    with pytest.raises(CatalogError, match=r"garbage\.db"):
        await cat.count()
    await cat.close()


async def test_common_filters_use_indexes(catalog: SQLiteCatalog) -> None:
    await catalog.insert(record(1, based_on=["artifact_0000"]))
    await catalog.insert(record(2, username=["x", "y"]))  # an array on an indexed path

    def plan(conn: Any, flt: dict[str, Any], sort: Any) -> str:
        where, order, params = query.translate_query(flt, sort, layout=catalog._layout(conn))
        sql = f"EXPLAIN QUERY PLAN SELECT id FROM artifacts WHERE {where} {order}"
        return " | ".join(row[3] for row in conn.execute(sql, params))

    for flt, sort, index in [
        ({"username": "andy"}, None, "artifacts_username"),
        ({"labels.datatype": "model"}, None, "artifacts_datatype"),
        ({"labels.project": "p"}, None, "artifacts_project"),
        ({"creation_time": {"$gte": T0}}, None, "artifacts_creation_time"),
        ({}, [("creation_time", -1)], "artifacts_creation_time"),
        ({"based_on": "artifact_0000"}, None, "side_values USING PRIMARY KEY"),
        ({"file_relpaths": {"$in": ["a", "b"]}}, None, "side_values USING PRIMARY KEY"),
    ]:
        text = await catalog._run(plan, flt, sort)
        assert index in text, (flt, text)


def _writer(path: str, worker: int, n: int) -> None:
    async def main() -> None:
        cat = SQLiteCatalog(path)
        for i in range(n):
            await cat.insert(record(worker * 1000 + i, worker=worker))
        await cat.close()

    asyncio.run(main())


async def test_several_processes_write_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared" / "catalog.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 25)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        await asyncio.to_thread(proc.join, 120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    cat = SQLiteCatalog(path)
    assert await cat.count() == 100
    for w in range(4):
        assert await cat.count({"worker": w}) == 25
    await cat.close()


async def test_version_1_files_are_carried_over(tmp_path: Path) -> None:
    import sqlite3

    from elliptio._catalog import codec

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE artifacts (artifact_id TEXT PRIMARY KEY, creation_time TEXT, doc TEXT)"
    )
    conn.execute("CREATE INDEX artifacts_username ON artifacts (json_extract(doc,'$.username'))")
    for i in (1, 2):
        conn.execute(
            "INSERT INTO artifacts VALUES (?, NULL, ?)",
            (f"artifact_{i:04d}", codec.dumps(record(i, based_on=["artifact_0000"]))),
        )
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    cat = SQLiteCatalog(path)
    assert await cat.get("artifact_0002") == record(2, based_on=["artifact_0000"])
    assert await cat.count({"based_on": "artifact_0000", "username": "andy"}) == 1
    await cat.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {
        *("artifacts", "artifact_docs", "artifact_extras", "side_values"),
        *("names", "aliases", "leases", "file_objects", "run_inputs", "label_values"),
    }
    conn.close()


async def _written_schema(
    path: Path, docs: list[dict[str, Any]]
) -> tuple[set[tuple[str, str]], list[tuple[Any, ...]]]:
    """The schema (`_schema`) of a fresh catalog file at ``path`` holding ``docs``."""
    cat = SQLiteCatalog(path)
    await cat.insert_many(docs)
    await cat.close()
    return _schema(path)


def _schema(path: Path) -> tuple[set[tuple[str, str]], list[tuple[Any, ...]]]:
    """The tables and indexes of a database, and the columns of ``artifacts``."""
    import sqlite3

    conn = sqlite3.connect(path)
    objects = {(t, n) for t, n in conn.execute("SELECT type, name FROM sqlite_master")}
    columns = conn.execute("PRAGMA table_info(artifacts)").fetchall()
    conn.close()
    return objects, columns


async def test_version_2_files_are_upgraded(tmp_path: Path) -> None:
    import sqlite3

    a, b = "a" * 64, "b" * 64
    docs = [
        record(1, name="clean", name_version=1, files=[_file("x.bin", "s3://b/1/x.bin", 10, a)]),
        record(2, name="clean", name_version=4, logs=[_file("out.log", "s3://b/2/out.log", 20, b)]),
        record(3, name=["clean", "other"], files=[_file("y.bin", "s3://b/3/y.bin", 10, a)]),
        record(4, files=[{"relpath": "no-hash.bin", "url": "s3://b/4/n.bin", "size": 30}]),
        record(5, name="raw", name_version=2),
    ]
    path = tmp_path / "v2.db"
    fresh = await _written_schema(path, docs)
    # Turn it into what version 2 wrote: no names, versions, aliases, leases or
    # file index, and no note of documents with an array under "name".
    _write_version_3_bodies(path, docs)
    conn = sqlite3.connect(path)
    for statement in (
        "DROP INDEX artifacts_name_version",
        "DROP INDEX artifacts_name",
        *(f"DROP TABLE {t}" for t in ("names", "aliases", "leases", "file_objects")),
        "ALTER TABLE artifacts DROP COLUMN name",
        "ALTER TABLE artifacts DROP COLUMN name_version",
        "DELETE FROM side_values WHERE field = '' AND value = 'name'",
        "PRAGMA user_version=2",
    ):
        conn.execute(statement)
    conn.commit()
    conn.close()
    assert _schema(path) != fresh

    cat = SQLiteCatalog(path)
    assert [await cat.get(doc["artifact_id"]) for doc in docs] == docs
    clean = await cat.find({"name": "clean"}, fields=[])
    assert [d["artifact_id"] for d in clean] == ["artifact_0001", "artifact_0002", "artifact_0003"]
    assert await cat.count({"name": "other"}) == 1
    assert await cat.version_id("clean") == "artifact_0002"
    assert await cat.version_id("raw", 2) == "artifact_0005"
    assert await cat.names() == [("clean", 2, 4), ("raw", 1, 2)]
    found = await cat.find_objects([(a, 10), (b, 20), (a, 30)], "s3://b/")
    assert found == {(a, 10): "s3://b/1/x.bin", (b, 20): "s3://b/2/out.log"}
    assert await cat.known_sizes([10, 20, 30]) == {10, 20}
    assert [await cat.reserve_version(n) for n in ("clean", "raw", "new")] == [5, 3, 1]
    await cat.delete("artifact_0001")
    assert await cat.find_objects([(a, 10)], "") == {(a, 10): "s3://b/3/y.bin"}
    await cat.close()
    assert _schema(path) == fresh
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


def _write_version_3_bodies(path: Path, docs: list[dict[str, Any]]) -> None:
    """Store ``docs`` in the body versions 2 and 3 wrote: the BSON document, with
    ``0`` in place of ``git`` and ``python_packages`` (kept in their own columns)."""
    import sqlite3

    import bson

    from elliptio._catalog import body, codec

    conn = sqlite3.connect(path)
    for doc in docs:
        stored = {
            key: 0 if key in ("git", "python_packages") else value
            for key, value in codec.normalize(doc).items()
        }
        conn.execute(
            "UPDATE artifact_docs SET body = ? WHERE id ="
            " (SELECT id FROM artifacts WHERE artifact_id = ?)",
            (bson.encode(stored, codec_options=body.OPTIONS), doc["artifact_id"]),
        )
    conn.execute("ALTER TABLE artifacts DROP COLUMN deleted_json")  # new in version 6
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()


async def test_version_3_files_are_upgraded(tmp_path: Path) -> None:
    import sqlite3

    git = {"commit": "c" * 40, "dirty": True, "diff": "+x\n"}
    docs = [
        record(1, git=git, python_packages={"numpy": "2.0"}, name="n", name_version=1),
        record(2, version=1, extra={"kept": [1, 2]}, argv=["a", "b"]),
        # Neither a datetime creation time nor the fields of a record.
        {"artifact_id": "artifact_0003", "creation_time": "yesterday", "z": None},
        {"artifact_id": "artifact_0004", "git": None, "python_packages": {}},
    ]
    path = tmp_path / "v3.db"
    fresh = await _written_schema(path, docs)
    _write_version_3_bodies(path, docs)

    cat = SQLiteCatalog(path)
    assert [await cat.get(doc["artifact_id"]) for doc in docs] == docs
    assert await cat.find({"git.dirty": True}, fields=["git"]) == [
        {"artifact_id": "artifact_0001", "git": git}
    ]
    table = await cat.find_columns({}, fields=["creation_time", "python_packages", "z"])
    assert table == {
        "artifact_id": [doc["artifact_id"] for doc in docs],
        "creation_time": [doc.get("creation_time") for doc in docs],
        "python_packages": [{"numpy": "2.0"}, None, None, {}],
        "z": [None, None, None, None],
    }
    await cat.close()
    assert _schema(path) == fresh
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


async def test_version_4_files_gain_run_inputs(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v4.db"
    cat = SQLiteCatalog(path)
    await cat.insert(record(1))
    await cat.close()
    fresh = _schema(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE run_inputs")
    conn.execute("ALTER TABLE artifacts DROP COLUMN deleted_json")
    conn.execute("PRAGMA user_version=4")
    conn.commit()
    conn.close()
    cat = SQLiteCatalog(path)
    await cat.add_run_inputs("run_1", ["artifact_0001"])
    assert await cat.run_inputs("run_1") == ["artifact_0001"]
    assert (await cat.get("artifact_0001"))["artifact_id"] == "artifact_0001"
    await cat.close()
    assert _schema(path) == fresh


async def test_version_5_files_gain_the_tombstone_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v5.db"
    cat = SQLiteCatalog(path)
    await cat.insert_many([record(1, name="set", name_version=1), record(2)])
    await cat.close()
    fresh = _schema(path)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE artifacts DROP COLUMN deleted_json")
    conn.execute("PRAGMA user_version=5")
    conn.commit()
    conn.close()
    cat = SQLiteCatalog(path)
    assert await cat.count({"deleted": None}) == 2
    old = await cat.get("artifact_0001")
    assert await cat.replace({**old, "files": [], "deleted": {"reason": "r"}}, (False, 0))
    assert await cat.version_id("set") is None
    assert [d["artifact_id"] for d in await cat.find({"deleted": None})] == ["artifact_0002"]
    await cat.close()
    assert _schema(path) == fresh


async def test_version_6_files_list_non_string_values_of_text_paths(tmp_path: Path) -> None:
    """Sorting by username uses its column (and index) only while every value there
    is a string or null: an upgraded file lists the documents that break that."""
    import sqlite3

    path = tmp_path / "v6.db"
    cat = SQLiteCatalog(path)
    odd = {**record(3), "username": 7, "labels": {**record(3)["labels"], "datatype": ["x"]}}
    await cat.insert_many([record(1), record(2), odd])
    await cat.close()
    fresh = _schema(path)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM side_values WHERE field = char(1)")
    conn.execute("DROP TABLE label_values")
    conn.execute("PRAGMA user_version=6")
    conn.commit()
    conn.close()
    cat = SQLiteCatalog(path)
    ids = [d["artifact_id"] for d in await cat.find(sort=[("username", 1)])]
    assert ids[0] == "artifact_0003"  # a number sorts below every string
    # ... and the labels of every record are in the label index.
    assert [d["artifact_id"] for d in await cat.find({"labels.infos.i": 2})] == ["artifact_0002"]
    assert await cat.count({"labels.datatype": "x"}) == 1
    await cat.close()
    assert _schema(path) == fresh
    conn = sqlite3.connect(path)
    listed = conn.execute("SELECT value FROM side_values WHERE field = char(1)").fetchall()
    (labels,) = conn.execute(
        "SELECT count(*) FROM label_values WHERE path = 'labels.infos.i'"
    ).fetchone()
    plan = " ".join(
        str(row)
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM artifacts ORDER BY username, creation_time LIMIT 5"
        )
    )
    conn.close()
    assert listed == [("username",)]
    assert "artifacts_username" in plan
    assert labels == 3


def _file(relpath: str, url: str, size: int, sha256: str) -> dict[str, Any]:
    return {"relpath": relpath, "url": url, "size": size, "sha256": sha256}


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    cat = SQLiteCatalog(path)
    with pytest.raises(CatalogError, match="upgrade elliptio"):
        await cat.count()
    await cat.close()


async def test_many_documents_read_back_whole_or_projected(catalog: SQLiteCatalog) -> None:
    """Documents read in batches are those inserted, with their types, in order."""
    docs = [
        record(
            i,
            git={"commit": f"{i:040x}", "when": T0 + dt.timedelta(seconds=i)} if i % 3 else {},
            python_packages={"numpy": "2.0"} if i % 5 else {"x": 'say "$date'},
            note='{"$date":"2024-01-01T00:00:00.000000Z"}' if i % 7 == 0 else None,
            deep={"when": [T0]} if i % 11 == 0 else [],
        )
        for i in range(2500)
    ]
    for doc in docs[::4]:
        del doc["git"]
    await catalog.insert_many(docs)
    found = await catalog.find(sort=[("labels.infos.i", 1)])
    assert found == docs
    assert [list(doc) for doc in found] == [list(doc) for doc in docs]  # key order
    assert found[11]["deep"]["when"][0].tzinfo is UTC
    assert found[1]["git"]["when"].tzinfo is UTC
    fields = ["git", "note", "labels", "no_such_field"]
    part = await catalog.find(sort=[("labels.infos.i", 1)], fields=fields)
    assert part == [{k: v for k, v in doc.items() if k in {"artifact_id", *fields}} for doc in docs]
    assert await catalog.get("artifact_0077") == docs[77]


async def test_large_fields_are_stored_apart(catalog: SQLiteCatalog) -> None:
    """Scans of the artifacts table never read python_packages or git."""
    packages = {f"p{i}": "1.0" for i in range(500)}
    await catalog.insert(record(1, python_packages=packages, git={"diff": "x" * 10_000}))

    def sizes(conn: Any) -> tuple[int, int]:
        narrow = conn.execute("SELECT length(labels_json) + length(arrays) FROM artifacts")
        extras = conn.execute(
            "SELECT length(packages_json) + length(git_json) FROM artifact_extras"
        )
        return narrow.fetchone()[0], extras.fetchone()[0]

    narrow, extras = await catalog._run(sizes)
    assert narrow < 500 < 10_000 < extras
    assert await catalog.count({"python_packages.p7": "1.0", "git.diff": {"$regex": "^x+$"}}) == 1
    [doc] = await catalog.find({"labels.infos.i": 1}, fields=["python_packages"])
    assert doc == {"artifact_id": "artifact_0001", "python_packages": packages}


def _by_columns(docs: list[dict[str, Any]], fields: list[str]) -> dict[str, list[Any]]:
    return {"artifact_id": [d["artifact_id"] for d in docs]} | {
        f: [d.get(f) for d in docs] for f in fields
    }


async def test_many_documents_are_decoded_off_the_event_loop(catalog: SQLiteCatalog) -> None:
    import concurrent.futures

    class Counting(concurrent.futures.ThreadPoolExecutor):
        calls = 0

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return super().submit(fn, *args, **kwargs)

    await catalog.insert_many([record(i) for i in range(1200)])
    executor = Counting(max_workers=1)
    asyncio.get_running_loop().set_default_executor(executor)  # the catalog's worker is its own
    try:
        few = await catalog.find({"username": "bob"}, limit=10)
        assert len(few) == 10
        assert executor.calls == 0  # a few are decoded in place
        docs = await catalog.find(sort=[("artifact_id", 1)])
        assert executor.calls == 1
        assert [d["artifact_id"] for d in docs] == [f"artifact_{i:04d}" for i in range(1200)]
    finally:
        executor.shutdown()


async def test_columns_of_many_rows_come_in_order(catalog: SQLiteCatalog) -> None:
    # More rows than one chunk of bodies, sorted against the order of insertion.
    docs = [record(i, version=i % 3, argv=["x"] * (i % 4)) for i in range(2600)]
    await catalog.insert_many(docs)
    fields = ["creation_time", "argv", "labels", "version", "python_packages"]
    for sort, skip, limit in [([("creation_time", -1)], 0, 0), ([("version", 1)], 7, 1500)]:
        found = await catalog.find(sort=sort, skip=skip, limit=limit, fields=fields)
        table = await catalog.find_columns(sort=sort, skip=skip, limit=limit, fields=fields)
        assert table == _by_columns(found, fields)
    newest = await catalog.find_columns(sort=[("creation_time", -1)], limit=3, fields=[])
    assert newest == {"artifact_id": ["artifact_2599", "artifact_2598", "artifact_2597"]}


async def test_columns_of_bodies_beyond_sqlites_string_limit(catalog: SQLiteCatalog) -> None:
    import sqlite3

    docs = [record(i, note="n" * 2000) for i in range(30)]
    await catalog.insert_many(docs)
    conn = catalog._state.connection
    assert conn is not None
    # One chunk of these bodies is longer than SQLite will concatenate.
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000)
    table = await catalog.find_columns(sort=[("creation_time", -1)], fields=["labels", "argv"])
    assert table == _by_columns(list(reversed(docs)), ["labels", "argv"])


async def test_a_failed_column_read_raises_and_leaves_the_catalog_usable(
    catalog: SQLiteCatalog,
) -> None:
    import sqlite3

    await catalog.insert_many([record(i) for i in range(5)])
    conn = catalog._state.connection
    assert conn is not None
    # The SQL fails on the worker thread, after the reader started waiting for rows.
    default = conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, 20)
    with pytest.raises(CatalogError, match="query string is too large"):
        await asyncio.wait_for(catalog.find_columns(fields=["labels"]), timeout=30)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, default)
    assert len((await catalog.find_columns(fields=["labels"]))["labels"]) == 5
    # A body that cannot be decoded is named as such.
    conn.execute("UPDATE artifact_docs SET body = x'0500000000' WHERE id = 2")
    with pytest.raises(CorruptRecordError, match="reindex"):
        await asyncio.wait_for(catalog.find_columns(fields=["labels"]), timeout=30)
    # ... whether the record is read whole or as columns, never as a missing id.
    with pytest.raises(CorruptRecordError, match="reindex"):
        await catalog.get("artifact_0001")
    table = await catalog.find_columns({"username": "bob"}, fields=["username"])
    assert table["username"] == ["bob", "bob", "bob"]


# Every write a catalog takes; each must refuse a file lost under the catalog.
_WRITES: dict[str, Any] = {
    "insert": lambda c: c.insert(record(9)),
    "insert_many": lambda c: c.insert_many([record(9)]),
    "delete": lambda c: c.delete("artifact_0001"),
    "open_lease": lambda c: c.open_lease("artifact_0009", "p/9", T0),
    "claim_lease": lambda c: c.claim_lease("artifact_0002", "condemned"),
    "close_lease": lambda c: c.close_lease("artifact_0002"),
    "commit": lambda c: c.commit(record(2)),
    "reserve_version": lambda c: c.reserve_version("results"),
    "set_alias": lambda c: c.set_alias("results", "best", 1),
    "remove_alias": lambda c: c.remove_alias("results", "best"),
}


@pytest.mark.parametrize("how", ["removed", "replaced"])
@pytest.mark.parametrize("write", sorted(_WRITES))
async def test_a_write_to_a_file_lost_under_the_catalog_raises(
    tmp_path: Path, write: str, how: str
) -> None:
    from elliptio._catalog.base import CatalogLostError

    path = tmp_path / "catalog.db"
    catalog = SQLiteCatalog(path)
    await catalog.insert(record(1))
    await catalog.open_lease("artifact_0002", "p/2", T0)
    other_path, away = tmp_path / "other.db", tmp_path / "away.db"
    other = SQLiteCatalog(other_path)
    await other.count()
    await other.close()
    os.replace(path, away)  # moved, so that it can be put back below
    if how == "replaced":
        os.replace(other_path, path)
    with pytest.raises(CatalogLostError, match=f"{re.escape(repr(str(path)))} was {how}"):
        await _WRITES[write](catalog)
    # Reads answer from the file the catalog opened (see the module docstring).
    assert await catalog.count() == 1
    # Nothing is left half done: with its own file back, the catalog writes again.
    os.replace(away, path)
    await _WRITES[write](catalog)
    await catalog.close()
    assert await catalog.close() is None  # still idempotent
