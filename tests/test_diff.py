"""Comparing two artifacts: files by sha256, labels, sizes; the library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import elliptio as eio
from elliptio._cli import main


def _versions(tmp_path: Path, h: eio.Handler) -> tuple[eio.Artifact, eio.Artifact]:
    v1 = tmp_path / "one" / "data"  # the folder's name is part of each relpath
    v2 = tmp_path / "two" / "data"
    for folder in (v1, v2):
        folder.mkdir(parents=True)
    (v1 / "same.csv").write_text("a\n1\n")
    (v2 / "same.csv").write_text("a\n1\n")
    (v1 / "changed.csv").write_text("a\n1\n")
    (v2 / "changed.csv").write_text("a\n2\n")  # same size, other bytes
    (v1 / "gone.txt").write_text("only in v1")
    (v2 / "new.txt").write_text("only in v2, longer")
    first = h.upload(v1, name="set", labels=eio.Labels(datatype="csv", infos={"seed": 1}))
    second = h.upload(
        v2, name="set", labels=eio.Labels(datatype="csv", project="p", infos={"seed": 2})
    )
    return first, second


def test_diff_lists_files_labels_and_sizes(handler: eio.Handler, tmp_path: Path) -> None:
    first, second = _versions(tmp_path, handler)
    with handler.run() as run:
        result = handler.diff("set:v1", "set:latest")
    assert run.inputs == []  # comparing records reads no artifact
    assert (result.a, result.b) == ("set:v1", "set:v2")
    assert result.added == ["data/new.txt"]
    assert result.removed == ["data/gone.txt"]
    assert result.changed == ["data/changed.csv"]
    assert result.unchanged == ["data/same.csv"]
    assert result.labels == {"infos.seed": (1, 2), "project": (None, "p")}
    assert result.size_a == sum(f.size for f in first.files.values())
    assert result.size_b == sum(f.size for f in second.files.values())
    assert not result.same
    assert handler.diff(first.artifact_id, "set:v1").same
    text = str(result)
    assert "+ data/new.txt" in text
    assert "- data/gone.txt" in text
    assert "~ data/changed.csv" in text
    assert "labels.project: (absent) -> 'p'" in text


def test_diff_of_an_unknown_ref_is_not_found(handler: eio.Handler, tmp_path: Path) -> None:
    _versions(tmp_path, handler)
    with pytest.raises(eio.ArtifactNotFoundError):
        handler.diff("set:v1", "set:v9")


def test_diff_of_a_deleted_artifact_says_it_was_deleted(
    handler: eio.Handler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tombstone keeps no files or labels: diff listed every file of the other
    artifact as added and exited 0 (helper-42); show, cat and verify refuse it."""
    first, second = _versions(tmp_path, handler)
    handler.delete("set:v2", reason="bad split")  # v2 refers to v1's same.csv
    for a, b in (("set:v1", "set:v2"), (second.artifact_id, first.artifact_id)):
        with pytest.raises(eio.ArtifactDeletedError, match="bad split"):
            handler.diff(a, b)


def test_diff_shows_dates_in_iso_8601_and_no_empty_infos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`diff --format json` wrote a date label as Python's str() ("2026-01-01
    00:00:00+00:00"), the text form as its repr(), and an artifact without infos
    showed `infos: (absent) -> {}` as a change."""
    from datetime import UTC, datetime

    storage, catalog = str(tmp_path / "store"), f"sqlite:///{tmp_path / 'c.db'}"
    (tmp_path / "a.csv").write_text("a\n")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with eio.Handler(storage=storage, catalog=catalog) as h:
        h.upload(tmp_path / "a.csv", name="d", labels=eio.Labels(infos={"t": when}))
        h.upload(tmp_path / "a.csv", name="d")
        assert h.diff("d:v1", "d:v2").labels == {"infos.t": (when, None)}
    args = ["--storage", storage, "--catalog", catalog, "diff", "d:v1", "d:v2"]
    assert main([*args, "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["labels"] == {"infos.t": {"a": "2026-01-02T03:04:05+00:00", "b": None}}
    assert main(args) == 0
    assert "labels.infos.t: 2026-01-02T03:04:05+00:00 -> (absent)" in capsys.readouterr().out


def test_diff_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, catalog = str(tmp_path / "store"), f"sqlite:///{tmp_path / 'c.db'}"
    with eio.Handler(storage=storage, catalog=catalog) as h:
        _versions(tmp_path, h)
    args = ["--storage", storage, "--catalog", catalog, "diff", "set:v1", "set:v2"]
    assert main([*args, "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["changed"] == ["data/changed.csv"]
    assert found["labels"]["infos.seed"] == {"a": 1, "b": 2}
    assert main(args) == 0
    assert "~ data/changed.csv" in capsys.readouterr().out
    assert main([*args[:-1], "nope:v1"]) == 1
    err = capsys.readouterr().err
    assert "nope" in err
    assert "Traceback" not in err


def test_labels_that_queries_tell_apart_are_not_the_same(
    handler: eio.Handler, tmp_path: Path
) -> None:
    """True and 1 are == in Python: diff said 'same' where a query on the label
    finds one and not the other (helper-56)."""
    src = tmp_path / "a.txt"
    src.write_text("a\n")
    x = handler.upload(src, labels={"infos": {"flag": 1, "lr": 1, "tags": [True]}})
    y = handler.upload(src, labels={"infos": {"flag": True, "lr": 1.0, "tags": [1]}})
    result = handler.diff(x.artifact_id, y.artifact_id)
    assert set(result.labels) == {"infos.flag", "infos.tags"}  # 1 == 1.0 for queries too
    assert not result.same
    assert handler.count({"labels.infos.flag": True}) == 1
