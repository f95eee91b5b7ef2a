"""The fields a filter names, and spelling hints for them."""

from __future__ import annotations

from elliptio._hints import close_fields, filter_fields


def test_filter_fields_and_close_fields() -> None:
    query = {"a": 1, "$or": [{"labels.x": {"$gt": 2}}, {"a": 2}], "$and": [{"b": 3}], "$where": 1}
    assert filter_fields(query) == ["a", "labels.x", "b"]
    known = ["username", "name", "labels.datatype", "labels.dataset"]
    assert close_fields("usrname", known)[0] == "username"
    assert close_fields("labels.datatyp", known)[0] == "labels.datatype"
    assert close_fields("zzz", known) == []
