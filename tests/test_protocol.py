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


@pytest.mark.parametrize("catalog", ["sqlite", "mongomock"])
def test_name_urls_resolve_through_the_handler_that_made_or_read_the_name(
    configured: eio.Handler, data_files: dict[str, Path], tmp_path: Path, catalog: str
) -> None:
    """A handler built from explicit arguments: ``elliptio://train-set:v1/...``
    looked the name up in the ELLIPTIO_* settings' catalog instead, where the same
    name may be another artifact, and read that one."""
    personal = configured.upload(data_files["test"], name="train-set")  # the settings' lake
    team_catalog: object = f"sqlite:///{tmp_path / 'team.db'}"
    if catalog == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        team_catalog = AsyncMongoMockClient()["elliptio"]["team"]
    with eio.Handler(storage=str(tmp_path / "team"), catalog=team_catalog) as team:
        made = team.upload(data_files["train"], name="train-set")
        team.set_alias("train-set:v1", "golden")
        train = data_files["train"].read_bytes()
        for ref in ("train-set", "train-set:latest", "train-set:v1", "train-set:golden"):
            assert fsspec.filesystem("elliptio").cat_file(f"{ref}/train.txt") == train
            with fsspec.open(f"elliptio://{ref}/train.txt") as f:
                assert f.read() == train
        assert pd.read_csv("elliptio://train-set:v1/train.txt").shape == (2, 2)
        assert fsspec.filesystem("elliptio").ls("train-set:v1", detail=False) == [
            "train-set:v1/train.txt"
        ]
        with team.run():
            pd.read_csv("elliptio://train-set:golden/train.txt")
            assert team.based_on == [made.artifact_id]
    # The team's handler is closed: the settings' lake answers again.
    assert fsspec.filesystem("elliptio").cat_file("train-set:v1/test.txt") == (
        personal.file.read_bytes()
    )


def test_listing_info_and_read_block(configured: eio.Handler, tmp_path: Path) -> None:
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
    assert fs.read_block(f"{aid}/ds/labels.csv", 1, 10) == b"\n1\n"  # needs open().size
    assert fs.read_block(f"{aid}/ds/labels.csv", 0, 3, delimiter=b"\n") == b"x\n1\n"


def test_byte_ranges_are_the_ones_fsspec_gives(handler: eio.Handler, tmp_path: Path) -> None:
    """cat_file and cat_ranges take negative ends (and starts) from the end of the
    file, as every fsspec filesystem does: ``end=-10`` gave nothing and a
    negative start with a positive end read to the end of the file."""
    data = bytes(range(256)) * 4
    (tmp_path / "b.bin").write_bytes(data)
    url = handler.upload(tmp_path / "b.bin").file.eio_url
    fs = fsspec.filesystem("elliptio")
    ranges = [(10, -10), (-100, 1000), (-100, -50), (None, -1), (-2000, 10), (5, 3), (2000, None)]
    for start, end in ranges:
        assert fs.cat_file(url, start, end) == data[start:end], (start, end)
    starts, ends = [r[0] for r in ranges], [r[1] for r in ranges]
    assert fs.cat_ranges([url] * len(ranges), starts, ends) == [data[s:e] for s, e in ranges]


def test_unknown_paths_are_file_not_found(configured: eio.Handler, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n")
    aid = configured.upload(tmp_path / "a.csv").artifact_id
    fs = fsspec.filesystem("elliptio")
    unknown = "artifact_00000000-0000-4000-8000-000000000000"
    for call in (fs.info, fs.open, fs.cat_file, fs.ls):
        with pytest.raises(eio.UrlNotFoundError, match=f"elliptio://{aid}/nope.txt") as missing:
            call(f"{aid}/nope.txt")
        assert isinstance(missing.value, FileNotFoundError)
        # An unknown artifact is both: except FileNotFoundError and except KeyError work.
        with pytest.raises(eio.ArtifactUrlNotFoundError, match=unknown) as gone:
            call(f"elliptio://{unknown}/x.csv")
        assert isinstance(gone.value, FileNotFoundError)
        assert isinstance(gone.value, eio.ArtifactNotFoundError)
    assert not fs.exists(f"{unknown}/x.csv")
    assert not fs.exists(f"{aid}/nope.txt")
    with pytest.raises(FileNotFoundError):
        pd.read_csv(f"elliptio://{aid}/nope.csv")
    with pytest.raises(eio.UsageError, match=r"Handler\.find\(\)"):
        fs.ls("")


def test_the_url_tools_name_an_unknown_artifact_as_the_filesystem_does(
    configured: eio.Handler, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/concepts.md: an elliptio:// URL naming no artifact raises
    ArtifactUrlNotFoundError, given to the URL tools too. eio.open, eio.local_copy
    and `elliptio cat` said only "does not exist" (a bare UrlNotFoundError, no
    KeyError), dropping the catalog they asked, while eio.ls and eio.cp named it."""
    from elliptio._cli import main

    url = "elliptio://artifact_00000000-0000-4000-8000-000000000000/x.csv"
    for call in (
        lambda: eio.open(url).__enter__(),
        lambda: eio.local_copy(url).__enter__(),
        lambda: eio.cp(url, str(tmp_path / "copy.csv")),
        lambda: eio.ls(url),
    ):
        with pytest.raises(eio.ArtifactUrlNotFoundError, match="no artifact") as gone:
            call()
        assert isinstance(gone.value, KeyError)
        assert isinstance(gone.value, FileNotFoundError)
    capsys.readouterr()
    assert main(["cat", url]) == 1
    assert "ArtifactUrlNotFoundError" in capsys.readouterr().err


def test_every_write_is_refused_naming_the_url(configured: eio.Handler, tmp_path: Path) -> None:
    local = tmp_path / "a.csv"
    local.write_text("x\n1\n")
    aid = configured.upload(local).artifact_id
    fs = fsspec.filesystem("elliptio")
    url = f"elliptio://{aid}/a.csv"
    writes = {
        "open wb": lambda: fs.open(url, "wb"),
        "open ab": lambda: fs.open(url, "ab"),
        "open w": lambda: fs.open(url, "w"),
        "pipe": lambda: fs.pipe(url, b"new"),
        "pipe_file": lambda: fs.pipe_file(url, b"new"),
        "put": lambda: fs.put(str(local), url),
        "put_file": lambda: fs.put_file(str(local), url),
        "copy into": lambda: fs.copy(url, f"elliptio://{aid}/b.csv"),
        "cp_file": lambda: fs.cp_file(url, f"elliptio://{aid}/b.csv"),
        "mv": lambda: fs.mv(url, f"elliptio://{aid}/b.csv"),
        "rm": lambda: fs.rm(url),
        "rm_file": lambda: fs.rm_file(url),
        "rm recursive": lambda: fs.rm(f"elliptio://{aid}", recursive=True),
        "rmdir": lambda: fs.rmdir(f"elliptio://{aid}"),
        "mkdir": lambda: fs.mkdir(f"elliptio://{aid}/new"),
        "makedirs": lambda: fs.makedirs(f"elliptio://{aid}/new/deeper"),
        "touch": lambda: fs.touch(url),
        # The URL tools refuse before handing out a path to write (eio.write
        # refused only when its block ended, after the work was done).
        "eio.write": lambda: eio.write(url).__enter__(),
        "eio.open wb": lambda: eio.open(url, "wb"),
        "eio.cp into": lambda: eio.cp(str(local), f"elliptio://{aid}/b.csv"),
        "eio.rm": lambda: eio.rm(url),
    }
    for what, write in writes.items():
        with pytest.raises(eio.ImmutableError, match=r"Handler\.new\(\)") as refused:
            write()
        assert aid in str(refused.value), what
        assert isinstance(refused.value, PermissionError), what
    assert fs.cat_file(url) == b"x\n1\n"
    assert fs.ls(aid, detail=False) == [f"{aid}/a.csv"]
    fs.get(url, str(tmp_path / "out" / "deeper" / "a.csv"))  # reading out is no write
    assert (tmp_path / "out" / "deeper" / "a.csv").read_text() == "x\n1\n"


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


def test_the_filesystem_follows_changed_settings_and_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_files: dict[str, Path]
) -> None:
    """The handler behind elliptio:// is reused while its settings stay the same, and
    follows a changed ELLIPTIO_* variable or .env file at the next open."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'a.db'}")
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "a"))
    first = eio.Handler().upload(data_files["train"], name="set")
    fs = fsspec.filesystem("elliptio")
    assert fs.handler is fs.handler
    assert fs.cat_file("set:latest/train.txt") == data_files["train"].read_bytes()

    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'b.db'}")
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "b"))
    second = eio.Handler().upload(data_files["test"], name="set")
    assert fs.handler.resolve("set:latest") == second.artifact_id

    monkeypatch.delenv("ELLIPTIO_CATALOG_URL")
    monkeypatch.delenv("ELLIPTIO_STORAGE_URL")
    (tmp_path / ".env").write_text(
        f"ELLIPTIO_CATALOG_URL=sqlite:///{tmp_path / 'a.db'}\n"
        f"ELLIPTIO_STORAGE_URL={tmp_path / 'a'}\n"
    )
    assert fs.cat_file("set:latest/train.txt") == data_files["train"].read_bytes()
    assert fs.info(f"{first.artifact_id}/train.txt")["size"] == data_files["train"].stat().st_size
    (tmp_path / ".env").write_text(
        f"ELLIPTIO_CATALOG_URL=sqlite:///{tmp_path / 'b.db'}\n"
        f"ELLIPTIO_STORAGE_URL={tmp_path / 'b'}\n"
    )
    assert fs.cat_file("set:latest/test.txt") == data_files["test"].read_bytes()


def test_an_eio_url_outlives_another_handler_that_read_the_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """helper-79: the process kept one handler per artifact, the last to read it; once
    that one was closed, the eio_url of an artifact whose own (still open) handler
    was built from explicit arguments no longer resolved."""
    monkeypatch.delenv("ELLIPTIO_STORAGE_URL", raising=False)
    monkeypatch.delenv("ELLIPTIO_CATALOG_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the default catalog holds nothing
    args = {"storage": str(tmp_path / "store"), "catalog": f"sqlite:///{tmp_path / 'c.db'}"}
    (tmp_path / "a.csv").write_text("x\n1\n")
    with eio.Handler(**args) as h:
        url = h.upload(tmp_path / "a.csv").file.eio_url
        with eio.Handler(**args) as other:
            other.get(url.split("/")[2])
        assert pd.read_csv(url)["x"].tolist() == [1]
        with fsspec.open(url, "rb") as f:
            assert f.read() == b"x\n1\n"


def test_fsspec_get_into_a_local_store_leaves_no_folder_there(tmp_path: Path) -> None:
    """`fsspec.filesystem("elliptio").get(eio_url, path)` with a path in the local
    store was refused (downloads never write there), but only after it had made the
    path's folders among the store's date folders: each refused get left one."""
    store = tmp_path / "store"
    (tmp_path / "a.csv").write_text("x\n1\n")
    with eio.Handler(storage=str(store), catalog=f"sqlite:///{tmp_path}/c.db") as h:
        art = h.upload(tmp_path / "a.csv")
        before = sorted(store.iterdir())
        fs = fsspec.filesystem("elliptio")
        for target in (str(store / "new" / "a.csv"), f"{store}/more/sub/"):
            with pytest.raises(eio.InvalidPathError, match="lies in the elliptio store"):
                fs.get(art.file.eio_url, target)
        assert sorted(store.iterdir()) == before
        fs.get(art.file.eio_url, str(tmp_path / "out" / "a.csv"))  # elsewhere it lands
        assert (tmp_path / "out" / "a.csv").read_text() == "x\n1\n"
