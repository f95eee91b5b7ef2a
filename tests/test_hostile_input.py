"""Hostile input: paths and ids built to escape the store or the cache, hostile
records in a shared catalog, oversized labels. Each is refused or bounded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._cli import main
from elliptio._layout import validate_relpath
from elliptio._models import MAX_LABELS_BYTES
from elliptio._sync import sync
from tests.conftest import snapshot

ESCAPES = [
    "../x.txt",
    "a/../../x.txt",
    "a/./../../x.txt",
    "/etc/passwd",
    "//server/share/x",
    "..\\..\\x.txt",
    "\\\\server\\share\\x",
    "C:/Windows/x",
    "c:x",
    "./C:x",
    "a/\x00/b",
    "..",
    "./..",
    "x/..",
    ".elliptio/metadata.json",
    "./.elliptio/metadata.json",
    "./.elliptio/logs/x",
    "a/\n../x",
]
# Names that only look like escapes: stored as literal names inside the artifact.
LITERALS = ["%2e%2e/x.txt", "\u2025/x.txt", "...", "a/...b", "~/x.txt", "$HOME/x.txt"]


def _tree(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")} if root.exists() else set()


def test_escaping_relpaths_are_refused_before_any_write(
    handler: eio.Handler, tmp_path: Path
) -> None:
    for relpath in ESCAPES:
        before = snapshot(handler)
        outside = _tree(tmp_path)
        with pytest.raises(eio.InvalidPathError):
            validate_relpath(relpath)
        with pytest.raises(eio.InvalidPathError), handler.new(["ok.txt", relpath]) as new:
            new.files["ok.txt"].write_bytes(b"x")
        assert snapshot(handler) == before, relpath
        assert _tree(tmp_path) == outside, relpath


def test_literal_names_stay_inside_the_artifact(handler: eio.Handler) -> None:
    with handler.new(LITERALS) as new:
        for relpath, file in new.files.items():
            file.write_text(relpath)
    art = new.artifact
    root = art.metadata.remote_root
    for relpath in LITERALS:
        url = art.files[relpath].url
        assert url.startswith(root + "/")
        assert ".." not in url.removeprefix(root).split("/")
        assert art.files[relpath].read_text() == relpath


@pytest.mark.parametrize(
    "artifact_id",
    [
        "artifact_../../../etc/passwd",
        "artifact_00000000-0000-4000-8000-000000000000/../../x",
        "../artifact_00000000-0000-4000-8000-000000000000",
        "artifact_00000000-0000-4000-8000-000000000000\x00",
        "ARTIFACT_00000000-0000-4000-8000-000000000000",
        "artifact_00000000-0000-4000-8000-00000000000",
    ],
)
def test_crafted_artifact_ids_touch_nothing(
    handler: eio.Handler, tmp_path: Path, artifact_id: str
) -> None:
    cache_root = handler.storage.cache.root if handler.storage.cache else tmp_path
    before, cache_before = snapshot(handler), _tree(cache_root)
    for call in (handler.get, handler.verify, handler.lineage):
        with pytest.raises(eio.ArtifactNotFoundError):
            call(artifact_id)
    assert snapshot(handler) == before
    assert _tree(cache_root) == cache_before


def _hostile(doc: dict[str, Any], artifact_id: str, **file: Any) -> dict[str, Any]:
    hostile = {**doc, "artifact_id": artifact_id}
    hostile["files"] = [{**doc["files"][0], **file}]
    hostile["file_relpaths"] = [hostile["files"][0]["relpath"]]
    return hostile


@pytest.mark.parametrize(
    "file",
    [
        {"relpath": "../../escaped.txt"},
        {"relpath": "/tmp/escaped.txt"},
        {"sha256": "../../../escaped"},
        {"size": -1},
    ],
)
def test_hostile_catalog_records_are_refused(
    handler: eio.Handler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    catalog_url: str,
    file: dict[str, Any],
) -> None:
    """Someone with insert rights on a shared catalog cannot make readers write elsewhere."""
    (tmp_path / "in.txt").write_text("payload")
    art = handler.upload(tmp_path / "in.txt")
    doc = art.metadata.to_document()
    hostile_id = "artifact_11111111-1111-4111-8111-111111111111"
    sync(handler.catalog.insert(_hostile(doc, hostile_id, **file)))
    out = tmp_path / "out" / "deeper"
    with pytest.raises(ValueError, match=next(iter(file))):
        handler.get(hostile_id)
    common = ["--storage", handler.storage.root_url, "--catalog", catalog_url]
    code = main([*common, "download", hostile_id, "-o", str(out)])
    assert code == 1
    assert "escaped" not in "".join(os.listdir(tmp_path))
    assert not (tmp_path / "escaped.txt").exists()
    assert not out.exists()
    capsys.readouterr()


def test_labels_are_bounded(handler: eio.Handler, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    big = {"blob": "x" * (MAX_LABELS_BYTES - 1000)}
    art = handler.upload(tmp_path / "f.txt", labels={"infos": big})
    assert handler.get(art.artifact_id).metadata.labels.infos == big
    before = snapshot(handler)
    with pytest.raises(eio.InvalidLabelsError, match=str(MAX_LABELS_BYTES)):
        handler.upload(tmp_path / "f.txt", labels={"infos": {"blob": "x" * MAX_LABELS_BYTES}})
    many = {f"k{i}": i for i in range(MAX_LABELS_BYTES // 8)}
    with pytest.raises(eio.InvalidLabelsError, match="limit"):
        handler.upload(tmp_path / "f.txt", labels={"infos": many})
    with pytest.raises(eio.InvalidLabelsError, match="limit"):
        eio.Labels(description="d" * (MAX_LABELS_BYTES + 1))
    assert snapshot(handler) == before
