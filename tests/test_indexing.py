"""Writers with storage credentials only, indexed later: ``catalog="none"``,
``reindex(prefix=...)`` / ``elliptio reindex --prefix``, and ``index_event`` for S3
event notifications.

The indexer side runs on SQLite and on MongoDB (mongomock-motor); storage on local
disk and S3 (the moto server), except for events, which only S3 sends.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._cli import main
from elliptio._layout import METADATA_RELPATH
from tests.conftest import S3_BUCKET


@pytest.fixture(params=["sqlite", "mongomock"])
def catalog_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    from mongomock_motor import AsyncMongoMockClient

    return AsyncMongoMockClient()["elliptio"][f"artifacts_{uuid.uuid4().hex[:8]}"]


@pytest.fixture
def s3_store(s3_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    return f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / "store")
    return str(request.getfixturevalue("s3_store"))


@pytest.fixture
def writer(store: str) -> Iterator[eio.Handler]:
    handler = eio.Handler(storage=store, catalog="none")
    yield handler
    handler.close()


@pytest.fixture
def indexer(store: str, catalog_spec: Any) -> Iterator[eio.Handler]:
    handler = eio.Handler(storage=store, catalog=catalog_spec)
    yield handler
    handler.close()


def _folder(handler: eio.Handler, art: eio.Artifact) -> str:
    """The artifact's folder relative to the store's root."""
    root = handler.storage.root_url.rstrip("/")
    url = art.files[next(iter(art.files))].url
    return url[len(root) + 1 :].rsplit("/", 1)[0]


def _event(*keys: str, name: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": name,
                "s3": {
                    "bucket": {"name": S3_BUCKET},
                    "object": {"key": urllib.parse.quote_plus(key, safe="/")},
                },
            }
            for key in keys
        ]
    }


def _sidecar_key(handler: eio.Handler, art: eio.Artifact) -> str:
    root = handler.storage.root_url.removeprefix(f"s3://{S3_BUCKET}/").rstrip("/")
    return f"{root}/{_folder(handler, art)}/{METADATA_RELPATH}"


def test_a_storage_only_writer_writes_files_and_sidecar_and_no_record(
    writer: eio.Handler, indexer: eio.Handler, data_files: dict[str, Path]
) -> None:
    art = writer.upload(data_files["train"], labels={"project": "p"})
    with writer.new(["b.txt"]) as new:
        new.file.write_text("written")
    assert art.file.read_bytes() == data_files["train"].read_bytes()
    assert indexer.count({}) == 0
    sidecar = f"{writer.storage.root_url}/{_folder(writer, art)}/{METADATA_RELPATH}"
    assert writer.storage.fs.exists(writer.storage.path(sidecar))
    with pytest.raises(eio.UsageError, match="storage only"):
        writer.find({})
    with pytest.raises(eio.UsageError, match="storage only"):
        writer.get(art.artifact_id)
    # gc, run by the team, leaves whole sidecars of unindexed commits alone.
    assert indexer.gc(grace=timedelta(0), delete=True).removed == []

    report = indexer.reindex()
    assert sorted(report.added) == sorted([art.artifact_id, new.artifact.artifact_id])
    got = indexer.get(art.artifact_id)
    assert got.metadata.labels.project == "p"
    assert got.file.read_bytes() == data_files["train"].read_bytes()
    assert indexer.get(new.artifact.artifact_id).file.read_text() == "written"


def test_a_storage_only_writer_refuses_names_before_writing(
    writer: eio.Handler, data_files: dict[str, Path]
) -> None:
    with pytest.raises(eio.UsageError, match="storage only"):
        writer.upload(data_files["train"], name="train-set")
    assert writer.storage.fs.find(writer.storage.root) == []


def test_reindex_prefix_indexes_only_that_folder_and_is_incremental(
    writer: eio.Handler, indexer: eio.Handler, data_files: dict[str, Path]
) -> None:
    with eio.mock_username("andy"):
        a = writer.upload(data_files["train"])
    with eio.mock_username("brenda"):
        b = writer.upload(data_files["test"])
    andy = _folder(writer, a).rsplit("/", 1)[0]
    assert andy.endswith("/andy")
    assert indexer.reindex(prefix=andy).added == [a.artifact_id]
    assert indexer.count({}) == 1
    assert indexer.reindex(prefix=andy).unchanged == [a.artifact_id]
    # One artifact's folder, and the same as a URL under the root.
    url = f"{writer.storage.root_url}/{_folder(writer, b)}"
    assert indexer.reindex(prefix=url).added == [b.artifact_id]
    day = andy.rsplit("/", 1)[0]
    assert sorted(indexer.reindex(prefix=day).unchanged) == sorted([a.artifact_id, b.artifact_id])


@pytest.mark.parametrize(
    "prefix",
    [
        "../outside",
        "/etc",
        "2026/*/04",
        "2026/12/04/andy/x/y",
        "2026//12",
        "s3://other/x",
        # Folders the layout never makes: reported "added 0" as if done (helper-57).
        "2026/12/5",
        "2099/13/45",
        "26/12",
        "2026/12/04/andy/not-an-artifact",
    ],
)
def test_reindex_prefix_refuses_what_is_no_layout_folder(indexer: eio.Handler, prefix: str) -> None:
    with pytest.raises(eio.InvalidPathError, match="layout"):
        indexer.reindex(prefix=prefix)


@pytest.mark.parametrize("prefix", [5, b"2026", ["2026"]])
def test_reindex_prefix_of_another_type_is_a_typed_error(indexer: eio.Handler, prefix: Any) -> None:
    with pytest.raises(eio.ArgumentTypeError, match="prefix must be a str"):
        indexer.reindex(prefix=prefix)


def test_cli_reindex_prefix(
    store: str, tmp_path: Path, data_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--storage", store, "--catalog", "none", "upload", str(data_files["train"])]) == 0
    capsys.readouterr()
    day = "{:04d}/{:02d}/{:02d}".format(*time.gmtime()[:3])
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    args = ["--storage", store, "--catalog", catalog, "reindex", "--prefix", day]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("added 1, ")
    assert main(args) == 0
    assert "added 0, unchanged 1" in capsys.readouterr().out
    assert main([*args[:-1], "../x"]) == 1
    assert "no folder of the store's layout" in capsys.readouterr().err


# -- S3 events -------------------------------------------------------------------


# Only S3 sends events: the writer and indexer on the S3 store alone.
s3_only = pytest.mark.parametrize("store", ["s3"], indirect=True)


@s3_only
def test_an_event_delivered_twice_indexes_once(
    writer: eio.Handler, indexer: eio.Handler, data_files: dict[str, Path]
) -> None:
    with eio.mock_username("andy smith"):  # a space: S3 sends the key URL-encoded
        art = writer.upload(data_files["train"], labels={"datatype": "table"})
    event = _event(_sidecar_key(writer, art))
    first = eio.index_event(event, indexer)
    assert first["added"] == [art.artifact_id]
    assert eio.index_event(event, indexer)["unchanged"] == [art.artifact_id]
    assert indexer.count({}) == 1
    got = indexer.get(art.artifact_id)
    assert got.metadata.labels.datatype == "table"
    assert got.file.read_bytes() == data_files["train"].read_bytes()
    json.dumps(first)  # what a Lambda function returns


@s3_only
def test_an_event_outside_the_store_or_its_layout_is_refused(
    writer: eio.Handler, indexer: eio.Handler, data_files: dict[str, Path]
) -> None:
    art = writer.upload(data_files["train"])
    good = _sidecar_key(writer, art)
    outside = good.replace(good.split("/", 1)[0], "elsewhere", 1)
    traversal = good.replace("/20", "/../20", 1)
    report = eio.index_event(
        _event(outside, traversal, good.replace(METADATA_RELPATH, "train.txt")), indexer
    )
    assert report["added"] == []
    assert len(report["refused"]) == 2
    assert len(report["ignored"]) == 1
    removed = eio.index_event(_event(good, name="ObjectRemoved:Delete"), indexer)
    assert removed["ignored"] == [f"s3://{S3_BUCKET}/{good}"]
    assert indexer.count({}) == 0


@s3_only
def test_a_planted_sidecar_naming_files_outside_the_store_is_not_indexed(
    writer: eio.Handler, indexer: eio.Handler, data_files: dict[str, Path]
) -> None:
    art = writer.upload(data_files["train"])
    key = _sidecar_key(writer, art)
    fs = writer.storage.fs
    record = json.loads(fs.cat_file(f"{S3_BUCKET}/{key}"))
    record["files"][0]["url"] = f"s3://{S3_BUCKET}/elsewhere/secret.txt"
    # A storage writer replaces the sidecar (sealing is the store's Object Lock's job).
    fs.rm_file(f"{S3_BUCKET}/{key}")
    fs.pipe_file(f"{S3_BUCKET}/{key}", json.dumps(record).encode())
    report = eio.index_event(_event(key), indexer)
    assert report["unreadable"] == [art.artifact_id]
    assert indexer.count({}) == 0


@s3_only
def test_index_event_refuses_what_is_no_s3_event(indexer: eio.Handler) -> None:
    for event in ({}, {"Records": "x"}, [], "event"):
        with pytest.raises(eio.UsageError, match="S3 event notification"):
            eio.index_event(event, indexer)
    broken = eio.index_event({"Records": [{"s3": {}}]}, indexer)
    assert broken["refused"] == ["Records[0]: no s3.bucket.name and s3.object.key"]


@s3_only
def test_index_event_builds_its_handler_from_the_settings(
    writer: eio.Handler, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    data_files: dict[str, Path],
) -> None:  # fmt: skip
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", store)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'lambda.db'}")
    art = writer.upload(data_files["test"])
    assert eio.index_event(_event(_sidecar_key(writer, art)))["added"] == [art.artifact_id]
    with eio.Handler() as h:
        assert h.get(art.artifact_id).file.read_bytes() == data_files["test"].read_bytes()
