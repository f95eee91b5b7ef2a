"""find() frames: dotted columns, flattened labels, ref, max_docs=0, unknown fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import elliptio as eio
from elliptio._frame import DEFAULT_COLUMNS, plan_frame, to_frame

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _docs() -> list[dict[str, Any]]:
    return [
        {
            "artifact_id": "a0",
            "creation_time": T0,
            "name": "ds",
            "name_version": 2,
            "labels": {"datatype": "table", "ticket": "", "infos": {"seed": 1, "opt": {"lr": 0.1}}},
        },
        {
            "artifact_id": "a1",
            "creation_time": T0,
            "labels": {"datatype": "", "ticket": "", "infos": {"seed": 2}},
        },
    ]


def test_dotted_columns_are_flat_columns_of_those_names() -> None:
    frame = to_frame(_docs(), columns=["labels.datatype", "labels.infos.seed", "labels.nope"])
    assert list(frame.columns) == ["labels.datatype", "labels.infos.seed", "labels.nope"]
    assert frame.loc["a0", "labels.infos.seed"] == 1
    assert frame.loc["a1", "labels.datatype"] == ""
    assert frame["labels.nope"].isna().all()  # a path no record has: an empty column
    assert plan_frame(["labels.infos.seed", "ref"]).fields == ("labels", "name", "name_version")


def test_flatten_turns_nested_labels_into_dotted_columns() -> None:
    flat = to_frame(_docs(), columns=["labels"])
    assert list(flat.columns) == [
        "labels.datatype",
        "labels.ticket",
        "labels.infos.seed",
        "labels.infos.opt.lr",
    ]
    assert flat.loc["a0", "labels.infos.opt.lr"] == 0.1
    assert pd.isna(flat.loc["a1", "labels.infos.opt.lr"])
    nested = to_frame(_docs(), columns=["labels"], flatten=False)
    assert list(nested.columns) == ["labels"]
    assert nested.loc["a1", "labels"]["infos"] == {"seed": 2}
    assert list(to_frame(_docs(), columns=["labels.infos"]).columns) == [
        "labels.infos.seed",
        "labels.infos.opt.lr",
    ]


def test_flattened_labels_keep_lists_whole_and_make_no_column_of_an_empty_mapping() -> None:
    docs = [
        {"artifact_id": "a", "labels": {"a": {"b": 1, "c": {"d": [{"e": 2}]}, "f": {}}, "g": None}},
        {"artifact_id": "b", "labels": "loose"},
        {"artifact_id": "c"},
    ]
    frame = to_frame(docs, columns=["labels"])
    assert list(frame.columns) == ["labels.a.b", "labels.a.c.d", "labels.g", "labels"]
    assert frame.loc["a", "labels.a.c.d"] == [{"e": 2}]
    assert frame.loc["b", "labels"] == "loose"  # not a mapping: under the field's own name
    assert frame.loc["c"].isna().all()
    assert list(to_frame(docs, columns=["labels.a.f"]).columns) == ["labels.a.f"]
    # A dotted key (written by other tools) and the nested path it spells share a column.
    mixed = [
        {"artifact_id": "r0", "labels": {"x": {"y": 1}}},
        {"artifact_id": "r1", "labels": {"x.y": 7}},
    ]
    assert to_frame(mixed, columns=["labels"])["labels.x.y"].tolist() == [1, 7]
    assert to_frame(docs, columns=["labels.a.f"])["labels.a.f"].isna().all()


def test_default_frame_is_small_with_ref_and_used_labels() -> None:
    frame = to_frame(_docs())
    assert list(frame.columns) == [
        "ref",
        "name",
        "name_version",
        "creation_time",
        "username",
        "file_relpaths",
        "based_on",
        "run_id",
        # labels.ticket is empty in every row: left out of the default frame
        "labels.datatype",
        "labels.infos.seed",
        "labels.infos.opt.lr",
    ]
    assert list(frame["ref"]) == ["ds:v2", "a1"]  # the id when there is no name
    assert str(frame["creation_time"].dt.tz) == "UTC"
    assert "python_packages" in to_frame(_docs(), include_packages=True).columns
    assert DEFAULT_COLUMNS[:2] == ("ref", "name")


def test_an_int_too_large_for_a_float_stays_whole_beside_gaps() -> None:
    docs = _docs()
    docs[0]["labels"]["infos"]["seed"] = 2**53 + 1
    del docs[1]["labels"]["infos"]["seed"]
    column = to_frame(docs, columns=["labels.infos.seed"])["labels.infos.seed"]
    assert column.tolist() == [2**53 + 1, None]
    docs[0]["labels"]["infos"]["seed"] = 3  # small ones: floats with NaN, as pandas makes them
    assert to_frame(docs, columns=["labels.infos.seed"])["labels.infos.seed"].dtype == "float64"


def test_columns_through_lists_pick_items_and_collect_fields() -> None:
    """A column path through an array was None in every row, while queries
    read it (helper-54)."""
    docs = _docs()
    docs[0]["file_relpaths"] = ["a.txt", "b.txt"]
    docs[0]["files"] = [{"relpath": "a.txt"}, {"relpath": "b.txt"}]
    docs[0]["labels"]["infos"]["tags"] = ["x", "y"]
    frame = to_frame(
        docs, columns=["file_relpaths.1", "files.relpath", "labels.infos.tags.0", "files.9"]
    )
    assert frame.loc["a0"].tolist() == ["b.txt", ["a.txt", "b.txt"], "x", None]
    assert frame.loc["a1"].isna().all()


def test_unknown_columns_are_refused() -> None:
    with pytest.raises(eio.QueryError, match="nope"):
        plan_frame(["nope.x"])
    with pytest.raises(eio.QueryError, match="strings"):
        plan_frame([1])  # type: ignore[list-item]


@pytest.fixture(params=["sqlite", "mongodb"])
def h(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[eio.Handler]:
    catalog: Any = f"sqlite:///{tmp_path / 'catalog.db'}"
    if request.param == "mongodb":
        from mongomock_motor import AsyncMongoMockClient

        catalog = AsyncMongoMockClient()
    with eio.Handler(storage=tmp_path / "store", catalog=catalog) as handler:
        yield handler


def test_find_frames_through_the_handler(h: eio.Handler, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("a")
    named = h.upload(src, labels={"datatype": "table", "infos": {"seed": 7}}, name="ds")
    plain = h.upload(src, labels={"infos": {"seed": 8, "lr": 0.5}})
    frame = h.find(columns=["labels.datatype", "labels.infos.seed"])
    assert list(frame.columns) == ["labels.datatype", "labels.infos.seed"]
    assert frame.loc[named.artifact_id, "labels.infos.seed"] == 7
    assert frame.loc[plain.artifact_id, "labels.datatype"] == ""

    default = h.find()
    assert len(default.columns) < 19
    assert default.loc[named.artifact_id, "ref"] == "ds:v1"
    assert default.loc[named.artifact_id, "name"] == "ds"
    assert default.loc[plain.artifact_id, "ref"] == plain.artifact_id
    assert default.loc[plain.artifact_id, "labels.infos.lr"] == 0.5
    assert pd.isna(default.loc[named.artifact_id, "labels.infos.lr"])

    # max_docs=0: no rows (the columns still there), the query still checked.
    none = h.find({"labels.infos.seed": 7}, max_docs=0)
    assert none.empty
    assert list(none.columns[:2]) == ["ref", "name"]
    with pytest.raises(eio.QueryError):
        h.find({"a": {"$bogus": 1}}, max_docs=0)
    # A field no record has is no error: nothing matches (the CLI prints a hint).
    assert h.find({"labels.datatyp": "table"}).empty


def test_a_label_mapping_some_records_lack_makes_no_column_of_its_own(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("x")
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        h.upload(src, labels={"infos": {"seed": 1}})
        h.upload(src, labels={})
        assert list(h.find(columns=["labels.infos"]).columns) == ["labels.infos.seed"]
        frame = h.find(columns=["labels.infos", "labels.project"])
        assert list(frame.columns) == ["labels.infos.seed", "labels.project"]
        assert frame["labels.infos.seed"].dropna().tolist() == [1]
