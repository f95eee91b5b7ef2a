"""Every reader the README shows reads artifact files, with lineage recorded.

Each entry of `READERS` is the README's one-liner for that library, run on a local,
a memory:// (served through the cache) and an S3 store. It must return the data,
and an artifact committed in the same run must list the file's artifact in
``based_on``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import duckdb
import fsspec
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import elliptio as eio

TABLE = {"a": [1, 2], "b": ["x", "y"]}


def _polars_from_url(csv: eio.File, parquet: eio.File) -> Any:
    url = parquet.eio_url  # only the URL string at hand
    with fsspec.open(url) as f:
        return pl.read_parquet(f)


def _duckdb(csv: eio.File, parquet: eio.File) -> Any:
    with duckdb.connect() as con:
        con.register_filesystem(fsspec.filesystem("elliptio"))
        return con.sql(f"select * from '{parquet.eio_url}'").df()


def _duckdb_csv(csv: eio.File, parquet: eio.File) -> Any:
    with duckdb.connect() as con:
        con.register_filesystem(fsspec.filesystem("elliptio"))
        return con.sql(f"select * from read_csv('{csv.eio_url}')").df()


def _open(csv: eio.File, parquet: eio.File) -> Any:
    with open(csv.local_path()) as f:
        return pd.read_csv(io.StringIO(f.read()))


READERS: dict[str, Callable[[eio.File, eio.File], Any]] = {
    "pandas read_csv": lambda csv, parquet: pd.read_csv(csv.eio_url),
    "pandas read_parquet": lambda csv, parquet: pd.read_parquet(parquet.eio_url),
    "dask read_csv": lambda csv, parquet: dd.read_csv(csv.eio_url).compute(),
    "polars read_csv": lambda csv, parquet: pl.read_csv(csv.local_path()),
    "polars read_parquet": lambda csv, parquet: pl.read_parquet(parquet.local_path()),
    "polars scan_parquet": lambda csv, parquet: pl.scan_parquet(parquet.local_path()).collect(),
    "polars from a URL": _polars_from_url,
    "pyarrow read_table": lambda csv, parquet: pq.read_table(
        parquet.eio_url, filesystem=fsspec.filesystem("elliptio")
    ),
    "pyarrow dataset": lambda csv, parquet: ds.dataset(
        parquet.eio_url, filesystem=fsspec.filesystem("elliptio")
    ).to_table(),
    "duckdb parquet": _duckdb,
    "duckdb csv": _duckdb_csv,
    "open local_path": _open,
}


def _as_dict(result: Any) -> dict[str, list[Any]]:
    if isinstance(result, pl.DataFrame):
        return result.to_dict(as_series=False)
    frame = result if isinstance(result, pd.DataFrame) else result.to_pandas()
    return {name: list(values) for name, values in frame.to_dict("list").items()}


@pytest.fixture
def inputs(handler: eio.Handler, tmp_path: Path) -> eio.Artifact:
    frame = pd.DataFrame(TABLE)
    frame.to_csv(tmp_path / "table.csv", index=False)
    frame.to_parquet(tmp_path / "table.parquet", index=False)
    return handler.upload([tmp_path / "table.csv", tmp_path / "table.parquet"])


@pytest.mark.parametrize("reader", READERS)
def test_reader_gets_the_data_and_the_commit_lists_its_input(
    reader: str, handler: eio.Handler, inputs: eio.Artifact, tmp_path: Path
) -> None:
    (tmp_path / "out.txt").write_text("derived")
    with handler.run():
        got = READERS[reader](inputs.files["table.csv"], inputs.files["table.parquet"])
        out = handler.upload(tmp_path / "out.txt")
    assert _as_dict(got) == TABLE
    assert out.metadata.based_on == [inputs.artifact_id]


def test_local_path_keeps_the_file_name(handler: eio.Handler, inputs: eio.Artifact) -> None:
    for relpath in ("table.csv", "table.parquet"):
        assert inputs.files[relpath].local_path().name == relpath
