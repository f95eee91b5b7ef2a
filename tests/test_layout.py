"""Ids, layout and relpath rules: pure functions, no filesystem except for collect."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elliptio._errors import ArtifactNotFoundError, InputFileNotFoundError, InvalidPathError
from elliptio._layout import (
    ARTIFACT_ID_RE,
    artifact_prefix,
    collect_local_files,
    new_artifact_id,
    new_run_id,
    validate_artifact_id,
    validate_relpath,
    validate_relpaths,
)


def test_ids_are_prefixed_uuid4() -> None:
    assert ARTIFACT_ID_RE.fullmatch(new_artifact_id())
    assert new_run_id().startswith("run_")
    assert new_artifact_id() != new_artifact_id()
    assert validate_artifact_id("artifact_b4c31f3a-c25d-4dda-aa74-cab7245116f8")
    with pytest.raises(ArtifactNotFoundError, match="not an artifact id"):
        validate_artifact_id("artifact_x")


def test_prefix_uses_utc_date_user_and_time() -> None:
    cet = timezone(timedelta(hours=1))
    t = datetime(2023, 12, 3, 0, 42, 55, 338000, tzinfo=cet)  # 2023-12-02 23:42:55 UTC
    assert (
        artifact_prefix("/lake/", t, "andy", "artifact_1")
        == "/lake/2023/12/02/andy/234255_artifact_1"
    )
    assert artifact_prefix("bucket/lake", t.astimezone(UTC), "b", "a").startswith("bucket/lake/")


@pytest.mark.parametrize(
    ("given_", "normal"),
    [
        ("a.txt", "a.txt"),
        ("./a.txt", "a.txt"),
        ("sub/./dir/x.csv", "sub/dir/x.csv"),
        ("with space/ü.txt", "with space/ü.txt"),
        (".hidden", ".hidden"),
        ("..dots", "..dots"),
        ("a/.elliptio/b", "a/.elliptio/b"),
    ],
)
def test_valid_relpaths_are_normalised(given_: str, normal: str) -> None:
    assert validate_relpath(given_) == normal


@given(st.text())
def test_validated_relpaths_are_always_safe(text: str) -> None:
    try:
        result = validate_relpath(text)
    except InvalidPathError:
        return
    parts = result.split("/")
    assert "" not in parts
    assert ".." not in parts
    assert "." not in parts
    assert not result.startswith("/")
    assert "\\" not in result
    assert parts[0] != ".elliptio"
    assert all(ord(c) >= 0x20 and ord(c) != 0x7F for c in result)


def test_relpath_sets_refuse_clashes() -> None:
    with pytest.raises(InvalidPathError, match="twice"):
        validate_relpaths(["a", "./a"])
    with pytest.raises(InvalidPathError, match="inside 'a'"):
        validate_relpaths(["a", "a/b"])
    with pytest.raises(InvalidPathError, match="at least one"):
        validate_relpaths([])


def test_collect_files_relative_to_common_parent(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "train.txt").write_text("a")
    (tmp_path / "docs" / "test.txt").write_text("b")
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "x.bin").write_bytes(b"x")
    parent, files = collect_local_files(
        [tmp_path / "docs" / "train.txt", tmp_path / "docs" / "test.txt"]
    )
    assert parent == tmp_path / "docs"
    assert [r for _, r in files] == ["train.txt", "test.txt"]
    parent, files = collect_local_files([tmp_path / "data", tmp_path / "docs" / "test.txt"])
    assert parent == tmp_path
    assert [r for _, r in files] == ["data/sub/x.bin", "docs/test.txt"]
    with pytest.raises(InputFileNotFoundError):
        collect_local_files(tmp_path / "missing")


def _folder_with_links(tmp_path: Path) -> Path:
    """``up/`` with a file and a folder, and symlinks to both that stay inside."""
    up = tmp_path / "up"
    (up / "data" / "sub").mkdir(parents=True)
    (up / "data" / "sub" / "x.txt").write_text("x")
    (up / "a.txt").write_text("a")
    (up / "to_a.txt").symlink_to("a.txt")
    (up / "data" / "to_a_abs.txt").symlink_to(up / "a.txt")
    (up / "to_data").symlink_to("data", target_is_directory=True)
    return up


def test_symlinks_inside_an_uploaded_folder_are_followed(tmp_path: Path) -> None:
    up = _folder_with_links(tmp_path)
    parent, files = collect_local_files(up)
    assert parent == tmp_path
    assert [r for _, r in files] == [
        "up/a.txt",
        "up/data/sub/x.txt",
        "up/data/to_a_abs.txt",
        "up/to_a.txt",
        "up/to_data/sub/x.txt",
        "up/to_data/to_a_abs.txt",
    ]
    # Each is read from the file the link resolves to, none through a symlink.
    read = dict((r, p) for p, r in files)
    assert read["up/to_a.txt"] == up / "a.txt"
    assert read["up/to_data/sub/x.txt"] == up / "data" / "sub" / "x.txt"
    assert all(p.read_text() in "ax" for p, _ in files)


@pytest.mark.parametrize(
    ("where", "points_to", "problem"),
    [
        ("link", "{out}/secret.txt", "outside the uploaded folder"),
        ("data/link", "../../out/secret.txt", "outside the uploaded folder"),
        ("link", "{out}", "outside the uploaded folder"),
        ("link", "{up}/missing.txt", "does not exist"),
        ("data/sub/link", "..", "holds the link itself"),
        ("link", ".", "holds the link itself"),
    ],
    ids=["file outside", "relative outside", "folder outside", "dangling", "parent", "itself"],
)
def test_a_symlink_in_an_uploaded_folder_out_of_it_nowhere_or_round_is_refused(
    tmp_path: Path, where: str, points_to: str, problem: str
) -> None:
    up = _folder_with_links(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "secret.txt").write_text("not for the store")
    link = up / where
    link.symlink_to(points_to.format(up=up, out=out))
    with pytest.raises(InvalidPathError, match=problem) as info:
        collect_local_files(up)
    message = str(info.value)
    assert repr(str(link)) in message
    assert repr(os.path.realpath(link)) in message
    if problem.startswith("outside"):
        assert "explicitly" in message


def test_a_symlink_given_explicitly_is_followed(tmp_path: Path) -> None:
    up = _folder_with_links(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "far.txt").write_text("far")
    (up / "far_link.txt").symlink_to(tmp_path / "out" / "far.txt")
    # Given explicitly: the user's choice, so uploaded, under the link's name.
    parent, files = collect_local_files([up / "far_link.txt", up / "a.txt"])
    assert parent == up
    assert [(p.read_text(), r) for p, r in files] == [("far", "far_link.txt"), ("a", "a.txt")]
    # A folder given through a symlink is walked; links in it resolve inside it.
    (tmp_path / "alias").symlink_to(up, target_is_directory=True)
    (up / "far_link.txt").unlink()
    _, files = collect_local_files(tmp_path / "alias")
    assert [r for _, r in files][:2] == ["alias/a.txt", "alias/data/sub/x.txt"]
    assert len(files) == 6
