"""The core through the public API only, sync and async, on file://, memory:// and s3://.

The ``s3`` case talks HTTP to a moto server through s3fs; every reader other than
elliptio gets the store's options from ``storage_options`` (an empty dict on
local disk and memory), exactly as a user would pass them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pandas as pd
import pytest

import elliptio as eio


def test_user_story(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    with eio.mock_username("andy"):
        andy = handler.upload(
            local_paths=[data_files["train"], data_files["test"]],
            labels=eio.Labels(
                ticket="AB-123",
                project="awesome-project",
                datatype="annotation_file",
                infos={"stratification": "new special method"},
            ),
        )
    df = handler.find(
        query={
            "username": "andy",
            "labels.datatype": "annotation_file",
            "creation_time": {"$gte": datetime.now(tz=UTC) - timedelta(days=7)},
            "file_relpaths": {"$regex": r"\.txt"},
        },
        max_docs=1,
    )
    assert list(df.index) == [andy.metadata.artifact_id]
    assert df.index.name == "artifact_id"
    assert df.loc[andy.artifact_id, "labels.infos.stratification"] == "new special method"
    assert "python_packages" not in df.columns

    with handler.run():
        artifact = handler.get(df.index[0])
        table = pd.read_csv(
            artifact.files["test.txt"].remote_url,
            storage_options=artifact.files["test.txt"].storage_options or None,
        )
        assert table.to_dict("list") == {
            "path": ["/path/to/image0.png", "/path/to/image1.png"],
            "class": [0, 1],
        }
        assert artifact.metadata.python_packages["pandas"] == pd.__version__

        with eio.mock_username("brenda"), handler.new(["model.pt"]) as new:
            with fsspec.open(new.file.remote_url, "w", **new.file.storage_options) as f:
                f.write("dummy_model")
        assert handler.based_on == [andy.artifact_id]

    found = handler.find(query={"based_on": andy.metadata.artifact_id})
    assert list(found.index) == [new.artifact.artifact_id]
    assert found.loc[new.artifact.artifact_id, "username"] == "brenda"
    model = handler.get(new.artifact.artifact_id)
    assert model.metadata.based_on == [andy.artifact_id]
    assert model.file.read_text() == "dummy_model"
    assert model.metadata.run_id != andy.metadata.run_id


def test_local_store_urls_are_plain_paths_for_path_writers(
    tmp_path: Path, catalog_url: str
) -> None:
    with eio.Handler(storage=tmp_path / "store", catalog=catalog_url) as h:
        with h.new(["model.pt", "sub/dir/weights.bin"]) as new:
            Path(new.files["model.pt"].url).write_text("dummy_model")
            Path(new.files["sub/dir/weights.bin"].url).write_bytes(b"\x00\x01")
        art = h.get(new.artifact_id)
        assert Path(art.files["model.pt"].url).is_absolute()
        assert art.files["model.pt"].read_text() == "dummy_model"
        assert art.files["sub/dir/weights.bin"].size == 2


def test_layout_and_sidecar(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    with eio.mock_username("andy"):
        art = handler.upload([data_files["train"]])
    m = art.metadata
    t = m.creation_time
    root = handler.storage.root_url.rstrip("/")
    expected = f"{root}/{t:%Y/%m/%d}/andy/{t:%H%M%S}_{m.artifact_id}"
    assert m.remote_root == expected
    assert art.file.url == f"{expected}/train.txt"
    with fsspec.open(f"{expected}/.elliptio/metadata.json", "r", **art.storage_options) as f:
        sidecar = json.load(f)
    assert eio.Metadata.model_validate(sidecar) == m


def test_metadata_is_captured(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    import hashlib
    import platform
    import socket
    import sys

    art = handler.upload(data_files["test"])
    m = art.metadata
    content = data_files["test"].read_bytes()
    assert m.files[0].sha256 == hashlib.sha256(content).hexdigest()
    assert m.files[0].size == len(content)
    assert m.file_relpaths == ["test.txt"]
    assert m.hostname == socket.gethostname()
    assert m.python_version == platform.python_version()
    assert m.argv[0] == sys.orig_argv[0]
    assert m.version == eio.SCHEMA_VERSION
    assert m.artifact_id.startswith("artifact_")
    assert m.run_id.startswith("run_")
    assert m.local_root == str(data_files["test"].parent)
    assert m.creation_time.tzinfo is not None


def test_upload_folder_tree(handler: eio.Handler, tmp_path: Path) -> None:
    data = tmp_path / "dataset"
    (data / "images").mkdir(parents=True)
    (data / "labels.csv").write_text("a,b\n")
    (data / "images" / "0.png").write_bytes(b"png0")
    (data / "images" / "1.png").write_bytes(b"png1")
    art = handler.upload(data)
    assert sorted(art.files) == [
        "dataset/images/0.png",
        "dataset/images/1.png",
        "dataset/labels.csv",
    ]
    assert art.files["dataset/images/1.png"].read_bytes() == b"png1"


def test_logs_are_kept(handler: eio.Handler, data_files: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("epoch 1 loss 0.3\n")
    art = handler.upload(data_files["train"], logs=[log])
    assert art.metadata.log_relpaths == ["train.log"]
    assert art.logs["train.log"].read_text() == "epoch 1 loss 0.3\n"
    assert "/.elliptio/logs/train.log" in art.logs["train.log"].url


def test_new_three_ways_to_write(handler: eio.Handler) -> None:
    with handler.new(["a.bin", "b.txt", "c.csv", "d.txt"]) as new:
        with new.files["a.bin"].open("wb") as f:
            f.write(b"bytes-a")
        new.files["b.txt"].write_text("text-b")
        pd.DataFrame({"x": [1, 2]}).to_csv(new.files["c.csv"].local_path, index=False)
        with fsspec.open(new.files["d.txt"].url, "w", **new.files["d.txt"].storage_options) as f:
            f.write("url-d")
    art = handler.get(new.artifact_id)
    assert art.files["a.bin"].read_bytes() == b"bytes-a"
    assert art.files["b.txt"].read_text() == "text-b"
    csv = pd.read_csv(art.files["c.csv"].url, storage_options=art.storage_options or None)
    assert csv.to_dict("list") == {"x": [1, 2]}
    assert art.files["d.txt"].read_text() == "url-d"
    import hashlib

    assert art.files["a.bin"].sha256 == hashlib.sha256(b"bytes-a").hexdigest()


def test_a_new_files_local_path_is_also_called_as_a_committed_files_is(
    handler: eio.Handler,
) -> None:
    """`new.file.local_path()` raised "'PosixPath' object is not callable": a
    committed file's local_path is a method (helper-57)."""
    with handler.new(["a.txt", "b.txt"]) as new:
        new.files["a.txt"].local_path().write_text("called")
        new.files["b.txt"].local_path.write_text("read")
        assert new.files["a.txt"].local_path() == new.files["a.txt"].local_path
    art = handler.get(new.artifact_id)
    assert art.files["a.txt"].local_path().read_text() == "called"
    assert art.files["b.txt"].read_text() == "read"


def test_new_exception_commits_nothing(handler: eio.Handler) -> None:
    from tests.conftest import snapshot

    before = snapshot(handler)
    with pytest.raises(ZeroDivisionError), handler.new(["model.pt"]) as new:
        new.file.write_bytes(b"half")
        raise ZeroDivisionError
    assert snapshot(handler) == before
    with pytest.raises(eio.ArtifactNotFoundError):
        handler.get(new.artifact_id)


def test_new_unwritten_file_fails_commit(handler: eio.Handler) -> None:
    from tests.conftest import snapshot

    before = snapshot(handler)
    with pytest.raises(eio.CommitError, match=r"'b\.txt'.*never written"):
        with handler.new(["a.txt", "b.txt"]) as new:
            new.files["a.txt"].write_text("a")
    assert snapshot(handler) == before


def test_artifact_file_needs_exactly_one(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    art = handler.upload([data_files["train"], data_files["test"]])
    with pytest.raises(eio.ElliptioError, match="2 files"):
        _ = art.file


def test_download_verifies_and_names(
    handler: eio.Handler, data_files: dict[str, Path], tmp_path: Path
) -> None:
    art = handler.upload(data_files["test"])
    out = art.file.download(tmp_path / "out")  # a missing path is a file path
    assert out.read_bytes() == data_files["test"].read_bytes()
    folder = tmp_path / "folder"
    folder.mkdir()
    assert art.file.download(folder) == (folder / "test.txt").resolve()
    assert art.file.download().name == "test.txt"  # default: the current folder
    # A path ending in '/' is a folder, made if missing (it was written as a file
    # named like the folder; helper-52).
    assert art.file.download(f"{tmp_path}/new/") == (tmp_path / "new" / "test.txt").resolve()
    assert (tmp_path / "new" / "test.txt").read_bytes() == data_files["test"].read_bytes()


def test_reads_through_file_record_lineage(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    art = handler.upload(data_files["test"])
    with handler.run():
        assert handler.based_on == []
        with art.file.open("rb") as f:
            f.read()
        assert handler.based_on == [art.artifact_id]
        with handler.new("derived.txt") as new:
            new.file.write_text("x")
    assert new.artifact.metadata.based_on == [art.artifact_id]


def test_find_newest_first_limits_and_columns(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    ids = [handler.upload(data_files["test"]).artifact_id for _ in range(3)]
    df = handler.find()
    assert list(df.index) == ids[::-1]
    assert list(handler.find(max_docs=2).index) == ids[::-1][:2]
    assert list(handler.find(skip=1).index) == ids[::-1][1:]
    assert next(iter(handler.find(sort=[("creation_time", 1), ("artifact_id", 1)]).index)) in ids
    only = handler.find(columns=["username", "labels"], flatten=False)
    assert list(only.columns) == ["username", "labels"]
    assert "python_packages" in handler.find(include_packages=True).columns
    assert handler.count({"file_relpaths": "test.txt"}) == 3
    empty = handler.find({"username": "nobody"})
    assert empty.empty
    assert empty.index.name == "artifact_id"


def test_creation_time_stays_tz_aware(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    art = handler.upload(data_files["test"])
    again = handler.get(art.artifact_id)
    assert again.metadata.creation_time == art.metadata.creation_time
    assert again.metadata.creation_time.utcoffset() == timedelta(0)
    df = handler.find({"creation_time": art.metadata.creation_time})
    assert list(df.index) == [art.artifact_id]
    assert str(df["creation_time"].dt.tz) == "UTC"


def test_sync_api_inside_running_loop(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    async def notebook_cell() -> str:
        # Jupyter runs cells inside a running loop; the sync API must still work.
        art = handler.upload(data_files["test"])
        return handler.get(art.artifact_id).file.read_text()

    assert asyncio.run(notebook_cell()) == data_files["test"].read_text()


async def test_async_story(ahandler: eio.AsyncHandler, data_files: dict[str, Path]) -> None:
    with eio.mock_username("andy"):
        andy = await ahandler.upload(
            [data_files["train"], data_files["test"]],
            labels={"datatype": "annotation_file"},
        )
    df = await ahandler.find({"labels.datatype": "annotation_file"})
    assert list(df.index) == [andy.artifact_id]
    async with ahandler.run():
        art = await ahandler.get(andy.artifact_id)
        assert await art.files["train.txt"].aread_text() == data_files["train"].read_text()
        async with ahandler.new("model.pt") as new:
            new.file.write_bytes(b"model")
        assert ahandler.based_on == [andy.artifact_id]
    found = await ahandler.find({"based_on": andy.artifact_id})
    assert list(found.index) == [new.artifact.artifact_id]
    assert await ahandler.count() == 2


async def test_concurrent_tasks_keep_separate_lineage(
    ahandler: eio.AsyncHandler, data_files: dict[str, Path]
) -> None:
    sources = [await ahandler.upload(data_files["test"]) for _ in range(4)]

    async def task(i: int) -> eio.Artifact:
        async with ahandler.run():
            await ahandler.get(sources[i].artifact_id)
            await asyncio.sleep(0.01)  # interleave with the other tasks
            async with ahandler.new(f"out{i}.txt") as new:
                new.file.write_text(str(i))
            return new.artifact

    outputs = await asyncio.gather(*(task(i) for i in range(4)))
    for i, out in enumerate(outputs):
        assert out.metadata.based_on == [sources[i].artifact_id]
    assert len({o.metadata.run_id for o in outputs}) == 4


async def test_mock_username_is_task_local(
    ahandler: eio.AsyncHandler, data_files: dict[str, Path]
) -> None:
    async def save(name: str) -> str:
        with eio.mock_username(name):
            await asyncio.sleep(0.01)
            art = await ahandler.upload(data_files["test"])
        return art.metadata.username

    assert await asyncio.gather(save("andy"), save("brenda")) == ["andy", "brenda"]


def test_lineage_and_maintenance_on_the_handler(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    raw = handler.upload(data_files["train"])
    with handler.run():
        handler.get(raw.artifact_id)
        with handler.new("model.pt") as new:
            new.file.write_bytes(b"model")
    graph = handler.lineage(new.artifact_id, "up")
    assert graph.edges == ((raw.artifact_id, new.artifact_id),)
    assert "-> " + new.artifact_id in handler.lineage(raw.artifact_id).to_text()
    mermaid, dot = graph.to_mermaid(), graph.to_dot()
    assert mermaid.count(" --> ") == 1
    assert dot.count(" -> ") == 1
    for text in (mermaid, dot):
        assert raw.artifact_id[:17] in text
        assert new.artifact_id[:17] in text
        assert "model.pt" in text
    assert handler.verify(new.artifact_id).ok
    assert handler.reindex().added == []
    assert handler.gc().orphans == []
    assert handler.urls.exists(new.artifact.file.url)


def test_an_artifact_or_file_sent_to_another_process_says_what_to_send(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    """Sending a File or an Artifact to a process pool failed with "cannot pickle
    '_thread.lock' object" (helper-52); the error names what travels instead."""
    import pickle

    art = handler.upload(data_files["test"])
    with pytest.raises(eio.ArgumentTypeError, match="eio_url"):
        pickle.dumps(art.file)
    with pytest.raises(eio.ArgumentTypeError, match="eio_url"):
        pickle.dumps(art)
    assert pickle.loads(pickle.dumps(art.file.eio_url)) == art.file.eio_url
    import copy  # a shallow copy stays in this process: it works (helper-53)

    assert copy.copy(art).file.read_bytes() == copy.copy(art.file).read_bytes()
