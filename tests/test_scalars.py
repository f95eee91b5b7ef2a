"""numpy and pandas scalars in labels and queries: stored and sent as plain values."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import elliptio as eio
from elliptio._scalars import plain, plain_tree

UTC = dt.UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.int64(7), 7),
        (np.uint16(7), 7),
        (np.float32(0.5), 0.5),
        (np.float64(0.25), 0.25),
        (np.bool_(True), True),
        (np.str_("x"), "x"),
        (np.array(3), 3),
        (np.array(2.5), 2.5),
        (np.array(False), False),
        (pd.Timestamp("2024-05-01T12:00", tz="UTC"), dt.datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ],
)
def test_plain_gives_the_python_value(value: Any, expected: Any) -> None:
    result = plain(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "value", ["x", 1, 1.5, True, None, dt.datetime(2024, 1, 1, tzinfo=UTC), [1], {"a": 1}]
)
def test_plain_values_are_returned_as_they_are(value: Any) -> None:
    assert plain(value) is value
    assert plain_tree(value) is value


def test_other_values_are_left_for_the_checks_to_refuse() -> None:
    for value in (np.array([1, 2]), np.datetime64("2024-01-01"), pd.NaT, {1, 2}):
        assert plain(value) is value


def test_plain_tree_converts_inside_containers_and_keeps_their_kind() -> None:
    tree = {"a": [np.int64(1), (np.bool_(False), "x")], np.str_("k"): {"b": np.float32(2.0)}}
    result = plain_tree(tree)
    assert result == {"a": [1, (False, "x")], "k": {"b": 2.0}}
    assert type(result["a"][0]) is int
    assert type(result["a"][1]) is tuple
    assert type(result["a"][1][0]) is bool
    assert type(next(iter(result["k"]))) is str


def test_labels_store_plain_values() -> None:
    frame = pd.DataFrame({"seed": [3, 9], "score": [0.5, 0.75], "ok": [True, False]})
    labels = eio.Labels(
        infos={
            "seed": frame["seed"].max(),
            "score": frame["score"].mean(),
            "ok": frame["ok"].all(),
            "seeds": list(frame["seed"]),
            "when": pd.Timestamp("2024-05-01T14:00", tz="Europe/Paris"),
            "n": np.array(4),
        }
    )
    infos = labels.infos
    assert infos == {
        "seed": 9,
        "score": 0.625,
        "ok": False,
        "seeds": [3, 9],
        "when": dt.datetime(2024, 5, 1, 12, tzinfo=UTC),
        "n": 4,
    }
    assert [type(infos[k]) for k in ("seed", "score", "ok", "n")] == [int, float, bool, int]
    assert all(type(s) is int for s in infos["seeds"])
    assert json.loads(labels.model_dump_json())["infos"]["seed"] == 9


def test_refused_values_stay_refused() -> None:
    with pytest.raises(eio.InvalidLabelsError, match="naive"):
        eio.Labels(infos={"when": pd.Timestamp("2024-05-01")})
    with pytest.raises(eio.InvalidLabelsError, match="NaN"):
        eio.Labels(infos={"x": np.float64("nan")})
    with pytest.raises(eio.InvalidLabelsError, match="ndarray"):
        eio.Labels(infos={"x": np.array([1, 2])})


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
async def test_upload_and_find_with_numpy_values(tmp_path: Path, backend: str) -> None:
    from mongomock_motor import AsyncMongoMockClient

    catalog: Any = (
        f"sqlite:///{tmp_path / 'catalog.db'}" if backend == "sqlite" else AsyncMongoMockClient()
    )
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    frame = pd.DataFrame({"seed": [1, 2, 3]})
    async with eio.AsyncHandler(storage=tmp_path / "store", catalog=catalog) as h:
        art = await h.upload(data, labels={"infos": {"seed": frame["seed"].max()}})
        other = await h.upload(data, labels={"infos": {"seed": np.int32(1)}})
        doc = await h.catalog.get(art.artifact_id)
        assert type(doc["labels"]["infos"]["seed"]) is int
        found = await h.find({"labels.infos.seed": frame["seed"].max()})
        assert list(found.index) == [art.artifact_id]
        assert await h.count({"labels.infos.seed": {"$lt": np.float64(2.5)}}) == 1
        seeds = {"labels.infos.seed": {"$in": list(frame["seed"].unique())}}
        assert set((await h.find(seeds)).index) == {art.artifact_id, other.artifact_id}
