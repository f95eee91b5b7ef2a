"""Bad input gets a typed error naming it, and storage and catalog stay unchanged."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient

import elliptio as eio
from tests.conftest import snapshot


@pytest.fixture
def seeded(handler: eio.Handler, data_files: dict[str, Path]) -> eio.Handler:
    """A store that already holds one artifact, so 'unchanged' is not trivially empty."""
    handler.upload(data_files["test"], labels=eio.Labels(datatype="annotation_file"))
    return handler


def _expect(h: eio.Handler, call: Callable[[], Any], error: type[Exception], names: str) -> None:
    before = snapshot(h)
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, eio.ElliptioError)
    assert names in str(info.value), f"{names!r} not named in: {info.value}"
    assert snapshot(h) == before


def test_missing_local_file(seeded: eio.Handler, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    _expect(seeded, lambda: seeded.upload([missing]), eio.InputFileNotFoundError, "nope.csv")
    assert issubclass(eio.InputFileNotFoundError, FileNotFoundError)


def test_one_missing_among_existing_writes_nothing(
    seeded: eio.Handler, data_files: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "gone.txt"
    _expect(
        seeded,
        lambda: seeded.upload([data_files["train"], missing]),
        eio.InputFileNotFoundError,
        "gone.txt",
    )


def test_empty_directory(seeded: eio.Handler, tmp_path: Path) -> None:
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    _expect(seeded, lambda: seeded.upload(empty), eio.InvalidPathError, "empty_dir")


def test_empty_local_paths(seeded: eio.Handler) -> None:
    _expect(seeded, lambda: seeded.upload([]), eio.InvalidPathError, "local_paths")


def test_duplicate_relpaths_in_upload(seeded: eio.Handler, data_files: dict[str, Path]) -> None:
    _expect(
        seeded,
        lambda: seeded.upload([data_files["test"], data_files["test"]]),
        eio.InvalidPathError,
        "test.txt",
    )


def test_duplicate_relpaths_in_new(seeded: eio.Handler) -> None:
    _expect(seeded, lambda: seeded.new(["a.txt", "a.txt"]), eio.InvalidPathError, "a.txt")
    _expect(seeded, lambda: seeded.new(["a.txt", "./a.txt"]), eio.InvalidPathError, "a.txt")
    _expect(seeded, lambda: seeded.new(["a", "a/b"]), eio.InvalidPathError, "a/b")


@pytest.mark.parametrize(
    ("relpath", "named"),
    [
        ("/etc/passwd", "absolute"),
        ("../escape.txt", ".."),
        ("a/../../b", ".."),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("", "empty"),
        ("a\\b.txt", "backslash"),
        ("bad\x00name", "control"),
        ("bad\nname", "control"),
        (".elliptio/metadata.json", "reserved"),
        ("C:/windows", "drive"),
        (".", "names no file"),
        ("x" * 300, "longer"),
    ],
)
def test_rejected_relpaths(seeded: eio.Handler, relpath: str, named: str) -> None:
    before = snapshot(seeded)
    with pytest.raises(eio.InvalidPathError, match=re.escape(named)) as info:
        with seeded.new([relpath]):
            pass
    assert repr(relpath)[1:-1][:50] in str(info.value) or relpath == ""
    assert snapshot(seeded) == before


def test_relpath_of_wrong_type(seeded: eio.Handler) -> None:
    _expect(seeded, lambda: seeded.new([3]), eio.InvalidPathError, "3")  # type: ignore[list-item]


@pytest.mark.parametrize(
    "artifact_id",
    [
        "artifact_00000000-0000-4000-8000-000000000000",  # well formed, unknown
        "not-an-id",
        "artifact_../../etc",
        "",
    ],
)
def test_unknown_artifact_id(seeded: eio.Handler, artifact_id: str) -> None:
    before = snapshot(seeded)
    with pytest.raises(eio.ArtifactNotFoundError) as info:
        seeded.get(artifact_id)
    assert isinstance(info.value, KeyError)
    assert repr(artifact_id) in str(info.value) or artifact_id in str(info.value)
    assert snapshot(seeded) == before
    assert seeded.based_on == [] or artifact_id not in seeded.based_on


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"$where": "this.a == 1"}, "$where"),
        ({"a": {"$where": "1"}}, "$where"),
        ({"$expr": {"$eq": ["$a", 1]}}, "$expr"),
        ({"$function": {}}, "$function"),
        ({"a": {"$accumulator": {}}}, "$accumulator"),
        ({"a": {"$foo": 1}}, "$foo"),
        ({"a": {"$in": 5}}, "$in"),
        ({"$and": []}, "$and"),
        ({"$or": {"a": 1}}, "$or"),
        ({"a": {"$regex": 5}}, "$regex"),
        # Python's escapes, which a MongoDB server refuses: refused alike everywhere.
        ({"a": {"$regex": r"caf\u00e9"}}, "escape \\u"),
        ({"a": {"$in": [re.compile(r"\N{EM DASH}")]}}, "escape \\N"),
        ({"a": {"$exists": "maybe"}}, "$exists"),
    ],
)
def test_malformed_and_unsupported_queries(
    seeded: eio.Handler, query: dict[str, Any], named: str
) -> None:
    _expect(seeded, lambda: seeded.find(query), eio.QueryError, named)


def test_a_date_field_compared_with_text_is_named(seeded: eio.Handler) -> None:
    """MongoDB's rules make text never match a date: {"creation_time": {"$gte":
    "2020-01-01"}} read as "no artifacts match" (helper-57)."""
    for query in (
        {"creation_time": {"$gte": "2020-01-01"}},
        {"creation_time": "2026-12-05T10:00:00Z"},
        {"$or": [{"username": "x"}, {"creation_time": {"$in": ["2026-01-01"]}}]},
        {"deleted.deleted_at": {"$lt": "2030"}},
        # Through an array, by index or $elemMatch (helper-58).
        {"label_history.0.replaced_at": {"$gte": "2000-01-01"}},
        {"label_history": {"$elemMatch": {"replaced_at": {"$gte": "2000-01-01"}}}},
    ):
        _expect(seeded, lambda q=query: seeded.find(q), eio.QueryError, "holds dates")
        _expect(seeded, lambda q=query: seeded.count(q), eio.QueryError, "holds dates")
    since = {"$gte": datetime(2020, 1, 1, tzinfo=UTC)}
    assert seeded.count({"creation_time": since}) == seeded.count()
    # These match every record whatever the text, as MongoDB has it (helper-58).
    for query in (
        {"creation_time": {"$ne": "2020-01-01"}},
        {"creation_time": {"$nin": ["2020-01-01"]}},
        {"creation_time": {"$not": {"$gte": "2020-01-01"}}},
        {"$nor": [{"creation_time": "2020-01-01"}]},
    ):
        assert seeded.count(query) == seeded.count()


def test_query_of_wrong_type(seeded: eio.Handler) -> None:
    _expect(seeded, lambda: seeded.find("username == andy"), eio.QueryError, "dict")  # type: ignore[arg-type]
    _expect(seeded, lambda: seeded.find({}, max_docs=-1), eio.QueryError, "max_docs")
    _expect(seeded, lambda: seeded.find({}, columns=["nope"]), eio.QueryError, "nope")
    # Not a list at all: a bare TypeError before (helper-54).
    for columns in (123, 1.5, int, {"name": 1}):
        _expect(
            seeded,
            lambda c=columns: seeded.find({}, columns=c),  # type: ignore[misc]
            eio.QueryError,
            "columns must be a list of field names",
        )
    assert list(seeded.find({}, columns=iter(["name"])).columns) == ["name"]


@pytest.mark.parametrize(
    ("infos", "named"),
    [
        ({"a.b": 1}, "'a.b'"),
        ({"$set": 1}, "'$set'"),
        ({"x": {1, 2}}, "set"),
        ({"x": object()}, "object"),
        ({"x": float("nan")}, "nan"),
        ({"x": b"bytes"}, "bytes"),
        ({3: "x"}, "3"),
        ({"deep": {"er": {"k.ey": 1}}}, "'k.ey'"),
        ({"n": 2**70}, "64 bits"),
        # SQLite's text functions stop at NUL: queries missed what follows (helper-54).
        ({"note": "part1\x00part2"}, "NUL"),
        ({"tags": ["ok", "a\x00b"]}, "NUL"),
    ],
)
def test_label_infos_that_cannot_be_stored(
    seeded: eio.Handler, data_files: dict[str, Path], infos: dict[Any, Any], named: str
) -> None:
    _expect(
        seeded,
        lambda: seeded.upload(data_files["train"], labels={"infos": infos}),
        eio.InvalidLabelsError,
        named,
    )


@pytest.mark.parametrize("catalog", ["sqlite", "mongodb"])
def test_label_integers_at_the_64_bit_bounds_are_stored(
    tmp_path: Path, data_files: dict[str, Path], catalog: str
) -> None:
    """-2**63 and 2**63 - 1 are 64-bit integers like any other: stored, read and
    found on every catalog (the lower one was refused as not fitting)."""
    where = AsyncMongoMockClient() if catalog == "mongodb" else f"sqlite:///{tmp_path / 'c.db'}"
    with eio.Handler(storage=tmp_path / "store", catalog=where) as h:
        art = h.upload(data_files["train"], labels={"infos": {"low": -(2**63), "high": 2**63 - 1}})
        assert h.get(art.artifact_id).metadata.labels.infos == {"low": -(2**63), "high": 2**63 - 1}
        assert h.count({"labels.infos.low": -(2**63), "labels.infos.high": 2**63 - 1}) == 1
        with pytest.raises(eio.InvalidLabelsError, match="64 bits"):
            h.upload(data_files["train"], labels={"infos": {"low": -(2**63) - 1}})


def test_a_nul_character_in_labels_is_refused_on_every_write(
    seeded: eio.Handler, data_files: dict[str, Path]
) -> None:
    art = seeded.upload(data_files["train"])
    for write in (
        lambda: seeded.upload(data_files["train"], labels={"description": "a\x00b"}),
        lambda: seeded.upload(data_files["train"], labels=eio.Labels(ticket="x\x00")),
        lambda: seeded.set_labels(art.artifact_id, {"project": "p\x00"}),
    ):
        _expect(seeded, write, eio.InvalidLabelsError, "NUL")


def test_labels_of_wrong_shape(seeded: eio.Handler, data_files: dict[str, Path]) -> None:
    _expect(
        seeded,
        lambda: seeded.upload(data_files["train"], labels={"colour": "red"}),
        eio.InvalidLabelsError,
        "colour",
    )
    _expect(
        seeded,
        lambda: seeded.upload(data_files["train"], labels="red"),  # type: ignore[arg-type]
        eio.InvalidLabelsError,
        "str",
    )


def test_bad_settings_are_named_without_values(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", '{"secret": "hunter2"')
    with pytest.raises(eio.ConfigError, match="ELLIPTIO_STORAGE_OPTIONS is not valid JSON") as info:
        eio.Handler(storage=tmp_path, catalog="memory://")
    assert "hunter2" not in str(info.value)
    monkeypatch.delenv("ELLIPTIO_STORAGE_OPTIONS")
    with pytest.raises(eio.ConfigError, match="gopher"):
        eio.Handler(storage=tmp_path, catalog="gopher://x")
    with pytest.raises(eio.ConfigError, match=r"unknown protocol|install|cannot open"):
        eio.Handler(storage="nosuchfs://bucket", catalog="memory://")


def test_misused_calls_of_helper_79_and_80_get_typed_errors(
    handler: eio.Handler, tmp_path: Path
) -> None:
    """prune_cache read '30d' with float() (a bare ValueError) and 30 as epoch
    seconds (pruning nothing, silently); `find --where x` exited 1, not 2; a run
    scope entered twice raised a bare RuntimeError; get('ds:v0') advised an alias
    that set_alias refuses."""
    from datetime import date, timedelta

    for bad in ("30d", None, date(2024, 1, 1), True):
        with pytest.raises(eio.ArgumentTypeError, match="timedelta"):
            eio.prune_cache(bad)  # type: ignore[arg-type]
    for bad in (30, -5, float("nan"), 1e15):
        with pytest.raises(eio.UsageError, match="epoch seconds"):
            eio.prune_cache(bad)
    import numpy as np

    assert eio.prune_cache(np.int64(1_700_000_000)) >= 0
    with pytest.raises(eio.ArgumentTypeError, match="timedelta"):
        eio.prune_cache(np.timedelta64(30, "D"))
    assert eio.prune_cache(timedelta(days=30)) >= 0
    scope = handler.run()
    with scope, pytest.raises(eio.UsageError, match="open already"), scope:
        pass
    src = tmp_path / "a.txt"
    src.write_text("a")
    handler.upload(src, name="ds")
    with pytest.raises(eio.ArtifactNotFoundError, match="versions count from v1") as caught:
        handler.get("ds:v0")
    assert "set_alias" not in str(caught.value)
