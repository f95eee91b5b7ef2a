"""What a newcomer tried from the README and the docs (session 9 review); each
test failed before its fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import elliptio as eio
from elliptio._frame import DEFAULT_COLUMNS


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small CSV file, with the store and catalog the CLI finds configured."""
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    return path


def test_an_empty_frame_has_the_default_columns_without_labels(tmp_path: Path) -> None:
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        assert list(h.find()) == [c for c in DEFAULT_COLUMNS if c != "labels"]


def test_csv_keeps_whole_numbers_and_writes_lists_as_json(src: Path) -> None:
    with eio.Handler() as h:
        h.upload(src, name="ds", labels={"infos": {"seed": 1}})
        h.upload(src, labels={"infos": {"lr": 0.5}})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "elliptio",
            "find",
            "--format",
            "csv",
            "--columns",
            "name_version,labels.infos.seed,labels.infos.lr,file_relpaths",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split(",", 4) for line in done.stdout.splitlines()[1:]]
    assert sorted((r[1], r[2], r[3]) for r in rows) == [("", "", "0.5"), ("1", "1", "")]
    assert {json.loads(r[4].strip('"').replace('""', '"')) == ["t.csv"] for r in rows} == {True}


def test_offline_set_in_a_running_process_reaches_the_url_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ELLIPTIO_OFFLINE", raising=False)
    (tmp_path / "here.txt").write_text("x")
    assert eio.exists(str(tmp_path / "here.txt"))  # the tools are built, online
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")  # as in a running notebook
    with pytest.raises(eio.OfflineError, match=r"never-cached\.csv"):
        with eio.open("s3://some-bucket/never-cached.csv"):
            pass


def test_the_find_table_escapes_control_characters_of_labels(src: Path) -> None:
    with eio.Handler() as h:
        h.upload(src, labels={"datatype": "\x1b]0;TITLE\x07\x1b[2J"})
    for columns in ([], ["--columns", "labels.datatype"]):
        done = subprocess.run(
            [sys.executable, "-m", "elliptio", "find", *columns],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "\x1b" not in done.stdout
        assert "\x07" not in done.stdout
        assert "\\x1b]0;TITLE\\x07" in done.stdout


def test_copying_a_folder_without_recursive_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "dd").mkdir()
    (tmp_path / "dd" / "a.txt").write_text("x")
    with pytest.raises(eio.InvalidPathError, match="recursive=True"):
        eio.cp(str(tmp_path / "dd"), str(tmp_path / "out"))
    eio.cp(str(tmp_path / "dd"), str(tmp_path / "out"), recursive=True)
    assert (tmp_path / "out" / "a.txt").read_text() == "x"
