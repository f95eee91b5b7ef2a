"""reindex, gc and verify against real storage and a real catalog."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import elliptio as eio
from elliptio._maintenance import gc, reindex, verify
from elliptio._sync import sync


def _orphan(h: eio.Handler, when: datetime) -> str:
    """A prefix as a writer killed before its sidecar would leave it."""
    from elliptio._layout import artifact_prefix, new_artifact_id

    prefix = artifact_prefix(h.storage.root, when, "crashed", new_artifact_id())
    sync(h.storage.write_bytes(f"{prefix}/half.bin", b"half"))
    return prefix


def test_reindex_restores_lost_records(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    a = handler.upload(data_files["test"])
    b = handler.upload(data_files["train"])
    sync(handler.catalog.delete(a.artifact_id))
    report = sync(reindex(handler.storage, handler.catalog))
    assert report.added == [a.artifact_id]
    assert report.unchanged == [b.artifact_id]
    assert handler.get(a.artifact_id).metadata == a.metadata
    again = sync(reindex(handler.storage, handler.catalog))
    assert again.added == []
    assert sorted(again.unchanged) == sorted([a.artifact_id, b.artifact_id])


def test_gc_is_a_dry_run_unless_asked(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    kept = handler.upload(data_files["test"])
    old = _orphan(handler, datetime.now(tz=UTC) - timedelta(days=2))
    young = _orphan(handler, datetime.now(tz=UTC))
    fs = handler.storage.fs
    report = sync(gc(handler.storage, handler.catalog))
    assert report.dry_run
    assert report.orphans == [handler.storage.url(old)]
    assert fs.exists(old)
    report = sync(gc(handler.storage, handler.catalog, delete=True))
    assert report.removed == [handler.storage.url(old)]
    assert not fs.exists(old)
    assert fs.exists(young)  # inside the grace period: maybe a commit in flight
    assert handler.get(kept.artifact_id).file.read_text() == data_files["test"].read_text()


def test_gc_never_removes_committed_artifacts(
    handler: eio.Handler, data_files: dict[str, Path]
) -> None:
    arts = [handler.upload(data_files["test"]) for _ in range(3)]
    sync(handler.catalog.delete(arts[0].artifact_id))  # record lost, sidecar kept
    future = datetime.now(tz=UTC) + timedelta(days=30)
    report = sync(gc(handler.storage, handler.catalog, delete=True, now=future))
    assert report.orphans == []
    for art in arts[1:]:
        assert handler.get(art.artifact_id).file.read_bytes()
    assert sync(reindex(handler.storage, handler.catalog)).added == [arts[0].artifact_id]


def test_verify_finds_damage(handler: eio.Handler, data_files: dict[str, Path]) -> None:
    art = handler.upload([data_files["test"], data_files["train"]])
    assert sync(verify(handler.storage, art.metadata)).ok
    fs = handler.storage.fs
    path = fs._strip_protocol(art.files["test.txt"].url)
    if os.path.exists(path):
        os.chmod(path, 0o644)
    fs.pipe_file(path, b"tampered")
    fs.rm(fs._strip_protocol(art.files["train.txt"].url))
    report = sync(verify(handler.storage, art.metadata))
    assert report.damaged == ["test.txt"]
    assert report.missing == ["train.txt"]
    assert not report.ok


def test_gc_refuses_negative_grace(handler: eio.Handler) -> None:
    with pytest.raises(eio.ElliptioError, match="grace"):
        sync(gc(handler.storage, handler.catalog, grace=timedelta(hours=-1)))


@pytest.mark.parametrize("catalog", ["sqlite", "mongodb"])
def test_a_label_datetime_with_microseconds_is_one_value_everywhere(
    catalog: str, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """Catalogs keep milliseconds (BSON dates); the sidecar and the returned record
    kept microseconds, and the sidecar (JSON) kept dates in labels as text, so
    reindex called a healthy artifact 'conflicting' (exit 1) and rebuilt a lost
    record with a string where the date was."""
    from mongomock_motor import AsyncMongoMockClient

    where = AsyncMongoMockClient() if catalog == "mongodb" else f"sqlite:///{tmp_path / 'c.db'}"
    when = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    with eio.Handler(storage=tmp_path / "store", catalog=where) as h:
        art = h.upload(data_files["test"], labels=eio.Labels(infos={"dt": when, "at": [when]}))
        kept = when.replace(microsecond=123000)
        assert art.metadata.labels.infos == {"dt": kept, "at": [kept]}
        assert h.get(art.artifact_id).metadata == art.metadata
        h.set_labels(art.artifact_id, {"infos": {"dt": when}})
        assert h.get(art.artifact_id).metadata.labels.infos == {"dt": kept}
        report = h.reindex()
        assert (report.unchanged, report.conflicting) == ([art.artifact_id], [])
        assert list(h.find({"labels.infos.dt": when}).index) == [art.artifact_id]
        # A record rebuilt from the sidecar holds dates, not their text (JSON has none).
        expected = h.get(art.artifact_id).metadata
        sync(h.catalog.delete(art.artifact_id))
        assert h.reindex().added == [art.artifact_id]
        assert h.get(art.artifact_id).metadata == expected
        assert list(h.find({"labels.infos.dt": {"$gte": when}}).index) == [art.artifact_id]


def test_verify_reports_a_planted_link_fifo_or_folder_as_damaged_and_goes_on(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """A storage writer replaces stored files with things elliptio never writes:
    verify names each DAMAGED and checks the rest, on the CLI as in the library."""
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        names = ["a.txt", "b.txt", "c.txt", "d.txt"]
        sources = []
        for name in names:
            (tmp_path / name).write_text(name)
            sources.append(tmp_path / name)
        art = h.upload(sources)
        stored = {n: Path(art.files[n].url) for n in names}
        for path in stored.values():
            os.chmod(path.parent, 0o755)
        stored["a.txt"].unlink()
        stored["a.txt"].symlink_to(data_files["test"])
        stored["b.txt"].unlink()
        os.mkfifo(stored["b.txt"])
        stored["c.txt"].unlink()
        stored["c.txt"].mkdir()
        report = h.verify(art.artifact_id)
        assert sorted(report.damaged) == ["a.txt", "b.txt", "c.txt"]
        assert report.checked == 4
        assert not report.ok
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "elliptio",
            "--storage",
            str(tmp_path / "store"),
            "--catalog",
            f"sqlite:///{tmp_path}/c.db",
            "verify",
            art.artifact_id,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    for name in ("a.txt", "b.txt", "c.txt"):
        assert name in out.stdout + out.stderr


def test_gc_goes_on_when_open_uploads_cannot_be_listed(
    handler: eio.Handler, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An S3 policy without s3:ListBucketMultipartUploads: gc still collects
    orphans, and says what it could not list."""
    orphan = _orphan(handler, datetime.now(UTC) - timedelta(days=2))
    backend = handler.storage.backend

    async def refused(path: str) -> list[tuple[str, str, datetime | None]]:
        raise eio.StorageError("AccessDenied: ListMultipartUploads")

    monkeypatch.setattr(backend, "open_uploads", refused)
    report = sync(gc(handler.storage, handler.catalog, delete=True))
    assert report.removed == [handler.storage.url(orphan)]
    assert "could not list the multipart uploads" in caplog.text


def test_gc_leaves_an_open_upload_of_unknown_age_alone(
    handler: eio.Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that does not say when a multipart upload began: the upload may be
    a live writer's (one without a lease: catalog='none'), so gc lists it and
    keeps it, as it keeps a sidecar copy of unknown age (helpers 90 and 93)."""
    from elliptio._layout import artifact_prefix, new_artifact_id

    prefix = artifact_prefix(
        handler.storage.root, datetime.now(UTC) - timedelta(days=2), "w", new_artifact_id()
    )
    backend = handler.storage.backend
    aborted: list[str] = []

    async def listed(path: str) -> list[tuple[str, str, datetime | None]]:
        return [(f"{prefix}/big.bin", "upload-1", None)]

    async def abort(path: str, upload_id: str) -> None:
        aborted.append(upload_id)

    monkeypatch.setattr(backend, "open_uploads", listed)
    monkeypatch.setattr(backend, "abort_upload", abort)
    report = sync(gc(handler.storage, handler.catalog, grace=timedelta(0), delete=True))
    url = handler.storage.url(f"{prefix}/big.bin")
    assert (report.incomplete_uploads, report.aborted_uploads, aborted) == ([url], [], [])


def test_reindex_gc_and_aliases_see_a_store_whose_root_holds_glob_characters(
    storage_url: str, catalog_url: str, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """The store's root went into gc's and reindex's glob as it was: a root such
    as ``.../run[1]*`` matched ``run1x`` and not itself, so reindex restored none
    of its artifacts, gc listed none of its orphans and ``reindex --aliases``
    found no copy of an alias (on every backend)."""
    root = f"{storage_url}/run[1]*"
    with eio.Handler(storage=root, catalog=catalog_url) as h:
        art = h.upload(data_files["test"], name="ds")
        h.set_alias("ds:v1", "prod")
        orphan = _orphan(h, datetime.now(tz=UTC) - timedelta(days=2))
        report = h.gc(delete=True)
        assert report.removed == [h.storage.url(orphan)]
        assert not h.storage.fs.exists(orphan)
    with eio.Handler(storage=root, catalog=f"sqlite:///{tmp_path / 'lost.db'}") as h:
        restored = h.reindex(aliases=True)
        assert restored.added == [art.artifact_id]
        assert restored.aliases
        assert h.get("ds:prod").file.read_text() == data_files["test"].read_text()
