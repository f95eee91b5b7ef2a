"""The error tree: every error is an `ElliptioError`, documented and exported, and
usage mistakes raise typed errors with a built-in base where one fits."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pandas as pd
import pytest

import elliptio as eio
from elliptio import _errors

PACKAGE = Path(eio.__file__).parent

ERRORS = [
    cls
    for cls in vars(_errors).values()
    if isinstance(cls, type)
    and issubclass(cls, BaseException)
    and cls.__module__ == _errors.__name__
]


def test_the_tree_has_the_errors_the_library_uses() -> None:
    names = {cls.__name__ for cls in ERRORS}
    assert {"ElliptioError", "UsageError", "ArgumentTypeError", "ImmutableError"} <= names
    assert {"FileNotInArtifactError", "ArtifactNotFoundError", "QueryError"} <= names


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_is_rooted_documented_and_exported(cls: type[BaseException]) -> None:
    assert issubclass(cls, eio.ElliptioError)
    assert (cls.__doc__ or "").strip(), f"{cls.__name__} has no docstring"
    assert cls.__name__ in _errors.__all__
    assert cls.__name__ in eio.__all__
    assert getattr(eio, cls.__name__) is cls
    # The tree drawn in the module docstring names it, under its parent.
    assert cls.__name__ in (_errors.__doc__ or "")


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (eio.ArgumentTypeError, TypeError),
        (eio.ImmutableError, PermissionError),
        (eio.FileNotInArtifactError, KeyError),
        (eio.ArtifactNotFoundError, KeyError),
        (eio.QueryError, ValueError),
    ],
)
def test_usage_errors_keep_their_builtin_base(
    cls: type[eio.ElliptioError], builtin: type[Exception]
) -> None:
    assert issubclass(cls, builtin)
    assert str(cls("a message")) == "a message"  # not quoted, even for a KeyError


def _bare_raises(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = exc.attr if isinstance(exc, ast.Attribute) else getattr(exc, "id", None)
            if name == "ElliptioError":
                lines.append(node.lineno)
    return lines


def test_no_module_raises_a_bare_elliptio_error() -> None:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = _bare_raises(path)
        if lines:
            found[str(path.relative_to(PACKAGE))] = lines
    assert found == {}, "raise a typed subclass of ElliptioError instead"


def test_the_ast_check_finds_a_bare_raise(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    raise ElliptioError('x')\n\ndef g():\n    raise _errors.ElliptioError\n"
    )
    assert _bare_raises(module) == [2, 5]


# -- the usage mistakes of issue 18 -------------------------------------------


@pytest.fixture
def h(tmp_path: Path) -> eio.Handler:
    handler = eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}")
    yield handler  # type: ignore[misc]
    handler.close()


def test_writing_after_commit_is_immutable(h: eio.Handler) -> None:
    with h.new("a.txt") as new:
        new.file.write_text("a")
    for write in (
        lambda: new.file.write_text("again"),
        lambda: new.file.open("wb"),
        lambda: new.file.local_path,
    ):
        with pytest.raises(eio.ImmutableError, match="committed") as info:
            write()
        assert isinstance(info.value, PermissionError)
    with pytest.raises(eio.ImmutableError, match="immutable"):
        new.artifact.file.open("wb")


def test_writing_outside_the_block_is_a_usage_error(h: eio.Handler) -> None:
    new = h.new("a.txt")
    with pytest.raises(eio.UsageError, match="inside the with block"):
        new.file.write_text("a")
    with pytest.raises(eio.UsageError, match="not committed"):
        _ = new.artifact


def test_file_with_several_files_lists_them(h: eio.Handler, tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(name)
    art = h.upload([tmp_path / "a.txt", tmp_path / "b.txt"])
    with pytest.raises(eio.UsageError, match=r"2 files.*'a\.txt', 'b\.txt'"):
        _ = art.file
    with h.new(["x.txt", "y.txt"]) as new:
        with pytest.raises(eio.UsageError, match=r"'x\.txt', 'y\.txt'"):
            _ = new.file
        new.files["x.txt"].write_text("x")
        new.files["y.txt"].write_text("y")


def test_a_missing_file_key_lists_the_files(h: eio.Handler, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    art = h.upload(tmp_path / "a.txt")
    with pytest.raises(eio.FileNotInArtifactError, match=r"no file 'b\.txt'.*'a\.txt'") as info:
        _ = art.files["b.txt"]
    assert isinstance(info.value, KeyError)
    assert art.artifact_id in str(info.value)
    assert art.files.get("b.txt") is None
    assert "a.txt" in art.files
    assert art.files == {"a.txt": art.file}
    with pytest.raises(eio.FileNotInArtifactError, match="no log file"):
        _ = art.logs["run.log"]
    with h.new("x.txt") as new:
        with pytest.raises(KeyError, match=r"'y\.txt'.*'x\.txt'"):
            new.files["y.txt"].write_text("y")
        new.file.write_text("x")


def test_many_files_are_listed_briefly(h: eio.Handler, tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(30):
        (folder / f"f{i:02d}.txt").write_text(str(i))
    art = h.upload(folder)
    with pytest.raises(eio.FileNotInArtifactError, match=r"and 10 more$"):
        _ = art.files["nope"]


def test_a_ref_of_the_wrong_type_is_a_type_error(h: eio.Handler, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    art = h.upload(tmp_path / "a.txt")
    df = h.find()
    with pytest.raises(eio.ArgumentTypeError, match=r"df\.index") as info:
        h.get(df.index)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)
    assert len(str(info.value)) < 200
    for bad in (None, 3, b"artifact_x", pd.Series([art.artifact_id] * 1000)):
        with pytest.raises(eio.ArgumentTypeError, match=type(bad).__name__) as info:
            h.get(bad)  # type: ignore[arg-type]
        assert len(str(info.value)) < 200
    # An Artifact is a reference to itself.
    assert h.get(art).artifact_id == art.artifact_id
    assert h.resolve(art) == art.artifact_id


def test_usage_errors_are_documented_where_raised() -> None:
    assert "UsageError" in (inspect.getdoc(eio.Artifact.file) or "")
    assert "ArgumentTypeError" in (inspect.getdoc(eio.AsyncHandler.resolve) or "")


def test_a_storage_error_names_the_next_step_its_cause_asks_for(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No credentials, or no such bucket, were told to 'check that the storage is
    reachable and writable, then retry', which retrying never fixes (helper-57)."""
    src = tmp_path / "t.csv"
    src.write_text("a\n1\n")
    catalog = f"sqlite:///{tmp_path / 'c.db'}"
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    with eio.Handler(
        storage="s3://no-such-bucket/lake", catalog=catalog, storage_options=options
    ) as h:
        with pytest.raises(eio.StorageError, match="check the bucket in the storage URL"):
            h.upload(src)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bare = {"endpoint_url": s3_endpoint}
    with eio.Handler(storage="s3://elliptio-test/lake", catalog=catalog, storage_options=bare) as h:
        with pytest.raises(eio.StorageError, match="give the storage credentials"):
            h.upload(src)
