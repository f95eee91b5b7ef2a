"""The SQLite catalog's record body: values in a fixed order, documents and columns back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from elliptio._catalog import body, codec
from elliptio._frame import DEFAULT_COLUMNS, build_frame, plan_frame, to_frame
from elliptio._models import Metadata

UTC = dt.UTC
T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.datetimes(
        min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
)
_keys = st.text(min_size=1, max_size=4).filter(lambda k: not k.startswith("$") and "\x00" not in k)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8,
)
# Top-level keys: mostly the record's own, some foreign, in any order.
_top = st.sampled_from([*body.FIELDS, "extra", "z", "labels2"])


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(_top, unique=True, max_size=len(body.FIELDS) + 3))
    doc: dict[str, Any] = {key: draw(_values) for key in keys if key != "artifact_id"}
    # The catalog keeps the id first only when it came first; wherever it is, it stays.
    position = draw(st.integers(min_value=0, max_value=len(doc)))
    items = list(doc.items())
    items.insert(position, ("artifact_id", "artifact_x"))
    return codec.normalize(dict(items))  # as the catalog stores it: UTC milliseconds


def _columns(
    rows: list[tuple[str, str | None, bytes]], fields: list[str], packages: Any = None
) -> dict[str, list[Any]]:
    """What the SQLite catalog's column read makes of ``rows``."""
    arrays = body.values(b"".join(row[2] for row in rows))
    ids, created = [row[0] for row in rows], [row[1] for row in rows]
    return body.columns(ids, created, arrays, fields, packages)


def _row(doc: dict[str, Any]) -> tuple[str, str | None, bytes]:
    created = doc.get("creation_time")
    text = codec.date_text(created) if isinstance(created, dt.datetime) else None
    return doc["artifact_id"], text, body.encode(doc)


def test_fields_are_the_records_fields_in_order() -> None:
    # A new record field gets a slot of its own only when added here, in order.
    # The lifecycle fields and a reference's pins, absent from records never
    # relabeled, deleted or referencing, are stored among the extras, so bodies
    # written before them stay as they are.
    lifecycle = {"label_history", "deleted", "reference"}
    assert list(body.FIELDS) == [f for f in Metadata.model_fields if f not in lifecycle]


@settings(max_examples=300, deadline=None)
@given(st.lists(documents(), min_size=1, max_size=4))
def test_documents_round_trip_with_their_key_order(docs: list[dict[str, Any]]) -> None:
    rows = [_row(doc) for doc in docs]
    packages = [doc.get("python_packages") for doc in docs]
    back = body.decode_docs(rows, packages)
    assert back == docs
    assert [list(d) for d in back] == [list(d) for d in docs]
    # Without the packages, the field is left out and nothing else changes.
    expected = [{k: v for k, v in doc.items() if k != "python_packages"} for doc in docs]
    assert body.decode_docs(rows) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(documents(), max_size=4))
def test_columns_are_each_documents_fields(docs: list[dict[str, Any]]) -> None:
    rows = [_row(doc) for doc in docs]
    packages = [doc.get("python_packages") for doc in docs]
    table = _columns(rows, list(body.FIELDS), packages)
    assert table["artifact_id"] == [doc["artifact_id"] for doc in docs]
    for field in body.FIELDS:
        assert table[field] == [doc.get(field) for doc in docs], field


def test_a_record_body_holds_no_top_level_keys() -> None:
    doc = {
        "version": 2,
        "artifact_id": "artifact_x",
        "creation_time": T0,
        "python_packages": {"numpy": "2.0"},
        "labels": {"datatype": "model"},
    }
    encoded = body.encode(doc)
    # The id, the time and the packages live in columns of their own.
    for stored_elsewhere in (b"artifact_x", b"numpy", b"creation_time", b"labels\x00"):
        assert stored_elsewhere not in encoded
    assert b"datatype" in encoded


def test_frame_from_columns_equals_frame_from_documents() -> None:
    docs = [
        {
            "artifact_id": f"a{i}",
            "creation_time": T0 + dt.timedelta(hours=i) if i != 2 else None,
            "username": "andy",
            "version": 2,
            "labels": {"i": i},
            "argv": ["x", str(i)],
            "name_version": i if i % 2 else None,
        }
        for i in range(4)
    ]
    rows = [_row(doc) for doc in docs]
    for columns in (None, ["labels", "creation_time", "labels", "artifact_id"], "argv"):
        plan = plan_frame(columns)
        expected = to_frame(docs, columns=columns)
        got = build_frame(_columns(rows, list(plan.fields)), plan)
        pd.testing.assert_frame_equal(got, expected)
    assert plan_frame(None).columns == DEFAULT_COLUMNS
    assert list(expected.columns) == ["argv"]
