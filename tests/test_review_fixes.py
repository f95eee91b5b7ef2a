"""Promises a user and an attacker tried on the UI, lifecycle and CLI (session 8 review).

Each test is one reproduction from that review; it failed before the fix.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import elliptio as eio
from elliptio._catalog import sqlite as sqlite_catalog
from elliptio._cli import main
from elliptio._errors import ArtifactDeletedError, InvalidNameError, QueryError
from elliptio._ui.app import create_app
from elliptio._ui.server import _server


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[eio.Handler]:
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        yield h


@pytest.fixture
def dataset(handler: eio.Handler, tmp_path: Path) -> list[eio.Artifact]:
    """Three versions of 'ds'; v2 deleted."""
    made = []
    for i in range(3):
        src = tmp_path / f"src{i}"
        src.mkdir()
        (src / "b.csv").write_text(f"x\n{i}\n")
        made.append(handler.upload([src / "b.csv"], name="ds"))
    handler.delete("ds:v2", reason="wrong data")
    return made


def _cli(capsys: pytest.CaptureFixture[str], h: eio.Handler, *argv: str) -> tuple[int, str]:
    """Run the CLI on the handler's store and catalog (the fixture's paths)."""
    root = Path(h.storage.root_url.removeprefix("file://")).parent
    code = main([f"--storage={root}/store", f"--catalog=sqlite:///{root}/c.db", *argv])
    out, err = capsys.readouterr()
    return code, out + err


def test_the_ui_never_shows_a_deleted_artifact_as_alive(
    handler: eio.Handler, dataset: list[eio.Artifact]
) -> None:
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as client:
        search = client.get("/", params={"name": "ds"}).text
        assert "ds:v1" in search
        assert "ds:v3" in search
        assert "ds:v2" not in search
        versions = client.get("/a/ds:v1").text.split("<table id=versions>")[1]
        assert "ds:v2" not in versions.split("</table>")[0]
        gone = client.get("/a/ds:v2")
        assert gone.status_code == 410
        assert "wrong data" in gone.text
        assert client.post("/a/ds:v2/verify").status_code in (403, 410)


def test_verify_and_alias_refuse_a_deleted_version(
    handler: eio.Handler, dataset: list[eio.Artifact], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ArtifactDeletedError):
        handler.verify("ds:v2")
    with pytest.raises(ArtifactDeletedError):
        handler.set_alias("ds:v2", "dead")
    assert "dead" not in handler.aliases("ds")
    code, text = _cli(capsys, handler, "verify", "ds:v2")
    assert code == 1
    assert "ArtifactDeletedError" in text
    code, text = _cli(capsys, handler, "cat", "ds:v2")
    assert code == 1
    assert "ArtifactDeletedError" in text


def test_names_that_look_like_ids_or_versions_are_refused(
    handler: eio.Handler, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(InvalidNameError, match="artifact ids"):
        handler.upload([tmp_path / "a.txt"], name="artifact_data")
    art = handler.upload([tmp_path / "a.txt"], name="data")
    with pytest.raises(InvalidNameError, match="reserved"):
        handler.set_alias(art.ref, "v" + "9" * 19)


def test_a_record_changed_by_hand_does_not_take_the_search_page_down(
    handler: eio.Handler, dataset: list[eio.Artifact], tmp_path: Path
) -> None:
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.create_function("eio_doc", 1, sqlite_catalog._unpack)  # the stored form
    conn.execute(
        "UPDATE packed_docs SET doc = json_set(eio_doc(doc), '$.files[0].size', 'abc')"
        " WHERE id = (SELECT id FROM artifacts WHERE name_version = 1)"
    )
    conn.commit()
    conn.close()
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as client:
        assert client.get("/").status_code == 200
        assert client.get("/a/ds:v3").status_code == 200


def test_dates_at_the_ends_of_the_calendar_are_query_errors(
    handler: eio.Handler, dataset: list[eio.Artifact], capsys: pytest.CaptureFixture[str]
) -> None:
    far = dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.timezone(-dt.timedelta(hours=23)))
    with pytest.raises(QueryError, match="years 1 to 9999"):
        handler.find({"creation_time": {"$gte": far}})
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as client:
        assert client.get("/", params={"until": "9999-12-31"}).status_code == 200
        assert client.get("/", params={"since": "9999-12-31T23:59:59-23:59"}).status_code == 400
    flt = '{"creation_time": {"$gte": {"$date": "9999-12-31T23:59:59-23:59"}}}'
    code, text = _cli(capsys, handler, "find", flt)
    assert code == 1
    assert "QueryError" in text
    assert "Traceback" not in text


def test_cli_download_keeps_local_files_unless_told(
    handler: eio.Handler,
    dataset: list[eio.Artifact],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "dl"
    assert _cli(capsys, handler, "download", "ds:v3", "-o", str(out))[0] == 0
    (out / "b.csv").write_text("mine")
    code, text = _cli(capsys, handler, "download", "ds:v3", "-o", str(out))
    assert code == 1
    assert "--overwrite" in text
    assert (out / "b.csv").read_text() == "mine"
    assert _cli(capsys, handler, "download", "ds:v3", "-o", str(out), "--overwrite")[0] == 0
    assert (out / "b.csv").read_text() == "x\n2\n"


def test_usage_errors_never_show_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["upload", "a.txt", "--password", "S3CR3T-value"],
        ["upload", "a.txt", "--api-key=S3CR3T-value"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "unrecognized arguments" in err
        assert "S3CR3T" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["cache", "prune", "--days", "-1"],
        ["cache", "prune", "--days", "inf"],
        ["ui", "--port", "99999"],
    ],
)
def test_numbers_out_of_range_are_usage_errors_naming_the_option(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert argv[-2] in capsys.readouterr().err


def test_cli_small_manners(
    handler: eio.Handler,
    dataset: list[eio.Artifact],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Removing an alias that is not set is most likely a typo: a usage error.
    code, text = _cli(capsys, handler, "alias", "remove", "ds", "prod")
    assert code == 1
    assert "UsageError: 'ds' has no alias 'prod'" in text
    # set-labels with nothing to set is a usage error (exit 2), not a wipe; --json '{}' clears.
    handler.set_labels("ds:v3", {"datatype": "table"})
    with pytest.raises(SystemExit) as stop:
        _cli(capsys, handler, "set-labels", "ds:v3")
    assert stop.value.code == 2
    assert "--json '{}' to clear them" in capsys.readouterr().err
    assert handler.get("ds:v3").metadata.labels.datatype == "table"
    # A missing local path says what to do next.
    code, text = _cli(capsys, handler, "ls", str(tmp_path / "missing"))
    assert code == 1
    assert "check the path" in text


def test_diff_of_an_artifact_without_labels_shows_no_empty_label(
    handler: eio.Handler, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("a")
    a = handler.upload([tmp_path / "a.txt"], name="d")
    b = handler.upload([tmp_path / "a.txt"], name="d", labels={"datatype": "x"})
    changed = handler.diff(a.ref, b.ref)
    assert "" not in changed.labels
    assert "labels.:" not in str(changed)


def test_the_ui_snippet_reads_through_elliptio_and_quotes_file_names(
    handler: eio.Handler, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "we'ird\".csv").write_text("x\n1\n")
    art = handler.upload([src / "we'ird\".csv"], name="odd")
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as client:
        page = client.get(f"/a/{art.ref}").text
    assert ".eio_url)" in page
    assert "].url)" not in page
    assert "art.files[&#x27;we\\&#x27;ird&quot;.csv&#x27;]" in page


def test_a_ui_on_another_loopback_address_answers_under_it(handler: eio.Handler) -> None:
    server = _server(handler.aio, "127.0.0.2")
    with TestClient(server.config.app, base_url="http://127.0.0.2:18801") as client:
        assert client.get("/").status_code == 200
    with TestClient(server.config.app, base_url="http://evil.example") as client:
        assert client.get("/").status_code == 400


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
def test_find_and_count_take_a_filter_at_the_nesting_limit(
    backend: str, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """docs/queries.md: a filter nests at most 16 levels. find() and count() wrapped
    it under $and to leave deleted artifacts out, so 16 levels were refused unless
    include_deleted=True (helper-37)."""
    from mongomock_motor import AsyncMongoMockClient

    from elliptio._catalog.filters import MAX_DEPTH

    catalog = f"sqlite:///{tmp_path / 'c.db'}" if backend == "sqlite" else AsyncMongoMockClient()
    with eio.Handler(storage=str(tmp_path / "store"), catalog=catalog) as h:
        art = h.upload(data_files["test"], labels={"infos": {"t": {"k": 1}}})
        h.delete(h.upload(data_files["train"]).artifact_id, reason="test")
        value: object = 1
        for _ in range(MAX_DEPTH - 1):  # the filter and MAX_DEPTH - 1 documents below it
            value = {"k": value}
        at_limit = {"labels.infos.t": value}
        assert list(h.find(at_limit).index) == []
        assert h.count(at_limit) == 0
        assert h.count(at_limit, include_deleted=True) == 0
        and_at_limit: dict[str, object] = {"labels.infos.t.k": {"$gte": 1}}
        for _ in range(MAX_DEPTH - 2):  # operator document at the last level
            and_at_limit = {"$and": [and_at_limit]}
        assert list(h.find(and_at_limit).index) == [art.artifact_id]
        for too_deep in ({"labels.infos.t": {"k": value}}, {"$and": [and_at_limit]}):
            for include_deleted in (False, True):
                with pytest.raises(QueryError, match=f"deeper than {MAX_DEPTH} levels"):
                    h.count(too_deep, include_deleted=include_deleted)
