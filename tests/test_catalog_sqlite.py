"""The SQLite catalog: storage, lookup, URLs, persistence and concurrent writers."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from elliptio._catalog import query
from elliptio._catalog.sqlite import SQLiteCatalog, open_sqlite_catalog
from elliptio._errors import (
    ArtifactExistsError,
    ArtifactNotFoundError,
    CatalogError,
    ConfigError,
    InvalidLabelsError,
    QueryError,
)

UTC = dt.UTC
T0 = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


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
    await catalog.insert(record(1))
    from elliptio._catalog.sqlite import _DATE_COLUMNS

    def plan(conn: Any, sql: str, params: list[Any]) -> str:
        rows = conn.execute(f"EXPLAIN QUERY PLAN SELECT doc FROM artifacts WHERE {sql}", params)
        return " | ".join(row[3] for row in rows)

    for flt, index in [
        ({"username": "andy"}, "artifacts_username"),
        ({"labels.datatype": "model"}, "artifacts_datatype"),
        ({"labels.project": "p"}, "artifacts_project"),
        ({"creation_time": {"$gte": T0}}, "artifacts_creation_time"),
    ]:
        sql, params = query.translate(flt, date_columns=_DATE_COLUMNS)
        text = await catalog._run(plan, sql, params)
        assert index in text, text


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
