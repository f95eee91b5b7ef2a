"""A SQLite catalog file removed or replaced under a running handler fails loudly.

Before, SQLite kept writing into the unlinked file: `upload` succeeded and no new
handler ever saw the artifact. Now every write raises `CatalogError` naming the
file; a commit whose sidecar is written keeps its files, so `reindex` against the
catalog in use restores it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import elliptio as eio


def _lose(db: Path, how: str, tmp_path: Path) -> None:
    """Take the catalog file away from under its handler, as a user would."""
    if how == "unlink":
        db.unlink()
    elif how == "rm catalog.db*":
        for path in db.parent.glob(f"{db.name}*"):
            path.unlink()
    else:  # "replace": another catalog moved over it
        other = tmp_path / "other.db"
        with eio.Handler(storage=tmp_path / "other-store", catalog=f"sqlite:///{other}") as h:
            h.count()  # creates the (empty) catalog
        os.replace(other, db)


def _follow_the_message(db: Path, how: str, message: str) -> None:
    """What the error tells a user to do once the handler is closed."""
    if how == "replace":
        # SQLite left the old file's WAL beside the new file, which it would read
        # as the new file's.
        assert f"{db.name}-wal and {db.name}-shm" in message
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink()
    else:
        assert "-wal" not in message


def _stored(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*") if p.is_file())


HOW = ["unlink", "rm catalog.db*", "replace"]


@pytest.mark.parametrize("how", HOW)
def test_upload_after_the_catalog_file_was_lost_raises_and_reindex_restores(
    tmp_path: Path, how: str
) -> None:
    db, store = tmp_path / "catalog.db", tmp_path / "store"
    src = tmp_path / "a.txt"
    src.write_text("first")
    with eio.Handler(storage=store, catalog=f"sqlite:///{db}") as h:
        first = h.upload(src)
        before = _stored(store)
        _lose(db, how, tmp_path)
        with pytest.raises(eio.CatalogError, match=re.escape(repr(str(db)))) as info:
            h.upload(src)
        assert "reindex" in str(info.value)
        assert _stored(store) == before  # the lease failed first: nothing written
    # The handler closed cleanly; a new one on the catalog now at that path is
    # told by reindex what the lost file held.
    _follow_the_message(db, how, str(info.value))
    with eio.Handler(storage=store, catalog=f"sqlite:///{db}") as h:
        assert h.find().empty
        assert h.reindex().added == [first.artifact_id]
        assert h.get(first.artifact_id).files["a.txt"].read_text() == "first"


@pytest.mark.parametrize("how", HOW)
def test_a_commit_after_the_catalog_file_was_lost_keeps_its_files_for_reindex(
    tmp_path: Path, how: str
) -> None:
    db, store = tmp_path / "catalog.db", tmp_path / "store"
    with eio.Handler(storage=store, catalog=f"sqlite:///{db}") as h:
        with pytest.raises(eio.CatalogError) as info:
            with h.new("out.txt") as new:
                new.file.write_text("written")
                _lose(db, how, tmp_path)
        message = str(info.value)
        assert repr(str(db)) in message
        assert f"{new.artifact_id} was not committed" in message
        assert "sidecar" in message
        assert "reindex" in message
    _follow_the_message(db, how, message)
    with eio.Handler(storage=store, catalog=f"sqlite:///{db}") as h:
        assert h.find().empty
        assert h.reindex().added == [new.artifact_id]
        assert h.get(new.artifact_id).files["out.txt"].read_text() == "written"


def test_a_lost_catalog_before_the_sidecar_leaves_nothing_behind(tmp_path: Path) -> None:
    # A named commit reserves its version before it writes the sidecar: nothing
    # can restore it then, so its files go as with any failed write.
    db, store = tmp_path / "catalog.db", tmp_path / "store"
    with eio.Handler(storage=store, catalog=f"sqlite:///{db}") as h:
        with pytest.raises(eio.CatalogError, match=re.escape(repr(str(db)))):
            with h.new("out.txt", name="results") as new:
                new.file.write_text("written")
                db.unlink()
    assert _stored(store) == []
