"""Runs: the process default, nested scopes, and subprocesses joining their parent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

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
