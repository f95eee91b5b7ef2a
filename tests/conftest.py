"""Shared fixtures: every test runs isolated from the user's real settings and data."""

from __future__ import annotations

import json
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
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    # Each test starts a fresh default run, as a new process would.
    import elliptio._runs as runs
    import elliptio._urls as urls

    monkeypatch.setattr(runs, "_process_run", None)
    # ... and builds its URL tools from the settings of this test.
    monkeypatch.setattr(urls._default, "_value", None)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """ELLIPTIO_* settings of a store, a SQLite catalog and a cache under tmp_path,
    set in the environment, as a CLI user would export them."""
    import elliptio._urls as urls

    settings = {
        "ELLIPTIO_STORAGE_URL": str(tmp_path / "store"),
        "ELLIPTIO_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
        "ELLIPTIO_CACHE_DIR": str(tmp_path / "cache"),
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(urls._default, "_value", None)
    return settings


S3_BUCKET = "elliptio-test"
# Dummy credentials: moto accepts any; real ones must never be picked up.
S3_CREDENTIALS = {"key": "testing", "secret": "testing"}


@pytest.fixture(scope="session")
def moto() -> Iterator[Any]:
    """One moto S3 server on loopback for the session (as s3fs's own tests run it).

    Tests reach it over real HTTP through s3fs; `s3_endpoint` resets it before
    each test that uses it. It counts the S3 requests it serves.
    """
    from tests.moto_server import CountingMotoServer

    server = CountingMotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(moto: Any) -> str:
    host, port = moto.get_host_and_port()
    return f"http://{host}:{port}"


@pytest.fixture
def s3_endpoint(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto endpoint, reset to one empty bucket, with no stale s3fs state."""
    import requests
    import s3fs

    requests.post(f"{s3_server}/moto-api/reset", timeout=10).raise_for_status()
    s3fs.S3FileSystem.clear_instance_cache()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # A reader that forgets storage_options gets a fast connection error from a
    # closed local port instead of reaching real AWS.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    # One plain PUT (moto checks no signature): a new s3fs client per test costs
    # 0.1-0.3 s of botocore set-up, times some 250 S3 tests.
    requests.put(f"{s3_server}/{S3_BUCKET}", timeout=10).raise_for_status()
    return s3_server


@pytest.fixture
def s3_options(s3_endpoint: str) -> dict[str, Any]:
    """Storage options that reach the moto server."""
    return {"endpoint_url": s3_endpoint, **S3_CREDENTIALS}


@pytest.fixture(params=["file", "memory", "s3"])
def storage_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh, empty store on each filesystem the suite covers.

    For ``s3`` the options reach the handler the way users give them, through
    ``ELLIPTIO_STORAGE_OPTIONS``.
    """
    if request.param == "file":
        yield str(tmp_path / "store")
    elif request.param == "s3":
        options = request.getfixturevalue("s3_options")
        monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(options))
        yield f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}"
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


def count_delivered(backend: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the bytes ``backend``'s reads hand over (in the returned list's one item)."""
    real = backend.stream
    delivered = [0]

    async def stream(path: str, write: Any, progress: Any = None) -> Any:
        def counted(chunk: Any) -> None:
            delivered[0] += len(chunk)
            write(chunk)

        return await real(path, counted if write is not None else None, progress)

    monkeypatch.setattr(backend, "stream", stream)
    return delivered
