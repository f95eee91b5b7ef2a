"""elliptio:// URLs: pandas reads artifact files by id, lineage is recorded, writes refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fsspec
import pandas as pd
import pytest

import elliptio as eio


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> eio.Handler:
    """A handler whose store and catalog are also the process's settings."""
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    return eio.Handler()


def test_pandas_reads_elliptio_urls_and_lineage_is_recorded(
    configured: eio.Handler, data_files: dict[str, Path]
) -> None:
    art = configured.upload([data_files["test"], data_files["train"]])
    url = art.files["test.txt"].eio_url
    assert url == f"elliptio://{art.artifact_id}/test.txt"
    with configured.run():
        table = pd.read_csv(url)
        assert table.shape == (2, 2)
        assert configured.based_on == [art.artifact_id]
        with configured.new("derived.csv") as new:
            table.to_csv(new.file.url, index=False)
    assert new.artifact.metadata.based_on == [art.artifact_id]


def test_elliptio_urls_take_names_versions_and_aliases(
    configured: eio.Handler, data_files: dict[str, Path]
) -> None:
    v1 = configured.upload(data_files["train"], name="train-set")
    v2 = configured.upload(data_files["test"], name="train-set")
    configured.set_alias("train-set:v1", "golden")
    assert pd.read_csv("elliptio://train-set:latest/test.txt").shape == (2, 2)
    with fsspec.open("elliptio://train-set:golden/train.txt") as f:
        assert f.read() == data_files["train"].read_bytes()
    fs = fsspec.filesystem("elliptio")
    assert fs.ls("train-set:v2", detail=False) == ["train-set:v2/test.txt"]
    with configured.run():
        pd.read_csv("elliptio://train-set/test.txt")
        pd.read_csv("elliptio://train-set:v1/train.txt")
        assert configured.based_on == [v2.artifact_id, v1.artifact_id]


def test_listing_info_and_refused_writes(configured: eio.Handler, tmp_path: Path) -> None:
    data = tmp_path / "ds"
    (data / "img").mkdir(parents=True)
    (data / "img" / "a.png").write_bytes(b"a")
    (data / "labels.csv").write_text("x\n1\n")
    art = configured.upload(data)
    fs = fsspec.filesystem("elliptio")
    aid = art.artifact_id
    assert fs.ls(aid, detail=False) == [f"{aid}/ds"]
    assert fs.ls(f"{aid}/ds", detail=False) == [f"{aid}/ds/img", f"{aid}/ds/labels.csv"]
    assert fs.info(f"elliptio://{aid}/ds/img/a.png")["size"] == 1
    assert fs.cat_file(f"{aid}/ds/labels.csv") == b"x\n1\n"
    with pytest.raises(FileNotFoundError):
        fs.info(f"{aid}/ds/nope.txt")
    with pytest.raises(eio.ElliptioError, match="immutable"):
        fs.open(f"{aid}/ds/labels.csv", "wb")
    with pytest.raises(eio.ElliptioError, match="read-only"):
        fs.rm(f"{aid}/ds/labels.csv")
    with pytest.raises(eio.ArtifactNotFoundError):
        fs.cat_file("artifact_00000000-0000-4000-8000-000000000000/x")


def test_any_process_with_elliptio_installed_reads_them(
    configured: eio.Handler, data_files: dict[str, Path]
) -> None:
    art = configured.upload(data_files["test"])
    # The child never imports elliptio: fsspec finds it through its entry point.
    code = f"import pandas as pd; print(pd.read_csv({art.file.eio_url!r}).shape)"
    env = {**os.environ}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "(2, 2)"
