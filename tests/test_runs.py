"""Runs: the process default, nested scopes, and subprocesses joining their parent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._runs import RUN_ID_ENV, current_run


def test_nested_runs_restore_the_outer_one(handler: eio.Handler) -> None:
    outer = current_run()
    with handler.run() as first:
        assert current_run() is first
        with handler.run() as second:
            assert current_run() is second
            assert handler.run_id == second.run_id
        assert current_run() is first
    assert current_run() is outer


def test_subprocess_joins_the_run(tmp_path: Path, data_files: dict[str, Path]) -> None:
    # On local disk: a child process cannot see this process's memory filesystem.
    storage_url = str(tmp_path / "store")
    catalog_url = f"sqlite:///{tmp_path / 'catalog.db'}"
    handler = eio.Handler(storage=storage_url, catalog=catalog_url)
    source = handler.upload(data_files["test"])
    script = (
        "import sys, elliptio as eio\n"
        "h = eio.Handler(storage=sys.argv[1], catalog=sys.argv[2])\n"
        "with h.new('child.txt') as new:\n"
        "    new.file.write_text('from the child')\n"
        "print(new.artifact.metadata.run_id)\n"
    )
    environ = dict(os.environ)
    with handler.run() as run:
        handler.get(source.artifact_id)
        child = subprocess.run(
            [sys.executable, "-c", script, storage_url, catalog_url],
            env=eio.run_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        # The only open run: children started now inherit it from os.environ too.
        assert os.environ[RUN_ID_ENV] == run.run_id
    assert dict(os.environ) == environ  # exactly as before once the run closed
    assert child.stdout.strip() == run.run_id
    found = handler.find({"run_id": run.run_id, "file_relpaths": "child.txt"})
    assert len(found) == 1
    handler.close()


async def test_overlapping_runs_give_children_no_run(tmp_path: Path) -> None:
    """While two runs overlap, os.environ names neither: no child joins the wrong one."""
    ahandler = eio.AsyncHandler(storage=tmp_path / "store", catalog="memory://")
    environ = dict(os.environ)
    both_open = asyncio.Barrier(2)
    first_closed = asyncio.Event()

    async def task(first: bool) -> str:
        async with ahandler.run() as run:
            await both_open.wait()  # each enters while the other's run is open
            assert dict(os.environ) == environ
            assert eio.run_env() == {**environ, **run.env()}
            assert run.env()[RUN_ID_ENV] == run.run_id
            if not first:
                await first_closed.wait()
                # Alone again: children started now join this run.
                assert os.environ[RUN_ID_ENV] == run.run_id
        if first:
            first_closed.set()
        return run.run_id

    first, second = await asyncio.gather(task(True), task(False))
    assert first != second
    assert dict(os.environ) == environ
    # Outside any scope: the process's default run.
    assert eio.run_env()[RUN_ID_ENV] == current_run().run_id == ahandler.run_id
    await ahandler.close()


def test_nested_runs_name_the_innermost_and_restore(handler: eio.Handler) -> None:
    os.environ[RUN_ID_ENV] = "run_set-by-the-user"
    try:
        with handler.run() as outer:
            assert os.environ[RUN_ID_ENV] == outer.run_id
            with handler.run() as inner:
                assert os.environ[RUN_ID_ENV] == inner.run_id
            assert os.environ[RUN_ID_ENV] == outer.run_id
        assert os.environ[RUN_ID_ENV] == "run_set-by-the-user"
    finally:
        del os.environ[RUN_ID_ENV]


def test_malformed_inherited_run_id_is_ignored(tmp_path: Path) -> None:
    code = "from elliptio._runs import current_run; print(current_run().run_id)"
    env = {**os.environ, RUN_ID_ENV: "run_'; DROP TABLE artifacts; --"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("run_")
    assert "DROP" not in out.stdout


def test_threads_started_inside_a_run_read_into_it(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """A thread pool or a thread inside ``with h.run():`` does not inherit the
    context; its reads went to the process's default run, so the commit lost
    them and the next commit outside the run gained them."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        arts = [h.upload(data_files["test"], labels={"description": str(n)}) for n in range(4)]
        out = tmp_path / "out.txt"
        out.write_text("made from what the threads read")
        with h.run():
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda a: h.get(a.artifact_id).file.read_bytes(), arts[:2]))
            worker = threading.Thread(target=lambda: eio_read(arts[2].file.eio_url))
            worker.start()
            worker.join()
            made = h.upload(out)
        assert set(made.metadata.based_on) == {a.artifact_id for a in arts[:3]}
        after = h.upload(out)  # outside the run: the default run read nothing
        assert after.metadata.based_on == []

        # Two runs overlapping in two threads: a third thread belongs to neither.
        opened, release = threading.Barrier(3), threading.Event()
        based: dict[str, list[str]] = {}

        def own_run(name: str) -> None:
            with h.run():
                opened.wait()
                release.wait()
                based[name] = h.upload(out).metadata.based_on

        owners = [threading.Thread(target=own_run, args=(n,)) for n in ("a", "b")]
        for t in owners:
            t.start()
        opened.wait()
        stray = threading.Thread(target=lambda: h.get(arts[3].artifact_id))
        stray.start()
        stray.join()
        release.set()
        for t in owners:
            t.join()
        assert based == {"a": [], "b": []}
        assert h.upload(out).metadata.based_on == [arts[3].artifact_id]


def eio_read(url: str) -> bytes:
    import fsspec

    with fsspec.open(url, "rb") as f:
        return bytes(f.read())


async def test_an_asyncio_task_without_a_run_keeps_out_of_a_sibling_tasks_run(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    """While one task had a run open, a sibling task of the same thread with no
    run of its own read and committed into it (through the sync API too, whose
    calls run on elliptio's IO thread): the run threads share is not shared with
    the contexts of the thread that opened it (helper-49)."""
    h = eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db")
    ah = h.aio
    x, y, z = (h.upload(data_files["test"], labels={"description": n}) for n in "xyz")
    opened, read = asyncio.Event(), asyncio.Event()
    made: dict[str, list[str]] = {}
    out = tmp_path / "out.txt"
    out.write_text("derived")

    async def with_run() -> None:
        async with ah.run():
            await ah.get(x.artifact_id)
            opened.set()
            await read.wait()
            made["a"] = (await ah.upload(out)).metadata.based_on

    async def without_run() -> None:
        await opened.wait()
        await ah.get(y.artifact_id)
        h.get(z.artifact_id).file.read_bytes()  # the sync API, from inside the task
        made["b"] = h.upload(out).metadata.based_on
        read.set()

    await asyncio.gather(with_run(), without_run())
    assert made["a"] == [x.artifact_id]
    assert sorted(made["b"]) == sorted([y.artifact_id, z.artifact_id])
    h.close()


def test_a_run_is_handed_out_when_its_earlier_reads_cannot_be_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """helper-82: run_env() raised when the catalog could not take the run's earlier
    reads (down, or a client bound to another event loop), so the child step never
    started; the environment is handed out, and the miss is logged."""
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        (tmp_path / "a.txt").write_text("a")
        art = h.upload(tmp_path / "a.txt")
        run = current_run()  # the process's default run, shared with nobody yet
        assert art.file.read_bytes() == b"a"

        async def down(run_id: str, ids: Any) -> None:
            raise eio.CatalogUnavailableError("the catalog is down")

        monkeypatch.setattr(h.aio.catalog, "add_run_inputs", down)
        assert eio.run_env()[RUN_ID_ENV] == run.run_id
        assert "could not be noted in the catalog" in caplog.text
