"""Lineage graphs over a real catalog: up, down, depth, cycles, missing, renderings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from elliptio._catalog import open_catalog
from elliptio._catalog.mongo import lineage_pipeline
from elliptio._catalog.sqlite import SQLiteCatalog
from elliptio._errors import ArtifactNotFoundError, CatalogError, QueryError
from elliptio._lineage import build_lineage
from tests.catalog_conformance import find_only


def _doc(aid: str, based_on: list[str], user: str = "andy") -> dict[str, Any]:
    return {
        "artifact_id": aid,
        "username": user,
        "creation_time": datetime(2024, 1, 1, tzinfo=UTC),
        "file_relpaths": [f"{aid}.txt"],
        "labels": {"datatype": "data"},
        "based_on": based_on,
    }


@pytest.fixture
async def catalog() -> AsyncIterator[SQLiteCatalog]:
    cat = SQLiteCatalog(None)
    # raw -> train -> model -> eval ; raw -> test -> eval ; ghost is referenced, not stored
    await cat.insert_many(
        [
            _doc("raw", []),
            _doc("train", ["raw"]),
            _doc("test", ["raw", "ghost"]),
            _doc("model", ["train"], "brenda"),
            _doc("eval", ["model", "test"], "charlie"),
            _doc("loop_a", ["loop_b"]),
            _doc("loop_b", ["loop_a"]),
        ]
    )
    yield cat
    await cat.close()


async def test_up_walks_all_ancestors(catalog: SQLiteCatalog) -> None:
    g = await build_lineage(catalog, "eval", "up")
    assert set(g.nodes) == {"eval", "model", "test", "train", "raw", "ghost"}
    assert g.nodes["ghost"].missing
    assert ("model", "eval") in g.edges
    assert ("raw", "train") in g.edges
    assert sorted(g.parents("eval")) == ["model", "test"]


async def test_down_walks_all_descendants(catalog: SQLiteCatalog) -> None:
    g = await build_lineage(catalog, "raw", "down")
    assert set(g.nodes) == {"raw", "train", "test", "model", "eval"}
    assert set(g.edges) == {
        ("raw", "train"),
        ("raw", "test"),
        ("train", "model"),
        ("model", "eval"),
        ("test", "eval"),
    }


async def test_depth_limits_each_direction(catalog: SQLiteCatalog) -> None:
    g = await build_lineage(catalog, "model", "both", depth=1)
    assert set(g.nodes) == {"model", "train", "eval"}
    assert await build_lineage(catalog, "model", "up", depth=0) == await build_lineage(
        catalog, "model", "down", depth=0
    )


async def test_cycles_end(catalog: SQLiteCatalog) -> None:
    g = await build_lineage(catalog, "loop_a", "both")
    assert set(g.nodes) == {"loop_a", "loop_b"}
    assert set(g.edges) == {("loop_a", "loop_b"), ("loop_b", "loop_a")}
    assert "(see above)" in g.to_text()


async def test_renderings(catalog: SQLiteCatalog) -> None:
    g = await build_lineage(catalog, "model", "both")
    text = g.to_text()
    assert text.splitlines()[0].startswith("model brenda [model.txt]")
    assert "<- train" in text
    assert "-> eval" in text
    mermaid = g.to_mermaid()
    assert mermaid.startswith("flowchart LR")
    assert mermaid.count("-->") == len(g.edges)
    dot = g.to_dot()
    assert dot.startswith("digraph lineage {")
    assert dot.count("->") == len(g.edges)
    assert dot.rstrip().endswith("}")


async def test_bad_arguments(catalog: SQLiteCatalog) -> None:
    with pytest.raises(ArtifactNotFoundError):
        await build_lineage(catalog, "nope")
    with pytest.raises(QueryError, match="direction"):
        await build_lineage(catalog, "raw", "sideways")  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="depth"):
        await build_lineage(catalog, "raw", depth=-1)


# -- one query per direction on MongoDB ($graphLookup), the same graph as find -------

# Diamonds, cycles (of one, two and three), missing parents, a long chain for the
# depth limits, and based_on values that are not lists of ids.
GRAPH = [
    _doc("raw", []),
    _doc("train", ["raw"]),
    _doc("test", ["raw", "ghost"]),
    _doc("model", ["train"], "brenda"),
    _doc("eval", ["model", "test"], "charlie"),
    _doc("top", []),
    _doc("left", ["top"]),
    _doc("right", ["top", "left"]),
    _doc("bottom", ["left", "right", "ghost"]),
    _doc("loop_a", ["loop_b"]),
    _doc("loop_b", ["loop_a", "raw"]),
    _doc("c1", ["c3"]),
    _doc("c2", ["c1"]),
    _doc("c3", ["c2", "bottom"]),
    _doc("selfish", ["selfish", "train"]),
    _doc("orphan", ["ghost", "ghost2"]),
    *(_doc(f"chain{i}", [f"chain{i - 1}"] if i else ["eval"]) for i in range(6)),
    {**_doc("stringy", []), "based_on": "model"},
    {**_doc("odd", []), "based_on": ["eval", 5, None, ["raw"], {"id": "raw"}]},
    {**_doc("bare", []), "labels": "not a dict", "username": None},
]
ROOTS = [d["artifact_id"] for d in GRAPH]
FIELDS = ("based_on", "username", "creation_time", "file_relpaths", "labels.datatype")


@pytest.fixture
async def both() -> AsyncIterator[tuple[Any, Any, Any]]:
    """The graph in mongomock (with its collection) and in SQLite."""
    from mongomock_motor import AsyncMongoMockClient

    collection = AsyncMongoMockClient()["elliptio"]["artifacts"]
    mongo = open_catalog(collection)
    sqlite = SQLiteCatalog(None)
    await mongo.insert_many(GRAPH)
    await sqlite.insert_many(GRAPH)
    yield mongo, collection, sqlite
    await mongo.close()
    await sqlite.close()


async def test_graph_lookup_gives_the_graph_find_gives(
    both: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    mongo, _, sqlite = both
    finds: list[Any] = []
    find = mongo.find

    async def counted_find(*args: Any, **kwargs: Any) -> Any:
        finds.append(args)
        return await find(*args, **kwargs)

    monkeypatch.setattr(mongo, "find", counted_find)
    for root in ROOTS:
        for direction in ("up", "down", "both"):
            for depth in (None, 0, 1, 2, 3):
                graph = await build_lineage(mongo, root, direction, depth)
                assert not finds, "the $graphLookup answer should be the only query"
                walked = await build_lineage(find_only(mongo), root, direction, depth)
                finds.clear()
                assert graph == walked, (root, direction, depth)
                assert graph == await build_lineage(sqlite, root, direction, depth)


async def test_graph_lookup_results(both: tuple[Any, Any, Any]) -> None:
    mongo = both[0]

    async def ids(root: str, direction: str, depth: int | None) -> list[str]:
        docs = await mongo.lineage_docs(root, direction, depth, FIELDS)
        return [d["artifact_id"] for d in docs]

    assert await ids("eval", "up", None) == ["model", "test", "raw", "train"]
    assert await ids("eval", "up", 1) == ["model", "test"]
    assert await ids("top", "down", 1) == ["left", "right"]
    assert await ids("c1", "up", None) == ["c3", "bottom", "c2", "c1", "left", "right", "top"]
    assert await ids("nope", "up", None) == []
    [odd] = await mongo.lineage_docs("chain0", "down", 1, FIELDS)
    # only what a node shows and the links are read
    assert odd == {
        "artifact_id": "chain1",
        "based_on": ["chain0"],
        "username": "andy",
        "creation_time": datetime(2024, 1, 1, tzinfo=UTC),
        "file_relpaths": ["chain1.txt"],
        "labels": {"datatype": "data"},
    }


async def test_too_large_for_graph_lookup_walks_with_find(
    both: tuple[Any, Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pymongo.errors import OperationFailure

    mongo, collection, sqlite = both

    def too_large(*args: Any, **kwargs: Any) -> Any:
        raise OperationFailure("$graphLookup reached maximum memory consumption", code=40099)

    monkeypatch.setattr(collection, "aggregate", too_large)
    assert await mongo.lineage_docs("eval", "up", None, FIELDS) is None
    graph = await build_lineage(mongo, "eval", "both")
    assert graph == await build_lineage(sqlite, "eval", "both")
    assert set(graph.nodes) >= {"raw", "ghost", "chain5"}

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OperationFailure("not authorized", code=13)

    monkeypatch.setattr(collection, "aggregate", broken)
    with pytest.raises(CatalogError, match="refused"):
        await build_lineage(mongo, "eval", "up")


def test_graph_lookup_pipeline() -> None:
    up = lineage_pipeline("artifacts", "eval", "up", 3, ["based_on", "labels.datatype"])
    assert up == [
        {"$match": {"artifact_id": "eval"}},
        {
            "$graphLookup": {
                "from": "artifacts",
                "startWith": "$based_on",
                "connectFromField": "based_on",
                "connectToField": "artifact_id",
                "as": "linked",
                "depthField": "elliptio_lineage_depth",
                "maxDepth": 2,
            }
        },
        {"$unwind": "$linked"},
        {"$replaceRoot": {"newRoot": "$linked"}},
        {
            "$project": {
                "_id": 0,
                "artifact_id": 1,
                "elliptio_lineage_depth": 1,
                "based_on": 1,
                "labels.datatype": 1,
            }
        },
        {"$sort": {"elliptio_lineage_depth": 1, "artifact_id": 1}},
        {"$project": {"elliptio_lineage_depth": 0}},
    ]
    down = lineage_pipeline("artifacts", "raw", "down", None, [])[1]["$graphLookup"]
    assert down["startWith"] == "$artifact_id"
    assert (down["connectFromField"], down["connectToField"]) == ("artifact_id", "based_on")
    assert "maxDepth" not in down


async def test_sqlite_walks_with_find(catalog: SQLiteCatalog) -> None:
    assert await catalog.lineage_docs("eval", "up", None, FIELDS) is None
    g = await build_lineage(catalog, "eval", "up", depth=1)
    assert set(g.nodes) == {"eval", "model", "test"}
