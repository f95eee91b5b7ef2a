"""The web UI's pages through Starlette's TestClient, on a real store and SQLite catalog."""

from __future__ import annotations

import concurrent.futures
import html
import http.client
import io
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import elliptio as eio
from elliptio._cli import main
from elliptio._ui import preview as preview_mod
from elliptio._ui import search as search_mod
from elliptio._ui.app import create_app
from elliptio._ui.graph import draw, layers, to_dot
from elliptio._ui.search import SearchForm
from elliptio._ui.server import exposure_warning, is_loopback
from tests.conftest import S3_BUCKET, count_delivered
from tests.ui_lake import XSS, Lake, build

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def handler(tmp_path: Path) -> Iterator[eio.Handler]:
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        yield h


@pytest.fixture
def lake(handler: eio.Handler, tmp_path: Path) -> Lake:
    return build(handler, tmp_path / "src")


@pytest.fixture
def client(handler: eio.Handler, lake: Lake) -> Iterator[TestClient]:
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as c:
        yield c


def refs(html: str) -> list[str]:
    """The artifact column of the results table, in order."""
    table = html.split("<table id=results>", 1)[1] if "<table id=results>" in html else ""
    return re.findall(r'<td><a href="/a/[^"]+">([^<]+)</a></td>', table)


# -- search -------------------------------------------------------------------


def test_search_lists_everything_newest_first(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert refs(page.text)[:3] == ["artifact_" + refs(page.text)[0][9:], "report:v1", "model:v1"]
    assert len(refs(page.text)) == 7


def test_quick_filters(client: TestClient) -> None:
    assert refs(client.get("/", params={"datatype": "annotation_file"}).text) == [
        "train-set:v2",
        "train-set:v1",
    ]
    assert refs(client.get("/", params={"user": "brenda"}).text) == ["model:v1"]
    assert refs(client.get("/", params={"name": "clean"}).text) == ["clean:v1"]
    assert refs(client.get("/", params={"ticket": "AB-2"}).text) == ["train-set:v2"]
    # free text: file names and description, any case
    assert refs(client.get("/", params={"text": "COVER.png"}).text) == ["train-set:v2"]
    assert refs(client.get("/", params={"text": "second training"}).text) == ["train-set:v2"]
    assert refs(client.get("/", params={"since": "2000-01-01", "user": "carl"}).text) == [
        "report:v1"
    ]
    assert refs(client.get("/", params={"until": "2000-01-01"}).text) == []


def test_mongodb_filter_box(client: TestClient) -> None:
    page = client.get("/", params={"q": '{"labels.infos.seed": {"$gte": 7}}'})
    assert refs(page.text) == ["train-set:v2"]
    dated = client.get(
        "/", params={"q": '{"creation_time": {"$lt": {"$date": "2000-01-01T00:00:00Z"}}}'}
    )
    assert dated.status_code == 200
    assert "no artifact matches" in dated.text
    both = client.get("/", params={"q": '{"username": "andy"}', "datatype": "raw"})
    assert refs(both.text) == ["raw-data:v1"]


@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("{bad", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"$where": "1"}', "$where"),
        ('{"file_relpaths": {"$regex": "(a+)+"}}', "repeat"),
        ('{"creation_time": {"$gt": {"$date": "yesterday"}}}', "not a date"),
    ],
)
def test_bad_filters_give_a_readable_error(client: TestClient, q: str, message: str) -> None:
    page = client.get("/", params={"q": q})
    assert page.status_code == 400
    assert "role=alert" in page.text
    assert message in page.text.replace("&#x27;", "'").replace("&quot;", '"')
    assert "Traceback" not in page.text


def test_sort_and_pages(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    by_user = refs(client.get("/", params={"sort": "user", "dir": "asc"}).text)
    assert by_user[-1].startswith("artifact_")  # "root" sorts after andy, brenda, carl
    users = re.findall(
        r"<td>(andy|brenda|carl|[a-z]+)</td><td class=time>",
        client.get("/", params={"sort": "user", "dir": "asc"}).text,
    )
    assert users == sorted(users)
    by_name = refs(client.get("/", params={"sort": "name", "dir": "asc", "name": "train-set"}).text)
    assert by_name == ["train-set:v1", "train-set:v2"]  # then by version, the same way
    monkeypatch.setattr(search_mod, "PAGE_SIZE", 3)
    monkeypatch.setattr("elliptio._ui.app.PAGE_SIZE", 3)
    monkeypatch.setattr("elliptio._ui.pages.PAGE_SIZE", 3, raising=False)
    first = client.get("/", params={"sort": "time", "dir": "asc"}).text
    assert refs(first) == ["raw-data:v1", "train-set:v1", "clean:v1"]
    assert 'rel="next"' in first
    assert 'rel="prev"' not in first
    third = client.get("/", params={"sort": "time", "dir": "asc", "page": "3"}).text
    assert len(refs(third)) == 1
    assert 'rel="next"' not in third
    assert 'rel="prev"' in third


def test_search_form_filter_is_one_document() -> None:
    form = SearchForm.from_params({"user": "andy", "text": "a.b", "q": '{"x": 1}', "page": "-4"})
    assert form.page == 1
    # Conditions on different keys make one document: they cost the filter no level.
    assert form.filter() == {
        "x": 1,
        "username": "andy",
        "$or": [
            {"file_relpaths": {"$regex": r"(?i)a\.b"}},
            {"labels.description": {"$regex": r"(?i)a\.b"}},
        ],
    }
    # A key the filter box uses too is joined with $and.
    both = SearchForm.from_params({"user": "andy", "q": '{"username": "bob"}'}).filter()
    assert both == {"$and": [{"username": "bob"}, {"username": "andy"}]}
    assert SearchForm().filter() == {}
    assert SearchForm.from_params({"sort": "nonsense"}).sort == "time"
    until = SearchForm(until="2026-01-31").filter()["creation_time"]
    assert list(until) == ["$lt"]
    assert until["$lt"].isoformat() == "2026-02-01T00:00:00+00:00"


# -- artifact page ------------------------------------------------------------


def test_artifact_page(client: TestClient, lake: Lake, handler: eio.Handler) -> None:
    by_ref = client.get("/a/train-set:v2")
    assert by_ref.status_code == 200
    html = by_ref.text
    assert html == client.get(f"/a/{lake.train_v2}").text
    record = handler.get(lake.train_v2).metadata
    for f in record.files:
        assert f.sha256 in html
        assert f"/file/{lake.train_v2}/{f.relpath}" in html
    # every field of the record
    for field in (
        "labels.infos",
        "labels.ticket",
        "hostname",
        "run_id",
        "argv",
        "git",
        "python_version",
        "platform",
        "remote_root",
        "file_relpaths",
    ):
        assert f"<th>{field}</th>" in html
    assert "stratification" in html
    assert re.search(r"<details><summary>\d+ packages</summary>", html)
    # previews: CSV rows as a table, the image inline, text head
    assert "<th>sample</th><th>label</th>" in html
    assert "<td>gamma</td>" in html
    assert f'<img src="/file/{lake.train_v2}/cover.png"' in html
    assert "notes about the training set" in html
    # snippets
    assert "art = h.get(&#x27;train-set:v2&#x27;)" in html
    assert f"elliptio://{lake.train_v2}/train.csv" in html
    assert "pd.read_csv(art.files[&#x27;train.csv&#x27;].eio_url)" in html
    # versions and aliases; based_on links
    versions = html.split("<table id=versions>", 1)[1].split("</table>", 1)[0]
    assert "train-set:v2 (this)" in versions
    assert f'href="/a/{lake.train_v1}"' in versions
    assert "<td>production</td>" in versions
    assert f'href="/a/{lake.clean}">{lake.clean}</a>' in html


def test_previews_are_not_lineage_and_change_nothing(
    client: TestClient, lake: Lake, handler: eio.Handler
) -> None:
    before = handler.count()
    for url in (
        "/",
        "/names",
        "/a/train-set:v2",
        f"/lineage/{lake.model}",
        f"/file/{lake.train_v2}/train.csv",
    ):
        assert client.get(url).status_code == 200
    assert client.post(f"/a/{lake.train_v2}/verify").status_code == 200
    assert handler.based_on == []  # the UI's reads are no run's inputs
    assert handler.count() == before
    for url in ("/a/train-set:v2", "/names", f"/file/{lake.train_v2}/train.csv"):
        assert client.post(url).status_code == 405
        assert client.delete(url).status_code == 405


def test_file_download_is_verified(client: TestClient, lake: Lake, handler: eio.Handler) -> None:
    csv = client.get(f"/file/{lake.train_v2}/train.csv")
    assert csv.content == b"sample,label\nalpha,1\nbeta,0\ngamma,1\n"
    assert csv.headers["content-disposition"].startswith("attachment;")
    assert csv.headers["content-type"] == "application/octet-stream"
    image = client.get(f"/file/{lake.train_v2}/cover.png")
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    # damage the stored CSV: neither the download nor the preview hands it out
    stored = Path(handler.get(lake.train_v2).files["train.csv"].url)
    os.chmod(stored, 0o644)
    stored.write_text("sample,label\nEVIL,1\n")
    damaged = client.get(f"/file/{lake.train_v2}/train.csv")
    assert damaged.status_code == 500
    assert "IntegrityError" in damaged.text
    assert "EVIL" not in damaged.text
    page = client.get(f"/a/{lake.train_v2}")
    assert page.status_code == 200
    assert "IntegrityError" in page.text
    assert "EVIL" not in page.text
    verified = client.post(f"/a/{lake.train_v2}/verify")
    assert "Not intact: train.csv (damaged)" in verified.text


def test_verify_button(client: TestClient, lake: Lake) -> None:
    page = client.post(f"/a/{lake.train_v2}/verify")
    assert "3 files re-hashed: all match" in page.text
    foreign = client.post(f"/a/{lake.train_v2}/verify", headers={"origin": "http://evil.test"})
    assert foreign.status_code == 403
    same = client.post(f"/a/{lake.train_v2}/verify", headers={"origin": "http://127.0.0.1"})
    assert same.status_code == 200


# -- security -----------------------------------------------------------------


def test_xss_label_renders_as_text(client: TestClient, lake: Lake) -> None:
    for url in (f"/a/{lake.xss}", "/", f"/?datatype={XSS}", f"/?q={XSS}", f"/a/{XSS}"):
        page = client.get(url)
        assert XSS not in page.text, url
    assert ESCAPED in client.get(f"/a/{lake.xss}").text
    assert ESCAPED in client.get("/").text
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "url",
    [
        "/a/nope",
        "/a/artifact_00000000-0000-4000-8000-000000000000",
        "/a/train-set:v9",
        "/a/train-set:staging",
        "/a/..%2F..%2Fetc%2Fpasswd",
        "/lineage/nope",
        "/file/train-set:v2/missing.txt",
        "/file/train-set:v2/../../c.db",
        "/no/such/page",
    ],
)
def test_bad_references_are_404(client: TestClient, url: str) -> None:
    page = client.get(url)
    assert page.status_code == 404
    assert "<h1>Not found</h1>" in page.text
    assert "Traceback" not in page.text


def test_foreign_host_header_is_refused(client: TestClient) -> None:
    # DNS rebinding: a page on another site resolving its name to 127.0.0.1
    assert client.get("/", headers={"host": "evil.test"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200


def test_no_secret_in_pages(tmp_path: Path) -> None:
    secret = "sup3r-s3cret-t0ken"
    with eio.Handler(
        storage="memory://ui-secret",
        catalog=f"sqlite:///{tmp_path}/c.db",
        storage_options={"token": secret},
    ) as h:
        lake = build(h, tmp_path / "src")
        with TestClient(create_app(h.aio), base_url="http://127.0.0.1") as c:
            pages = [
                c.get(u)
                for u in (
                    "/",
                    "/names",
                    "/a/train-set:v2",
                    f"/lineage/{lake.train_v2}",
                    f"/file/{lake.train_v2}/train.csv",
                    "/a/nope",
                    "/?q={",
                )
            ]
            pages.append(c.post(f"/a/{lake.train_v2}/verify"))
    assert pages[4].content.startswith(b"sample,label")  # served from a non-local store
    for page in pages:
        assert secret not in page.text
        assert secret not in str(page.headers)


# -- lineage and names --------------------------------------------------------


@pytest.fixture(params=["graphviz", "own layout"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Lineage pictures by Graphviz (CI installs it) and by the built-in layout."""
    if request.param == "own layout":
        monkeypatch.setattr("elliptio._ui.graphviz.shutil.which", lambda _: None)
    else:
        assert shutil.which("dot"), "install Graphviz: apt-get install -y graphviz"
    return str(request.param)


def test_lineage_page(client: TestClient, lake: Lake, layout: str) -> None:
    page = client.get(f"/lineage/{lake.train_v2}").text
    graph = html.unescape(page.split("<div id=graph>", 1)[1])  # Graphviz writes - as &#45;
    assert ('class="graph"' in graph) == (layout == "graphviz")
    for aid, ref in (
        (lake.raw, "raw-data:v1"),
        (lake.clean, "clean:v1"),
        (lake.model, "model:v1"),
        (lake.report, "report:v1"),
    ):
        assert f'href="/lineage/{aid}?depth=2"' in graph
        assert f'id="node-{aid}"' in graph
        assert f">{ref}</text>" in graph
    assert "Nothing is hidden" in page
    shallow = html.unescape(client.get(f"/lineage/{lake.train_v2}", params={"depth": "1"}).text)
    assert "2 more artifacts lie one step beyond depth 1" in shallow
    assert f'id="node-{lake.raw}"' not in shallow
    assert ">+1 more</text>" in shallow
    assert client.get(f"/lineage/{lake.xss}", params={"depth": "x"}).status_code == 200


def test_hostile_labels_in_the_picture(layout: str) -> None:
    from elliptio._lineage import LineageGraph, LineageNode
    from elliptio._ui import graphviz

    root = 'artifact_"x\\N'
    nodes = {root: LineageNode(root, username='a"b\\N\\l', datatype=XSS)}
    graph = LineageGraph(root, nodes, ())
    source, _ = to_dot(graph, depth=1, refs={}, url=lambda a: '/x"y')
    svg = graphviz.render(source) if layout == "graphviz" else None
    if svg is None:
        svg = draw(graph, depth=1, refs={}, url=lambda a: '/x"y').svg
    assert XSS not in svg
    assert "&lt;script&gt;" in svg
    assert "a&quot;b\\N\\l" in svg or 'a"b\\N\\l' in svg  # shown as written


def test_layout_layers_and_overflow() -> None:
    from elliptio._lineage import LineageGraph, LineageNode

    root = "artifact_root"
    kids = [f"artifact_k{i:02d}" for i in range(30)]
    nodes = {a: LineageNode(a, username="u") for a in [root, "artifact_up", *kids]}
    graph = LineageGraph(root, nodes, (("artifact_up", root), *((root, k) for k in kids)))
    assert layers(graph) == {root: 0, "artifact_up": -1, **dict.fromkeys(kids, 1)}
    picture = draw(graph, depth=1, refs={root: "r:v1"}, url=lambda a: f"/x/{a}", max_per_layer=10)
    assert picture.shown == 12
    assert picture.hidden == 20
    assert "20 more not drawn" in picture.svg
    assert ">r:v1</text>" in picture.svg


def test_names_page(client: TestClient) -> None:
    page = client.get("/names").text
    row = page.split('<td><a href="/?name=train-set">train-set</a></td>', 1)[1].split("</tr>")[0]
    assert "<td class=num>2</td>" in row
    assert 'href="/a/train-set:v2">v2</a>' in row
    assert 'href="/a/train-set:production">production → v1</a>' in row


# -- running it ---------------------------------------------------------------


def test_handler_ui_runs_in_the_background(handler: eio.Handler, lake: Lake) -> None:
    server = handler.ui()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "a/train-set:v2", timeout=10) as answer:
            assert b"train-set:v2" in answer.read()
        assert "running" in repr(server)
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(urllib.error.URLError, match="refused"):
        urllib.request.urlopen(server.url, timeout=2)


def test_busy_port_and_exposure_warning(handler: eio.Handler) -> None:
    server = handler.ui()
    try:
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(eio.ConfigError, match="cannot listen"):
            handler.ui(port=port)
    finally:
        server.stop()
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]"))
    # IPv4-mapped loopback is loopback: it got no Host guard (helper-59).
    assert is_loopback("::ffff:127.0.0.1")
    assert is_loopback("[::ffff:127.0.0.1]")
    assert not any(
        is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "example.com", "::ffff:10.0.0.1")
    )
    assert exposure_warning("127.0.0.1") is None
    assert "WARNING" in (exposure_warning("0.0.0.0") or "")
    with pytest.warns(UserWarning, match="without a login"):
        exposed = handler.ui(host="0.0.0.0")
    exposed.stop()


def _loopback_only(host: str) -> bool:
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return all(ipaddress.ip_address(a[4][0]).is_loopback for a in found)


@pytest.mark.parametrize("host", ["127.1", "2130706433", "hostname"])
def test_a_loopback_name_keeps_the_host_header_guard(handler: eio.Handler, host: str) -> None:
    """A name for 127.0.0.1 is loopback: no exposure warning, and the DNS
    rebinding guard still refuses a foreign Host header."""
    if host == "hostname":
        host = socket.gethostname()
        if not _loopback_only(host):
            pytest.skip(f"this machine's name {host!r} is not a loopback-only name")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        server = handler.ui(host=host)
    try:
        assert server.url.startswith(f"http://{host}:")
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        for name, status in [("evil.test", 400), (host, 200), ("localhost", 200)]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", "/names", headers={"Host": f"{name}:{port}"})
                assert conn.getresponse().status == status, name
            finally:
                conn.close()
    finally:
        server.stop()
    assert is_loopback(host)
    assert not is_loopback("no-such-host.invalid")


def test_cli_ui_serves_until_interrupted(tmp_path: Path, lake: Lake) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "elliptio",
            "--storage",
            str(tmp_path / "store"),
            "--catalog",
            f"sqlite:///{tmp_path}/c.db",
            "ui",
            "--port",
            "0",
            "--no-browser",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        with urllib.request.urlopen(url[0] + "names", timeout=10) as answer:
            assert b"train-set" in answer.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err


def test_cli_ui_warns_when_exposed(tmp_path: Path) -> None:
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        assert h.count() == 0  # the catalog file is made
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "elliptio",
            "--storage",
            str(tmp_path / "store"),
            "--catalog",
            f"sqlite:///{tmp_path}/c.db",
            "ui",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--no-browser",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert "WARNING" in err
    assert "without a login" in err


@pytest.mark.parametrize(
    ("host", "message"),
    [("", "empty, which would listen on every interface"), (" ", "empty"), ("\udcff", "no host")],
)
def test_a_host_that_is_no_address_is_refused_before_anything_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str, message: str
) -> None:
    """An empty host listened on every interface (after the exposure warning
    showed a blank address); one that is not a name raised a raw TypeError."""
    catalog = f"sqlite:///{tmp_path}/c.db"
    with eio.Handler(storage=tmp_path / "store", catalog=catalog) as h:
        assert h.count() == 0  # the catalog file is made
        with pytest.raises(eio.ConfigError, match=message):
            h.ui(host=host)
    argv = ["--storage", str(tmp_path / "store"), "--catalog", catalog, "ui", "--host", host]
    assert main([*argv, "--port", "0", "--no-browser"]) == 1
    err = capsys.readouterr().err
    assert "ConfigError: the UI's host" in err
    assert "WARNING" not in err
    assert "Traceback" not in err


def test_ui_benchmark_runs_and_prints_its_table() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "benchmarks" / "ui.py"),
            "--sizes",
            "300",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "| page | 300 artifacts |" in lines
    assert any(line.startswith("| first page (cold) | ") for line in lines)
    assert any(line.startswith("| free text | ") for line in lines)


def test_pages_on_a_mongodb_catalog(tmp_path: Path) -> None:
    from mongomock_motor import AsyncMongoMockClient

    with eio.Handler(storage=tmp_path / "store", catalog=AsyncMongoMockClient()) as h:
        lake = build(h, tmp_path / "src")
        with TestClient(create_app(h.aio), base_url="http://127.0.0.1") as c:
            found = c.get("/", params={"datatype": "annotation_file", "sort": "name"}).text
            assert refs(found) == ["train-set:v2", "train-set:v1"]
            page = c.get("/a/train-set:v2").text
            assert "<td>gamma</td>" in page
            assert "<td>production</td>" in page
            graph = html.unescape(c.get(f"/lineage/{lake.train_v2}").text)
            assert f'id="node-{lake.report}"' in graph
            assert "production → v1" in c.get("/names").text
            assert ESCAPED in c.get(f"/a/{lake.xss}").text
            assert c.get("/", params={"q": '{"$where": "1"}'}).status_code == 400
            assert c.get("/a/nope:v1").status_code == 404


def test_parquet_preview_and_many_files(handler: eio.Handler, tmp_path: Path) -> None:
    import pandas as pd

    folder = tmp_path / "many"
    folder.mkdir()
    pd.DataFrame({"x": range(100), "y": ["a"] * 100}).to_parquet(folder / "t.parquet")
    for i in range(5):
        (folder / f"f{i}.bin").write_bytes(bytes([i]))
    art = handler.upload([folder], name="table")
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as c:
        page = c.get("/a/table:v1").text
    assert "<th>x</th><th>y</th>" in page
    assert "<td>19</td>" in page  # the first 20 rows
    assert "<td>20</td>" not in page
    assert "Only part of the file is shown." in page
    assert "pd.read_parquet(art.files[&#x27;many/t.parquet&#x27;].eio_url)" in page
    assert f"/file/{art.artifact_id}/many/f4.bin" in page


_PAGE_PEAK = """
import resource, sys
import pandas, pyarrow.parquet  # imported before the baseline
from starlette.testclient import TestClient
import elliptio as eio
from elliptio._ui.app import create_app

store, catalog, url = sys.argv[1:]
with eio.Handler(storage=store, catalog=catalog) as h:
    with TestClient(create_app(h.aio), base_url="http://127.0.0.1") as c:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        page = c.get(url)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * (1 if sys.platform == "darwin" else 1024))
sys.stdout.write(page.text)
"""


def test_a_parquet_preview_decodes_only_what_it_shows(handler: eio.Handler, tmp_path: Path) -> None:
    """A small file of zeros holds 400 MB of rows once decoded; another has more
    columns than a page shows. The preview reads only its first rows and columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "bomb"
    folder.mkdir()
    zeros = pa.table({"x": pa.array([0] * 2**20, pa.int64())})
    with pq.ParquetWriter(folder / "zeros.parquet", zeros.schema, compression="zstd") as out:
        for _ in range(48):
            out.write_table(zeros)
    assert (folder / "zeros.parquet").stat().st_size < 2**20
    pq.write_table(pa.table({f"c{i}": [i] for i in range(60)}), folder / "wide.parquet")
    art = handler.upload([folder], name="bomb")
    peak = subprocess.run(
        [
            sys.executable,
            "-c",
            _PAGE_PEAK,
            str(tmp_path / "store"),
            f"sqlite:///{tmp_path}/c.db",
            f"/a/{art.artifact_id}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert peak.returncode == 0, peak.stderr
    growth, page = peak.stdout.split("\n", 1)
    assert int(growth) < 200 * 2**20
    zeros_preview, wide_preview = (
        page.split(f"<h3>bomb/{name}</h3>", 1)[1].split("<h3>", 1)[0]
        for name in ("zeros.parquet", "wide.parquet")
    )
    assert zeros_preview.count("<tr><td>0</td></tr>") == 20
    assert "<th>c49</th>" in wide_preview
    assert "<th>c50</th>" not in wide_preview
    assert "Only part of the file is shown." in zeros_preview
    assert "Only part of the file is shown." in wide_preview


def test_a_csv_preview_of_a_huge_header_is_quick_and_bounded(
    handler: eio.Handler, tmp_path: Path
) -> None:
    """300,000 columns: pandas took 20 s over the header. The preview reads the
    first 2 MiB and shows 50 columns."""
    n = 300_000
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(n)) + "\n" + ",".join(["0"] * n) + "\n")
    art = handler.upload(wide, name="wide")
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as c:
        start = time.monotonic()
        page = c.get(f"/a/{art.artifact_id}")
        took = time.monotonic() - start
    assert page.status_code == 200
    assert took < 5
    shown = page.text.split("<h3>wide.csv</h3>", 1)[1].split("<h2>", 1)[0]
    assert shown.count("<th>") == 50
    assert "<th>c49</th>" in shown
    assert "Only part of the file is shown." in shown


def _held_page_does_not_hold_others(
    handler: eio.Handler, page: str, release: threading.Event, shown: bytes
) -> None:
    """While ``page`` is held (until ``release``), the names page answers."""
    server = handler.ui()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            held = pool.submit(urllib.request.urlopen, server.url + page, timeout=60)
            time.sleep(0.5)  # the page has reached the slow part
            try:
                with urllib.request.urlopen(server.url + "names", timeout=5) as answer:
                    assert answer.status == 200
                assert not held.done()
            finally:
                release.set()
            with held.result() as answer:
                assert shown in answer.read()
    finally:
        server.stop()


def test_a_slow_preview_does_not_hold_other_pages(
    handler: eio.Handler, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Previews are built on a thread: while one is slow (held here until the
    other page answered), the server still answers other requests."""
    release = threading.Event()
    real = preview_mod.render

    def slow(relpath: str, data: bytes) -> str:
        release.wait(30)
        return real(relpath, data)

    monkeypatch.setattr(preview_mod, "render", slow)
    _held_page_does_not_hold_others(handler, "a/train-set:v2", release, b"<td>gamma</td>")


def test_a_slow_lineage_drawing_does_not_hold_other_pages(
    handler: eio.Handler, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lineage page is laid out on a thread: while its drawing is slow (a very
    wide lineage; held here until the other page answered), the server still
    answers other requests. It drew on the event loop (helper-71)."""
    import elliptio._ui.app as app_mod

    release = threading.Event()
    real = app_mod.draw

    def slow(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(app_mod, "draw", slow)
    _held_page_does_not_hold_others(handler, f"lineage/{lake.train_v2}", release, b"<svg")


def test_a_storage_only_handler_is_refused_before_anything_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with eio.Handler(storage=str(tmp_path / "store"), catalog="none") as writer:
        with pytest.raises(eio.UsageError, match="storage only"):
            writer.ui()
    code = main(["--storage", str(tmp_path / "store"), "--catalog", "none", "ui", "--no-browser"])
    assert code == 1
    err = capsys.readouterr().err
    assert "UsageError" in err
    assert "storage only" in err


def test_offline_the_ui_sends_nothing_to_a_remote_catalog_or_store(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_options: dict[str, Any],
    moto: Any,
) -> None:
    """docs/cache.md: offline, nothing is sent anywhere. The UI read its MongoDB
    catalog and S3 store directly, past the handler's offline checks."""
    from mongomock_motor import AsyncMongoMockClient

    client = AsyncMongoMockClient()
    with eio.Handler(storage=tmp_path / "store", catalog=client) as h:
        lake = build(h, tmp_path / "src")
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    with (
        eio.Handler(storage=tmp_path / "store", catalog=client) as h,
        TestClient(create_app(h.aio), base_url="http://127.0.0.1") as c,
    ):
        for url in ("/", "/names", f"/a/{lake.train_v2}", f"/lineage/{lake.train_v2}"):
            answer = c.get(url)
            assert answer.status_code == 503, url
            assert "ELLIPTIO_OFFLINE is set" in html.unescape(answer.text), url
    # An S3 store with a local catalog: records are shown, files are not fetched.
    monkeypatch.delenv("ELLIPTIO_OFFLINE")
    store = f"s3://{S3_BUCKET}/ui-offline"
    catalog = f"sqlite:///{tmp_path / 's3.db'}"
    with eio.Handler(storage=store, catalog=catalog, storage_options=s3_options) as h:
        art = h.upload([tmp_path / "src" / "train.csv"], name="remote")
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    moto.reset_count()
    with (
        eio.Handler(storage=store, catalog=catalog, storage_options=s3_options) as h,
        TestClient(create_app(h.aio), base_url="http://127.0.0.1") as c,
    ):
        assert "remote:v1" in c.get("/").text
        page = html.unescape(c.get("/a/remote:v1").text)
        assert "cannot read a file offline" in page
        answer = c.get(f"/file/{art.artifact_id}/train.csv")
        assert answer.status_code == 503
        assert "ELLIPTIO_OFFLINE is set" in html.unescape(answer.text)
    assert moto.requests == 0


def test_a_file_changed_while_it_downloads_is_not_served_whole(
    handler: eio.Handler, tmp_path: Path
) -> None:
    """A slow client: the stored file is rewritten in place after the download
    began. The transfer breaks off instead of ending as if it were complete."""
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(48 * 2**20))
    art = handler.upload(src)
    stored = handler.storage.path(art.file.url)
    os.chmod(stored, 0o644)
    server = handler.ui()
    try:
        with urllib.request.urlopen(f"{server.url}file/{art.artifact_id}/big.bin") as answer:
            answer.read(2**16)
            fd = os.open(stored, os.O_WRONLY)
            os.pwrite(fd, b"\0" * 4096, 47 * 2**20)
            os.close(fd)
            with pytest.raises((http.client.IncompleteRead, ConnectionError)):
                answer.read()
    finally:
        server.stop()


def test_entities_and_graphviz_escapes_in_labels_show_as_written(layout: str) -> None:
    """A label '&lt;b&gt;' showed as '<b>', and '\\N' or '\\G' in a tooltip as the
    node's or graph's name: the page must show what the record says."""
    from xml.etree import ElementTree

    from elliptio._lineage import LineageGraph, LineageNode
    from elliptio._ui import graphviz

    root = "artifact_root"
    written = "&lt;b&gt; \\N \\G \\L x\\\\y"
    nodes = {root: LineageNode(root, username=written, datatype=written)}
    graph = LineageGraph(root, nodes, ())
    source, _ = to_dot(graph, depth=1, refs={}, url=lambda a: "/x")
    svg = graphviz.render(source) if layout == "graphviz" else None
    if svg is None:
        svg = draw(graph, depth=1, refs={}, url=lambda a: "/x").svg
    tree = ElementTree.fromstring(svg)
    texts = [t.text or "" for t in tree.iter() if t.tag.endswith("text")]
    assert any(written in t for t in texts), texts
    titles = [v for e in tree.iter() for k, v in e.attrib.items() if k.endswith("title")] + [
        e.text or "" for e in tree.iter() if e.tag.endswith("title")
    ]
    assert any(written in t for t in titles), titles


def test_a_parquet_preview_reads_and_shows_a_bounded_amount(tmp_path: Path) -> None:
    """A kilobyte of zstd held 20 rows of one 20 MiB string: the preview decoded
    them all into a 419 MB page and ~2.5 GB of memory (helper-59). Text is read
    as dictionaries and cut to a cell's length; more decoded bytes than a
    preview reads is a note. Each case runs in a process of its own, measured."""
    import subprocess
    import sys

    script = tmp_path / "bomb.py"
    script.write_text(
        "import io, resource, sys\n"
        "import pyarrow as pa, pyarrow.parquet as pq\n"
        "from elliptio._ui import preview\n"
        "big = pa.array(['a' * (20 * 2**20)]).dictionary_encode().dictionary\n"
        "column = pa.DictionaryArray.from_arrays(pa.array([0] * 20, pa.int32()), big)\n"
        "buf = io.BytesIO()\n"
        "pq.write_table(pa.table({'c': column}), buf, compression='zstd',\n"
        "               use_dictionary=sys.argv[1] == 'dict')\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "page = preview.render('b.parquet', buf.getvalue())\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(len(page), grew // 1024, page.count('a' * 200 + ' …'),\n"
        "      int('more than a preview reads' in page))\n"
    )
    for how, cut, refused in (("dict", 20, 0), ("plain", 0, 1)):
        out = subprocess.run(
            [sys.executable, str(script), how], capture_output=True, text=True, check=True
        ).stdout
        page, grew_mb, cells, note = map(int, out.split())
        assert page < 20_000, out
        assert grew_mb < 200, out  # the rows' 400 MB were never made
        assert (cells, note) == (cut, refused), out


def test_a_malformed_record_is_marked_on_the_search_page(
    handler: eio.Handler, tmp_path: Path
) -> None:
    """A catalog writer's record with `files: 5` (or a relpath of 5) took the
    search page, the home page, down with a 500 (helper-59)."""
    from elliptio._sync import sync

    src = tmp_path / "a.txt"
    src.write_text("a")
    good = handler.upload(src).metadata.to_document()
    planted = []
    for files in (5, [{"relpath": 5, "size": 1}]):
        doc = {**good, "artifact_id": f"artifact_{len(planted):08d}-0000-4000-8000-000000000000"}
        doc["files"] = files
        planted.append(doc)
    sync(handler.aio.catalog.insert_many(planted))
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as c:
        page = c.get("/")
    assert page.status_code == 200
    assert page.text.count("a malformed record") == 1  # files: 5
    assert good["artifact_id"] in page.text


def test_the_read_only_ui_never_makes_a_catalog_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped --catalog path made an empty catalog there and served it
    (helper-59): the UI opens only an existing one."""
    typo = tmp_path / "typo.db"
    argv = ["--storage", str(tmp_path / "store"), "--catalog", f"sqlite:///{typo}"]
    assert main([*argv, "ui", "--no-browser", "--port", "0"]) == 1
    assert "no catalog file at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_csv_preview_of_long_lines_shows_its_rows() -> None:
    """Rows of 60 cells of 1,200 characters: the first 64 KiB held no whole row,
    so the preview showed a header and no data (helper-59)."""
    cell = "x" * 1200
    lines = [",".join(f"c{i}" for i in range(60))] + [",".join([cell] * 60)] * 30
    page = preview_mod.render("wide.csv", ("\n".join(lines) + "\n").encode())
    assert page.count("<tr>") == 21  # the header and 20 rows
    assert page.count("<th>") == 50


def test_ui_reads_stop_at_the_recorded_size_and_hosts_and_cells_are_read_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """helper-60: the UI's own verified read buffered a grown file whole; a UI on
    ::ffff:127.0.0.1 refused its own URL's Host; a CSV cell over the csv module's
    limit blanked the preview; `~` in the catalog path was refused."""
    from elliptio._ui import server as server_mod

    with eio.Handler(storage=f"memory://ui-{tmp_path.name}", catalog="memory://") as h:
        src = tmp_path / "small.txt"
        src.write_text("tiny\n")
        art = h.upload(src, name="grown")
        h.storage.fs.pipe_file(h.storage.path(art.file.url), b"x" * (40 * 2**20))
        delivered = count_delivered(h.storage.backend, monkeypatch)
        with TestClient(create_app(h.aio), base_url="http://127.0.0.1") as c:
            assert c.get(f"/a/{art.artifact_id}").status_code == 200
        assert 0 < delivered[0] < 16 * 2**20
    hosts = server_mod._spellings("::ffff:127.0.0.1")
    assert {"[::ffff:127.0.0.1]", "[::ffff:7f00:1]"} <= set(hosts)
    cell = "y" * 200_000
    page = preview_mod.render("t.csv", f"a,b\n1,2\n{cell},3\n".encode())
    assert "<td>1</td>" in page
    monkeypatch.setenv("HOME", str(tmp_path))
    with eio.Handler(storage=tmp_path / "store", catalog="sqlite:///~/cat.db") as h:
        assert h.count() == 0  # made at ~/cat.db
    argv = ["--storage", str(tmp_path / "store"), "--catalog", "sqlite:///~/missing.db"]
    assert main([*argv, "ui", "--no-browser", "--port", "0"]) == 1
    assert "missing.db" in capsys.readouterr().err
    from elliptio._cli import _parser

    args = _parser().parse_args(["--catalog", "sqlite:///~/cat.db", "ui"])
    monkeypatch.setattr(server_mod, "serve", lambda *a, **k: None)
    assert args.func(args) == 0  # the existing file is found


def test_a_planted_sparse_file_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """helper-81: a committed file replaced by a sparse file of a terabyte made the
    UI's download (and each <img> preview of it) hash the whole of it before
    refusing it, holding the UI's threads for minutes. Every local read path now
    checks the recorded size before hashing, or stops at it."""
    from elliptio import _backends

    read = [0]
    real = _backends.copy_hashing

    def counting(readinto: Any, *args: Any, **kwargs: Any) -> Any:
        def counted(buffer: Any) -> int:
            n: int = readinto(buffer)
            read[0] += n
            return n

        return real(counted, *args, **kwargs)

    monkeypatch.setattr(_backends, "copy_hashing", counting)
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        src = tmp_path / "c.png"
        src.write_bytes(b"\x89PNG\r\n\x1a\n")
        art = h.upload(src)
        path = h.storage.path(art.file.url)
        os.chmod(path, 0o644)
        os.truncate(path, 2**30)  # sparse: a gigabyte of zeros on no disk
        read[0] = 0
        file = h.get(art.artifact_id).file
        for call in (lambda: file.open().read(), file.local_path, file.read_bytes):
            with pytest.raises(eio.IntegrityError):
                call()
        assert not h.verify(art.artifact_id).ok
        with TestClient(create_app(h.aio), base_url="http://127.0.0.1") as c:
            assert c.get(f"/file/{art.artifact_id}/c.png").status_code >= 400
        assert read[0] < 2**30 // 4  # a few chunks in all, never the whole file


def test_another_sites_page_cannot_make_the_browser_ask_the_ui(
    client: TestClient, lake: Lake
) -> None:
    """helper-81: <img src=http://127.0.0.1:PORT/?text=...> on any web page started a
    search (a slow one hangs the UI for everyone) and told that page what exists by
    whether it loaded. Cross-site subresource requests are refused; a link followed
    to the UI from elsewhere still opens it."""

    def fetch(site: str, mode: str, dest: str) -> dict[str, str]:
        return {"sec-fetch-site": site, "sec-fetch-mode": mode, "sec-fetch-dest": dest}

    for url in ("/", "/?text=aaaa", "/names", f"/a/{lake.raw}"):
        answer = client.get(url, headers=fetch("cross-site", "no-cors", "image"))
        assert answer.status_code == 403, url
    assert client.get("/", headers=fetch("cross-site", "navigate", "iframe")).status_code == 403
    assert client.get("/names", headers=fetch("same-site", "cors", "empty")).status_code == 403
    clicked = {**fetch("cross-site", "navigate", "document"), "sec-fetch-user": "?1"}
    assert client.get("/", headers=clicked).status_code == 200
    own = fetch("same-origin", "no-cors", "image")
    assert client.get(f"/a/{lake.raw}", headers=own).status_code == 200
    typed = fetch("none", "navigate", "document")
    # helper-82: speculation rules on any page prefetch or prerender with no click.
    for purpose in ("prefetch", "prefetch;prerender"):
        assert client.get("/?text=a", headers={**typed, "sec-purpose": purpose}).status_code == 403
    assert client.get("/", headers={"purpose": "prefetch"}).status_code == 403
    answer = client.get("/", headers=typed)
    assert answer.status_code == 200
    assert answer.headers["cross-origin-resource-policy"] == "same-origin"


def test_another_sites_page_cannot_send_the_browser_to_the_ui_without_a_click(
    client: TestClient, lake: Lake
) -> None:
    """A page of another site that sends the browser to the UI by itself (a script
    setting location, a meta refresh, or the opener of a UI tab navigating it again
    and again) started searches, previews and hashes with no click: only a link the
    user follows is a click (Sec-Fetch-User: ?1). Without one the UI answers a page
    that does nothing but offer the link."""
    sent = {
        "sec-fetch-site": "cross-site",
        "sec-fetch-mode": "navigate",
        "sec-fetch-dest": "document",
    }
    slow = "/?text=aaaa&page=2"
    for url in (slow, f"/a/{lake.train_v2}", f"/lineage/{lake.raw}?depth=8"):
        answer = client.get(url, headers=sent)
        assert answer.status_code == 403, url
        assert "<table" not in answer.text
        assert "<svg" not in answer.text
    for site in ("cross-site", "same-site"):
        answer = client.get(slow, headers={**sent, "sec-fetch-site": site})
        assert answer.status_code == 403
    # ... and that page's one link is the UI's own page, opened by a click.
    offered = re.findall(r'<a href="([^"]+)" id=continue>', answer.text)
    assert [html.unescape(u) for u in offered] == [slow]
    assert client.get("//evil.test/x", headers=sent).status_code in (403, 404)
    assert 'href="//' not in client.get("//evil.test/x", headers=sent).text
    sent_form = client.post(f"/a/{lake.raw}/verify", headers=sent)  # by a script
    assert sent_form.status_code == 403
    assert "/verify" not in sent_form.text
    clicked = {**sent, "sec-fetch-user": "?1"}
    assert client.get(slow, headers=clicked).status_code == 200
    assert client.get(f"/a/{lake.train_v2}", headers=clicked).status_code == 200
    typed = {**sent, "sec-fetch-site": "none"}
    assert client.get(slow, headers=typed).status_code == 200


def test_an_image_too_large_to_preview_is_not_drawn(handler: eio.Handler, tmp_path: Path) -> None:
    """A preview reads the whole file through the verified read: an image of
    hundreds of megabytes was put on the page as <img>, so each view of the
    artifact hashed and sent all of it (from S3, held whole in the server's
    memory, six at a time), where any other file that large says to download it."""
    from tests.ui_lake import png

    big = tmp_path / "scan.png"
    with big.open("wb") as out:
        out.write(png())
        out.truncate(preview_mod.MAX_PREVIEW_BYTES + 1)
    (tmp_path / "cover.png").write_bytes(png())
    art = handler.upload([big, tmp_path / "cover.png"], name="scans")
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as c:
        page = c.get(f"/a/{art.artifact_id}").text
    previews = page.split("<h2>Previews</h2>", 1)[1].split("<h2>", 1)[0]
    shown = previews.split("<h3>cover.png</h3>", 1)[1]
    assert f'<img src="/file/{art.artifact_id}/cover.png"' in shown
    large = previews.split("<h3>scan.png</h3>", 1)[1].split("<h3>", 1)[0]
    assert "<img" not in large
    assert "Too large to preview here" in large


def test_offline_an_image_preview_from_a_remote_store_says_so_in_place(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3_options: dict[str, Any],
    moto: Any,
) -> None:
    """docs/ui.md: offline, a file from a remote store answers 503 and previews say
    so in place. An image's preview was an <img> of that 503: a broken picture."""
    from tests.ui_lake import png

    store = f"s3://{S3_BUCKET}/ui-offline-image"
    catalog = f"sqlite:///{tmp_path / 'c.db'}"
    (tmp_path / "cover.png").write_bytes(png())
    with eio.Handler(storage=store, catalog=catalog, storage_options=s3_options) as h:
        art = h.upload(tmp_path / "cover.png", name="cover")
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    with (
        eio.Handler(storage=store, catalog=catalog, storage_options=s3_options) as h,
        TestClient(create_app(h.aio), base_url="http://127.0.0.1") as c,
    ):
        page = html.unescape(c.get(f"/a/{art.artifact_id}").text)
    preview = page.split("<h3>cover.png</h3>", 1)[1].split("<h2>", 1)[0]
    assert "<img" not in preview
    assert "cannot read a file offline" in preview


def test_the_lineage_of_a_deleted_artifact_is_drawn_as_get_lineage_draws_it(
    handler: eio.Handler, lake: Lake
) -> None:
    """A tombstone keeps its lineage so that descendants keep theirs, and
    h.lineage() and 'elliptio lineage' draw it; the UI drew the deleted box in a
    child's picture with a link to its lineage view, which answered 410: a dead
    end in the middle of the chain. Its own page still answers 410."""
    handler.delete(lake.clean, reason="mistake")
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as c:
        child = html.unescape(c.get(f"/lineage/{lake.train_v2}").text)
        assert f'href="/lineage/{lake.clean}?depth=2"' in child
        answer = c.get(f"/lineage/{lake.clean}")
        assert answer.status_code == 200
        graph = html.unescape(answer.text.split("<div id=graph>", 1)[1])
        for aid in (lake.raw, lake.clean, lake.train_v2):
            assert f'id="node-{aid}"' in graph
        assert "(deleted)" in graph
        assert "This artifact was deleted" in answer.text
        assert "This artifact was deleted" not in child
        assert c.get(f"/a/{lake.clean}").status_code == 410
        assert c.get(f"/file/{lake.clean}/clean.csv").status_code == 410


def test_a_parquet_preview_counts_columns_named_with_dots(tmp_path: Path) -> None:
    """The decoded size of the first rows was counted by the first part of each
    column's path, so a column named 'c.d' (a flattened JSON key, no struct) was
    never counted: 13 KB of zstd holding 20 rows of 20 MiB bytes took ~850 MB to
    preview, and 50 such columns would take 40 GB. It is counted now, and the
    preview is a note. Run in a process of its own, measured."""
    script = tmp_path / "dotted.py"
    script.write_text(
        "import resource, sys\n"
        "import pyarrow as pa, pyarrow.parquet as pq\n"
        "from elliptio._ui import preview\n"
        "path, names = sys.argv[2], sys.argv[3:]\n"
        "if sys.argv[1] == 'make':\n"
        "    schema = pa.schema([(n, pa.binary()) for n in names])\n"
        "    with pq.ParquetWriter(path, schema, compression='zstd', use_dictionary=False) as w:\n"
        "        big = pa.array([b'a' * (20 * 2**20)] * 20, pa.binary())\n"
        "        w.write_table(pa.table({n: big for n in names}, schema=schema))\n"
        "    sys.exit()\n"
        "data = open(path, 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "page = preview.render('b.parquet', data)\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(grew // 1024, int('more than a preview reads' in page))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    for i, names in enumerate((["c"], ["c.d"], ["a.x", "b.x", "s"])):
        path = str(tmp_path / f"{i}.parquet")
        for step in ("make", "show"):
            out = subprocess.run(
                [sys.executable, str(script), step, path, *names],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            ).stdout
        assert os.path.getsize(path) < 64 * 2**10
        grew_mb, note = map(int, out.split())
        assert note == 1, (names, out)
        assert grew_mb < 200, (names, out)  # the rows' 400 MB a column were never made


def test_a_parquet_preview_counts_every_row_group_its_rows_come_from(tmp_path: Path) -> None:
    """Only the first row group's decoded size was counted, but the first 20 rows
    are read from as many row groups as hold them: a first group of one small
    row, then 19 groups of one 20 MiB row each (15 KB of zstd), took ~800 MB to
    preview. Every group the rows come from is counted now. Run in a process of
    its own, measured."""
    script = tmp_path / "groups.py"
    script.write_text(
        "import resource, sys\n"
        "import pyarrow as pa, pyarrow.parquet as pq\n"
        "from elliptio._ui import preview\n"
        "path = sys.argv[2]\n"
        "if sys.argv[1] == 'make':\n"
        "    schema = pa.schema([('c', pa.binary())])\n"
        "    with pq.ParquetWriter(path, schema, compression='zstd', use_dictionary=False) as w:\n"
        "        w.write_table(pa.table({'c': pa.array([b'x'], pa.binary())}, schema=schema))\n"
        "        w.write_table(pa.table({'c': pa.array([], pa.binary())}, schema=schema))\n"
        "        big = pa.array([b'a' * (20 * 2**20)], pa.binary())\n"
        "        for _ in range(19):\n"
        "            w.write_table(pa.table({'c': big}, schema=schema))\n"
        "    sys.exit()\n"
        "data = open(path, 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "page = preview.render('b.parquet', data)\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(grew // 1024, int('more than a preview reads' in page))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    path = str(tmp_path / "groups.parquet")
    for step in ("make", "show"):
        out = subprocess.run(
            [sys.executable, str(script), step, path],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    assert os.path.getsize(path) < 64 * 2**10
    grew_mb, note = map(int, out.split())
    assert note == 1, out
    assert grew_mb < 200, out  # the rows' 380 MB were never made
    # Small groups of small rows still show their first 20 rows.
    import pyarrow as pa
    import pyarrow.parquet as pq

    small = tmp_path / "small.parquet"
    with pq.ParquetWriter(small, pa.schema([("n", pa.int64())])) as w:
        for i in range(30):
            w.write_table(pa.table({"n": [i]}))
    page = preview_mod.render("s.parquet", small.read_bytes())
    assert page.count("<tr><td>") == 20
    assert "<td>19</td>" in page
    assert "Only part of the file is shown." in page


def test_the_snippet_of_a_tsv_file_reads_its_columns(handler: eio.Handler, tmp_path: Path) -> None:
    """The page's snippet for a table file is what a user pastes into a notebook:
    for a .tsv it was pd.read_csv(url), which reads every line as one column."""
    import pandas as pd

    (tmp_path / "scores.tsv").write_text("sample\tscore\nalpha\t1\nbeta\t2\n")
    art = handler.upload(tmp_path / "scores.tsv", name="scores")
    with TestClient(create_app(handler.aio), base_url="http://127.0.0.1") as c:
        page = c.get(f"/a/{art.artifact_id}").text
    codes = re.findall(r"<div class=snippet><code>(.*?)</code>", page)
    snippets = [html.unescape(s) for s in codes]
    reads = [s for s in snippets if s.startswith("pd.read_")]
    assert len(reads) == 1, snippets
    assert "<th>sample</th><th>score</th>" in page  # the preview reads it right
    frame = eval(reads[0], {"pd": pd, "art": handler.get("scores:v1")})  # the page's own snippet
    assert list(frame.columns) == ["sample", "score"]
    assert frame["score"].tolist() == [1, 2]


def test_a_parquet_preview_is_not_fooled_by_a_footer_that_understates_the_decoded_size(
    tmp_path: Path,
) -> None:
    """The decoded size a preview may read was taken from the footer's totals
    (total_uncompressed_size), which the file's writer sets: a footer that says
    1000 bytes, over pages of 20 rows of 20 MiB (13 KB of zstd), took ~850 MB to
    preview, 50 such columns ~40 GB. The pages' own headers say what the reader
    allocates for them; those are counted now, and the preview is a note. Run in
    a process of its own, measured."""
    script = tmp_path / "lying.py"
    script.write_text(
        "import resource, struct, sys\n"
        "import pyarrow as pa, pyarrow.parquet as pq\n"
        "from elliptio._ui import preview\n"
        "path = sys.argv[2]\n"
        "def varint(n, width=0):\n"
        "    out = bytearray()\n"
        "    while n >= 0x80 or len(out) + 1 < width:\n"
        "        out.append(n & 0x7F | 0x80)\n"
        "        n >>= 7\n"
        "    return bytes(out + bytes([n]))\n"
        "if sys.argv[1] == 'make':\n"
        "    schema = pa.schema([('c', pa.binary())])\n"
        "    with pq.ParquetWriter(path, schema, compression='zstd', use_dictionary=False) as w:\n"
        "        big = pa.array([b'a' * (20 * 2**20)] * 20, pa.binary())\n"
        "        w.write_table(pa.table({'c': big}, schema=schema))\n"
        "    data = bytearray(open(path, 'rb').read())\n"
        "    meta = pq.ParquetFile(path).metadata.row_group(0)\n"
        "    footer = len(data) - 8 - struct.unpack('<I', data[-8:-4])[0]\n"
        "    for size in {meta.column(0).total_uncompressed_size, meta.total_byte_size}:\n"
        "        true = varint(2 * size)  # thrift's zigzag varint, the same width\n"
        "        data[footer:] = data[footer:].replace(true, varint(2 * 1000, len(true)))\n"
        "    open(path, 'wb').write(data)\n"
        "    said = pq.ParquetFile(path).metadata.row_group(0).column(0)\n"
        "    assert said.total_uncompressed_size == 1000\n"
        "    sys.exit()\n"
        "data = open(path, 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "page = preview.render('b.parquet', data)\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(grew // 1024, int('more than a preview reads' in page))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    path = str(tmp_path / "lying.parquet")
    for step in ("make", "show"):
        out = subprocess.run(
            [sys.executable, str(script), step, path],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
    assert os.path.getsize(path) < 64 * 2**10
    grew_mb, note = map(int, out.split())
    assert note == 1, out
    assert grew_mb < 200, out  # the rows' 400 MB were never made
    # Files whose pages the headers walk: a group of no rows has a chunk with no page.
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"s": pa.array([], pa.string()), "n": pa.array([], pa.int64())}), empty)
    assert preview_mod.render("e.parquet", empty.read_bytes()) == (
        "<table class=preview><tr><th>s</th><th>n</th></tr></table>"
    )
    nested = tmp_path / "nested.parquet"
    table = pa.table(
        {
            "s": pa.array([{"a": i, "b": str(i)} for i in range(30)]),
            "l": pa.array([[i, None] for i in range(30)]),
            "m": pa.array([[("k", i)] for i in range(30)], pa.map_(pa.string(), pa.int64())),
        }
    )
    pq.write_table(table, nested, row_group_size=7, data_page_version="2.0", compression="zstd")
    page = preview_mod.render("n.parquet", nested.read_bytes())
    assert page.count("<tr><td>") == 20, page


def test_a_parquet_preview_of_one_long_dictionary_value_repeated_stays_small(
    tmp_path: Path,
) -> None:
    """A column of bytes stores a repeated value once, in its dictionary page:
    the decoded size counted that page once, but the rows were decoded each with
    its own copy, so 20 rows naming one 30 MB value (2 KB of zstd) took ~1.5 GB
    to preview, 20 fixed-size values of 20 MiB ~500 MB, 20 byte views (pyarrow
    16's binary_view, not read as dictionaries as text was) of 10 MB ~450 MB.
    Bytes and views are read as dictionaries and cut to a cell now, as text is,
    and fixed-size values count once a row. Run in a process of its own, measured."""
    script = tmp_path / "repeated.py"
    script.write_text(
        "import resource, sys\n"
        "import pyarrow as pa, pyarrow.parquet as pq\n"
        "from elliptio._ui import preview\n"
        "path, kind = sys.argv[2], sys.argv[3]\n"
        "if sys.argv[1] == 'make':\n"
        "    value, of = (b'a' * 30_000_000, pa.binary()) if kind == 'bytes' else (\n"
        "        b'a' * 2**20 * 20, pa.binary(2**20 * 20))\n"
        "    column = pa.DictionaryArray.from_arrays([0] * 20, pa.array([value], of))\n"
        "    if kind == 'view':  # a text view (pyarrow 16): its schema is kept\n"
        "        column = pa.array([b'a' * 10_000_000] * 20, pa.binary_view())\n"
        "    pq.write_table(pa.table({'c': column, 'n': list(range(20))}), path,\n"
        "                   compression='zstd', store_schema=False)  # read back dense\n"
        "    sys.exit()\n"
        "data = open(path, 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "page = preview.render('b.parquet', data)\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(grew // 1024, page.count('<td>b&#x27;aaaa'), int('more than a preview' in page))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    for kind, shown, note in (("bytes", 20, 0), ("fixed", 0, 1), ("view", 20, 0)):
        path = str(tmp_path / f"{kind}.parquet")
        for step in ("make", "show"):
            out = subprocess.run(
                [sys.executable, str(script), step, path, kind],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            ).stdout
        assert os.path.getsize(path) < 64 * 2**10
        grew_mb, cells, said = map(int, out.split())
        assert (cells, said) == (shown, note), (kind, out)
        assert grew_mb < 200, (kind, out)  # the rows' copies were never made


def test_a_parquet_preview_reads_the_headers_of_so_many_pages_only(tmp_path: Path) -> None:
    """The decoded size is summed from the pages' headers, read in Python: a
    file of a million one-value pages (28 MB) kept a thread of the UI busy for
    seconds at each view. Past 50,000 pages (more than any writer makes of a file
    the UI previews: pages are a MiB or a thousand values) the preview is a note."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "pages.parquet"
    pq.write_table(
        pa.table({"c": pa.array([0] * 300_000, pa.int8())}),
        path,
        data_page_size=1,
        write_batch_size=1,
        compression="none",
        use_dictionary=False,
        write_statistics=False,
    )
    assert path.stat().st_size < preview_mod.MAX_PREVIEW_BYTES
    page = preview_mod.render("p.parquet", path.read_bytes())
    assert "No preview: the first rows of this Parquet file lie in more than 50,000 pages" in page
    few = tmp_path / "few.parquet"
    pq.write_table(pa.table({"c": pa.array([0] * 300_000, pa.int8())}), few, data_page_size=1)
    assert preview_mod.render("f.parquet", few.read_bytes()).count("<tr><td>0</td></tr>") == 20


def _parquet_with_header(prefix: bytes) -> bytes:
    """A Parquet file whose first column's first page header starts with ``prefix``
    (inserted there: the footer still points at it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"a": pa.array(range(20))}), out, compression="none")
    data = out.getvalue()
    column = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(0)
    start = column.dictionary_page_offset or column.data_page_offset
    return data[:start] + prefix + data[start:]


def test_a_parquet_preview_refuses_a_page_header_of_a_long_varint_or_list() -> None:
    """The page headers are read in Python: a varint of 400 KB of 0xff (its number
    growing a bit at each byte, the cost squared) kept a UI thread busy ~5 s, one
    of 4 MB ~8 minutes; a list of millions of elements one step each. A varint of
    more than 10 bytes is refused, and the headers are read up to so many values."""
    varint = _parquet_with_header(b"\x15" + b"\xff" * 1000 + b"\x01\x00")
    page = preview_mod.render("v.parquet", varint)
    assert "No preview: ValueError: a Parquet page header holds a varint longer than 10" in page
    size = preview_mod.PARQUET_HEADER_VALUES + 1
    count = b""
    while size >= 0x80:
        count, size = count + bytes([size & 0x7F | 0x80]), size >> 7
    bools = b"\x01" * (preview_mod.PARQUET_HEADER_VALUES + 1)
    listed = _parquet_with_header(b"\x19\xf1" + count + bytes([size]) + bools + b"\x00")
    page = preview_mod.render("l.parquet", listed)
    assert "page headers hold more than 2,000,000 values, more than a preview reads" in page


def test_a_parquet_preview_shows_long_texts_alike_in_their_first_characters() -> None:
    """Text is read as dictionaries and cut to a cell: two texts alike in their
    first 200 characters became one value twice in the dictionary, and pandas
    refused the column (No preview: Categorical categories must be unique), for
    a plain column of pyarrow, polars or pandas, as for a pandas categorical."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = ["a" * 300 + str(i) for i in range(30)]
    for column in (pa.array(texts), pa.array(texts, pa.large_string())):
        out = io.BytesIO()
        pq.write_table(pa.table({"c": column}), out)
        page = preview_mod.render("t.parquet", out.getvalue())
        assert page.count("<tr><td>" + "a" * 200 + " …</td></tr>") == 20, page[:300]
    out = io.BytesIO()
    pd.DataFrame({"c": pd.Categorical(texts), "n": pd.Categorical([1, 2] * 15)}).to_parquet(out)
    page = preview_mod.render("t.parquet", out.getvalue())
    assert page.count("<tr><td>" + "a" * 200 + " …</td><td>1</td></tr>") == 10, page[:300]


def test_a_parquet_preview_of_delta_coded_text_and_bytes() -> None:
    """Text and bytes are read as dictionaries, which pyarrow cannot do for the
    delta encodings (DuckDB writes distinct text and blobs so with
    PARQUET_VERSION v2): such a file had no preview ("Not yet implemented"),
    bytes since they are read so. Those columns are read as plain values; a
    prefix-coded value repeats the one before it for a few bytes, so 20 rows of
    one 4 MiB value (one page of 4 MiB) count as 20 of them, over the limit."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "s": pa.array([f"s{i}" for i in range(100)]),
            "b": pa.array([f"b{i}".encode() for i in range(100)]),
            "n": pa.array(range(100)),
        }
    )
    for encoding in ("DELTA_BYTE_ARRAY", "DELTA_LENGTH_BYTE_ARRAY"):
        out = io.BytesIO()
        pq.write_table(
            table,
            out,
            use_dictionary=False,
            column_encoding={"s": encoding, "b": encoding},
            data_page_version="2.0",
        )
        page = preview_mod.render("d.parquet", out.getvalue())
        assert "<tr><td>s19</td><td>b&#x27;b19&#x27;</td><td>19</td></tr>" in page, page[:300]
    out = io.BytesIO()
    long = pa.table({"b": pa.array([b"a" * 4 * 2**20] * 20)})
    encoding = {"b": "DELTA_BYTE_ARRAY"}
    pq.write_table(long, out, use_dictionary=False, column_encoding=encoding, compression="zstd")
    assert len(out.getvalue()) < 2**20
    page = preview_mod.render("d.parquet", out.getvalue())
    assert "No preview: the first rows of this Parquet file take" in page, page[:300]
