"""Lineage graphs over a real catalog: up, down, depth, cycles, missing, renderings
(text, Mermaid, DOT, HTML, and SVG/PNG through the real Graphviz ``dot``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from elliptio._catalog import open_catalog
from elliptio._catalog.mongo import lineage_pipeline
from elliptio._catalog.sqlite import SQLiteCatalog
from elliptio._errors import (
    ArtifactNotFoundError,
    CatalogError,
    ElliptioError,
    GraphvizNotFoundError,
    QueryError,
)
from elliptio._lineage import LineageGraph, build_lineage
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


async def test_a_record_naming_itself_is_drawn_alike_both_ways(catalog: SQLiteCatalog) -> None:
    """A planted record lists itself in based_on: up skipped the self-edge, down
    drew it (a loop on the root, '(see above)' in the text)."""
    await catalog.insert(_doc("selfish", ["selfish", "raw"]))
    up = await build_lineage(catalog, "selfish", "up")
    down = await build_lineage(catalog, "raw", "down")
    both = await build_lineage(catalog, "selfish", "both")
    assert ("selfish", "selfish") not in {*up.edges, *down.edges, *both.edges}
    assert ("raw", "selfish") in up.edges
    assert ("raw", "selfish") in down.edges
    assert set(both.edges) == {("raw", "selfish")}


async def test_renderings(catalog: SQLiteCatalog) -> None:
    g = await build_lineage(catalog, "model", "both")
    text = g.to_text()
    assert text.splitlines()[0] == "model brenda (data) [model.txt]"
    assert "<- train" in text
    assert "-> eval" in text
    mermaid = g.to_mermaid()
    assert mermaid.startswith("flowchart LR")
    assert mermaid.count("-->") == len(g.edges)
    dot = g.to_dot()
    assert dot.startswith("digraph lineage {")
    assert dot.count("->") == len(g.edges)
    assert dot.rstrip().endswith("}")


# Values a shared catalog may hold: quotes, brackets, markup, DOT and Mermaid syntax,
# backslash escapes, entities and line breaks.
HOSTILE = 'a "q" <script>alert(1)</script> ]; evil [label="x" \\N &amp; #quot; `x`\nnext'


@pytest.fixture
async def named() -> AsyncIterator[LineageGraph]:
    """raw -> train-set:v3 -> model (unnamed, hostile datatype), on a real catalog."""
    cat = SQLiteCatalog(None)
    await cat.insert_many(
        [
            _doc("artifact_raw", []),
            {**_doc("artifact_t3", ["artifact_raw"]), "name": "train-set", "name_version": 3},
            {
                **_doc("artifact_0123456789abcdef_model", ["artifact_t3"], "brenda"),
                "labels": {"datatype": HOSTILE},
            },
        ]
    )
    yield await build_lineage(cat, "artifact_t3")
    await cat.close()


def test_nodes_show_name_version_and_the_id_only_without_a_name(named: LineageGraph) -> None:
    text = named.to_text()
    assert text.splitlines()[0] == "train-set:v3 andy (data) [artifact_t3.txt]"
    assert "artifact_t3" not in text.replace("artifact_t3.txt", "")
    assert "<- artifact_raw andy (data)" in text
    assert "-> artifact_0123456789abcdef_model brenda" in text
    mermaid = named.to_mermaid()
    assert '["train-set:v3<br/>andy<br/>data<br/>artifact_t3.txt"]' in mermaid
    assert '["artifact_raw<br/>andy' in mermaid
    assert "artifact_01234567…<br/>brenda" in mermaid  # a long id is shortened in pictures
    assert '[label="train-set:v3\\nandy\\ndata\\nartifact_t3.txt", penwidth=3]' in named.to_dot()


def test_hostile_labels_cannot_break_or_inject(named: LineageGraph) -> None:
    text = named.to_text()
    assert len(text.splitlines()) == 3  # the line break in the datatype is a space
    mermaid = named.to_mermaid().splitlines()
    assert len(mermaid) == 1 + 3 + 2 + 1
    for line in mermaid[1:4]:  # each label: one quoted string, no markup but <br/>
        label = re.fullmatch(r'    n\d+\["([^"]*)"\]', line)
        assert label is not None, line
        assert "<" not in label.group(1).replace("<br/>", "")
        assert "[" not in label.group(1)
        assert "]" not in label.group(1)
    assert "#60;script#62;" in mermaid[1] + mermaid[2] + mermaid[3]
    dot = named.to_dot().splitlines()
    assert len(dot) == 3 + 3 + 2 + 1
    for line in dot[3:6]:  # each label one DOT string: inner quotes and backslashes escaped
        assert re.fullmatch(r'    n\d+ \[label="(?:[^"\\]|\\.)*"(, penwidth=3)?\];', line), line
    assert "evil" not in "".join(re.sub(r'"(?:[^"\\]|\\.)*"', "", line) for line in dot)


needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz 'dot' is not installed (.ci/run installs it)"
)


@needs_dot
def test_svg_and_png_through_graphviz(named: LineageGraph) -> None:
    svg = named.to_svg()
    assert svg.lstrip().startswith("<?xml")
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "train&#45;set:v3" in texts  # Graphviz writes '-' as an entity
    assert "artifact_raw" in texts
    # the hostile datatype is one line of text, shown as written, with no markup
    [hostile] = [t for t in texts if "script" in t]
    assert hostile.startswith("a &quot;q&quot; &lt;script&gt;alert(1)&lt;/script&gt;")
    assert "&amp;amp;" in hostile
    assert "\\N" in hostile
    assert "<script" not in svg
    assert named.to_png().startswith(b"\x89PNG\r\n\x1a\n")
    # the DOT source is what dot reads without complaint
    done = subprocess.run(["dot", "-Tcanon"], input=named.to_dot(), capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")


@needs_dot
def test_jupyter_shows_the_picture(named: LineageGraph) -> None:
    page = named._repr_html_()
    assert page.startswith("<p><b>Lineage of train-set:v3</b>: 3 artifacts, 2 links</p><svg")
    assert "<script" not in page
    assert "train&#45;set:v3" in page


def test_without_graphviz_a_clear_error_and_a_table(
    named: LineageGraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without dot
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz") as info:
        named.to_svg()
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "brew install graphviz" in message
    assert "conda" in message
    assert "graph.to_text(), to_mermaid(), to_dot()" in message  # Python calls, for Python
    with pytest.raises(GraphvizNotFoundError):
        named.to_png()
    page = named._repr_html_()
    assert "<svg" not in page
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page)
    cells = [re.findall(r"<t[dh]>(.*?)</t[dh]>", row) for row in rows]
    assert cells[0] == ["artifact", "", "user", "datatype", "created", "files", "built from"]
    # inputs first, then the root (marked), then what was built on it
    assert [c[0] for c in cells[1:]] == [
        "artifact_raw",
        "train-set:v3",
        "artifact_0123456789abcdef_model",
    ]
    assert cells[2][1] == "root"
    assert cells[2][6] == "artifact_raw"
    assert cells[3][6] == "train-set:v3"
    assert cells[1][4] == "2024-01-01 00:00:00 UTC"


def test_dot_failure_is_an_error_with_its_message(
    named: LineageGraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ElliptioError, match=r"exit 3.*syntax error in line 1"):
        named.to_svg()
    assert "<table>" in named._repr_html_()  # Jupyter falls back to the table


def test_repr_is_short(named: LineageGraph) -> None:
    assert repr(named) == (
        "<LineageGraph of train-set:v3: 3 artifacts, 2 links; print() it to see the tree>"
    )


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


def test_lineage_of_a_run_that_read_thousands_of_artifacts(tmp_path: Path) -> None:
    """A commit built from 1,200 inputs: its lineage, on the command line and in
    the web UI, was QueryError 'Expression tree is too large' on SQLite."""
    from starlette.testclient import TestClient

    import elliptio as eio
    from elliptio._ui.app import create_app

    storage, catalog = str(tmp_path / "store"), f"sqlite:///{tmp_path / 'c.db'}"
    source = tmp_path / "part.txt"
    with eio.Handler(storage=storage, catalog=catalog) as h:
        parts = []
        for n in range(1200):
            source.write_text(str(n))
            parts.append(h.upload(source, dedup=False).artifact_id)
        with h.run():
            for part in parts:
                h.get(part)
            source.write_text("all of them")
            made = h.upload(source, name="summary")
        assert len(made.metadata.based_on) == 1200
        up = h.lineage(made.artifact_id, "up")
        assert set(up.nodes) == {made.artifact_id, *parts}
        down = h.lineage(parts[0], "down")
        assert made.artifact_id in down.nodes
        with TestClient(create_app(h.aio), base_url="http://127.0.0.1") as client:
            page = client.get("/lineage/summary", params={"depth": 1})
            assert page.status_code == 200, page.text[-500:]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "elliptio",
            "--storage",
            storage,
            "--catalog",
            catalog,
            "lineage",
            made.artifact_id,
            "--format",
            "mermaid",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[1],
    )
    assert out.returncode == 0, out.stderr
    assert all(part[:17] in out.stdout for part in parts)


def test_the_text_tree_grows_with_artifacts_not_paths_and_any_depth() -> None:
    """Two artifacts per step, each built on both of the step before, drew every
    path: 262,143 lines for 36 artifacts; a chain of 1,100 raised RecursionError
    (helper-71). Each artifact is drawn once per side, later ones '(see above)'."""
    import itertools

    from elliptio._lineage import LineageNode

    ids = [f"artifact_{i:04d}" for i in range(40)]
    edges = tuple(
        (ids[i], ids[j]) for j in range(2, 40) for i in ((j // 2 - 1) * 2, (j // 2 - 1) * 2 + 1)
    )
    wide = LineageGraph(ids[-1], {a: LineageNode(a) for a in ids}, edges)
    text = wide.to_text().splitlines()
    assert len(text) < 2 * len(edges) + 2
    drawn = [line for line in text if "(see above)" not in line]
    assert len(drawn) == len(ids) - 1  # every input of the last one, and itself
    chain_ids = [f"artifact_{i:05d}" for i in range(5000)]
    chain = LineageGraph(
        chain_ids[-1],
        {a: LineageNode(a) for a in chain_ids},
        tuple(itertools.pairwise(chain_ids)),
    )
    lines = chain.to_text().splitlines()
    assert len(lines) == 5000
    assert f"<- {chain_ids[0]} " in lines[-1]
