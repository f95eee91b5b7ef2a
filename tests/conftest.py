"""Shared fixtures: every test runs isolated from the user's real settings and data."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from hypothesis import settings

import elliptio as eio

# CI replays the same generated cases on every run, so a red build is reproducible;
# local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No ELLIPTIO_* variable, no .env and no user data dir of the real user."""
    for name in list(os.environ):
        if name.startswith("ELLIPTIO_"):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(params=["file", "memory"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store on each filesystem the suite covers."""
    if request.param == "file":
        yield str(tmp_path / "store")
    else:
        root = f"memory://lake-{uuid.uuid4().hex}"
        yield root
        fs = fsspec.filesystem("memory")
        path = root.removeprefix("memory://")
        if fs.exists(path):
            fs.rm(path, recursive=True)


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def handler(storage_url: str, catalog_url: str) -> Iterator[eio.Handler]:
    h = eio.Handler(storage=storage_url, catalog=catalog_url)
    yield h
    h.close()


@pytest.fixture
async def ahandler(storage_url: str, catalog_url: str) -> AsyncIterator[eio.AsyncHandler]:
    async with eio.AsyncHandler(storage=storage_url, catalog=catalog_url) as h:
        yield h


@pytest.fixture
def data_files(tmp_path: Path) -> dict[str, Path]:
    """The story's two annotation files."""
    docs = tmp_path / "docs"
    docs.mkdir()
    train = docs / "train.txt"
    test = docs / "test.txt"
    train.write_text("path,class\n/path/to/image2.png,0\n/path/to/image3.png,1\n")
    test.write_text("path,class\n/path/to/image0.png,0\n/path/to/image1.png,1\n")
    return {"train": train, "test": test}


def snapshot(h: eio.Handler | eio.AsyncHandler) -> tuple[list[str], list[Any]]:
    """Everything under the store's root and every catalog document."""
    from elliptio._sync import sync

    storage = h.storage
    fs = storage.fs
    paths = sorted(fs.find(storage.root)) if fs.exists(storage.root) else []
    catalog = h.catalog
    docs = sync(catalog.find({}, sort=[("artifact_id", 1)]))
    return paths, docs
