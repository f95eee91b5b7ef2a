"""Logging: one ``elliptio`` logger hierarchy, silent by default, never a secret."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._cli import main
from elliptio._s3 import Backoff
from tests.conftest import S3_BUCKET

SECRET = "s3cr3t-Value-Nobody-May-See"
TOKEN = "T0ken-Nobody-May-See"


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("elliptio") and r.levelno == level
    ]


def test_nothing_is_printed_by_default(tmp_path: Path) -> None:
    script = f"""
import logging, elliptio as eio
root = logging.getLogger()
before = (list(root.handlers), root.level)
(data := __import__("pathlib").Path({str(tmp_path)!r}) / "a.txt").write_text("a")
with eio.Handler(storage={str(tmp_path / "store")!r},
                 catalog="sqlite:///{tmp_path / "c.db"}") as h:
    art = h.upload(data)
    h.upload(data)
    h.find({{"labels.infos.x": 1}})
    h.get(art.artifact_id).file.read_text()
assert (list(root.handlers), root.level) == before, "the root logger was changed"
handlers = logging.getLogger("elliptio").handlers
assert [type(x).__name__ for x in handlers] == ["NullHandler"], handlers
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == result.stderr == ""


def test_commits_and_transfers_at_info(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, data_files: dict[str, Path]
) -> None:
    caplog.set_level(logging.INFO, logger="elliptio")
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        art = h.upload(list(data_files.values()), name="train-set")
        art.files["test.txt"].download(tmp_path / "copy.txt")
    info = _messages(caplog, logging.INFO)
    assert any(
        m.startswith(f"committed {art.artifact_id} as train-set:v1: 2 files") for m in info
    ), info
    assert any(m.startswith("uploaded 2 files") for m in info), info
    assert any(m.startswith("downloaded") and "copy.txt" in m for m in info), info
    assert _messages(caplog, logging.DEBUG) == []  # INFO keeps DEBUG out
    assert all(r.name.startswith("elliptio.") for r in caplog.records if "elliptio" in r.name)


def test_cache_hits_dedup_and_query_plans_at_debug(
    caplog: pytest.LogCaptureFixture,
    s3_options: dict[str, Any],
    tmp_path: Path,
    data_files: dict[str, Path],
) -> None:
    caplog.set_level(logging.DEBUG, logger="elliptio")
    options = {**s3_options, "secret": SECRET}
    storage = f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}"
    with eio.Handler(storage, f"sqlite:///{tmp_path / 'c.db'}", options) as h:
        art = h.upload(data_files["train"])
        again = h.upload(data_files["train"])  # the same bytes: referenced, not copied
        assert again.file.url == art.file.url
        h.get(art.artifact_id).file.read_text()
        h.get(art.artifact_id).file.read_text()  # now from the cache
        h.find({"labels.infos.seed": 7, "username": "andy"})
    debug = _messages(caplog, logging.DEBUG)
    assert any(m.startswith("dedup: train.txt references s3://") for m in debug), debug
    assert any(m.startswith("cache hit: 'train.txt'") for m in debug), debug
    plans = [m for m in debug if m.startswith("query plan:")]
    assert any("SELECT" in m and "WHERE" in m for m in plans), plans
    assert not any("andy" in m for m in plans)  # the plan, never the values
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert SECRET not in text


async def test_retries_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="elliptio")
    backoff = Backoff(attempts=3, base=0.001, cap=0.001)
    assert await backoff.retry()
    assert await backoff.retry()
    assert not await backoff.retry()
    assert [m.split(" (")[0] for m in _messages(caplog, logging.DEBUG)] == ["retry 1", "retry 2"]


def test_secret_bearing_urls_never_appear(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG, logger="elliptio")
    local = tmp_path / "in.txt"
    local.write_text("hello")
    url = f"memory://logging-{uuid.uuid4().hex}/out.txt?token={TOKEN}&X-Amz-Signature={SECRET}"
    eio.cp(str(local), url)
    for _ in range(2):  # downloaded, then a cache hit
        with eio.open(url) as f:
            assert f.read() == b"hello"
    info = _messages(caplog, logging.INFO)
    assert any(m.startswith("copied") and "token=***" in m for m in info), info
    assert any(m.startswith("cache hit") for m in _messages(caplog, logging.DEBUG))
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert TOKEN not in text
    assert SECRET not in text


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import elliptio._urls as urls

    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(urls._default, "_value", None)
    data = tmp_path / "a.txt"
    data.write_text("a")
    return data


def test_cli_verbosity(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upload", str(cli_env), "--no-progress"]) == 0
    assert capsys.readouterr().err.count("\n") <= 1  # no log lines without -v
    assert main(["-v", "upload", str(cli_env), "--no-progress", "--no-dedup"]) == 0
    err = capsys.readouterr().err
    assert "elliptio: INFO elliptio._handler: committed artifact_" in err
    assert "DEBUG" not in err
    assert main(["find", "-vv", "--where", "username=nobody"]) == 0
    err = capsys.readouterr().err
    assert "DEBUG elliptio._catalog.sqlite: query plan: SELECT" in err
    assert "nobody" not in err
    # The handler is gone after the command: nothing leaks into the next one.
    assert [type(x).__name__ for x in logging.getLogger("elliptio").handlers] == ["NullHandler"]
    assert main(["find", "--where", "username=nobody"]) == 0
    assert capsys.readouterr().err == ""


def test_cli_masks_secrets_in_log_lines(
    cli_env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"memory://cli-{uuid.uuid4().hex}/out.txt?token={TOKEN}"
    assert main(["-vv", "cp", str(cli_env), url]) == 0
    err = capsys.readouterr().err
    assert "INFO elliptio._urls: copied" in err
    assert TOKEN not in err
    assert json.dumps(TOKEN) not in err
