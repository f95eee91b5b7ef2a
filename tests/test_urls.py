"""URL tools on any fsspec URL: cached reads, revalidation, offline, ls/cp/mv/rm."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import pytest

import elliptio as eio
from elliptio._config import load_settings
from elliptio._urls import UrlTools
from tests.conftest import S3_BUCKET


@pytest.fixture
def root() -> Iterator[str]:
    url = f"memory:///urls-{uuid.uuid4().hex}"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url.removeprefix("memory://")):
        fs.rm(url.removeprefix("memory://"), recursive=True)


def _tools(tmp_path: Path, **settings: object) -> UrlTools:
    return UrlTools(load_settings(cache_dir=str(tmp_path / "cache"), **settings))


def _put(url: str, data: bytes) -> None:
    with fsspec.open(url, "wb") as f:
        f.write(data)


def test_local_copy_caches_and_warm_reads_skip_the_store(tmp_path: Path, root: str) -> None:
    tools = _tools(tmp_path, revalidate_seconds=3600)
    url = f"{root}/data.csv"
    _put(url, b"a,b\n1,2\n")
    with tools.local_copy(url) as path:
        assert path.read_bytes() == b"a,b\n1,2\n"
        assert str(path).startswith(str(tmp_path / "cache"))
        assert path.name == "data.csv"  # readers that go by extension work on it
    _put(url, b"changed behind our back")
    # Within the revalidation interval no request is made: the cached bytes come back.
    with tools.open(url) as f:
        assert f.read() == b"a,b\n1,2\n"
    assert tools.cache_size() == len(b"a,b\n1,2\n")


def test_revalidation_notices_a_new_version(tmp_path: Path, root: str) -> None:
    tools = _tools(tmp_path, revalidate_seconds=0)
    url = f"{root}/data.csv"
    _put(url, b"v1")
    assert tools.cached_path(url).read_bytes() == b"v1"
    _put(url, b"version 2")
    assert tools.cached_path(url).read_bytes() == b"version 2"


def test_forced_offline_serves_cached_and_names_what_is_missing(
    tmp_path: Path, s3_options: dict[str, Any], moto: Any
) -> None:
    root = f"s3://{S3_BUCKET}/urls-{uuid.uuid4().hex[:8]}"
    # The store's options reach every URL of its protocol; these URLs lie outside it.
    store = {"storage_url": f"s3://{S3_BUCKET}/lake", "storage_options": s3_options}
    online = _tools(tmp_path, **store)
    for name, data in (("cached.txt", b"kept"), ("never-read.txt", b"x")):
        with online.write(f"{root}/{name}") as path:
            path.write_bytes(data)
    online.clear_cache()
    online.cached_path(f"{root}/cached.txt")
    offline = _tools(tmp_path, offline=True, revalidate_seconds=0, **store)
    moto.reset_count()
    assert offline.cached_path(f"{root}/cached.txt").read_bytes() == b"kept"
    assert offline.exists(f"{root}/cached.txt")
    with pytest.raises(eio.OfflineError, match=r"never-read\.txt.*ELLIPTIO_OFFLINE"):
        offline.cached_path(f"{root}/never-read.txt")
    local = tmp_path / "local.txt"
    local.write_bytes(b"local")
    for attempt in (
        lambda: offline.ls(root),
        lambda: offline.rm(f"{root}/cached.txt"),
        lambda: offline.cp(str(local), f"{root}/up.txt"),
        lambda: offline.cp(f"{root}/never-read.txt", str(tmp_path / "down.txt")),
        lambda: offline.open(f"{root}/w.txt", "wb"),
    ):
        with pytest.raises(eio.OfflineError, match="ELLIPTIO_OFFLINE is set"):
            attempt()
    assert not (tmp_path / "down.txt").exists()
    assert moto.requests == 0
    assert online.exists(f"{root}/cached.txt")


def test_offline_local_disk_and_memory_stay_usable(tmp_path: Path, root: str) -> None:
    """docs/cache.md: offline, only what is a network away is refused; local disk
    and memory:// are not. ls and exists of a local folder, and every memory://
    URL not read before, were OfflineError."""
    offline = _tools(tmp_path, offline=True)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"a")
    assert offline.ls(str(folder)) == [str(folder / "a.txt")]
    assert offline.exists(str(folder / "a.txt"))
    assert not offline.exists(str(folder / "b.txt"))
    offline.cp(str(folder / "a.txt"), f"{root}/a.txt")
    assert offline.cached_path(f"{root}/a.txt").read_bytes() == b"a"
    assert offline.ls(root) == [f"{root}/a.txt"]
    with offline.write(f"{root}/w.txt") as path:
        path.write_bytes(b"written")
    with offline.open(f"{root}/w.txt") as f:
        assert f.read() == b"written"
    offline.mv(f"{root}/w.txt", str(folder / "w.txt"))
    assert (folder / "w.txt").read_bytes() == b"written"
    offline.rm(str(folder), recursive=True)
    assert not folder.exists()


def test_write_uploads_on_exit_and_is_cached(tmp_path: Path, root: str) -> None:
    tools = _tools(tmp_path, revalidate_seconds=3600)
    url = f"{root}/out/model.bin"
    with tools.write(url) as path:
        path.write_bytes(b"weights")
    with fsspec.open(url, "rb") as f:
        assert f.read() == b"weights"
    assert tools.cache_size() == len(b"weights")
    with pytest.raises(RuntimeError), tools.write(f"{root}/failed.bin") as path:
        path.write_bytes(b"half")
        raise RuntimeError
    assert not tools.exists(f"{root}/failed.bin")


def test_ls_exists_cp_mv_rm(tmp_path: Path, root: str) -> None:
    tools = _tools(tmp_path)
    _put(f"{root}/a/1.txt", b"1")
    _put(f"{root}/a/2.txt", b"2")
    assert sorted(tools.ls(f"{root}/a")) == [f"{root}/a/1.txt", f"{root}/a/2.txt"]
    assert tools.exists(f"{root}/a/1.txt")
    assert not tools.exists(f"{root}/a/3.txt")
    tools.cp(f"{root}/a/1.txt", f"{root}/b/1.txt")
    tools.cp(f"{root}/a/2.txt", str(tmp_path / "local" / "2.txt"))  # across filesystems
    assert (tmp_path / "local" / "2.txt").read_bytes() == b"2"
    tools.mv(f"{root}/b/1.txt", f"{root}/c/1.txt")
    assert not tools.exists(f"{root}/b/1.txt")
    assert tools.cached_path(f"{root}/c/1.txt").read_bytes() == b"1"
    tools.rm(f"{root}/a", recursive=True)
    assert not tools.exists(f"{root}/a/1.txt")


def test_rm_and_cp_invalidate_cached_versions(tmp_path: Path, root: str) -> None:
    tools = _tools(tmp_path, revalidate_seconds=3600)
    url = f"{root}/x.txt"
    _put(url, b"old")
    assert tools.cached_path(url).read_bytes() == b"old"
    _put(f"{root}/y.txt", b"new!")
    tools.cp(f"{root}/y.txt", url)
    assert tools.cached_path(url).read_bytes() == b"new!"
    tools.rm(url)
    with pytest.raises(FileNotFoundError):
        tools.cached_path(url)


def test_local_paths_are_used_in_place(tmp_path: Path) -> None:
    tools = _tools(tmp_path)
    f = tmp_path / "plain.txt"
    f.write_text("plain")
    with tools.local_copy(str(f)) as path:
        assert path == f
    assert tools.cache_size() == 0


def test_prune_and_clear(tmp_path: Path, root: str) -> None:
    tools = _tools(tmp_path)
    _put(f"{root}/x", b"12345")
    tools.cached_path(f"{root}/x")
    assert tools.prune_cache(timedelta(hours=1)) == 0
    assert tools.prune_cache(older_than=timedelta(seconds=-60)) == 5
    tools.cached_path(f"{root}/x")
    assert tools.clear_cache() == 5
    assert tools.cache_size() == 0


def test_module_level_functions_use_the_settings(
    tmp_path: Path, root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import elliptio._urls as urls

    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "env-cache"))
    monkeypatch.setattr(urls._default, "_value", None)
    _put(f"{root}/m.txt", b"module")
    with eio.local_copy(f"{root}/m.txt") as path:
        assert path.read_bytes() == b"module"
        assert str(path).startswith(str(tmp_path / "env-cache"))
    with eio.open(f"{root}/m.txt", "rb") as f:
        assert f.read() == b"module"
    assert eio.exists(f"{root}/m.txt")
    assert eio.ls(root) == [f"{root}/m.txt"]
    eio.cp(f"{root}/m.txt", f"{root}/n.txt")
    eio.mv(f"{root}/n.txt", f"{root}/o.txt")
    eio.rm(f"{root}/o.txt")
    with eio.write(f"{root}/w.txt") as path:
        path.write_text("w")
    assert eio.cache_size() > 0
    assert eio.prune_cache(timedelta(days=1)) == 0
    assert eio.clear_cache() > 0


class _Site:
    """A real HTTP server on a free port: files from a folder, 500 at /boom, and
    the error status that `failing` gives for a path."""

    def __init__(self, folder: Path) -> None:
        import functools
        import http.server
        import threading

        failing: dict[str, int] = {"/boom": 500}
        self.failing = failing
        self.bare = False  # no Last-Modified: nothing tells versions apart
        self.stall = 0.0  # seconds to wait before answering
        site = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def send_header(self, keyword: str, value: str) -> None:
                if not (site.bare and keyword == "Last-Modified"):
                    super().send_header(keyword, value)

            def do_GET(self) -> None:
                time.sleep(site.stall)
                if self.path in failing:
                    self.send_error(failing[self.path])
                else:
                    super().do_GET()

            do_HEAD = do_GET

        handler = functools.partial(Handler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[_Site]:
    """A real HTTP server serving ``a.txt`` ("hello") from ``tmp_path / "www"``."""
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.txt").write_text("hello")
    running = _Site(tmp_path / "www")
    yield running
    running.stop()


def test_http_exists_tells_missing_from_unreachable(tmp_path: Path, site: _Site) -> None:
    """fsspec's HTTP filesystem answers "not found" for a server that is down or
    failing: exists() says False only for a URL the server says is not there."""
    tools = _tools(tmp_path)
    try:
        assert tools.exists(f"{site.url}/a.txt") is True
        assert tools.exists(f"{site.url}/nope.txt") is False
        with pytest.raises(eio.StorageError, match="500"):
            tools.exists(f"{site.url}/boom")
        with pytest.raises(eio.StorageError, match="/boom"):
            tools.cached_path(f"{site.url}/boom")
        with pytest.raises(FileNotFoundError):
            tools.cached_path(f"{site.url}/nope.txt")
    finally:
        site.stop()
    with pytest.raises(eio.StorageError, match=r"cannot check .*a\.txt.*reachable"):
        tools.exists(f"{site.url}/a.txt")


def test_http_url_read_once_is_served_from_the_cache_when_the_server_is_down(
    tmp_path: Path,
    site: _Site,
) -> None:
    tools = _tools(tmp_path, revalidate_seconds=0)  # every read asks the server first
    try:
        assert tools.cached_path(f"{site.url}/a.txt").read_text() == "hello"
    finally:
        site.stop()
    assert tools.cached_path(f"{site.url}/a.txt").read_text() == "hello"
    with pytest.raises(eio.OfflineError, match="unreachable") as down:
        tools.cached_path(f"{site.url}/never-read.txt")
    # ELLIPTIO_OFFLINE is not set: the next step is no advice to unset it.
    assert "ELLIPTIO_OFFLINE" not in str(down.value)
    assert "check the network and the storage endpoint" in str(down.value)


def test_http_errors_name_the_status_and_a_gateway_error_serves_the_cache(
    tmp_path: Path,
    site: _Site,
) -> None:
    tools = _tools(tmp_path, revalidate_seconds=0)
    try:
        site.failing["/forbidden.txt"] = 403
        with pytest.raises(eio.StorageError, match="403"):
            tools.cached_path(f"{site.url}/forbidden.txt")
        assert tools.cached_path(f"{site.url}/a.txt").read_text() == "hello"
        # A proxy in front of a server that is down answers 502, 503 or 504.
        site.failing["/a.txt"] = 503
        assert tools.cached_path(f"{site.url}/a.txt").read_text() == "hello"
    finally:
        site.stop()


def test_cli_exists_tells_missing_from_cannot_tell(
    tmp_path: Path, site: _Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``elliptio exists``: 0 there, 1 not there, 2 when it cannot be told."""
    from elliptio._cli import main

    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    try:
        assert main(["exists", f"{site.url}/a.txt"]) == 0
        assert main(["exists", f"{site.url}/nope.txt"]) == 1
        assert capsys.readouterr().out == "true\nfalse\n"
        assert main(["exists", f"{site.url}/boom"]) == 2
    finally:
        site.stop()
    assert main(["exists", f"{site.url}/a.txt"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("elliptio: error: StorageError") == 2


def test_an_http_url_without_validators_is_fetched_again_when_revalidated(
    tmp_path: Path,
    site: _Site,
) -> None:
    """A server that sends neither ETag nor Last-Modified gives nothing to compare a
    cached copy with: the bytes are fetched again on each read, inside the
    revalidation interval too (before, a changed file of the same size was served
    stale forever, then for the interval; helper-52), as docs/cache.md says."""
    (tmp_path / "www" / "a.txt").write_text("v1")
    site.bare = True
    tools = _tools(tmp_path, revalidate_seconds=3600)
    try:
        assert tools.cached_path(f"{site.url}/a.txt").read_text() == "v1"
        (tmp_path / "www" / "a.txt").write_text("v2")  # the same size
        assert tools.cached_path(f"{site.url}/a.txt").read_text() == "v2"
    finally:
        site.stop()
    # Unreachable, the copy read last is what there is.
    assert tools.cached_path(f"{site.url}/a.txt").read_text() == "v2"


def test_an_http_server_that_stops_answering_is_unreachable_after_the_read_timeout(
    tmp_path: Path, site: _Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each HTTP read waits at most ELLIPTIO's read timeout (60 s; 0.3 s here), not
    aiohttp's 5 minutes for a whole request: then a cached copy is served."""
    import elliptio._storage

    monkeypatch.setattr(elliptio._storage, "HTTP_READ_SECONDS", 0.3)
    tools = _tools(tmp_path, revalidate_seconds=0)
    assert tools.cached_path(f"{site.url}/a.txt").read_text() == "hello"
    site.stall = 1.5
    started = time.monotonic()
    assert tools.cached_path(f"{site.url}/a.txt").read_text() == "hello"
    # exists() answers as the read: the cached copy is there (helper-74); of a
    # URL not cached it cannot tell.
    assert tools.exists(f"{site.url}/a.txt")
    with pytest.raises(eio.StorageError, match=r"[Tt]imeout"):
        tools.exists(f"{site.url}/b.txt")
    assert time.monotonic() - started < 1.5 * 5  # not aiohttp's 300 s
    site.stall = 0.0


def test_a_token_in_a_url_never_reaches_the_cache_or_a_listing(
    tmp_path: Path,
    site: _Site,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/cache.md: a presigned URL is read, and its secrets are written nowhere:
    not in the cache's records, not in a file name, not in what ls prints."""
    token, signature = "TOKSECRET4711", "SIGSECRET0815"
    (tmp_path / "www" / "index.html").write_text(
        f'<a href="a.txt?token={token}">a</a> <a href="b.txt?X-Amz-Signature={signature}">b</a>'
    )
    tools = _tools(tmp_path)
    url = f"{site.url}/a.txt?token={token}&X-Amz-Signature={signature}"
    for _ in range(2):  # fetched, then from the cache
        with tools.open(url) as f:
            assert f.read() == b"hello"
        assert tools.cached_path(url).name == "a.txt"
    stored = list(tools.cache.root.rglob("*"))
    assert stored
    for path in stored:
        assert token not in str(path)
        assert signature not in str(path)
        if path.is_file() and not path.is_symlink():
            text = path.read_bytes()
            assert token.encode() not in text
            assert signature.encode() not in text
    # Another token for the same file is its own URL: fetched again, still masked.
    assert tools.cached_path(f"{site.url}/a.txt?token=other").read_text() == "hello"
    # ls hands the caller the names it can open again; the CLI prints them masked.
    listed = tools.ls(f"{site.url}/", detail=False)
    assert any(name.endswith(f"a.txt?token={token}") for name in listed)
    from elliptio._cli import main

    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["ls", f"{site.url}/"]) == 0
    out = capsys.readouterr().out
    assert "a.txt?token=***" in out
    assert token not in out
    assert signature not in out


def test_a_missing_url_is_an_elliptio_error_naming_the_url(
    tmp_path: Path, root: str, s3_options: dict[str, Any]
) -> None:
    """docs/concepts.md: every error derives from ElliptioError and names the URL.
    A missing URL was a bare FileNotFoundError naming the path without its scheme."""
    s3 = f"s3://{S3_BUCKET}/elsewhere"
    tools = _tools(tmp_path, storage_url=f"s3://{S3_BUCKET}/lake", storage_options=s3_options)
    for base in (str(tmp_path), root, s3):
        url = f"{base}/none.csv"
        for call, extra in (
            (tools.cached_path, ()),
            (tools.open, ()),
            (tools.cp, (str(tmp_path / "copy.csv"),)),
            (tools.ls, ()),
        ):
            with pytest.raises(eio.UrlNotFoundError, match=re.escape(f"{url}' does not exist")):
                call(url, *extra)
    with pytest.raises(FileNotFoundError):  # what readers and fsspec expect
        tools.open(f"{s3}/none.csv")


def test_a_dangling_link_or_a_fifo_is_named_for_what_it_is(tmp_path: Path) -> None:
    """cp, mv, open and cat of a symbolic link to nothing, or of a FIFO, said the
    path does not exist, while ls showed it there."""
    tools = _tools(tmp_path, storage_url=str(tmp_path / "store"))
    (tmp_path / "dangling").symlink_to(tmp_path / "gone.csv")
    os.mkfifo(tmp_path / "fifo")
    for name, said in (("dangling", "symbolic link to '.*gone.csv'"), ("fifo", "a FIFO")):
        url = str(tmp_path / name)
        for call in (tools.cp, tools.mv, tools.open):
            args = (url, str(tmp_path / "out")) if call != tools.open else (url,)
            with pytest.raises(eio.UrlNotFoundError, match=said):
                call(*args)
        assert (tmp_path / name).is_symlink() or (tmp_path / name).is_fifo()
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["local", "memory"])
def test_moving_keeps_empty_folders_and_never_moves_into_itself(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cp listed files only: `mv -r` of a project lost its empty outputs/ folder,
    and a recursive cp of a missing folder succeeded. mv into itself (or onto
    itself) copied, then removed the source with the copy in it (helper-60)."""
    import fsspec

    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    root = str(tmp_path / "w") if where == "local" else f"memory://mv-{tmp_path.name}"
    fs = fsspec.filesystem("file" if where == "local" else "memory")
    plain = root.removeprefix("memory://")
    fs.makedirs(f"{plain}/proj/outputs", exist_ok=True)
    fs.pipe(f"{plain}/proj/readme.txt", b"r")
    eio.mv(f"{root}/proj", f"{root}/proj2", recursive=True)
    assert fs.isdir(f"{plain}/proj2/outputs")
    assert fs.cat(f"{plain}/proj2/readme.txt") == b"r"
    assert not fs.exists(f"{plain}/proj")
    with pytest.raises(eio.UrlNotFoundError):
        eio.cp(f"{root}/typo", f"{root}/x", recursive=True)
    for target in (f"{root}/proj2/sub", f"{root}/proj2", root):
        with pytest.raises(eio.InvalidPathError):
            eio.mv(f"{root}/proj2", target, recursive=True)
    for target in (f"{root}/proj2/readme.txt", f"{root}/proj2/", f"{root}/proj2"):
        with pytest.raises(eio.InvalidPathError):  # onto itself, or its own folder (helper-61)
            eio.mv(f"{root}/proj2/readme.txt", target)
    assert fs.cat(f"{plain}/proj2/readme.txt") == b"r"
    fs.makedirs(f"{plain}/proj2/proj2", exist_ok=True)
    fs.pipe(f"{plain}/proj2/proj2/keep.txt", b"k")  # would land in proj2 itself (helper-62)
    with pytest.raises(eio.InvalidPathError):
        eio.mv(f"{root}/proj2/", root, recursive=True)
    assert fs.cat(f"{plain}/proj2/proj2/keep.txt") == b"k"
    fs.rm(f"{plain}/proj2/proj2", recursive=True)
    eio.mv(f"{root}/proj2/", root, recursive=True)  # its contents, one level up
    assert fs.cat(f"{plain}/readme.txt") == b"r"
    if where == "local":  # path-like arguments, refused as text is (helper-62)
        with pytest.raises(eio.InvalidPathError):
            eio.mv(tmp_path / "w", tmp_path / "w" / "sub", recursive=True)
        # A file where a folder goes: not "committed files are never overwritten".
        fs.makedirs(f"{plain}/tree/inner", exist_ok=True)
        fs.pipe(f"{plain}/taken", b"t")
        with pytest.raises(eio.InvalidPathError, match="exists there already"):
            eio.cp(f"{root}/tree", f"{root}/taken/x", recursive=True)
    fs.makedirs(f"{plain}/folder", exist_ok=True)
    fs.pipe(f"{plain}/folder/f.txt", b"1")
    with pytest.raises(eio.InvalidPathError, match="without recursive=True"):
        eio.rm(f"{root}/folder")  # a folder: rm -r (S3 removed nothing, silently)
    assert fs.cat(f"{plain}/folder/f.txt") == b"1"


def test_no_folder_is_made_in_the_store_through_a_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cp -r made the source's empty folders at the target, checking only files:
    through a link into the store it made folders in an artifact's (helper-61)."""
    store = tmp_path / "store"
    with eio.Handler(storage=store, catalog=f"sqlite:///{tmp_path}/c.db") as h:
        src = tmp_path / "x.csv"
        src.write_text("1\n")
        art = h.upload(src)
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(store))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    folder = Path(art.file.url).parent
    before = sorted(p.name for p in folder.iterdir())
    (tmp_path / "template" / "data" / "raw").mkdir(parents=True)
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "data").symlink_to(folder)
    with pytest.raises(eio.InvalidPathError, match="lies in the elliptio store"):
        eio.cp(f"{tmp_path}/template/", str(tmp_path / "project"), recursive=True)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_a_versioned_spelling_of_the_same_s3_key_is_no_other_place(
    s3_options: dict[str, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """s3fs reads 'f?versionId=1' as key f: mv f to it copied f onto itself and
    removed it (helper-62)."""
    import json

    from tests.conftest import S3_BUCKET

    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", f"s3://{S3_BUCKET}/lake")
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    url = f"s3://{S3_BUCKET}/plain/f.txt"
    with eio.write(url) as path:
        path.write_text("f")
    with pytest.raises(eio.InvalidPathError):
        eio.mv(url, f"{url}?versionId=1")
    assert eio.exists(url)
    with pytest.raises(eio.InvalidPathError, match="without recursive=True"):
        eio.rm(f"s3://{S3_BUCKET}/plain")
    assert eio.exists(url)


def test_a_move_takes_an_s3_object_named_as_its_folder_along(
    s3_options: dict[str, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Keys d and d/inner: mv -r d e copied d/inner only, and the removal took
    the object d (helper-62)."""
    import json

    import fsspec

    from tests.conftest import S3_BUCKET

    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", f"s3://{S3_BUCKET}/lake")
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    fs = fsspec.filesystem("s3", **s3_options)
    fs.pipe(f"{S3_BUCKET}/both/d", b"object")
    fs.pipe(f"{S3_BUCKET}/both/d/inner", b"inner")
    eio.mv(f"s3://{S3_BUCKET}/both/d", f"s3://{S3_BUCKET}/both/e", recursive=True)
    fs.invalidate_cache()
    assert fs.cat(f"{S3_BUCKET}/both/e") == b"object"
    assert fs.cat(f"{S3_BUCKET}/both/e/inner") == b"inner"


def test_s3_folder_markers_are_folders_in_copies_and_moves(
    s3_options: dict[str, object], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Keys ending in "/" (``d/sub/``, as the S3 console makes folders) were copied
    as files: cp -r to local disk stopped with 'a file where a folder is needed'
    after some files, and cp -r / mv -r within S3 with UrlNotFoundError."""
    import json

    import fsspec

    from tests.conftest import S3_BUCKET

    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", f"s3://{S3_BUCKET}/lake")
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    fs = fsspec.filesystem("s3", **s3_options)
    d = f"{S3_BUCKET}/console/d"
    fs.pipe({f"{d}/a.txt": b"a", f"{d}/empty/": b"", f"{d}/sub/": b"", f"{d}/sub/b.txt": b"b"})

    eio.cp(f"s3://{d}", str(tmp_path / "out"), recursive=True)
    assert (tmp_path / "out" / "sub" / "b.txt").read_bytes() == b"b"
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"a"
    assert (tmp_path / "out" / "empty").is_dir()

    eio.cp(f"s3://{d}", f"s3://{S3_BUCKET}/console/e", recursive=True)
    eio.mv(f"s3://{d}", f"s3://{S3_BUCKET}/console/f", recursive=True)
    fs.invalidate_cache()
    for folder in ("e", "f"):
        assert fs.cat(f"{S3_BUCKET}/console/{folder}/sub/b.txt") == b"b"
        assert fs.cat(f"{S3_BUCKET}/console/{folder}/a.txt") == b"a"
    assert not fs.exists(d)
    # A key ending in "/" that holds bytes is refused before anything is copied
    # or removed: a move lost its bytes (helper-70).
    fs.pipe({f"{d}/a.txt": b"a", f"{d}/notes/": b"32 bytes of notes"})
    for target in (f"s3://{S3_BUCKET}/console/g", str(tmp_path / "g")):
        with pytest.raises(eio.InvalidPathError, match="holds bytes"):
            eio.mv(f"s3://{d}", target, recursive=True)
    fs.invalidate_cache()
    listed = fs.find(d, withdirs=True, detail=True)
    assert listed[f"{d}/notes/"]["size"] == len(b"32 bytes of notes")
    assert f"{d}/a.txt" in listed
    assert not fs.exists(f"{S3_BUCKET}/console/g")
    assert not (tmp_path / "g").exists()


def _read(tools: UrlTools, url: str) -> bytes:
    with tools.open(url) as f:
        data: bytes = f.read()
    return data


def _other_s3(s3_options: dict[str, Any]) -> fsspec.AbstractFileSystem:
    """A filesystem of another process's: none of the tools' cached state."""
    return fsspec.filesystem("s3", skip_instance_cache=True, **s3_options)


def test_a_copy_into_a_folder_forgets_the_cached_version_of_what_it_wrote(
    tmp_path: Path, s3_options: dict[str, Any]
) -> None:
    """cp and mv forgot the cached version of the URL they were given only: a
    copy into a folder (``dst`` ending in "/") left ``folder/a.csv``'s old bytes
    served until it was revalidated, and for good offline (helper-74)."""
    store = {"storage_url": f"s3://{S3_BUCKET}/lake", "storage_options": s3_options}
    tools = _tools(tmp_path, revalidate_seconds=3600, **store)
    url = f"s3://{S3_BUCKET}/data/folder/a.csv"
    (tmp_path / "a.csv").write_bytes(b"x\n1\n")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a.csv").write_bytes(b"x\n2\n")
    tools.cp(str(tmp_path / "a.csv"), url)
    assert _read(tools, url) == b"x\n1\n"
    tools.cp(str(tmp_path / "new" / "a.csv"), f"s3://{S3_BUCKET}/data/folder/")
    assert _read(tools, url) == b"x\n2\n"
    tools.cp(str(tmp_path / "a.csv"), url)
    assert _read(tools, url) == b"x\n1\n"
    tools.cp(str(tmp_path / "new") + "/", f"s3://{S3_BUCKET}/data/folder/", recursive=True)
    assert _read(tools, url) == b"x\n2\n"


def test_a_listing_never_answers_for_the_folder_later(
    tmp_path: Path, s3_options: dict[str, Any]
) -> None:
    """After ls() of a folder, s3fs answered exists(), revalidation and copies from
    that listing: another writer's new bytes were never read, a removed key still
    existed, an added one did not (helper-74)."""
    store = {"storage_url": f"s3://{S3_BUCKET}/lake", "storage_options": s3_options}
    tools = _tools(tmp_path, revalidate_seconds=0, **store)
    folder = f"s3://{S3_BUCKET}/shared/f"
    other = _other_s3(s3_options)
    other.pipe(f"{S3_BUCKET}/shared/f/a.csv", b"version 1\n")
    assert tools.ls(folder) == [f"{folder}/a.csv"]
    assert _read(tools, f"{folder}/a.csv") == b"version 1\n"
    other.pipe(f"{S3_BUCKET}/shared/f/a.csv", b"version 2\n")
    other.pipe(f"{S3_BUCKET}/shared/f/b.csv", b"b\n")
    assert _read(tools, f"{folder}/a.csv") == b"version 2\n"
    assert tools.exists(f"{folder}/b.csv")
    other.rm(f"{S3_BUCKET}/shared/f/b.csv")
    assert not tools.exists(f"{folder}/b.csv")


def test_the_same_key_on_another_endpoint_is_another_file(
    tmp_path: Path, s3_options: dict[str, Any]
) -> None:
    """The cache kept a URL's version by its text alone: the same bucket and key
    read through another endpoint (staging and production) served the first
    endpoint's bytes, offline too (helper-74)."""
    import socket
    import subprocess
    import sys

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(1200):  # a minute at most: a loaded machine starts it slowly
            try:
                requests.put(f"{endpoint}/{S3_BUCKET}", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        production = {**s3_options, "endpoint_url": endpoint}
        _other_s3(s3_options).pipe(f"{S3_BUCKET}/config.csv", b"STAGING\n")
        _other_s3(production).pipe(f"{S3_BUCKET}/config.csv", b"PRODUCTION\n")
        url = f"s3://{S3_BUCKET}/config.csv"
        for options, expected in ((s3_options, b"STAGING\n"), (production, b"PRODUCTION\n")):
            store = {"storage_url": f"s3://{S3_BUCKET}/lake", "storage_options": options}
            assert _read(_tools(tmp_path, revalidate_seconds=3600, **store), url) == expected
            offline = _tools(tmp_path, offline=True, **store)
            assert _read(offline, url) == expected
    finally:
        server.terminate()
        server.wait(10)


class _AccountFS(fsspec.AbstractFileSystem):
    """An object store (as Azure's) whose account, and so its endpoint, is named
    only inside a secret option: ``connection_string``."""

    protocol = "acctfs"
    root_marker = ""
    accounts: ClassVar[dict[str, dict[str, bytes]]] = {}

    def __init__(self, connection_string: str = "", **kwargs: Any) -> None:
        super().__init__(connection_string=connection_string, **kwargs)
        fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        self.blobs = self.accounts.setdefault(fields.get("AccountName", ""), {})

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(path).rstrip("/")

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if path not in self.blobs:
            raise FileNotFoundError(path)
        data = self.blobs[path]
        etag = hashlib.md5(data).hexdigest()
        return {"name": path, "size": len(data), "type": "file", "etag": etag}

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        import io

        return io.BytesIO(self.blobs[self._strip_protocol(path)])


def test_the_same_key_of_another_account_named_in_a_connection_string_is_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cache.md: what the cache knows of a URL is kept for the endpoint it was
    read from. An object store whose options name the account only inside a
    secret (Azure's ``connection_string``) kept one record for both accounts:
    ``container/config.csv`` read with production's options was served staging's
    bytes, online within the revalidation interval and offline for good."""
    import importlib

    registry = importlib.import_module("fsspec.registry")._registry
    monkeypatch.setitem(registry, "acctfs", _AccountFS)
    monkeypatch.setattr(
        _AccountFS,
        "accounts",
        {
            "staging": {"container/config.csv": b"STAGING\n"},
            "production": {"container/config.csv": b"PRODUCTION\n"},
        },
    )
    url = "acctfs://container/config.csv"
    for account, expected in (("staging", b"STAGING\n"), ("production", b"PRODUCTION\n")):
        secret = f"KEY-OF-{account.upper()}"
        options = {
            "connection_string": f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={secret};EndpointSuffix=core.windows.net"
        }
        store = {"storage_url": "acctfs://container/lake", "storage_options": options}
        assert _read(_tools(tmp_path, revalidate_seconds=3600, **store), url) == expected
        assert _read(_tools(tmp_path, offline=True, **store), url) == expected
        for file in (tmp_path / "cache").rglob("*"):
            assert secret not in file.name
            assert not file.is_file() or secret.encode() not in file.read_bytes()


class _BlobFS(fsspec.AbstractFileSystem):
    """An object store as gcsfs and adlfs are: flat keys, folders as prefixes that
    ``info`` reports as directories of size 0, files read through fsspec's
    ``AbstractBufferedFile`` (which reads whatever size ``info`` gave)."""

    protocol = "blobfs"
    root_marker = ""
    blobs: ClassVar[dict[str, bytes]] = {}

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(path).rstrip("/")

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if path in self.blobs:
            return {"name": path, "size": len(self.blobs[path]), "type": "file"}
        if any(key.startswith(path + "/") for key in self.blobs):
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        names = {
            path + "/" + k[len(path) + 1 :].split("/")[0]
            for k in self.blobs
            if k.startswith(path + "/")
        }
        found = [self.info(n) for n in sorted(names)]
        return found if detail else [f["name"] for f in found]

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        from fsspec.spec import AbstractBufferedFile

        class Blob(AbstractBufferedFile):  # type: ignore[misc]
            def _fetch_range(self, start: int, end: int) -> bytes:
                return _BlobFS.blobs[self.path][start:end]

        return Blob(self, self._strip_protocol(path), mode)


def test_a_folder_of_an_object_store_is_no_empty_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an object store whose files are fsspec buffered files (gcsfs, adlfs), a
    folder's URL given to eio.open, local_copy or `elliptio cat` was read as an
    empty file (and cached as one): b'' with no error, where local disk, memory://
    and S3 say that the URL names no file (UrlNotFoundError)."""
    import importlib

    registry = importlib.import_module("fsspec.registry")._registry
    monkeypatch.setitem(registry, "blobfs", _BlobFS)
    monkeypatch.setattr(_BlobFS, "blobs", {"bkt/data/a.csv": b"a,b\n1,2\n"})
    tools = _tools(tmp_path)
    assert _read(tools, "blobfs://bkt/data/a.csv") == b"a,b\n1,2\n"
    for url in ("blobfs://bkt/data", "blobfs://bkt/data/"):
        with pytest.raises(eio.UrlNotFoundError, match="does not exist"):
            tools.cached_path(url)
        with pytest.raises(eio.UrlNotFoundError):
            _read(tools, url)
    assert tools.cache_size() == len(b"a,b\n1,2\n")


@contextlib.contextmanager
def _http_server(body: Callable[[str], bytes]) -> Iterator[str]:
    """A real HTTP server answering every path with ``body(path)`` (its md5 as
    ETag, so the cache keeps it for offline reads); yields its base URL."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, head_only: bool) -> None:
            data = body(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{hashlib.md5(data).hexdigest()}"')
            self.end_headers()
            if not head_only:
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            self._send(head_only=True)

        def do_GET(self) -> None:
            self._send(head_only=False)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_urls_told_apart_by_a_masked_parameter_are_two_files(tmp_path: Path) -> None:
    """A URL's record was named by the URL with its secrets masked: two resources
    told apart only by a parameter redaction masks (?key=a.csv, ?page_token=p2)
    shared one record, and the second was served the first one's bytes without
    a request (helper-75)."""
    from urllib.parse import parse_qs, urlparse

    with _http_server(lambda path: repr(parse_qs(urlparse(path).query)).encode()) as base:
        tools = _tools(tmp_path, revalidate_seconds=3600)
        for query in ("key=a.csv", "key=b.csv", "page_token=p1", "page_token=p2"):
            name, value = query.split("=")
            assert _read(tools, f"{base}/x?{query}") == repr({name: [value]}).encode()


def test_reading_eio_urls_keeps_no_filesystem_per_call(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    """fsspec makes a new elliptio:// filesystem on every call (it is not
    cachable); the URL tools kept each one, with a backend, for the life of the
    process: a loop over eio_urls grew without end."""
    import gc

    from elliptio._protocol import ElliptioFileSystem

    source = tmp_path / "a.txt"
    source.write_text("hello")
    with eio.Handler() as h:
        url = h.upload(source).file.eio_url
        for _ in range(30):
            with eio.open(url) as f:
                assert f.read() == b"hello"
            assert eio.exists(url)
        gc.collect()
        alive = [o for o in gc.get_objects() if isinstance(o, ElliptioFileSystem)]
        assert len(alive) < 5


def test_a_memory_url_read_in_another_process_is_never_served_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """memory:// lives in one process, but the cache that records what a URL held
    is shared: for ELLIPTIO_REVALIDATE_SECONDS another process's memory file
    was served for a path that held other bytes here, or nothing."""
    import subprocess
    import sys

    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    url = f"memory://shared-{uuid.uuid4().hex}/a.txt"
    other = (
        "import sys, elliptio as eio\n"
        "with eio.open(sys.argv[1], 'wb') as f: f.write(b'theirs')\n"
        "assert eio.open(sys.argv[1]).read() == b'theirs'\n"
    )
    subprocess.run([sys.executable, "-c", other, url], check=True, env=os.environ)
    with pytest.raises(eio.UrlNotFoundError), eio.open(url) as f:
        f.read()
    fs = fsspec.filesystem("memory")
    try:
        fs.pipe(url, b"mine!!")  # the same size
        with eio.open(url) as f:
            assert f.read() == b"mine!!"
        with eio.local_copy(url) as path:
            assert path.read_bytes() == b"mine!!"
    finally:
        fs.rm(url)


@pytest.mark.parametrize("given", [{}, {"version_aware": True}])
def test_a_url_naming_an_s3_version_reads_that_version(
    given: dict[str, Any], s3_options: dict[str, Any], tmp_path: Path
) -> None:
    """`s3://bucket/key?versionId=V` served the current object's bytes: the
    download asked for the key without its version, though the HEAD that
    checks the version asked for V (s3fs makes the filesystem version aware for
    such a URL), so they were cached as V's."""
    import s3fs

    from tests.conftest import S3_CREDENTIALS

    direct = s3fs.S3FileSystem(
        endpoint_url=s3_options["endpoint_url"],
        skip_instance_cache=True,
        version_aware=True,
        **S3_CREDENTIALS,
    )
    direct.call_s3(
        "put_bucket_versioning",
        Bucket=S3_BUCKET,
        VersioningConfiguration={"Status": "Enabled"},
    )
    key = f"{S3_BUCKET}/versions-{uuid.uuid4().hex[:8]}/k.txt"
    direct.pipe(key, b"the first")
    first = direct.info(key)["VersionId"]
    direct.pipe(key, b"the second, current")
    options = {**s3_options, **given}
    tools = _tools(tmp_path, storage_url=f"s3://{S3_BUCKET}/lake", storage_options=options)
    url = f"s3://{key}?versionId={first}"
    with tools.open(url) as f:
        assert f.read() == b"the first"
    with tools.local_copy(url) as path:
        assert path.read_bytes() == b"the first"
    with tools.open(f"s3://{key}") as f:
        assert f.read() == b"the second, current"


@pytest.mark.parametrize("where", ["s3", "local"])
@pytest.mark.parametrize("mode", ["wb", "w"])
def test_a_write_through_open_that_fails_leaves_nothing_and_says_so(
    where: str, mode: str, s3_options: dict[str, Any], tmp_path: Path
) -> None:
    """`with eio.open(url, "wb") as f:` whose block raised committed what was
    written so far (closing the file uploads it): a cut file at the URL, where
    `cp` and `eio.write` leave none. And a storage that failed on the write
    raised botocore's own exception, no ElliptioError."""
    options = {**s3_options, "default_block_size": 5 * 2**20}  # parts of 5 MiB
    tools = _tools(tmp_path, storage_url=f"s3://{S3_BUCKET}/lake", storage_options=options)
    url = f"s3://{S3_BUCKET}/out-{mode}.csv" if where == "s3" else str(tmp_path / f"o-{mode}.csv")
    data: Any = b"a,b\n1," if mode == "wb" else "a,b\n1,"
    with pytest.raises(ZeroDivisionError), tools.open(url, mode) as f:
        f.write(data)
        f.write(data[:1] * (6 * 2**20))  # past one part: a multipart upload under way
        1 / 0  # noqa: B018 - the program fails halfway
    assert not tools.exists(url)
    if where == "s3":  # the parts sent were dropped too
        s3 = fsspec.filesystem("s3", skip_instance_cache=True, **s3_options)
        assert s3.call_s3("list_multipart_uploads", Bucket=S3_BUCKET).get("Uploads", []) == []
    with tools.open(url, mode) as f:
        f.write(data)
    with tools.open(url) as f:
        assert f.read() == b"a,b\n1,"
    if where == "s3":
        down = {**s3_options, "endpoint_url": "http://127.0.0.1:9"}
        unreachable = _tools(tmp_path, storage_url=f"s3://{S3_BUCKET}/lake", storage_options=down)
        with pytest.raises(eio.StorageError, match="cannot write"):
            with unreachable.open(url, mode) as f:
                f.write(data)


@pytest.mark.parametrize("mode", ["a", "ab", "r+b"])
def test_a_failed_write_to_a_file_that_existed_keeps_what_it_held(
    mode: str, tmp_path: Path
) -> None:
    """`with eio.open(path, "a") as f:` whose block raised removed the whole file:
    the lines a log held before the append were gone with the failed write. A
    file opened to add to or change in place keeps what it held before."""
    tools = _tools(tmp_path)
    target = tmp_path / "log.txt"
    target.write_bytes(b"kept line\n")
    with pytest.raises(ZeroDivisionError), tools.open(str(target), mode) as f:
        if "a" in mode:
            f.write("half a" if mode == "a" else b"half a")
        1 / 0  # noqa: B018 - the program fails halfway
    assert target.read_bytes() == b"kept line\n"
    with tools.open(str(target), "ab") as f:  # a write that succeeds still lands
        f.write(b"new line\n")
    assert target.read_bytes() == b"kept line\nnew line\n"


@pytest.mark.parametrize("where", ["local", "memory", "s3"])
@pytest.mark.parametrize("mode", ["a", "ab"])
def test_a_failed_append_elsewhere_keeps_only_what_the_file_held(
    where: str, mode: str, s3_options: dict[str, Any], tmp_path: Path
) -> None:
    """A local file added to is cut back to what it held when the block raises;
    one on memory:// kept the half-written addition (its file is the stored
    bytes themselves, added to in place), and a file the append made (none was
    there) was left half-written, where the docstring says a block that raises
    leaves nothing. An object store's upload is dropped whole."""
    tools = _tools(tmp_path, storage_url=f"s3://{S3_BUCKET}/lake", storage_options=s3_options)
    url = {
        "s3": f"s3://{S3_BUCKET}/log-{mode}.txt",
        "memory": f"memory:///log-{uuid.uuid4().hex}.txt",
        "local": str(tmp_path / "log.txt"),
    }[where]
    with pytest.raises(ZeroDivisionError), tools.open(url, mode) as f:
        f.write("half a" if mode == "a" else b"half a")
        1 / 0  # noqa: B018 - the program fails halfway
    assert not tools.exists(url)
    with tools.open(url, "wb") as f:
        f.write(b"kept line\n")
    with pytest.raises(ZeroDivisionError), tools.open(url, mode) as f:
        f.write("half a" if mode == "a" else b"half a")
        1 / 0  # noqa: B018 - the program fails halfway
    with tools.open(url) as f:
        assert f.read() == b"kept line\n"
    with tools.open(url, "ab") as f:  # a write that succeeds still lands
        f.write(b"new line\n")
    with tools.open(url) as f:
        assert f.read() == b"kept line\nnew line\n"


@pytest.mark.parametrize("kind", ["file", "memory", "s3"])
def test_rm_of_a_url_that_names_nothing_is_url_not_found_on_every_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """docs/concepts.md: a URL that names nothing, given to the URL tools, raises
    UrlNotFoundError. rm did on local disk and memory://, but on S3 (whose
    deletes answer the same whether the key was there or not) it removed
    nothing and said nothing: a typo in `elliptio rm` went unnoticed."""
    settings: dict[str, Any] = {}
    if kind == "file":
        base = str(tmp_path / "data")
        os.makedirs(base)
    elif kind == "memory":
        base = f"memory:///rm-{uuid.uuid4().hex}"
    else:
        options = request.getfixturevalue("s3_options")
        settings = {"storage_url": f"s3://{S3_BUCKET}/lake", "storage_options": options}
        base = f"s3://{S3_BUCKET}/rm-{uuid.uuid4().hex[:8]}"
    tools = _tools(tmp_path, **settings)
    with tools.write(f"{base}/kept.csv") as path:
        path.write_bytes(b"kept")
    for recursive in (False, True):
        with pytest.raises(eio.UrlNotFoundError, match="missing"):
            tools.rm(f"{base}/missing.csv", recursive=recursive)
    tools.rm(f"{base}/kept.csv")
    assert not tools.exists(f"{base}/kept.csv")


_CSV = b"a,b\n1,2\n"


def test_a_presigned_url_copied_into_a_folder_keeps_its_signature_out_of_the_name(
    tmp_path: Path,
) -> None:
    """docs/cache.md: a token or signature in a URL's query is used to read it and
    written nowhere. cp (and `elliptio cp`) of a presigned URL into a folder named
    the copy after the whole URL, query and all: 'a.csv?X-Amz-Signature=...',
    a file name holding the signature (and a name no reader expects)."""
    with _http_server(lambda _: _CSV) as base:
        tools = _tools(tmp_path)
        url = f"{base}/a.csv?X-Amz-Signature=SIGNATURE123"
        out = tmp_path / "out"
        out.mkdir()
        tools.cp(url, str(out) + "/")
        assert [p.name for p in out.iterdir()] == ["a.csv"]
        assert (out / "a.csv").read_bytes() == _CSV
        assert not [p for p in tmp_path.rglob("*") if "SIGNATURE123" in p.name]


def test_a_url_that_names_no_file_copied_into_a_folder_asks_for_a_name(
    tmp_path: Path,
) -> None:
    """cp of an http(s) URL whose path names no file ('https://host/?id=3',
    'https://host/') into a folder took the folder itself as the target and
    raised PlantedFileError telling the user that someone with write access to
    the store made their own folder and to remove it (online, and offline from
    the cache). It is an InvalidPathError asking for the copy's file name, the
    folder left as it was; a target file name copies it."""
    with _http_server(lambda _: _CSV) as base:
        tools = _tools(tmp_path)
        out = tmp_path / "out"
        out.mkdir()
        (out / "kept.txt").write_bytes(b"k")
        for url in (f"{base}/?id=3", f"{base}/"):
            for target in (str(out), str(out) + "/"):
                with pytest.raises(eio.InvalidPathError, match="names no file"):
                    tools.cp(url, target)
            with tools.local_copy(url) as path:  # cached for the offline copy below
                assert path.read_bytes() == _CSV
            with pytest.raises(eio.InvalidPathError, match="names no file"):
                _tools(tmp_path, offline=True).cp(url, str(out) + "/")
        assert sorted(p.name for p in out.iterdir()) == ["kept.txt"]
        tools.cp(f"{base}/?id=3", str(out / "data.csv"))
        assert (out / "data.csv").read_bytes() == _CSV


def test_rm_removes_a_symbolic_link_to_nothing(tmp_path: Path) -> None:
    """A symbolic link whose target is gone is there to be removed: rm (and
    `elliptio rm`) of it removed it, until rm asked info() whether the URL names
    anything, which follows the link and found nothing: UrlNotFoundError
    saying to fix or remove the link, which rm itself then refused to do. A
    missing name is still UrlNotFoundError."""
    tools = _tools(tmp_path)
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "dangling").symlink_to(tmp_path / "gone.csv")
    tools.rm(str(folder / "dangling"))
    assert list(folder.iterdir()) == []
    with pytest.raises(eio.UrlNotFoundError):
        tools.rm(str(folder / "dangling"))


def test_rm_of_a_link_in_the_store_reached_through_a_link_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symbolic link that lies in the store is the store's, whatever it points
    at: reached through a link to the store ('~/lake/...' for the store's own
    folder), the check resolved the whole path, the link too, to its target
    outside the store, and rm removed the link from the store (since rm takes a
    link to nothing, a dangling one too)."""
    store = tmp_path / "store"
    with eio.Handler(storage=store, catalog=f"sqlite:///{tmp_path}/c.db") as h:
        src = tmp_path / "x.csv"
        src.write_text("1\n")
        h.upload(src)
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(store))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    (tmp_path / "outside.csv").write_text("2\n")
    (store / "dangling").symlink_to(tmp_path / "gone.csv")
    (store / "pointer").symlink_to(tmp_path / "outside.csv")
    (tmp_path / "lake").symlink_to(store)
    for name in ("dangling", "pointer"):
        with pytest.raises(eio.InvalidPathError, match="lies in the elliptio store"):
            eio.rm(str(tmp_path / "lake" / name))
        assert (store / name).is_symlink()


def test_cp_of_a_cached_url_copies_it_when_the_server_is_down(tmp_path: Path, site: _Site) -> None:
    """docs/cache.md: when the storage cannot be reached, cached copies stay
    readable and the rest raises OfflineError naming the URL. cat and open
    served a cached URL from the cache, and with ELLIPTIO_OFFLINE cp copied it
    (038c252), but cp with the server down raised StorageError for it as for
    an uncached one."""
    tools = _tools(tmp_path)
    assert tools.cached_path(f"{site.url}/a.txt").read_text() == "hello"
    site.stop()
    out = tmp_path / "out"
    out.mkdir()
    tools.cp(f"{site.url}/a.txt", str(out) + "/")
    tools.cp(f"{site.url}/a.txt", str(out / "copy.txt"))
    assert (out / "a.txt").read_text() == (out / "copy.txt").read_text() == "hello"
    with pytest.raises(eio.OfflineError, match=r"never-read\.txt.*unreachable"):
        tools.cp(f"{site.url}/never-read.txt", str(out) + "/")
    with pytest.raises(eio.StorageError):  # a move removes the source: it needs the server
        tools.mv(f"{site.url}/a.txt", str(out / "moved.txt"))
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "copy.txt"]
