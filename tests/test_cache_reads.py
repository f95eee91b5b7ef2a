"""Artifact reads through the local cache: zero requests on a hit, offline mode."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import elliptio as eio
from tests.conftest import S3_BUCKET


@pytest.fixture
def s3_handler(s3_options: dict[str, Any], tmp_path: Path) -> eio.Handler:
    return eio.Handler(
        storage=f"s3://{S3_BUCKET}/lake",
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        storage_options=s3_options,
    )


def test_cache_hit_sends_no_request_to_storage(
    s3_handler: eio.Handler, data_files: dict[str, Path], moto: Any, tmp_path: Path
) -> None:
    art = s3_handler.upload([data_files["test"], data_files["train"]])
    file = s3_handler.get(art.artifact_id).files["test.txt"]
    expected = data_files["test"].read_bytes()
    moto.reset_count()
    assert file.read_bytes() == expected  # cold: fetched once
    assert moto.requests > 0
    moto.reset_count()
    for _ in range(5):
        assert file.read_bytes() == expected
    assert file.local_path().read_bytes() == expected
    with file.open("rb") as f:
        assert f.read() == expected
    assert file.download(tmp_path / "copy.txt").read_bytes() == expected
    assert pd.read_csv(file.local_path()).shape == (2, 2)
    assert file.local_path().name == "test.txt"  # the name and extension are kept
    assert moto.requests == 0


def test_same_bytes_in_two_artifacts_are_cached_once(
    s3_handler: eio.Handler, data_files: dict[str, Path], moto: Any
) -> None:
    first = s3_handler.upload(data_files["test"])
    second = s3_handler.upload(data_files["test"])
    first.file.read_bytes()
    moto.reset_count()
    assert second.file.local_path() == first.file.local_path()
    assert moto.requests == 0


def test_corrupted_cache_entry_is_fetched_again(
    s3_handler: eio.Handler, data_files: dict[str, Path], moto: Any
) -> None:
    art = s3_handler.upload(data_files["test"])
    path = art.file.local_path()
    os.chmod(path, 0o600)
    path.write_bytes(b"bit rot, same length? no: different bytes")
    moto.reset_count()
    assert art.file.read_bytes() == data_files["test"].read_bytes()
    assert moto.requests > 0


def test_offline_serves_what_was_read_and_names_what_is_missing(
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    s3_options: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moto: Any,
) -> None:
    read = s3_handler.upload([data_files["test"], data_files["train"]])
    s3_handler.get(read.artifact_id).files["test.txt"].read_bytes()
    never = s3_handler.upload(data_files["train"])
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    moto.reset_count()
    with eio.Handler(
        storage=f"s3://{S3_BUCKET}/lake",
        catalog=f"sqlite:///{tmp_path / 'another.db'}",  # holds none of these records
        storage_options=s3_options,
    ) as elsewhere:
        # A record kept from another catalog never answers for this one (it
        # did: a catalog writer could plant one, helper-73).
        with pytest.raises(eio.ArtifactNotFoundError, match=read.artifact_id):
            elsewhere.get(read.artifact_id)
    with eio.Handler(
        storage=f"s3://{S3_BUCKET}/lake",
        catalog=s3_handler.aio.settings.resolved_catalog_url(),
        storage_options=s3_options,
    ) as offline:
        art = offline.get(read.artifact_id)
        assert art.metadata == read.metadata
        assert art.files["test.txt"].read_text() == data_files["test"].read_text()
        with pytest.raises(eio.OfflineError, match=r"'train\.txt'.*ELLIPTIO_OFFLINE"):
            art.files["train.txt"].read_bytes()
        # The local catalog answers offline; the files it names are not cached.
        with pytest.raises(eio.OfflineError, match=r"'train\.txt'.*ELLIPTIO_OFFLINE"):
            offline.get(never.artifact_id).file.read_bytes()
        with eio.mock_username("offline"), offline.run():
            offline.get(read.artifact_id)
            assert offline.based_on == [read.artifact_id]
    assert moto.requests == 0


def test_unreachable_storage_is_detected(
    s3_handler: eio.Handler, data_files: dict[str, Path], tmp_path: Path
) -> None:
    art = s3_handler.upload([data_files["test"], data_files["train"]])
    art.files["test.txt"].read_bytes()
    # Nothing listens there; elliptio's fail-fast defaults give up within seconds.
    down = {"endpoint_url": "http://127.0.0.1:9", "key": "testing", "secret": "testing"}
    with eio.Handler(
        storage=f"s3://{S3_BUCKET}/lake",
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        storage_options=down,
    ) as h:
        again = h.get(art.artifact_id)
        assert again.files["test.txt"].read_bytes() == data_files["test"].read_bytes()
        with pytest.raises(eio.OfflineError, match="cannot be reached"):
            again.files["train.txt"].read_bytes()
        # exists() answers as open() reads: cached, it is there; else it cannot
        # tell (it raised StorageError for both, helper-74).
        assert h.urls.exists(again.files["test.txt"].url)
        with pytest.raises(eio.StorageError, match="reachable"):
            h.urls.exists(again.files["train.txt"].url)


def test_offline_exists_of_a_cached_artifact_file_is_true(
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    moto: Any,
) -> None:
    """eio.open() served a cached artifact file offline while eio.exists() of the
    same URL raised OfflineError (helper-55)."""
    art = s3_handler.upload([data_files["test"], data_files["train"]])
    s3_handler.get(art.artifact_id).files["test.txt"].read_bytes()
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", s3_handler.storage.root_url)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", s3_handler.aio.settings.resolved_catalog_url())
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_handler.storage.options))
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(s3_handler.storage.cache.root))
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    moto.requests = 0
    assert eio.exists(art.files["test.txt"].url)
    with pytest.raises(eio.OfflineError):
        eio.exists(art.files["train.txt"].url)  # never read here: cannot tell
    folder = art.files["train.txt"].url.rsplit("/", 1)[0]
    for other in (folder, f"{folder}/trian.txt"):  # online: True, False (helper-58)
        with pytest.raises(eio.OfflineError):
            eio.exists(other)
    assert moto.requests == 0


def test_records_are_kept_for_offline_use(
    s3_handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    art = s3_handler.upload(data_files["test"])
    s3_handler.get(art.artifact_id)
    (kept,) = (s3_handler.storage.cache.root / "records").glob(f"*/{art.artifact_id}.json")
    assert eio.Metadata.model_validate(json.loads(kept.read_text())) == art.metadata


def test_a_kept_record_that_is_not_utf8_is_read_again(
    s3_handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    """A kept record in another encoding (written in a latin-1 locale before the
    cache wrote UTF-8, or damaged) is not a record: ``get`` failed with a bare
    UnicodeDecodeError instead of reading the catalog's again."""
    art = s3_handler.upload(data_files["test"], labels={"description": "Zürich"})
    s3_handler.get(art.artifact_id)
    (kept,) = (s3_handler.storage.cache.root / "records").glob(f"*/{art.artifact_id}.json")
    text = kept.read_text(encoding="utf-8")
    kept.write_bytes(text.replace("Zürich", "Zurich").encode() + "é".encode("latin-1"))
    assert s3_handler.get(art.artifact_id).metadata == art.metadata
    assert kept.read_text(encoding="utf-8") == text


def test_clearing_the_cache_leaves_nothing_of_a_deleted_artifact(
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SECURITY.md: copies in local caches stay after a delete; `elliptio cache
    clear` clears them. The records kept for offline reads (labels included)
    stayed (helper-55)."""
    from elliptio._cli import main

    art = s3_handler.upload(data_files["test"], labels={"description": "scan of Jane Doe"})
    s3_handler.get(art.artifact_id).file.read_bytes()
    reader_cache = s3_handler.storage.cache.root
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(reader_cache.parent / "elsewhere"))
    other = eio.Handler(
        storage=s3_handler.storage.root_url,
        catalog=s3_handler.aio.settings.resolved_catalog_url(),
        storage_options=s3_handler.storage.options,
    )
    other.delete(art.artifact_id, reason="holds personal data")
    other.close()
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(reader_cache))
    assert main(["cache", "clear"]) == 0
    capsys.readouterr()
    left = [p for p in reader_cache.rglob("*") if p.is_file() and b"Jane Doe" in p.read_bytes()]
    assert left == []


def test_a_delete_removes_the_deleting_machines_cached_copies(
    s3_handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    """The bytes of a deleted artifact stayed in the cache of the machine that
    deleted it, served to an Artifact fetched before (helper-74); other
    machines' caches are theirs to clear (SECURITY.md)."""
    art = s3_handler.upload(data_files["test"])
    fetched = s3_handler.get(art.artifact_id)
    assert fetched.file.read_bytes() == data_files["test"].read_bytes()
    cache = s3_handler.storage.cache
    assert cache is not None
    assert cache.lookup(art.file.sha256) is not None
    s3_handler.delete(art.artifact_id, reason="holds personal data")
    assert cache.lookup(art.file.sha256) is None
    with pytest.raises(eio.ArtifactNotFoundError):
        fetched.file.read_bytes()


def test_a_download_writes_its_bytes_once_and_offline_names_the_file(
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moto: Any,
) -> None:
    art = s3_handler.upload([data_files["test"], data_files["train"]])
    files = s3_handler.get(art.artifact_id).files
    cache = s3_handler.storage.cache
    assert cache is not None
    # Not cached: streamed from storage to the path, verified, and not copied
    # into the cache as well.
    out = files["train.txt"].download(tmp_path / "out" / "train.txt")
    assert out.read_bytes() == data_files["train"].read_bytes()
    assert cache.lookup(files["train.txt"].sha256) is None
    # Cached by a read: served from the cache without a request.
    files["test.txt"].read_bytes()
    moto.reset_count()
    assert files["test.txt"].download(tmp_path / "t.txt").read_bytes() == (
        data_files["test"].read_bytes()
    )
    assert moto.requests == 0
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    with eio.Handler(
        storage=s3_handler.storage.url(s3_handler.storage.root),
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        storage_options=s3_handler.storage.options,
    ) as offline:
        again = offline.get(art.artifact_id).files
        assert again["test.txt"].download(tmp_path / "t2.txt").read_bytes() == (
            data_files["test"].read_bytes()
        )
        with pytest.raises(eio.OfflineError, match=r"'train\.txt'.*ELLIPTIO_OFFLINE"):
            again["train.txt"].download(tmp_path / "t3.txt")
        assert not (tmp_path / "t3.txt").exists()
    assert moto.requests == 0


def test_offline_sends_nothing_to_a_remote_store_or_catalog(
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    s3_options: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moto: Any,
) -> None:
    """docs/configuration.md: ELLIPTIO_OFFLINE=1 never touches the network. Commits,
    verify, gc, reindex, relabelling and deletes went to S3 all the same."""
    art = s3_handler.upload(data_files["test"], name="ds")
    s3_handler.get(art.artifact_id).file.read_bytes()
    catalog = s3_handler.aio.settings.resolved_catalog_url()
    s3_handler.close()
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    moto.reset_count()
    with eio.Handler(
        storage=f"s3://{S3_BUCKET}/lake", catalog=catalog, storage_options=s3_options
    ) as offline:
        attempts = {
            "upload": lambda: offline.upload(data_files["train"]),
            "new": lambda: offline.new("x.txt"),
            "add_reference": lambda: offline.add_reference(f"s3://{S3_BUCKET}/refs/x"),
            "set_labels": lambda: offline.set_labels(art.artifact_id, {"datatype": "x"}),
            "delete": lambda: offline.delete(art.artifact_id, reason="offline test"),
            "verify": lambda: offline.verify(art.artifact_id),
            "gc": lambda: offline.gc(),
            "reindex": lambda: offline.reindex(),
        }
        for name, attempt in attempts.items():
            with pytest.raises(eio.OfflineError, match="ELLIPTIO_OFFLINE is set") as info:
                attempt()
            assert "the store s3://" in str(info.value), name
        # The catalog is a local file: searching it sends nothing either way.
        assert list(offline.find().index) == [art.artifact_id]
        assert offline.get(art.artifact_id).file.read_bytes() == data_files["test"].read_bytes()
    assert moto.requests == 0
    # A local store and catalog are no network: offline, commits work.
    with eio.Handler(storage=str(tmp_path / "store"), catalog=catalog) as local:
        assert local.upload(data_files["train"]).file.read_bytes()


@pytest.mark.parametrize("store", ["local", "memory"])
def test_offline_a_local_catalog_answers_everything_it_holds(
    store: str, data_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/cache.md: a SQLite catalog is a local file and keeps answering offline,
    and local disk and memory:// are no network. An artifact committed offline,
    never read, was OfflineError by id and by name, and on memory:// by open(),
    local_path() and its eio_url."""
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    root = str(tmp_path / "store") if store == "local" else f"memory://offline-{tmp_path.name}"
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with eio.Handler(storage=root, catalog=catalog) as h:
        art = h.upload(data_files["test"], name="ds")
        h.set_alias("ds:v1", "prod")
    with eio.Handler(storage=root, catalog=catalog) as h, h.run() as run:
        expected = data_files["test"].read_bytes()
        for ref in (art.artifact_id, "ds", "ds:latest", "ds:v1", "ds:prod"):
            assert h.get(ref).file.read_bytes() == expected, ref
        # Every read path: an in-memory file's local path is a cache copy, made offline.
        file = h.get(art.artifact_id).file
        with file.open() as f:
            assert f.read() == expected
        assert file.local_path().read_bytes() == expected
        assert pd.read_csv(file.eio_url).shape == (2, 2)
        assert h.based_on == [art.artifact_id]
        out = h.upload(data_files["train"])
        assert out.metadata.based_on == [art.artifact_id]
        assert h.lineage(out.artifact_id, direction="up").parents(out.artifact_id) == [
            art.artifact_id
        ]
        h.delete(art.artifact_id, reason="offline too")
        with pytest.raises(eio.ArtifactDeletedError, match="offline too"):
            h.get(art.artifact_id)
        with pytest.raises(eio.ArtifactNotFoundError, match="no artifact named 'other'"):
            h.get("other")
    assert run.run_id == out.metadata.run_id


def test_offline_sends_nothing_to_a_mongodb_catalog(
    data_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mongomock_motor import AsyncMongoMockClient

    client = AsyncMongoMockClient()
    with eio.Handler(storage=str(tmp_path / "store"), catalog=client) as h:
        art = h.upload(data_files["test"], name="ds")
        h.get(art.artifact_id)
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    with eio.Handler(storage=str(tmp_path / "store"), catalog=client) as offline:
        for attempt in (
            lambda: offline.find(),
            lambda: offline.count(),
            lambda: offline.names(),
            lambda: offline.aliases("ds"),
            lambda: offline.lineage(art.artifact_id),
            lambda: offline.upload(data_files["train"]),
            lambda: offline.set_alias(art.artifact_id, "prod"),  # by id: no name to resolve
        ):
            with pytest.raises(eio.OfflineError, match="ELLIPTIO_OFFLINE"):
                attempt()
        # What was read before stays readable, from the cache.
        assert offline.get(art.artifact_id).file.read_bytes() == data_files["test"].read_bytes()


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_every_file_the_cache_keeps_has_the_cache_file_mode(
    mode: int,
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    s3_options: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/configuration.md: ELLIPTIO_FILE_MODE sets the permissions of cached
    files. The records kept for offline reads (labels, host, command line), the
    meta files and the URL records were 0644 whatever it said (helper-37)."""
    import stat

    art = s3_handler.upload(data_files["test"])
    cache_dir = tmp_path / f"cache-{mode:o}"
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("ELLIPTIO_FILE_MODE", f"0o{mode:o}")
    old = os.umask(0o022)
    try:
        with eio.Handler(
            storage=f"s3://{S3_BUCKET}/lake",
            catalog=s3_handler.aio.settings.resolved_catalog_url(),
            storage_options=s3_options,
        ) as h:
            h.get(art.artifact_id).file.read_bytes()
        monkeypatch.setenv("ELLIPTIO_STORAGE_URL", f"s3://{S3_BUCKET}/lake")
        monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
        with eio.open(f"s3://{S3_BUCKET}/plain.txt", "wb") as f:
            f.write(b"plain")
        with eio.open(f"s3://{S3_BUCKET}/plain.txt") as f:
            assert f.read() == b"plain"
    finally:
        os.umask(old)
    modes = {
        str(path.relative_to(cache_dir)): stat.S_IMODE(path.stat().st_mode)
        for path in cache_dir.rglob("*")
        if path.is_file() and not path.is_symlink() and path.parent.name != "locks"
    }
    assert {p.split("/")[0] for p in modes} >= {"records", "sha256", "urls"}
    assert {p: m for p, m in modes.items() if m != mode} == {}


def test_offline_the_url_tools_read_an_eio_url_as_the_artifact_file_it_names(
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    moto: Any,
) -> None:
    """Offline, `eio.open`, `local_copy`, `exists` and `elliptio cat` of an
    `eio_url` raised OfflineError ("not in the cache") for a file that was cached
    (and, on a local store, for every file), while `pd.read_csv` of the same
    URL and `file.read_bytes()` served it: they took elliptio:// for a plain
    remote URL, with a cache record of its own."""
    from elliptio._cli import main

    remote = s3_handler.upload(data_files["test"])
    s3_handler.get(remote.artifact_id).file.read_bytes()  # cached by the artifact read
    local = eio.Handler(
        storage=str(tmp_path / "store"), catalog=s3_handler.aio.settings.resolved_catalog_url()
    )
    on_disk = local.upload(data_files["train"])
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", s3_handler.storage.root_url)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", s3_handler.aio.settings.resolved_catalog_url())
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_handler.storage.options))
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(s3_handler.storage.cache.root))
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    moto.reset_count()
    for art, source in ((remote, data_files["test"]), (on_disk, data_files["train"])):
        url, expected = art.file.eio_url, source.read_bytes()
        with eio.open(url) as f:
            assert f.read() == expected
        with eio.local_copy(url) as path:
            assert path.read_bytes() == expected
        assert eio.exists(url)
        capsys.readouterr()
        assert main(["cat", url]) == 0
        assert capsys.readouterr().out.encode() == expected
    assert moto.requests == 0


def test_a_file_downloading_into_the_cache_is_as_private_as_the_cache(
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An artifact file being fetched into the cache was written, for the whole
    download, to a temporary file of mode 0644 (0666 less the umask) beside its
    entry, and only set to ELLIPTIO_FILE_MODE (0600) once renamed: another local
    user could open it meanwhile and read it all through that descriptor."""
    import stat

    art = s3_handler.upload(data_files["test"])
    cache = s3_handler.storage.cache
    assert cache is not None
    modes: dict[str, int] = {}
    real_replace = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if str(dst).startswith(str(cache.root)):
            modes[str(src)] = stat.S_IMODE(os.stat(src).st_mode)
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    old = os.umask(0o022)
    try:
        assert art.file.local_path().read_bytes() == data_files["test"].read_bytes()
    finally:
        os.umask(old)
    parts = {src: mode for src, mode in modes.items() if src.endswith(".part")}
    assert parts
    assert {src: mode for src, mode in parts.items() if mode != 0o600} == {}


def test_clearing_the_cache_removes_what_a_crashed_download_left(
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process killed while it fetched an artifact file into the cache left its
    partial download beside the entry, where `clear_cache()` (`elliptio cache
    clear`) and `prune_cache()` never looked: disk taken for good, and counted
    nowhere; with bytes of an artifact that `elliptio cache clear` should have
    dropped (SECURITY.md)."""
    import signal
    import subprocess
    import sys
    import time

    from tests.fault_proxy import FaultProxy

    art = s3_handler.upload(data_files["test"])
    cache_dir = tmp_path / "crash-cache"
    options = {**s3_handler.storage.options}
    with FaultProxy(s3_endpoint) as proxy:
        proxy.add("slow", op="GetObject", delay=60)
        options["endpoint_url"] = proxy.url
        env = {
            **os.environ,
            "ELLIPTIO_STORAGE_URL": s3_handler.storage.root_url,
            "ELLIPTIO_CATALOG_URL": s3_handler.aio.settings.resolved_catalog_url(),
            "ELLIPTIO_STORAGE_OPTIONS": json.dumps(options),
            "ELLIPTIO_CACHE_DIR": str(cache_dir),
        }
        code = "import sys, elliptio as eio\neio.Handler().get(sys.argv[1]).file.read_bytes()\n"
        proc = subprocess.Popen([sys.executable, "-c", code, art.artifact_id], env=env)
        try:
            for _ in range(1200):  # a bound, not a timing: the request is stalled meanwhile
                if proxy.faults["slow"] >= 1 or proc.poll() is not None:
                    break
                time.sleep(0.05)
            assert proc.poll() is None
            assert [p.name for p in cache_dir.rglob("*.part")]  # the download under way
        finally:
            proc.send_signal(signal.SIGKILL)  # a crash: nothing cleans up
            proc.wait(timeout=60)
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(cache_dir))
    eio.clear_cache()
    assert [p.name for p in cache_dir.rglob("*.part")] == []


def test_a_cache_fill_with_no_room_on_the_disk_says_so(
    s3_handler: eio.Handler,
    s3_options: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A cache fill that ran out of local disk (here a file size limit: EFBIG,
    as ENOSPC when the disk is full) raised "check that the storage is
    reachable, then retry": the wrong lead. Nothing is left in the cache."""
    import subprocess
    import sys

    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(200_000))
    art = s3_handler.upload(source)
    plain = f"s3://{S3_BUCKET}/plain.bin"
    s3_handler.urls.cp(str(source), plain)
    cache_dir = tmp_path / "full-cache"
    env = {
        **os.environ,
        "ELLIPTIO_STORAGE_URL": s3_handler.storage.root_url,
        "ELLIPTIO_CATALOG_URL": s3_handler.aio.settings.resolved_catalog_url(),
        "ELLIPTIO_STORAGE_OPTIONS": json.dumps(s3_options),
        "ELLIPTIO_CACHE_DIR": str(cache_dir),
    }
    code = (
        "import resource, signal, sys\n"
        "import elliptio as eio\n"
        "file = eio.Handler().get(sys.argv[1]).file\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of the signal\n"
        "for read in (file.local_path, lambda: eio.open(sys.argv[2]).read()):\n"
        "    try:\n"
        "        read()\n"
        "    except eio.StorageError as err:\n"
        "        print(err)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, art.artifact_id, plain],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = run.stdout.splitlines()
    assert len(lines) == 2, (run.stdout, run.stderr)
    for line in lines:
        assert "no room on the local disk" in line
        assert "reachable" not in line
    assert [p for p in cache_dir.rglob("*.part")] == []


@pytest.mark.parametrize(("mode", "folder"), [(0o600, 0o700), (0o640, 0o750)])
def test_the_cache_folder_is_as_private_as_its_files(
    mode: int,
    folder: int,
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    s3_options: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cache's files were 0600, but the folders it made were 0755: anyone
    could list what its user read, by file name (`.names/salaries.csv`),
    artifact id (`records/`) and sha256."""
    import stat

    art = s3_handler.upload(data_files["test"])
    monkeypatch.setenv("ELLIPTIO_FILE_MODE", f"0o{mode:o}")
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", f"s3://{S3_BUCKET}/lake")
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", s3_handler.aio.settings.resolved_catalog_url())
    with eio.open(f"s3://{S3_BUCKET}/plain.txt", "wb") as f:
        f.write(b"plain")
    old = os.umask(0o022)
    try:
        for first in ("artifact", "plain"):  # what writes to the cache first
            cache_dir = tmp_path / first / "cache"
            monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(cache_dir))
            if first == "artifact":
                with eio.Handler() as h:
                    assert h.get(art.artifact_id).file.local_path().name == "test.txt"
            else:
                with eio.open(f"s3://{S3_BUCKET}/plain.txt") as f:
                    assert f.read() == b"plain"
            assert stat.S_IMODE(cache_dir.stat().st_mode) == folder
    finally:
        os.umask(old)


@pytest.mark.parametrize("read", ["read_bytes", "open", "local_path"])
def test_a_cache_entry_removed_as_a_sync_read_finds_it_is_fetched_again(
    read: str,
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`file.read_bytes()`, `file.open()` and `file.local_path()` of a cached file
    serve a hit without the IO loop; an entry another process removed (`elliptio
    cache clear`, an eviction) just after the hit was found raised a bare
    FileNotFoundError (local_path handed out a path to nothing), and the failed
    read was already noted as an input of the run. The async read fetched again."""
    from elliptio._cache import Cache

    art = s3_handler.upload(data_files["test"])
    expected = data_files["test"].read_bytes()
    file = s3_handler.get(art.artifact_id).file
    assert file.read_bytes() == expected  # cached
    lookup = Cache.lookup
    removals = []

    def found_then_cleared(self: Cache, sha256: str) -> Path | None:
        found = lookup(self, sha256)
        if found is not None and not removals:
            removals.append(self.clear())  # another process, at that very moment
        return found

    monkeypatch.setattr(Cache, "lookup", found_then_cleared)
    with s3_handler.run():
        if read == "read_bytes":
            assert file.read_bytes() == expected
        elif read == "local_path":
            assert file.local_path().read_bytes() == expected
        else:
            with file.open("rb") as f:
                assert f.read() == expected
        out = s3_handler.upload(data_files["train"])
    assert removals
    assert out.metadata.based_on == [art.artifact_id]


def test_offline_cp_copies_what_cat_serves(
    s3_handler: eio.Handler,
    data_files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    moto: Any,
) -> None:
    """docs/cache.md: offline, cached copies stay readable. `elliptio cat` (and
    eio.open) of a cached artifact file's URL served it, and `elliptio cp` of
    its eio_url copied it, but `elliptio cp` / eio.cp of the same file's s3://
    URL, or of a cached plain URL, raised OfflineError."""
    from elliptio._cli import main

    art = s3_handler.upload([data_files["test"], data_files["train"]])
    art.files["test.txt"].read_bytes()  # cached; train.txt is not
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", s3_handler.storage.root_url)
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", s3_handler.aio.settings.resolved_catalog_url())
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_handler.storage.options))
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(s3_handler.storage.cache.root))
    plain = f"s3://{S3_BUCKET}/raw/table.csv"
    with eio.write(plain) as path:
        path.write_bytes(b"a,b\n1,2\n")
    with eio.open(plain) as f:  # the plain URL, read once online through these settings
        assert f.read() == b"a,b\n1,2\n"
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    moto.reset_count()
    out = tmp_path / "out"
    out.mkdir()
    eio.cp(art.files["test.txt"].url, str(out / "copy.txt"))
    assert (out / "copy.txt").read_bytes() == data_files["test"].read_bytes()
    eio.cp(plain, str(out) + "/")
    assert (out / "table.csv").read_bytes() == b"a,b\n1,2\n"
    capsys.readouterr()
    assert main(["cp", art.files["test.txt"].url, str(out / "cli.txt")]) == 0
    assert (out / "cli.txt").read_bytes() == data_files["test"].read_bytes()
    with pytest.raises(eio.OfflineError, match=r"train\.txt.*ELLIPTIO_OFFLINE"):
        eio.cp(art.files["train.txt"].url, str(out / "train.txt"))
    with pytest.raises(eio.OfflineError, match="ELLIPTIO_OFFLINE"):
        eio.mv(plain, str(out / "moved.csv"))
    assert sorted(p.name for p in out.iterdir()) == ["cli.txt", "copy.txt", "table.csv"]
    assert moto.requests == 0
