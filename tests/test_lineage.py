"""Lineage graphs over a real catalog: up, down, depth, cycles, missing, renderings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from elliptio._catalog.sqlite import SQLiteCatalog
from elliptio._errors import ArtifactNotFoundError, QueryError
from elliptio._lineage import build_lineage


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
