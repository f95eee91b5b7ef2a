"""gc racing commits: gc never removes a committed artifact's files.

Writers hold a lease in the catalog from before their first byte to their commit
(`elliptio._catalog.base.Lease`); gc condemns a lease before it removes anything,
and a commit claims it; one of them wins, atomically.
"""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._layout import artifact_prefix, new_artifact_id
from elliptio._sync import sync
from tests._stress_workers import racing_writer


def test_gc_takes_a_writer_past_its_grace_and_the_commit_fails(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    kept = handler.upload(data_files["train"])
    with pytest.raises(eio.CommitError, match="gc found it unfinished"):
        with handler.new("slow.txt") as new:
            new.file.write_text("written, but the writer stalls")
            report = handler.gc(grace=timedelta(0), delete=True)
            assert report.removed == [handler.storage.url(new.prefix)]
    assert handler.count() == 1
    assert not handler.storage.fs.exists(new.prefix)
    assert handler.verify(kept.artifact_id).ok
    assert handler.gc(grace=timedelta(0)).orphans == []


def test_gc_takes_a_writer_that_never_wrote_a_byte(handler: eio.Handler) -> None:
    with pytest.raises(eio.CommitError, match="gc found it unfinished"):
        with handler.new("late.txt") as new:
            report = handler.gc(grace=timedelta(0), delete=True)
            assert new.artifact_id in report.stale_leases or report.removed
            new.file.write_text("the first byte, too late")
    assert handler.count() == 0
    assert handler.gc(grace=timedelta(0)).stale_leases == []
    assert not handler.storage.fs.exists(new.prefix)


def test_a_write_that_fails_because_gc_took_the_artifact_says_so(handler: eio.Handler) -> None:
    with pytest.raises(eio.CommitError, match="gc found it unfinished") as caught:
        with handler.new(["a.txt", "b.txt"]) as new:
            new.files["a.txt"].write_text("written before gc came")
            handler.gc(grace=timedelta(0), delete=True)
            # The next write fails (here: b.txt appeared where gc had cleared).
            handler.storage.fs.makedirs(new.prefix, exist_ok=True)
            handler.storage.fs.pipe_file(new.files["b.txt"]._path, b"x")
            new.files["b.txt"].write_text("too late")
    # The write's own error is kept as the cause.
    assert isinstance(caught.value.__cause__, eio.ArtifactExistsError)
    assert handler.count() == 0
    # A failed write while the lease is the writer's own is not blamed on gc.
    with pytest.raises(eio.ArtifactExistsError):
        with handler.new("c.txt") as other:
            handler.storage.fs.pipe_file(other.file._path, b"x")
            other.file.write_text("refused")
    assert not handler.storage.fs.exists(other.prefix)


def test_stale_leases_of_dead_writers_are_closed(handler: eio.Handler, tmp_path: Path) -> None:
    """A writer that died between opening its lease and its first byte."""
    root = handler.storage.root.rstrip("/")
    old = datetime.now(tz=UTC) - timedelta(days=2)
    dead = new_artifact_id()
    young = new_artifact_id()
    foreign = new_artifact_id()
    catalog = handler.catalog
    sync(catalog.open_lease(dead, artifact_prefix(root, old, "ghost", dead), old))
    sync(
        catalog.open_lease(
            young, artifact_prefix(root, datetime.now(tz=UTC), "x", young), datetime.now(tz=UTC)
        )
    )
    sync(catalog.open_lease(foreign, artifact_prefix(f"{root}-other", old, "x", foreign), old))
    report = handler.gc()
    assert report.stale_leases == [dead]
    assert sync(catalog.get_lease(dead)) is not None  # a dry run changes nothing
    report = handler.gc(delete=True)
    assert report.stale_leases == [dead]
    assert sync(catalog.get_lease(dead)) is None
    assert sync(catalog.get_lease(young)) is not None  # inside its grace period
    assert sync(catalog.get_lease(foreign)) is not None  # another store's business
    assert handler.gc(delete=True).stale_leases == []


def test_gc_leaves_a_writer_inside_its_grace_alone(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    with handler.new("slow.txt") as new:
        new.file.write_text("a commit in flight")
        report = handler.gc(grace=timedelta(hours=1), delete=True)
        assert report.orphans == []
    assert handler.verify(new.artifact.artifact_id).ok


def test_gc_racing_a_writer_process(tmp_path: Path) -> None:
    """A writer commits 30 artifacts while gc runs again and again with no grace."""
    storage = str(tmp_path / "store")
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    writer = ctx.Process(
        target=racing_writer, args=(storage, catalog, 30, str(tmp_path / "work"), results)
    )
    rounds = removed = 0
    with eio.Handler(storage=storage, catalog=catalog) as h:
        writer.start()
        deadline = time.monotonic() + 120
        while writer.is_alive() and time.monotonic() < deadline:
            report = h.gc(grace=timedelta(0), delete=True)
            # A writer is taken with its files, or before its first byte.
            removed += len(report.removed) + len(report.stale_leases)
            rounds += 1
        committed, lost, errors = results.get(timeout=60)
        writer.join(timeout=30)
        assert not errors, "\n".join(errors)  # in full: CI logs show no more
        assert rounds > 0
        # Every commit the writer saw succeed is whole; every record verifies.
        records = set(h.find({}, columns=["file_relpaths"]).index)
        assert set(committed) == records
        for artifact_id in records:
            assert h.verify(artifact_id).ok, artifact_id
        assert len(committed) + len(lost) == 30
        # What gc took was never committed; nothing is left half-way.
        report = h.gc(grace=timedelta(0), delete=True)
        removed += len(report.removed) + len(report.stale_leases)
        assert not set(lost) & records
        assert removed >= len(lost)
        assert h.reindex().added == []
        prefixes = h.storage.fs.glob(f"{h.storage.root}/*/*/*/*/*_artifact_*")
        assert len(prefixes) == len(records)
    print(f"gc rounds {rounds}, prefixes removed {removed}, commits pre-empted {len(lost)}")
