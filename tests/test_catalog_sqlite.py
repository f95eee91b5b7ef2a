"""The SQLite catalog: storage, lookup, URLs, persistence and concurrent writers."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import multiprocessing
import os
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from elliptio._catalog import codec, query
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


async def test_label_paths_with_empty_or_dotted_keys_never_meet(catalog: SQLiteCatalog) -> None:
    """The label index keys paths below the labels; a key "" must not make
    ``labels..x`` look like ``labels.x`` (nor ``labels.a`` holding "x" like it)."""
    await catalog.insert_many(
        [
            {"artifact_id": "nested", "labels": {"": {"x": 1}}},
            {"artifact_id": "plain", "labels": {"x": 1}},
            {"artifact_id": "deep", "labels": {"a": {"": {"x": 1}}}},
            {"artifact_id": "dotted", "labels": {"a.x": 1}},  # as MongoDB: no path reaches it
        ]
    )
    for flt, expected in [
        ({"labels.x": 1}, ["plain"]),
        ({"labels.x": {"$in": [1, 2]}}, ["plain"]),
        ({"labels.a.x": 1}, []),
        ({"labels.a.x": {"$in": [1]}}, []),
    ]:
        assert [d["artifact_id"] for d in await catalog.find(flt)] == expected, flt


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


_FAR_DATES = [
    dt.datetime(1, 1, 1, tzinfo=UTC),
    dt.datetime(1066, 10, 14, 9, 0, 0, 1999, tzinfo=UTC),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(1970, 1, 1, tzinfo=UTC),
    dt.datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
    dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


async def test_creation_times_of_any_year_filter_sort_and_frame_in_time_order(
    catalog: SQLiteCatalog,
) -> None:
    """The creation time column holds milliseconds since 1970 (6 bytes, not 27 of
    text): dates before 1970 and up to year 9999 still compare, sort and come back
    as the UTC datetimes, truncated to milliseconds, that every catalog returns."""
    from elliptio._catalog import codec

    docs = [{**record(i), "creation_time": when} for i, when in enumerate(_FAR_DATES)]
    await catalog.insert_many(docs[::-1])
    stored = [codec.normalize(when) for when in _FAR_DATES]
    assert stored == sorted(stored)
    assert [d["creation_time"] for d in await catalog.find(sort=[("creation_time", 1)])] == stored
    table = await catalog.find_columns(sort=[("creation_time", -1)], fields=["creation_time"])
    assert table["creation_time"] == stored[::-1]
    for i, when in enumerate(_FAR_DATES):
        assert await catalog.count({"creation_time": when}) == 1
        assert await catalog.count({"creation_time": {"$lt": when}}) == i
        assert await catalog.count({"creation_time": {"$gte": when}}) == len(_FAR_DATES) - i


async def test_labels_that_are_a_list_of_documents_are_found_and_forgotten(
    catalog: SQLiteCatalog,
) -> None:
    """``labels`` given as an array (by a raw catalog insert): its documents' fields
    are label paths as MongoDB reads them, found by the label index, and a delete
    leaves none of its rows behind."""
    import sqlite3

    await catalog.insert({"artifact_id": "d0", "labels": [{"b": 2, "datatype": "m"}, 3]})
    assert await catalog.count({"labels.b": 2}) == 1
    assert await catalog.count({"labels.b": {"$in": [2, 5]}}) == 1
    assert await catalog.count({"labels": 3}) == 1
    await catalog.delete("d0")

    def label_rows(conn: sqlite3.Connection) -> Any:
        return conn.execute("SELECT count(*) FROM label_rows").fetchone()

    assert await catalog._run(label_rows) == (0,)


async def test_a_time_zone_with_microseconds_stores_one_time_everywhere(
    catalog: SQLiteCatalog,
) -> None:
    """The UTC time is cut to milliseconds, as PyMongo does: the record, the frame
    and filters see the same instant (cut before the conversion, the record kept
    microseconds the indexed column did not)."""
    odd = dt.timezone(dt.timedelta(microseconds=1))
    when = dt.datetime(2024, 1, 1, 12, 0, tzinfo=odd)  # 11:59:59.999999 UTC
    stored = dt.datetime(2024, 1, 1, 11, 59, 59, 999000, tzinfo=UTC)
    await catalog.insert({**record(1), "creation_time": when})
    assert (await catalog.get("artifact_0001"))["creation_time"] == stored
    table = await catalog.find_columns(fields=["creation_time"])
    assert table["creation_time"] == [stored]
    assert await catalog.count({"creation_time": stored}) == 1
    assert await catalog.count({"creation_time": when}) == 1
    assert await catalog.count({"creation_time": {"$gt": stored}}) == 0
    assert await catalog.count({"creation_time": {"$in": [stored]}}) == 1


def test_date_millis_orders_as_date_text_and_reads_back() -> None:
    """The integer a creation time is stored as orders as its text did, and reads
    back as the date, on the fast path (1970 to 2106) and off it."""
    from hypothesis import given
    from hypothesis import strategies as st

    from elliptio._catalog import codec

    zones = st.sampled_from(
        [UTC, dt.timezone(dt.timedelta(hours=14)), dt.timezone(-dt.timedelta(hours=13, minutes=45))]
    )
    dates = st.datetimes(
        min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=zones
    )
    modern = st.datetimes(
        min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2106, 1, 1), timezones=zones
    )

    @given(dates | modern, dates | modern)
    def check(a: dt.datetime, b: dt.datetime) -> None:
        ma, mb = codec.date_millis(a), codec.date_millis(b)
        ta, tb = codec.date_text(a), codec.date_text(b)
        assert (ma < mb, ma == mb) == (ta < tb, ta == tb)
        assert codec.from_millis(ma) == codec.parse_date(ta) == codec.normalize(a)
        assert codec.from_millis(ma).tzinfo is UTC

    check()
    edges = [*_FAR_DATES, dt.datetime(2106, 2, 7, 6, 28, 15, 999000, tzinfo=UTC)]
    for when in edges:  # the first and last milliseconds, either side of the fast path
        assert codec.from_millis(codec.date_millis(when)) == codec.normalize(when)


async def test_bad_skip_or_limit(catalog: SQLiteCatalog) -> None:
    with pytest.raises(QueryError, match="skip"):
        await catalog.find(skip=-1)
    with pytest.raises(QueryError, match="limit"):
        await catalog.find(limit=-5)


async def test_a_filter_too_large_for_sqlite_is_a_query_error(catalog: SQLiteCatalog) -> None:
    # SQLite cannot parse an expression this wide; that is the query's fault, not
    # the file's, so the error says to split the query, not to check for corruption.
    await catalog.insert(record(1))
    too_wide = {"extra.i": {"$in": [*range(20_000), True]}}
    too_long = {"extra." + ".".join(["a"] * 31): 1}
    for flt in (too_wide, too_long):
        with pytest.raises(QueryError, match="split it into several queries") as info:
            await catalog.find(flt)
        assert "corrupt" not in str(info.value)
    # Thousands of values are one query: an $in of every input of a big run.
    ids = [f"artifact_{n:04d}" for n in range(6000)]
    assert await catalog.count({"artifact_id": {"$in": ids}}) == 1
    await catalog.insert(record(2, extra={"i": 1999}))
    assert await catalog.count({"extra.i": {"$in": [*range(2000), True]}}) == 1
    # On a label path the same filters are lookups in the label index.
    assert await catalog.count({"labels.infos.i": {"$in": list(range(2000))}}) == 2
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
        ({"based_on": "artifact_0000"}, None, "side_index USING PRIMARY KEY"),
        ({"file_relpaths": {"$in": ["a", "b"]}}, None, "side_index USING PRIMARY KEY"),
        ({"labels.infos.seed": 7}, None, "label_rows USING PRIMARY KEY (path=? AND value=?)"),
        (
            {"labels.x": {"$in": ["a", 2]}},
            None,
            "label_rows USING PRIMARY KEY (path=? AND value=?)",
        ),
        ({"labels.x": {"$regex": "^ab"}}, None, "label_rows USING PRIMARY KEY (path=? AND value>?"),
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


async def test_a_record_an_upgrade_cannot_carry_over_leaves_the_file_as_it_was(
    tmp_path: Path,
) -> None:
    import sqlite3

    from elliptio._catalog import codec

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE artifacts (artifact_id TEXT PRIMARY KEY, creation_time TEXT, doc TEXT)"
    )
    # Schema 1 took label keys holding NUL, which no later schema stores.
    text = codec.dumps(record(1))[:-1] + ', "labels": {"a\\u0000b": 1}}'
    conn.execute("INSERT INTO artifacts VALUES (?, NULL, ?)", ("artifact_0002", text))
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    cat = SQLiteCatalog(path)
    with pytest.raises(CatalogError, match=r"cannot be carried over.*NUL.*left as it was"):
        await cat.count()
    await cat.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM artifacts").fetchone() == (1,)
    conn.close()


async def test_the_id_of_a_deleted_record_is_never_given_again(catalog: SQLiteCatalog) -> None:
    """Side rows are deleted by keys computed from the record: if a record was
    changed behind the catalog's back, rows left over belong to no new record."""
    await catalog.insert({"artifact_id": "a1", "labels": {"secret": "x"}})
    conn = catalog._state.connection
    assert conn is not None
    conn.execute("""UPDATE artifacts SET labels_json = '{"labels": {}}'""")
    await catalog.delete("a1")
    await catalog.insert({"artifact_id": "b2", "labels": {}})
    assert await catalog.find({"labels.secret": "x"}) == []
    (new_id,) = conn.execute("SELECT id FROM artifacts WHERE artifact_id = 'b2'").fetchone()
    assert new_id == 2


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
    assert tables == _TABLES
    conn.close()


_DATA = Path(__file__).parent / "data"
_OLD_FILES = sorted(p.name for p in _DATA.glob("catalog-*.db"))


def _old_records() -> list[dict[str, Any]]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("old_catalogs", _DATA / "old_catalogs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    records: list[dict[str, Any]] = module.records()
    return records


def test_every_earlier_schema_has_a_file_written_by_its_own_code() -> None:
    import sqlite3

    versions = set()
    for name in _OLD_FILES:
        conn = sqlite3.connect(_DATA / name)
        versions.add(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.close()
    assert versions == set(range(2, SCHEMA_VERSION))  # version 1: see the test above
    assert {"catalog-0.3.1.db", "catalog-0.4.0.db"} <= set(_OLD_FILES)


@pytest.mark.parametrize("name", _OLD_FILES)
async def test_files_of_earlier_releases_upgrade_in_place(tmp_path: Path, name: str) -> None:
    """A file written by an earlier release's code opens as this schema, with every
    record as it was written, its names, aliases, leases and run inputs kept."""
    import shutil
    import sqlite3

    from elliptio._catalog import codec

    path = tmp_path / name
    shutil.copyfile(_DATA / name, path)
    conn = sqlite3.connect(path)
    old_version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    records = [codec.normalize(r) for r in _old_records()]
    cat = SQLiteCatalog(path)
    assert await cat.find(sort=[("creation_time", 1)]) == sorted(
        records, key=lambda r: (r.get("creation_time") is not None, r.get("creation_time") or 0)
    )
    assert [await cat.get(r["artifact_id"]) for r in records] == records
    # Queries use the new indexes and tables.
    assert [d["artifact_id"] for d in await cat.find({"labels.infos.seed": 7})] == ["artifact_0007"]
    assert await cat.count({"labels.infos.tags": "a"}) == 30
    assert await cat.count({"based_on": "artifact_0004"}) == 2
    assert await cat.count({"python_packages.extra": "3"}) == 1
    assert await cat.count({"git.diff": {"$regex": "^\\+x"}}) == 22
    first = await cat.find({"version": 1}, sort=[("username", 1)], limit=1)
    assert [d["artifact_id"] for d in first] == ["artifact_0000"]
    assert await cat.version_id("results") == "artifact_0020"
    found = await cat.find_objects([("0" * 63 + "1", 101)], "file:///lake/")
    assert found == {("0" * 63 + "1", 101): "file:///lake/1/part-1.csv"}
    table = await cat.find_columns(
        {"username": "bob"}, sort=[("creation_time", -1)], fields=["labels", "python_packages"]
    )
    bobs = [r for r in reversed(records[:30]) if r["username"] == "bob"]
    assert table == {
        "artifact_id": [r["artifact_id"] for r in bobs],
        "labels": [r["labels"] for r in bobs],
        "python_packages": [r["python_packages"] for r in bobs],
    }
    if old_version >= 3:
        assert await cat.aliases("results") == {"best": 2}
        assert await cat.reserve_version("results") == 5  # 4 was reserved before
        lease = await cat.get_lease("artifact_9999")
        assert lease is not None
        assert lease.prefix == "file:///lake/9999"
    if old_version >= 5:
        assert await cat.run_inputs("run_1") == ["artifact_0001"]
    await cat.close()

    fresh = SQLiteCatalog(tmp_path / "fresh.db")
    await fresh.insert_many(_old_records())
    await fresh.close()

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    (environments,) = conn.execute("SELECT count(*) FROM environments").fetchone()
    labels = _label_rows(conn)
    docs = _doc_rows(conn)
    narrow = _narrow_rows(conn)
    conn.close()
    assert tables == _TABLES
    assert environments == 11  # one shared by 20 records, ten of one record each
    # The label index and the documents hold what this schema writes, whatever
    # the old one held.
    conn = sqlite3.connect(tmp_path / "fresh.db")
    assert labels == _label_rows(conn)
    assert docs == _doc_rows(conn)
    assert narrow == _narrow_rows(conn)
    conn.close()


def _doc_rows(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT a.artifact_id, d.doc FROM packed_docs d JOIN artifacts a ON a.id = d.id ORDER BY 1"
    ).fetchall()


def _narrow_rows(conn: Any) -> list[tuple[Any, ...]]:
    """The creation times, array members and file keys of each record, by artifact_id."""
    times = conn.execute("SELECT artifact_id, creation_ms FROM artifacts ORDER BY 1").fetchall()
    side = conn.execute(
        "SELECT a.artifact_id, s.field, s.value FROM side_index s"
        " JOIN artifacts a ON a.id = s.artifact ORDER BY 1, 2, 3"
    ).fetchall()
    files = conn.execute(
        "SELECT a.artifact_id, f.size, f.sha_key, f.url_key FROM file_keys f"
        " JOIN artifacts a ON a.id = f.artifact ORDER BY 1, 2, 3, 4"
    ).fetchall()
    return [*times, *side, *files]  # type: ignore[no-any-return]


def _label_rows(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT a.artifact_id, p.path, l.value FROM label_rows l"
        " JOIN label_paths p ON p.id = l.path"
        " JOIN artifacts a ON a.id = l.artifact ORDER BY 1, 2, 3"
    ).fetchall()


async def test_label_index_leaves_out_empty_strings_and_column_paths(tmp_path: Path) -> None:
    """The default "" of every label field and the paths with columns of their own
    (datatype, project) have no label rows: no query reads them there."""
    import sqlite3

    cat = SQLiteCatalog(tmp_path / "c.db")
    labels = {"datatype": "m", "project": "p", "ticket": "", "dataset": "d", "infos": {"a": ""}}
    await cat.insert_many([{"artifact_id": "x", "labels": labels}])
    await cat.close()
    conn = sqlite3.connect(tmp_path / "c.db")
    assert _label_rows(conn) == [("x", "dataset", "d")]
    conn.close()


@pytest.mark.parametrize(
    ("name", "bars"),
    [("catalog-0.3.1.db", [8, 8, 8, 7, -1]), ("catalog-schema-11.db", [8, 8, 8, 7, -1])],
)
async def test_an_upgrade_shows_progress_and_is_done_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    bars: list[int],
) -> None:
    import shutil
    import sqlite3

    from elliptio._catalog import sqlite as sqlite_module

    path = tmp_path / "old.db"
    shutil.copyfile(_DATA / name, path)
    old = sqlite3.connect(path)
    (version,) = old.execute("PRAGMA user_version").fetchone()
    old.close()
    drawn: list[int] = []

    class Bar:
        def update(self, n: int) -> None:
            drawn.append(n)

        def close(self) -> None:
            drawn.append(-1)

    monkeypatch.setattr(sqlite_module, "_UPGRADE_PROGRESS", 10)
    monkeypatch.setattr(sqlite_module, "_UPGRADE_BATCH", 8)
    monkeypatch.setattr(sqlite_module._progress, "counting_bar", lambda desc, total: Bar())
    with caplog.at_level("INFO", logger="elliptio._catalog.sqlite"):
        cat = SQLiteCatalog(path)
        assert await cat.count() == 31
        await cat.close()
    assert drawn == bars
    assert f"from schema {version} to" in caplog.text
    caplog.clear()
    drawn.clear()
    with caplog.at_level("INFO", logger="elliptio._catalog.sqlite"):
        cat = SQLiteCatalog(path)
        assert await cat.count() == 31
        await cat.close()
    assert drawn == []
    assert "upgrading" not in caplog.text


_TABLES = {
    *("artifacts", "packed_docs", "environments", "side_index", "label_rows", "label_paths"),
    *("names", "aliases", "leases", "file_keys", "run_inputs", "sqlite_sequence"),
}


def _file(relpath: str, url: str, size: int, sha256: str) -> dict[str, Any]:
    return {"relpath": relpath, "url": url, "size": size, "sha256": sha256}


async def test_file_lookups_confirm_their_hashed_keys_in_the_records(
    catalog: SQLiteCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """file_keys keys sha256 and URL by 32-bit hashes; every lookup confirms a
    candidate in its record, so even keys that all collide give exact answers."""
    from elliptio._catalog import sqlite as module

    monkeypatch.setattr(module, "_key", lambda text: 7)
    a, b = "a" * 64, "b" * 64
    await catalog.insert_many(
        [
            {"artifact_id": "one", "files": [_file("x", "file:///lake/one/x", 5, a)]},
            {"artifact_id": "two", "files": [_file("y", "file:///lake/two/y", 5, b)]},
            {"artifact_id": "other", "files": [_file("z", "s3://else/z", 5, a)]},
        ]
    )
    assert await catalog.find_objects([(a, 5), (b, 5), (a, 6)], "file:///lake/") == {
        (a, 5): "file:///lake/one/x",
        (b, 5): "file:///lake/two/y",
    }
    assert await catalog.find_objects([(a, 5)], "s3://") == {(a, 5): "s3://else/z"}
    users = await catalog.object_users(["file:///lake/two/y", "s3://else/z", "file:///none"])
    assert users == {"file:///lake/two/y": {"two"}, "s3://else/z": {"other"}}
    # A record that cannot be read back is taken to use every candidate URL, so
    # a delete never removes bytes it might hold; dedup never points at it.
    conn = catalog._state.connection
    assert conn is not None
    conn.execute("UPDATE packed_docs SET doc = '{' WHERE id = 2")
    users = await catalog.object_users(["file:///lake/one/x"])
    assert users == {"file:///lake/one/x": {"one", "two"}}  # "other" reads back: not it
    assert await catalog.find_objects([(b, 5)], "file:///lake/") == {}
    await catalog.delete("one")
    assert await catalog.object_users(["file:///lake/one/x"]) == {"file:///lake/one/x": {"two"}}


async def test_a_process_opening_a_file_another_one_upgrades_waits_for_the_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other processes wait meanwhile, docs/queries.md says: a process opening a file
    of an earlier schema that another process held locked (upgrading it, 35 s per
    100,000 records) gave up after the catalog's lock retries (about two minutes)
    with "database is locked", so every process but one failed on a file of a few
    hundred thousand records. It waits for the lock while the file is not yet of
    this schema, and then finds it upgraded (or upgrades it itself)."""
    import shutil
    import sqlite3

    from elliptio._catalog import sqlite as sqlite_module

    path = tmp_path / "catalog.db"
    shutil.copyfile(_DATA / "catalog-schema-11.db", path)
    upgrader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    upgrader.execute("BEGIN IMMEDIATE")  # the other process, upgrading

    # Lock waits and retries of minutes, shortened: each wait gives up at once.
    real_connect = sqlite3.connect

    class Impatient(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.startswith("PRAGMA busy_timeout"):
                sql = "PRAGMA busy_timeout=20"
            return super().execute(sql, *args)

    monkeypatch.setattr(
        sqlite_module.sqlite3, "connect", lambda *a, **kw: real_connect(*a, **kw, factory=Impatient)
    )
    monkeypatch.setattr(sqlite_module, "_RETRY_SECONDS", 0.05)
    done = threading.Timer(1.0, upgrader.rollback)  # ... done much later than that
    done.start()
    cat = SQLiteCatalog(path)
    try:
        assert await cat.count() == len(_old_records())
    finally:
        done.join()
        upgrader.close()
        await cat.close()
    conn = real_connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


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


def test_a_catalog_of_a_newer_schema_names_both_versions_and_the_upgrade_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file a newer elliptio wrote was refused with "upgrade elliptio" followed by
    "check that the database file and its directory are writable and not
    corrupted ... then retry": advice about a damaged or locked file, for a file
    that is neither. The error names the file's schema, this release's, and the
    one step that helps; the file is left as it was."""
    import sqlite3

    import elliptio as eio
    from elliptio._cli import main

    db = tmp_path / "catalog.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(CatalogError) as caught:
        eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}").find()
    text = str(caught.value)
    assert "schema 99" in text
    assert "schema 12" in text
    assert eio.__version__ in text
    assert "upgrade elliptio" in text
    assert "corrupted" not in text
    assert "writable" not in text
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{db}")
    assert main(["find"]) == 1
    err = capsys.readouterr().err
    assert "schema 99" in err
    assert "corrupted" not in err
    assert db.read_bytes() == before


@pytest.mark.parametrize("user_version", [0, 1, 3, SCHEMA_VERSION, SCHEMA_VERSION + 60])
def test_a_sqlite_database_of_another_program_is_refused_untouched(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    user_version: int,
) -> None:
    """A SQLite file of the user's own (a table pandas' to_sql wrote) given as the
    catalog, by a slip of the path, was made a catalog by a mere `elliptio find`:
    elliptio's eleven tables added beside the user's, its schema version set and
    the file switched to WAL. It is refused with an error naming its tables, and
    left as it was. So is one whose program sets a schema version of its own
    (PRAGMA user_version, as many do): it was switched to WAL and taken for an
    elliptio catalog of that schema to upgrade, which failed with 'no such table:
    old_artifacts' and advice to check that the file is writable; a higher one was
    said to be a newer elliptio's catalog, to be read by upgrading elliptio."""
    import sqlite3

    import elliptio as eio
    from elliptio._cli import main

    db = tmp_path / "results.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE measurements (a INTEGER)")
    conn.execute("INSERT INTO measurements VALUES (1)")
    conn.execute(f"PRAGMA user_version={user_version}")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(CatalogError, match=r"results\.db.*another program.*measurements"):
        eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}").find()
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{db}")
    assert main(["find"]) == 1
    assert "another program" in capsys.readouterr().err
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.db"]  # no -wal, -shm


@pytest.mark.parametrize("damage", ["truncated", "not sqlite"])
def test_a_damaged_catalog_file_says_how_to_rebuild_it_and_is_left_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    """A truncated catalog file, or a file that is no SQLite database at all, was
    refused with advice to check that it is "writable and not corrupted ... then
    retry": a retry never helps a damaged file. The error says it is damaged and
    how to get the records back (the sidecars in storage, `elliptio reindex` into
    a new file), and the file is left as it was for whoever wants to rescue it."""
    import elliptio as eio
    from elliptio._cli import main

    db = tmp_path / "catalog.db"
    store = str(tmp_path / "store")
    (tmp_path / "a.txt").write_text("a")
    with eio.Handler(storage=store, catalog=f"sqlite:///{db}") as h:
        for _ in range(40):
            h.upload(tmp_path / "a.txt", labels={"description": "x" * 2000})
    if damage == "truncated":
        with db.open("r+b") as f:
            f.truncate(db.stat().st_size // 2)
    else:
        db.write_text("artifact_id,name\n1,a\n")
    before = db.read_bytes()
    with pytest.raises(CatalogError, match=r"catalog\.db.*damaged.*elliptio reindex") as caught:
        eio.Handler(storage=store, catalog=f"sqlite:///{db}").find()
    assert "retry" not in str(caught.value)
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", store)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{db}")
    assert main(["find"]) == 1
    assert "elliptio reindex" in capsys.readouterr().err
    assert db.read_bytes() == before


def test_a_catalog_restored_from_a_dump_is_not_called_another_programs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A catalog copied through a SQL dump (the sqlite3 shell's .dump, Python's
    iterdump) has elliptio's tables and no schema version, which a dump does not
    carry: it was refused as 'a database of another program ... and no elliptio
    catalog'. The error says what it is and how to get a catalog back; the file is
    left as it was."""
    import sqlite3

    import elliptio as eio
    from elliptio._cli import main

    src = tmp_path / "catalog.db"
    (tmp_path / "a.txt").write_text("a")
    with eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{src}") as h:
        h.upload(tmp_path / "a.txt")
    old = sqlite3.connect(src)
    dump = "\n".join(old.iterdump())
    old.close()
    db = tmp_path / "restored.db"
    new = sqlite3.connect(db)
    new.executescript(dump)
    new.close()
    before = db.read_bytes()
    with pytest.raises(CatalogError, match=r"restored\.db.*no schema version.*reindex") as err:
        eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}").find()
    assert "another program" not in str(err.value)
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{db}")
    assert main(["find"]) == 1
    assert "no schema version" in capsys.readouterr().err
    assert db.read_bytes() == before


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


async def test_python_packages_are_stored_once_per_environment(catalog: SQLiteCatalog) -> None:
    """Records made in one environment share one stored package list; scans of the
    artifacts table never read it, and every record reads back its own copy."""
    packages = {f"p{i}": "1.0" for i in range(500)}
    other = {**packages, "p7": "2.0"}
    await catalog.insert_many(
        [record(i, python_packages=other if i == 3 else packages) for i in range(1, 11)]
    )

    def sizes(conn: Any) -> tuple[int, int, int]:
        (narrow,) = conn.execute(
            "SELECT max(length(labels_json) + length(arrays)) FROM artifacts"
        ).fetchone()
        (docs,) = conn.execute("SELECT max(length(doc)) FROM packed_docs").fetchone()
        (envs,) = conn.execute("SELECT count(*) FROM environments").fetchone()
        return narrow, docs, envs

    narrow, docs, envs = await catalog._run(sizes)
    assert narrow < 500
    assert docs < 500
    assert envs == 2
    assert await catalog.count({"python_packages.p7": "1.0"}) == 9
    assert await catalog.count({"python_packages.p7": {"$ne": "1.0"}}) == 1
    [doc] = await catalog.find({"labels.infos.i": 3}, fields=["python_packages"])
    assert doc == {"artifact_id": "artifact_0003", "python_packages": other}
    first, second = await catalog.find({"labels.infos.i": {"$in": [1, 2]}})
    first["python_packages"]["p0"] = "changed"
    assert second["python_packages"] == packages
    table = await catalog.find_columns(fields=["python_packages"])
    table["python_packages"][0]["p0"] = "changed"
    assert table["python_packages"][1:] == [packages, other, *[packages] * 7]
    # Replacing and deleting records leaves the others' packages alone.
    await catalog.delete("artifact_0002")
    assert await catalog.count({"python_packages.p0": "1.0"}) == 9


async def test_python_packages_changed_while_a_record_is_encoded_are_not_reused(
    catalog: SQLiteCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """insert_many encodes on the catalog's thread while the loop runs on: a list
    another task changes in place meanwhile is stored either way, and the next
    records are stored with their own list, not the text of the one before."""
    packages = {"numpy": "1"}
    to_text = codec.to_text

    def changed_meanwhile(value: Any) -> str:
        text = to_text(value)
        if isinstance(value, dict) and "python_packages" in value:
            packages["numpy"] = "2"  # another task, at this very moment
        return text

    monkeypatch.setattr(codec, "to_text", changed_meanwhile)
    await catalog.insert(record(1, python_packages=packages))
    monkeypatch.undo()
    await catalog.insert(record(2, python_packages={"numpy": "2"}))
    assert (await catalog.get("artifact_0002"))["python_packages"] == {"numpy": "2"}
    assert await catalog.count({"python_packages.numpy": "2"}) == 1


def _by_columns(docs: list[dict[str, Any]], fields: list[str]) -> dict[str, list[Any]]:
    return {"artifact_id": [d["artifact_id"] for d in docs]} | {
        f: [d.get(f) for d in docs] for f in fields
    }


async def test_many_documents_are_decoded_off_the_event_loop(
    catalog: SQLiteCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from elliptio import _workers

    class Counting(_workers.Workers):
        calls = 0

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return super().submit(fn, *args, **kwargs)

    await catalog.insert_many([record(i) for i in range(1200)])
    executor = Counting(1, "counting")
    monkeypatch.setattr(_workers.spare, "_value", executor)  # the catalog's worker is its own
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
    conn.execute("UPDATE packed_docs SET doc = '{\"labels\": 0, ' WHERE id = 2")
    with pytest.raises(CorruptRecordError, match="reindex"):
        await asyncio.wait_for(catalog.find_columns(fields=["git"]), timeout=30)
    with pytest.raises(CorruptRecordError, match="reindex"):
        await catalog.find({"username": "andy"})
    # ... whether the record is read whole or as columns, never as a missing id.
    with pytest.raises(CorruptRecordError, match="reindex"):
        await catalog.get("artifact_0001")
    table = await catalog.find_columns({"username": "bob"}, fields=["username"])
    assert table["username"] == ["bob", "bob", "bob"]
    # So is a damaged column of the fields a default frame shows, and one nested
    # too deeply to decode (a raw RecursionError, helper-69).
    deep = '\'{"run_id": ' + "[" * 100_000 + "]" * 100_000 + "}'"
    for damaged in ("'{'", "'[1]'", deep):
        conn.execute(f"UPDATE artifacts SET head_json = {damaged} WHERE id = 4")
        with pytest.raises(CorruptRecordError, match="reindex"):
            await catalog.find_columns(fields=["run_id"])
        with pytest.raises(CorruptRecordError, match="reindex"):
            await catalog.get("artifact_0003")


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


async def test_a_large_insert_leaves_the_event_loop_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding thousands of records happens on the catalog's worker thread: other
    tasks of the program's event loop keep running meanwhile. (Which thread
    encodes is asserted; a bound on the loop's longest pause failed under the
    suite's load on 2 cores, helper-57.)"""
    from elliptio._catalog import sqlite as sqlite_module

    docs = [
        {
            "artifact_id": f"artifact_{i:05d}",
            "creation_time": T0,
            "labels": {"infos": {"seed": i, "tags": ["a", "b"]}, "ticket": f"T-{i}"},
            "argv": ["train.py", str(i)],
            "files": [{"relpath": f"f{i}.csv", "url": f"/s/{i}/f{i}.csv", "size": i}],
        }
        for i in range(5000)
    ]
    encoders: set[int] = set()
    real_row = sqlite_module._row

    def row(doc: Any) -> Any:
        encoders.add(threading.get_ident())
        return real_row(doc)

    monkeypatch.setattr(sqlite_module, "_row", row)
    cat = SQLiteCatalog(tmp_path / "c.db")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    before = ticks
    await cat.insert_many(docs)
    during = ticks - before
    task.cancel()
    assert await cat.count() == 5000
    await cat.close()
    assert encoders
    assert threading.get_ident() not in encoders
    assert during > 1  # the loop ran other tasks while the worker inserted


async def test_a_reader_of_schema_10_fails_loudly_once_the_file_is_upgraded(
    tmp_path: Path,
) -> None:
    """Schema 11 packs the documents that schema 10 read as JSON text: a 0.7
    process that has the file open when 0.8 upgrades it gets an error on its next
    look into a document, not fewer matches or a misread record."""
    import shutil
    import sqlite3

    path = tmp_path / "ten.db"
    shutil.copyfile(_DATA / "catalog-schema-10.db", path)
    old = sqlite3.connect(path)  # as schema 10's code reads its documents
    assert old.execute("SELECT count(*) FROM artifact_docs").fetchone()[0] == 31
    cat = SQLiteCatalog(path)
    assert await cat.count({"hostname": "host"}) == 30
    await cat.close()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        old.execute(
            "SELECT count(*) FROM artifacts WHERE json_extract((SELECT doc FROM"
            " artifact_docs d WHERE d.id = artifacts.id), '$.hostname') = 'host'"
        ).fetchall()
    old.close()


async def test_a_reader_of_schema_11_fails_loudly_once_the_file_is_upgraded(
    tmp_path: Path,
) -> None:
    """Schema 12 holds creation times as integers where schema 11 held text, under
    a new column name, and array members, label paths and file keys in new forms
    in new tables: a 0.8 process that has the file open when 0.9 upgrades it gets
    an error on its next filter or sort on the creation time (where texts against
    integers would compare wrongly), on lineage or labels, or its next lookup of
    files, and its inserts fail, not land half right."""
    import shutil
    import sqlite3

    path = tmp_path / "eleven.db"
    shutil.copyfile(_DATA / "catalog-schema-11.db", path)
    old = sqlite3.connect(path)  # as schema 11's code filters on the creation time
    assert old.execute("SELECT count(*) FROM artifacts WHERE creation_time >= ''").fetchone() == (
        30,
    )
    cat = SQLiteCatalog(path)
    assert await cat.count({"creation_time": {"$gte": dt.datetime(2024, 1, 1, tzinfo=UTC)}}) == 30
    await cat.close()
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        old.execute("SELECT count(*) FROM artifacts WHERE creation_time >= ''").fetchall()
    # Lineage rows name their field by a letter now, labels their path by an id, and
    # files are keyed by 32 bits: none found the old way, but loudly (a delete that
    # found no other user of a file would remove bytes another artifact holds).
    for table, where in [
        ("side_values", "field = 'based_on'"),
        ("label_index", "path = 'infos.seed'"),
        ("file_objects", "url_key = 1"),
    ]:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            old.execute(f"SELECT artifact FROM {table} WHERE {where}").fetchall()
    with pytest.raises(sqlite3.OperationalError, match="creation_time"):
        old.execute(
            "INSERT INTO artifacts (artifact_id, creation_time, arrays, labels_json)"
            " VALUES ('x', '2024-01-01T00:00:00.000000Z', '', '{}')"
        )
    old.close()


async def test_a_reader_of_schema_9_fails_loudly_once_the_file_is_upgraded(
    tmp_path: Path,
) -> None:
    """Schema 10 keeps fewer label rows than schema 9 looked up: a 0.6 process
    that has the file open when 0.7 upgrades it gets an error, not fewer matches."""
    import shutil
    import sqlite3

    path = tmp_path / "nine.db"
    shutil.copyfile(_DATA / "catalog-schema-9.db", path)
    old = sqlite3.connect(path)  # as schema 9's code queries its label table
    assert old.execute("SELECT count(*) FROM label_values").fetchone()[0] > 0
    cat = SQLiteCatalog(path)
    assert await cat.count({"labels.infos.seed": 7}) == 1
    await cat.close()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        old.execute("SELECT artifact FROM label_values WHERE path = 'infos.seed'").fetchall()
    old.close()


async def test_documents_are_stored_deflated_and_damage_is_reported(
    catalog: SQLiteCatalog,
) -> None:
    """A record's document takes a fraction of its JSON text on disk and reads back
    whole and through queries; a document stored as text (by hand, or by `_pack`
    for one that deflates too well) still reads; a damaged one is a
    CorruptRecordError for reads and for queries that look into it, never a wrong
    record."""
    import zlib

    from elliptio._catalog import codec
    from elliptio._catalog.sqlite import _DICTIONARY, _unpack

    docs = [
        record(i, hostname=f"host{i}", git={"commit": f"{i:040x}", "branch": "main"})
        for i in range(1, 6)
    ]
    await catalog.insert_many(docs)

    def stored(conn: Any) -> list[tuple[int, Any]]:
        return conn.execute("SELECT id, doc FROM packed_docs ORDER BY id").fetchall()

    rows = await catalog._run(stored)
    # Every stored document needs the dictionary it was packed with, as it is.
    assert hashlib.sha256(_DICTIONARY).hexdigest() == (
        "2e54480d60199416e011d8848f1e5424286b76c20b3555085490c404959992fc"
    )
    for _, blob in rows:
        assert blob[:1] == b"\x01"
        assert isinstance(blob, bytes)
        assert len(blob) < len(_unpack(blob).encode()) / 2
    assert [await catalog.get(d["artifact_id"]) for d in docs] == [codec.normalize(d) for d in docs]
    assert await catalog.count({"git.commit": {"$regex": "3$"}}) == 1

    conn = catalog._state.connection
    assert conn is not None
    text = _unpack(rows[1][1])
    conn.execute("UPDATE packed_docs SET doc = ? WHERE id = ?", (text, rows[1][0]))
    assert await catalog.get("artifact_0002") == codec.normalize(docs[1])
    assert [d["artifact_id"] for d in await catalog.find({"hostname": "host2"})] == [
        "artifact_0002"
    ]

    packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_DICTIONARY)
    surrogate = b"\x01" + packer.compress(b'{"hostname":"\xed\xb3\xbf"}') + packer.flush()
    for damaged in (
        rows[2][1][:-3],
        b"\x02" + rows[2][1][1:],
        rows[2][1] + b"\x00",
        surrogate,  # UTF-8 of a lone surrogate, which no record holds
    ):
        conn.execute("UPDATE packed_docs SET doc = ? WHERE id = ?", (damaged, rows[2][0]))
        with pytest.raises(CorruptRecordError, match="reindex"):
            await catalog.get("artifact_0003")
        with pytest.raises(CorruptRecordError):
            await catalog.find({"hostname": {"$exists": True}})
        assert await catalog.find({"hostname": "host3"}) == []  # not a wrong record


async def test_a_planted_zip_bomb_is_damage_and_every_document_written_reads_back(
    catalog: SQLiteCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog writer's blob that would inflate past the limit (the larger of
    100 times its size and 64 MiB; lowered here) is read as damaged, without
    inflating it whole; a document of ours that deflates that well is stored as
    text, so it never hits the limit."""
    import zlib

    from elliptio._catalog import codec
    from elliptio._catalog import sqlite as module

    monkeypatch.setattr(module, "_INFLATE_FLOOR", 10_000)
    monkeypatch.setattr(module, "_INFLATE_CEILING", 1_000_000)  # SQLite's longest text
    repetitive = record(1, argv=["x" * 50_000])
    await catalog.insert_many([repetitive, record(2)])
    conn = catalog._state.connection
    assert conn is not None
    (kind,) = conn.execute("SELECT typeof(doc) FROM packed_docs WHERE id = 1").fetchone()
    assert kind == "text"
    assert await catalog.get("artifact_0001") == codec.normalize(repetitive)

    packer = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=module._DICTIONARY)
    bomb = b"\x01" + packer.compress(b'{"a":"' + b" " * 2_000_000 + b'"}') + packer.flush()
    assert len(bomb) * 100 < 2_000_000
    conn.execute("UPDATE packed_docs SET doc = ? WHERE id = 2", (bomb,))
    with pytest.raises(CorruptRecordError, match="reindex"):
        await catalog.get("artifact_0002")
    # Within 100 times its size, but longer than SQLite takes as a text.
    packer = zlib.compressobj(0, zlib.DEFLATED, -15, zdict=module._DICTIONARY)
    stored = b"\x01" + packer.compress(b'{"a":"' + b" " * 1_500_000 + b'"}') + packer.flush()
    assert len(stored) * 100 > 1_500_000
    conn.execute("UPDATE packed_docs SET doc = ? WHERE id = 2", (stored,))
    with pytest.raises(CorruptRecordError, match="reindex"):
        await catalog.get("artifact_0002")


@pytest.mark.parametrize("entry", ["library", "cli"])
def test_another_users_catalog_this_user_may_not_write_is_refused_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], entry: str
) -> None:
    """A reader without write rights on another user's SQLite file made its -shm and
    -wal, which then locked the owner out of every commit (helper-64); nothing is
    opened now, and the error says what to do."""
    import elliptio as eio
    from elliptio._cli import main

    db = tmp_path / "catalog.db"
    (tmp_path / "a.txt").write_text("a")
    with eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}") as h:
        h.upload(tmp_path / "a.txt")
    before = sorted(p.name for p in tmp_path.iterdir())
    owner = db.stat().st_uid
    real_access = os.access
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # another user ...
    monkeypatch.setattr(  # ... with read rights only
        os, "access", lambda p, mode, **kw: mode != os.W_OK and real_access(p, mode, **kw)
    )
    if entry == "library":
        with pytest.raises(CatalogError, match=r"another user.*group with write rights"):
            eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}").find()
    else:
        monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
        monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{db}")
        assert main(["find"]) == 1
        assert "belongs to another user" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no -shm, no -wal


@pytest.mark.parametrize("unwritable", ["catalog.db", "catalog.db-shm", "catalog.db-wal"])
def test_an_own_catalog_this_user_may_not_write_is_refused_untouched(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unwritable: str,
) -> None:
    """The owner's own catalog file made read-only (``chmod 0444``, a copy from a
    read-only medium) was opened: SQLite made its -shm and -wal with the file's
    mode, read-only too, and once the file was writable again every commit failed
    with "attempt to write a readonly database" and advice to make the file and
    folder writable, which they were. A -shm or -wal left so, beside a writable
    file, failed every commit the same way. Nothing is opened now, and the error
    names the file to give write rights to."""
    import elliptio as eio
    from elliptio._cli import main

    db = tmp_path / "catalog.db"
    (tmp_path / "a.txt").write_text("a")
    with eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}") as h:
        h.upload(tmp_path / "a.txt")
    if unwritable != "catalog.db":
        (tmp_path / unwritable).write_bytes(b"")  # left behind by an earlier reader
    before = sorted(p.name for p in tmp_path.iterdir())
    real_access = os.access
    target = str(tmp_path / unwritable)

    def access(path: Any, mode: int, **kw: Any) -> bool:
        if mode & os.W_OK and os.fspath(path) == target:
            return False  # this user may read it only (root may write anything)
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(CatalogError, match=rf"{unwritable}.*not writable.*chmod u\+w"):
        eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}").find()
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{db}")
    assert main(["find"]) == 1
    assert f"{unwritable} is not writable" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no -shm, no -wal made


def test_an_unwritable_shm_beside_the_file_a_link_names_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog given through a symbolic link (~/lake.db to the shared file) has
    its -wal and -shm beside the file the link names, where SQLite makes them: an
    unwritable -shm there was not looked for (65e7ff9 looked beside the link), and
    every commit failed with 'attempt to write a readonly database'."""
    import elliptio as eio

    real = tmp_path / "shared" / "catalog.db"
    real.parent.mkdir()
    (tmp_path / "a.txt").write_text("a")
    with eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{real}") as h:
        h.upload(tmp_path / "a.txt")
    link = tmp_path / "mine" / "lake.db"
    link.parent.mkdir()
    link.symlink_to(real)
    shm = tmp_path / "shared" / "catalog.db-shm"
    shm.write_bytes(b"")  # left read-only by an earlier reader
    real_access = os.access

    def access(path: Any, mode: int, **kw: Any) -> bool:
        if mode & os.W_OK and os.path.realpath(path) == os.path.realpath(shm):
            return False  # this user may read it only (root may write anything)
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(CatalogError, match=r"catalog\.db-shm.*not writable"):
        eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{link}").find()
    assert sorted(p.name for p in link.parent.iterdir()) == ["lake.db"]


@pytest.mark.parametrize("left", ["catalog.db-shm", "catalog.db-wal"])
def test_a_shm_or_wal_another_user_left_names_its_owner_not_a_chmod_this_user_cannot_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    left: str,
) -> None:
    """A colleague who read the group's catalog with the sqlite3 shell while it was
    not group-writable left its -shm and an empty -wal, theirs, 0644 (SQLite does
    not remove them after a read-only connection). Opening it was refused (65e7ff9)
    with 'chmod u+w' of a file this user does not own, which fails: the error names
    the owner, who (or an administrator) can change it."""
    import elliptio as eio
    from elliptio._cli import main

    db = tmp_path / "catalog.db"
    (tmp_path / "a.txt").write_text("a")
    with eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}") as h:
        h.upload(tmp_path / "a.txt")
    (tmp_path / left).write_bytes(b"")  # left by the colleague
    before = sorted(p.name for p in tmp_path.iterdir())
    owner = (tmp_path / left).stat().st_uid
    real_access = os.access
    target = str(tmp_path / left)

    def access(path: Any, mode: int, **kw: Any) -> bool:
        if mode & os.W_OK and os.fspath(path) == target:
            return False  # the colleague's, 0644; the catalog itself is group-writable
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # this user is not its owner
    monkeypatch.setattr(os, "access", access)
    with pytest.raises(CatalogError, match=rf"{left} belongs to (user|the user of uid)") as err:
        eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}").find()
    assert "chmod u+w" not in str(err.value)
    assert "chmod g+w" in str(err.value)
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{db}")
    assert main(["find"]) == 1
    shown = capsys.readouterr().err
    assert f"{left} belongs to" in shown
    assert "chmod u+w" not in shown
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made


def test_a_catalog_file_opens_where_the_os_has_no_user_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows ``os`` has no ``geteuid``: the owner check of a catalog file
    (695c082, 0ae88ce) raised a raw AttributeError on every catalog file that
    exists, so no catalog could be opened twice there. Without user ids the file
    is taken as this user's: an unwritable one is still refused, as one's own."""
    import elliptio as eio

    db = tmp_path / "catalog.db"
    (tmp_path / "a.txt").write_text("a")
    with eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}") as h:
        h.upload(tmp_path / "a.txt")
    monkeypatch.delattr(os, "geteuid")
    with eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}") as h:
        assert len(h.find()) == 1
    real_access = os.access

    def access(path: Any, mode: int, **kw: Any) -> bool:
        if mode & os.W_OK and os.fspath(path) == str(db):
            return False  # a read-only file (root may write anything)
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(CatalogError, match=r"catalog\.db is not writable by this user"):
        eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{db}").find()


async def test_the_exit_finalizer_closes_the_connection_after_the_running_call(
    tmp_path: Path,
) -> None:
    """At interpreter exit the catalog's finalizer closed the connection from the
    main thread while the worker (a daemon thread now, which keeps working for
    the program's daemon threads) ran a call on it: the call failed, and a
    program whose daemon threads uploaded at exit died of a segmentation fault in
    about one exit out of five. The connection is closed on the worker, after the
    call it runs."""
    catalog = SQLiteCatalog(tmp_path / "catalog.db")
    await catalog.insert_many([record(0)])
    started, go = threading.Event(), threading.Event()

    def slow(conn: Any) -> int:
        started.set()
        go.wait(30)
        return int(conn.execute("SELECT 1").fetchone()[0])

    call = asyncio.ensure_future(catalog._run(slow))
    await asyncio.to_thread(started.wait, 30)
    threading.Timer(0.2, go.set).start()
    await asyncio.to_thread(catalog._finalizer)  # what atexit runs
    assert await call == 1


def test_exit_does_not_wait_for_a_daemon_threads_call_blocked_on_another_process_lock(
    tmp_path: Path,
) -> None:
    """At interpreter exit the finalizer waited for the call the worker ran (a
    daemon thread's upload) before closing the connection: while another
    process held the catalog's write lock, the program's exit waited as long as
    that lock was held (200 s for a lock held 200 s). The close is queued behind
    the call and the interpreter exits, as it does with daemon threads."""
    import sqlite3
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys, threading, time
        import elliptio as eio
        d = sys.argv[1]
        h = eio.Handler(d + "/store", f"sqlite:///{d}/catalog.db")
        open(d + "/a.txt", "w").write("x")
        h.upload([d + "/a.txt"])
        print("ready", flush=True)
        sys.stdin.readline()
        threading.Thread(target=h.upload, args=([d + "/a.txt"],), daemon=True).start()
        time.sleep(0.5)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        other = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # held until the child is gone
        try:
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.wait(timeout=120) == 0  # it waited for the lock: 150 s and more
        finally:
            child.kill()
            other.execute("ROLLBACK")
            other.close()


def test_exit_closes_an_idle_connection_leaving_the_catalog_file_whole(tmp_path: Path) -> None:
    """At interpreter exit the finalizer queued the close and did not wait for it,
    even with no call running: the interpreter was gone before the worker closed
    the connection, so every program left ``catalog.db-wal`` (and ``-shm``) behind
    holding its last records, which a copy of ``catalog.db`` alone lost."""
    import sqlite3
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys
        import elliptio as eio
        d = sys.argv[1]
        h = eio.Handler(d + "/store", f"sqlite:///{d}/catalog.db")
        open(d + "/a.txt", "w").write("x")
        h.upload([d + "/a.txt"])
        """
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=120)
    assert not (tmp_path / "catalog.db-wal").exists()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "catalog.db").write_bytes((tmp_path / "catalog.db").read_bytes())
    conn = sqlite3.connect(copy / "catalog.db")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert tables
        assert sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables) > 0
    finally:
        conn.close()


async def test_a_call_cancelled_while_queued_is_counted_off(tmp_path: Path) -> None:
    """The calls the exit's close waits behind are counted until done; one cancelled
    before the worker took it counted forever, so that process's exit left the
    catalog's last records in its -wal file (read in 9beadb1, reviewed)."""
    cat = SQLiteCatalog(tmp_path / "catalog.db")
    try:
        await cat.count()
        release = threading.Event()
        busy = asyncio.ensure_future(cat._run(lambda conn: release.wait(30)))
        await asyncio.sleep(0.05)  # the worker holds the first call
        queued = asyncio.ensure_future(cat.count())
        await asyncio.sleep(0.05)
        queued.cancel()
        release.set()
        await busy
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert cat._state.pending == 0
    finally:
        await cat.close()
