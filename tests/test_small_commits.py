"""Small commits run their local-disk steps on the event loop (no thread hop):
the promises of the threaded path hold there too (session 9 review)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import elliptio as eio
from elliptio._backends import LocalBackend


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
