"""Writers killed with SIGKILL mid-commit: nothing partial is visible, nothing committed is lost.

A child process writes artifacts (``upload`` of four files, or ``new()`` with two
files) and is killed at a chosen local write (cutting that write in half, or right
after it completes, which hits the sidecar before the catalog insert) or after a
random delay. Plans and delays come from a seeded RNG, so a failing run repeats.
After every run each artifact the child reported committed must be found and
verify, and every record in the catalog must verify (no partial artifact is
visible). At the end `gc` + `reindex` must leave storage and catalog in line.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._layout import ARTIFACT_ID_RE, METADATA_RELPATH
from tests.conftest import S3_BUCKET

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261122

# (mode, kill at local write number, half or full write); upload: writes 1-4 are
# the files, 5 the sidecar; new: 1 is x.bin, 2 the sidecar (y.bin goes through open()).
FIXED_PLANS = [
    ("upload", 1, "half"),
    ("upload", 3, "half"),
    ("upload", 5, "half"),  # a cut-off sidecar
    ("upload", 5, "full"),  # a whole sidecar, no catalog record yet
    ("upload", 8, "half"),  # second artifact, after one committed
    ("new", 1, "half"),
    ("new", 2, "half"),
    ("new", 2, "full"),
    ("new", 4, "full"),
]


def _plans() -> list[tuple[str, int, str, float]]:
    rng = random.Random(SEED)
    plans = [(mode, at, how, 0.0) for mode, at, how in FIXED_PLANS]
    for _ in range(6):
        mode = rng.choice(["upload", "new"])
        at = rng.randint(1, 15 if mode == "upload" else 6)
        plans.append((mode, at, rng.choice(["half", "full"]), 0.0))
    for _ in range(8):
        plans.append((rng.choice(["upload", "new"]), 0, "", rng.uniform(0.05, 0.8)))
    return plans


def _run_writer(
    storage: str, catalog: str, work: Path, mode: str, kill_at: int, how: str, delay: float
) -> list[str]:
    """Run one writer until it dies; the artifact ids it reported committed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [storage, catalog, str(work), mode, str(kill_at), how or "half"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests._stress_workers", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    if kill_at <= 0:
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    lines = out.decode().split()
    return [line for line in lines if ARTIFACT_ID_RE.fullmatch(line)]


def _check_visible(h: eio.Handler, reported: list[str], checked: set[str]) -> None:
    for artifact_id in reported:
        assert h.get(artifact_id).artifact_id == artifact_id  # reported => committed
    for artifact_id in h.find({}, columns=["file_relpaths"]).index:
        if artifact_id not in checked:
            report = h.verify(artifact_id)
            assert report.ok, f"{artifact_id} is visible but {report}"
            assert report.checked > 0
            checked.add(artifact_id)


def _check_in_line(h: eio.Handler) -> dict[str, int]:
    """Run reindex + gc + reindex; then every prefix has a whole sidecar and a
    record, and back."""
    # A writer killed after its sidecar but before its commit point left a whole
    # sidecar and an open lease: never committed, so reindex leaves it to gc.
    first = h.reindex()
    assert first.added == []
    gc = h.gc(grace=timedelta(0), delete=True)
    removed = {ARTIFACT_ID_RE.search(url)[0] for url in gc.removed}  # type: ignore[index]
    assert set(first.uncommitted) <= removed
    reindex = h.reindex()
    assert reindex.unreadable == []
    assert reindex.conflicting == []
    assert h.gc(grace=timedelta(0)).orphans == []
    again = h.reindex()
    assert again.added == []
    storage = h.storage
    prefixes = storage.fs.glob(f"{storage.root}/*/*/*/*/*_artifact_*")
    on_storage = {}
    for prefix in prefixes:
        artifact_id = prefix.rsplit("/", 1)[1].split("_", 1)[1]
        sidecar = json.loads(storage.fs.cat_file(f"{prefix}/{METADATA_RELPATH}"))
        assert sidecar["artifact_id"] == artifact_id
        on_storage[artifact_id] = prefix
    records = set(h.find({}, columns=["file_relpaths"]).index)
    assert set(on_storage) == records
    for artifact_id in records:
        assert h.verify(artifact_id).ok
    return {
        "orphans_removed": len(gc.removed),
        "restored": len(reindex.added),
        "uncommitted": len(first.uncommitted),
        "committed": len(records),
    }


def _crash_runs(h: eio.Handler, storage: str, catalog: str, work: Path, plans: Any) -> list[str]:
    reported: list[str] = []
    checked: set[str] = set()
    for mode, kill_at, how, delay in plans:
        ids = _run_writer(storage, catalog, work, mode, kill_at, how, delay)
        _check_visible(h, ids, checked)
        reported += ids
    return reported


def test_sigkill_during_writes_on_local_store(tmp_path: Path) -> None:
    storage = str(tmp_path / "store")
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    plans = _plans()
    with eio.Handler(storage=storage, catalog=catalog) as h:
        reported = _crash_runs(h, storage, catalog, tmp_path / "work", plans)
        counts = _check_in_line(h)
        # Nothing reported committed was lost; the fixed plans left orphans and
        # sidecars without records behind, which gc and reindex resolved.
        records = set(h.find({}, columns=["file_relpaths"]).index)
        assert set(reported) <= records
        assert counts["orphans_removed"] >= 5
        # Sidecars whose writer died before its commit point are not restored.
        assert counts["restored"] == 0
        assert counts["uncommitted"] >= 2
        # Committed local files are read-only, also those of restored records.
        for artifact_id in records:
            for file in h.get(artifact_id).files.values():
                assert os.stat(file.url).st_mode & 0o222 == 0, file.url
    assert len(plans) == 23


def test_sigkill_during_writes_on_s3(
    s3_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    storage = f"s3://{S3_BUCKET}/crash"
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    rng = random.Random(SEED + 1)
    plans = [(rng.choice(["upload", "new"]), 0, "", rng.uniform(0.1, 1.2)) for _ in range(6)]
    with eio.Handler(storage=storage, catalog=catalog) as h:
        reported = _crash_runs(h, storage, catalog, tmp_path / "work", plans)
        _check_in_line(h)
        records = set(h.find({}, columns=["file_relpaths"]).index)
        assert set(reported) <= records


@pytest.mark.parametrize("writer", ["upload", "new", "add_reference"])
async def test_a_writer_cancelled_while_its_lease_opens_leaves_no_lease(
    writer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``task.cancel()`` (or an ``asyncio.wait_for`` timeout) that reaches a writer
    once its lease is in the catalog but before the catalog's answer is back: the
    lease was left open (``gc`` listed a stale lease a day later), because the
    clean-up only guarded what came after the lease's opening."""
    (tmp_path / "raw").mkdir()
    source = tmp_path / "raw" / "a.txt"
    source.write_text("some rows\n")
    async with eio.AsyncHandler(
        storage=str(tmp_path / "store"),
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        reference_roots=[str(tmp_path / "raw")],
    ) as h:
        catalog = h.catalog
        opened = asyncio.Event()

        def hooked(real: Any) -> Any:
            async def open_lease(*args: Any) -> Any:
                await real(*args)
                opened.set()  # the lease is in the catalog; its answer never comes
                await asyncio.Event().wait()

            return open_lease

        # An upload opens its lease with its dedup lookup (open_lease_finding).
        for method in ("open_lease", "open_lease_finding"):
            monkeypatch.setattr(catalog, method, hooked(getattr(catalog, method)))

        async def write() -> None:
            if writer == "upload":
                await h.upload(source)
            elif writer == "add_reference":
                await h.add_reference(str(source))
            else:
                async with h.new("b.txt") as new:
                    await new.file.awrite_text("never written")

        task = asyncio.create_task(write())
        await opened.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        far = datetime.now(tz=UTC) + timedelta(days=1)
        assert await catalog.old_leases(far) == []
        assert (await h.gc(grace=timedelta(0))).stale_leases == []
        assert await h.count() == 0
        store = tmp_path / "store"
        assert not store.exists() or [p for p in store.rglob("*") if p.is_file()] == []


async def test_closing_an_async_handler_waits_for_its_writes_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``async with eio.AsyncHandler() as h:`` whose block ends (or ``await
    h.close()``) while upload tasks are under way: the catalog and storage were
    closed under them, so each failed with 'catalog ... is closed' and, its
    clean-up failing too, left its files and an open lease behind for gc a day
    later. Now the close waits for the writes in flight to end."""
    sources = []
    for i in range(5):
        sources.append(tmp_path / f"part{i}.bin")
        sources[-1].write_bytes(os.urandom(100_000))
    h = eio.AsyncHandler(
        storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'catalog.db'}"
    )
    catalog = h.catalog
    await h.count()  # the catalog is open
    opened = 0
    all_open = asyncio.Event()

    def hooked(real: Any) -> Any:
        async def open_lease(*args: Any) -> Any:
            nonlocal opened
            found = await real(*args)
            opened += 1
            if opened == len(sources):
                all_open.set()
            return found

        return open_lease

    # An upload opens its lease with its dedup lookup (open_lease_finding) if it has one.
    for method in ("open_lease", "open_lease_finding"):
        monkeypatch.setattr(catalog, method, hooked(getattr(catalog, method)))
    async with h:
        tasks = [asyncio.create_task(h.upload(source)) for source in sources]
        await all_open.wait()  # every upload is under way
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, eio.Artifact) for r in results), results
    with eio.Handler(
        storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'catalog.db'}"
    ) as again:
        assert again.count() == len(sources)
        report = again.gc(grace=timedelta(0))
        assert (report.orphans, report.stale_leases) == ([], [])
        for art in results:
            assert isinstance(art, eio.Artifact)
            assert again.verify(art.artifact_id).ok


async def test_a_cancelled_upload_cleans_up_once_no_copy_runs_any_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in a notebook cell (the sync API cancels the call) or ``task.cancel()``
    during a local upload of many files: the cancellation ended the await of the
    copying threads but not the threads, which went on copying while the clean-up
    removed the folder and closed the lease; files that landed during the removal
    stayed in a folder without lease or record. The threads now stop at their next
    chunk, and the clean-up runs once they have."""
    (tmp_path / "src").mkdir()
    for i in range(3):
        (tmp_path / "src" / f"f{i}.bin").write_bytes(os.urandom(200_000))  # not inline
    h = eio.AsyncHandler(
        storage=str(tmp_path / "store"),
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        max_concurrency=2,
    )
    backend = h.storage.backend
    copying, removing = threading.Event(), threading.Event()
    copies_at_removal: list[bool] = []
    real_put, real_remove = backend._put_file, h.storage.remove_tree

    def put_file(local: Path, path: str, progress: Any) -> Any:
        if local.name != "f0.bin":
            return real_put(local, path, progress)
        copying.set()
        try:
            while not removing.is_set():  # a copy whose chunks keep coming
                progress.relative_update(0)
                time.sleep(0.001)
            return real_put(local, path, progress)
        finally:
            copying.clear()

    async def remove_tree(path: str) -> None:
        copies_at_removal.append(copying.is_set())
        removing.set()
        await real_remove(path)

    monkeypatch.setattr(backend, "_put_file", put_file)
    monkeypatch.setattr(h.storage, "remove_tree", remove_tree)
    task = asyncio.create_task(h.upload(tmp_path / "src"))
    await asyncio.to_thread(copying.wait)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert copies_at_removal == [False]
    store = tmp_path / "store"
    assert [p for p in store.rglob("*") if p.is_file()] == []
    assert await h.catalog.old_leases(datetime.now(tz=UTC) + timedelta(days=1)) == []
    await h.close()


async def test_a_commit_cancelled_while_its_sidecar_is_written_cleans_up_after_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancellation (Ctrl-C through the sync API, ``task.cancel()``) while a
    storage thread writes the sidecar: the clean-up removed the folder while the
    thread went on, and a sidecar that landed after the removal (its write makes
    the folder again) stayed without files, lease or record, where ``reindex``
    would restore an artifact whose files are gone. The clean-up now waits for
    the thread."""
    source = tmp_path / "a.bin"
    source.write_bytes(b"rows")
    h = eio.AsyncHandler(
        storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'catalog.db'}"
    )
    backend = h.storage.backend
    writing, release = threading.Event(), threading.Event()
    writing_at_removal: list[bool] = []
    real_write, real_remove = backend._write_sealed, h.storage.remove_tree

    def write_sealed(path: str, data: Any, seal: Any) -> Any:
        writing.set()
        try:
            release.wait()
            return real_write(path, data, seal)
        finally:
            writing.clear()

    async def remove_tree(path: str) -> None:
        writing_at_removal.append(writing.is_set())
        await real_remove(path)

    monkeypatch.setattr(backend, "inline", lambda nbytes, nfiles: False)  # a large sidecar
    monkeypatch.setattr(backend, "_write_sealed", write_sealed)
    monkeypatch.setattr(h.storage, "remove_tree", remove_tree)
    task = asyncio.create_task(h.upload(source))
    await asyncio.to_thread(writing.wait)
    task.cancel()
    for _ in range(20):  # the clean-up would start within these turns of the loop
        await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writing_at_removal == [False]
    store = tmp_path / "store"
    assert [p for p in store.rglob("*") if p.is_file()] == []
    assert (await h.reindex()).added == []
    assert await h.catalog.old_leases(datetime.now(tz=UTC) + timedelta(days=1)) == []
    await h.close()


async def test_a_label_edit_cancelled_before_its_record_lands_leaves_the_sidecar_as_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``set_labels`` cancelled (Ctrl-C through the sync API, ``task.cancel()``)
    after it wrote the new labels to the sidecar, before the catalog took them:
    the sidecar kept labels the catalog never had, so a ``reindex`` (after a lost
    catalog) brought back an edit that had raised. Refused edits were already
    taken back; cancelled ones are now too."""
    source = tmp_path / "a.txt"
    source.write_text("rows")
    async with eio.AsyncHandler(
        storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'catalog.db'}"
    ) as h:
        art = await h.upload(source, labels={"project": "before"})
        sent = asyncio.Event()

        async def replace(*args: Any) -> bool:
            sent.set()
            await asyncio.Event().wait()  # the catalog never answers
            return False

        monkeypatch.setattr(h.catalog, "replace", replace)
        task = asyncio.create_task(h.set_labels(art.artifact_id, {"project": "after"}))
        await sent.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sidecar = Path(art.metadata.remote_root) / METADATA_RELPATH
        assert json.loads(sidecar.read_text())["labels"]["project"] == "before"
        assert (await h.get(art.artifact_id)).metadata.labels.project == "before"


async def test_a_cancelled_download_from_a_local_store_returns_without_waiting_for_its_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (through the sync API, ``task.cancel()``) on a download or a verify of
    a large file of a local store: the call waited for its reading thread to read
    the whole file, so Ctrl-C did nothing for as long as the copy took. A read
    leaves nothing behind it (the download's temporary file is gone and its
    reader never writes once the download is cancelled), so it returns at once."""
    source = tmp_path / "a.bin"
    source.write_bytes(b"rows" * 1000)
    h = eio.AsyncHandler(
        storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'catalog.db'}"
    )
    artifact = await h.upload(source)
    backend = h.storage.backend
    reading, release = threading.Event(), threading.Event()
    real_stream = backend._stream

    def stream(path: str, write: Any, progress: Any) -> Any:
        reading.set()
        release.wait()  # a file still being read
        return real_stream(path, write, progress)

    monkeypatch.setattr(backend, "_stream", stream)
    out = tmp_path / "out"
    out.mkdir()
    try:
        for call in (artifact.file.adownload(out / "a.bin"), h.verify(artifact)):
            reading.clear()
            task = asyncio.ensure_future(call)
            await asyncio.to_thread(reading.wait)
            task.cancel()
            for _ in range(20):  # the cancellation ends the call within these turns
                await asyncio.sleep(0)
            assert task.done()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert list(out.iterdir()) == []
    finally:
        release.set()
    await h.close()


async def test_a_close_interrupted_while_it_waits_for_a_write_closes_when_called_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C on ``h.close()`` (through the sync API, ``task.cancel()``) while it
    waits for an upload in flight: the handler counted as closed without closing
    anything, so every later close did nothing and its catalog and storage
    workers stayed open. A close that did not end closes when called again."""
    source = tmp_path / "a.bin"
    source.write_bytes(b"rows")
    h = eio.AsyncHandler(
        storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'catalog.db'}"
    )
    await h.count()  # the catalog is open
    opened, release = asyncio.Event(), asyncio.Event()
    real_open = h.catalog.open_lease_finding  # an upload opens its lease with its dedup lookup

    async def open_lease(*args: Any) -> Any:
        found = await real_open(*args)
        opened.set()
        await release.wait()  # a store that does not answer yet
        return found

    monkeypatch.setattr(h.catalog, "open_lease_finding", open_lease)
    upload = asyncio.create_task(h.upload(source))
    await opened.wait()
    closing = asyncio.create_task(h.close())
    for _ in range(5):
        await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    release.set()
    assert isinstance(await upload, eio.Artifact)
    await h.close()
    with pytest.raises(eio.CatalogError, match="is closed"):
        await h.count()
