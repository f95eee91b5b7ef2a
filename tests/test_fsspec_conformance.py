"""fsspec's own abstract test suites, run against the ``elliptio://`` filesystem.

As s3fs and gcsfs do, the fixtures are subclassed; the source scenarios of the
suites are built on local disk and uploaded as one artifact each, since an
artifact is the only way files appear under ``elliptio://``. The read side (the
get suite) must pass as written. Every write of the copy, put, open and pipe
suites must be refused with `eio.ImmutableError` (a `PermissionError`, what
fsspec callers expect of a read-only filesystem) naming the URL and the next
step: each of those tests runs unchanged and passes only if that refusal ends it.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.tests.abstract import (
    AbstractCopyTests,
    AbstractFixtures,
    AbstractGetTests,
    AbstractOpenTests,
    AbstractPipeTests,
    AbstractPutTests,
)

import elliptio as eio
from elliptio._protocol import ElliptioFileSystem


class ElliptioFixtures(AbstractFixtures):  # type: ignore[misc]
    """The suites' fixtures over a fresh store and catalog per test."""

    @pytest.fixture(params=["file", "memory"])
    def store_kind(self, request: pytest.FixtureRequest) -> str:
        # On local disk files are served from the store; on memory:// through the cache.
        return str(request.param)

    @pytest.fixture
    def handler(self, store_kind: str, tmp_path: Path) -> Iterator[eio.Handler]:
        store = str(tmp_path / "store") if store_kind == "file" else f"memory://{tmp_path.name}"
        h = eio.Handler(storage=store, catalog=f"sqlite:///{tmp_path / 'catalog.db'}")
        yield h
        h.close()

    @pytest.fixture
    def fs(self, handler: eio.Handler) -> ElliptioFileSystem:
        # As users get it: artifacts resolve through the handler that made them.
        return ElliptioFileSystem()

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join

    @pytest.fixture
    def fs_path(self, handler: eio.Handler, tmp_path: Path) -> str:
        """A folder of an artifact holding ``src/file`` (see `TestGet`)."""
        (tmp_path / "root" / "src").mkdir(parents=True)
        (tmp_path / "root" / "src" / "file").write_bytes(b"")
        return f"{handler.upload(tmp_path / 'root').artifact_id}/root"

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False  # an artifact holds files; its folders exist through them

    def _uploaded(
        self,
        handler: eio.Handler,
        tmp_path: Path,
        build: Callable[[LocalFileSystem, Callable[..., str], str], str],
    ) -> str:
        """Build a scenario on local disk and upload its ``source`` folder."""
        base = tmp_path / "scenario"
        source = build(LocalFileSystem(auto_mkdir=True), posixpath.join, str(base))
        art = handler.upload(source)
        return f"{art.artifact_id}/source"

    # The scenarios on "the remote" are artifacts: built locally, uploaded, never removed.
    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, handler: eio.Handler, tmp_path: Path) -> str:
        return self._uploaded(handler, tmp_path, self._bulk_operations_scenario_0)

    @pytest.fixture
    def fs_glob_edge_cases_files(self, handler: eio.Handler, tmp_path: Path) -> str:
        return self._uploaded(handler, tmp_path, self._glob_edge_cases_files)

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, handler: eio.Handler, tmp_path: Path) -> str:
        return self._uploaded(handler, tmp_path, self._dir_and_file_with_same_name_prefix)

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, handler: eio.Handler, tmp_path: Path) -> str:
        return self._uploaded(handler, tmp_path, self._10_files_with_hashed_names)


class _Uploaded:
    """The filesystem, where making a folder or an empty file checks it was uploaded."""

    def __init__(self, fs: ElliptioFileSystem) -> None:
        self._fs = fs

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)

    def mkdir(self, path: str) -> None:
        assert self._fs.isdir(path)

    def touch(self, path: str) -> None:
        assert self._fs.cat_file(path) == b""


class TestGet(ElliptioFixtures, AbstractGetTests):  # type: ignore[misc]
    """Reading out of artifacts: fsspec's get suite, unchanged."""

    def test_get_directory_recursive(
        self,
        fs: ElliptioFileSystem,
        fs_join: Any,
        fs_path: str,
        local_fs: Any,
        local_join: Any,
        local_target: str,
    ) -> None:
        """fsspec's test; its source ``src/file`` is uploaded (`fs_path`), not written."""
        with pytest.raises(eio.ImmutableError):
            fs.mkdir(posixpath.join(fs_path, "src"))
        super().test_get_directory_recursive(
            _Uploaded(fs), fs_join, fs_path, local_fs, local_join, local_target
        )


def _refused(test: Callable[..., None]) -> Callable[..., None]:
    """Run a write test of fsspec's suite; it must end in the refusal of a write."""

    @functools.wraps(test)  # keeps the fixtures and parametrize marks
    def run(*args: Any, **kwargs: Any) -> None:
        with pytest.raises(eio.ImmutableError) as refused:
            test(*args, **kwargs)
        message = str(refused.value)
        assert "elliptio://" in message
        assert "Handler.new()" in message
        assert isinstance(refused.value, PermissionError)

    return run


def _memory_store(self: Any) -> str:
    return "memory"  # a refusal does not depend on the store: one kind is enough


def _writes_refused(suite: type) -> type:
    """A copy of a write suite whose every test must meet the refusal."""
    tests: dict[str, Any] = {
        name: _refused(getattr(suite, name)) for name in dir(suite) if name.startswith("test_")
    }
    tests["store_kind"] = pytest.fixture(_memory_store, name="store_kind")
    return type(f"Refused{suite.__name__}", (), tests)


class TestCopy(_writes_refused(AbstractCopyTests), ElliptioFixtures):  # type: ignore[misc]
    """Copying into elliptio:// is refused."""


class TestPut(_writes_refused(AbstractPutTests), ElliptioFixtures):  # type: ignore[misc]
    """Uploading into elliptio:// is refused."""


class TestOpen(_writes_refused(AbstractOpenTests), ElliptioFixtures):  # type: ignore[misc]
    """Opening for writing is refused."""


class TestPipe(_writes_refused(AbstractPipeTests), ElliptioFixtures):  # type: ignore[misc]
    """Writing bytes is refused."""
