"""Small commits run their local-disk steps on the event loop (no thread hop):
the promises of the threaded path hold there too (session 9 review)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import pytest

import elliptio as eio
from elliptio._backends import LocalBackend
from elliptio._sync import sync


def test_ctrl_c_during_a_small_upload_stays_a_keyboard_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "a.txt"
    src.write_text("x")

    def interrupted(self: LocalBackend, path: str) -> int:
        raise KeyboardInterrupt

    async def upload() -> None:
        async with eio.AsyncHandler(
            storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db"
        ) as h:
            monkeypatch.setattr(LocalBackend, "_create", interrupted)
            try:
                await h.upload(src)
            finally:
                monkeypatch.undo()
                assert await h.count() == 0

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(upload())


def test_a_loop_of_symbolic_links_given_to_upload_does_not_exist(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        with pytest.raises(eio.InputFileNotFoundError, match="loop of symbolic links"):
            h.upload(loop)


def test_a_label_column_beside_all_labels_is_filled(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("x")
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        h.upload(src, labels={"infos": {"seed": 3, "deep": {"x": [1, 2]}}})
        frame = h.find(columns=["labels", "labels.infos"])
        assert "labels.infos" not in frame.columns
        assert frame["labels.infos.seed"].tolist() == [3]
        assert frame["labels.infos.deep.x"].tolist() == [[1, 2]]
        assert h.find(columns=["labels.infos.deep"])["labels.infos.deep.x"].tolist() == [[1, 2]]
        assert h.find(columns=["labels.nope"])["labels.nope"].tolist() == [None]


_FAR = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.parametrize(
    ("method", "error"),
    [
        # The steps of the one catalog job that opens the lease and asks for copies.
        ("_open_lease", eio.CatalogUnavailableError("the catalog is down (test)")),
        ("_find_objects", eio.CatalogError("the lookup failed (test)")),
    ],
    ids=["lease", "dedup-lookup"],
)
def test_a_failure_before_the_first_byte_is_itself_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, error: Exception
) -> None:
    """The lease opens while dedup asks the catalog for stored copies. When either
    fails, its own error comes out (not a lost lease), no byte is written, no
    lease stays open, and the next commit is unaffected."""
    from elliptio._catalog.sqlite import SQLiteCatalog

    src = tmp_path / "a.txt"
    src.write_text("x")
    store = tmp_path / "store"

    def failing(self: SQLiteCatalog, *args: object) -> None:  # on the catalog's thread
        raise error

    with eio.Handler(storage=store, catalog=f"sqlite:///{tmp_path}/c.db") as h:
        monkeypatch.setattr(SQLiteCatalog, method, failing)
        with pytest.raises(type(error), match="test"):
            h.upload(src)
        monkeypatch.undo()
        assert _files_under(store) == []
        assert sync(h.catalog.old_leases(_FAR)) == []
        assert h.count() == 0
        assert h.upload(src).file.read_text() == "x"
