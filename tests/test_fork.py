"""Forked children after the parent has uploaded: new handlers and the parent's both work.

``os.fork`` and ``multiprocessing``'s "fork" start method (its default on Linux)
copy the parent's memory but none of its threads. Every pool, loop and lock the
library keeps must be renewed in the child, or the child's first upload waits
for ever on a thread that does not exist there. Each child here gets a deadline
and is killed past it, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from tests.conftest import S3_BUCKET

pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)

DEADLINE = 120.0  # seconds; a healthy child takes about one
# Large enough that the local copy hashes its chunk on the hash pool (>= 64 KiB).
BIG = 256 * 1024
FORK = multiprocessing.get_context("fork")


class Parent:
    """The parent's handler, after it has uploaded one file, and how to make another."""

    def __init__(self, storage: str, options: dict[str, Any], catalog: str, folder: Path):
        self.args = (storage, catalog, options)
        self.folder = folder
        self.handler = eio.Handler(storage=storage, catalog=catalog, storage_options=options)
        self.content = os.urandom(BIG)
        source = folder / "source.bin"
        source.write_bytes(self.content)
        self.artifact_id = self.handler.upload(source).artifact_id

    def new_handler(self) -> eio.Handler:
        storage, catalog, options = self.args
        return eio.Handler(storage=storage, catalog=catalog, storage_options=options)


# The parent of the current test, reached by a pool worker through the memory it
# was forked with (a Handler is not pickled).
_parent: Parent | None = None


@pytest.fixture(params=["file", "s3"])
def parent(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Parent]:
    global _parent
    if request.param == "file":
        storage, options = str(tmp_path / "store"), {}
    else:
        options = request.getfixturevalue("s3_options")
        storage = f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}"
    _parent = Parent(storage, options, f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    yield _parent
    _parent.handler.close()
    _parent = None


def child_work(tag: str) -> dict[str, str]:
    """What a forked child does: upload with a new handler and with the parent's.

    Returns each new artifact's id and run id, after reading every artifact back.
    """
    parent = _parent
    assert parent is not None
    made: dict[str, str] = {}
    with parent.new_handler() as own:
        for name, h in (("own", own), ("inherited", parent.handler)):
            local = parent.folder / f"{tag}-{name}.bin"
            content = os.urandom(BIG)  # fresh bytes: a real copy, not a dedup hit
            local.write_bytes(content)
            art = h.upload(local, labels={"description": tag})
            assert h.get(art.artifact_id).files[local.name].read_bytes() == content
            made[name] = art.artifact_id
            made[f"{name} run"] = art.metadata.run_id
        for h in (own, parent.handler):
            source = h.get(parent.artifact_id)
            assert source.files["source.bin"].read_bytes() == parent.content
    return made


def _report(path: Path, work: Callable[[], object]) -> None:
    """Run ``work`` in a child; write its result or its traceback to ``path``."""
    try:
        path.write_text(json.dumps({"result": work()}))
    except BaseException:
        path.write_text(json.dumps({"error": traceback.format_exc()}))
        raise


def _outcome(path: Path) -> Any:
    found = json.loads(path.read_text())
    assert "error" not in found, found["error"]
    return found["result"]


def _check_in_parent(parent: Parent, made: dict[str, str], tag: str) -> None:
    """The child's artifacts are in the shared catalog and storage."""
    found = parent.handler.find({"labels.description": tag})
    assert set(found.index) == {made["own"], made["inherited"]}
    for name in ("own", "inherited"):
        art = parent.handler.get(made[name])
        assert len(art.files[f"{tag}-{name}.bin"].read_bytes()) == BIG


def _wait_or_kill(pid: int) -> int:
    """The child's exit code; past the deadline it is killed and the test fails."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish within {DEADLINE:.0f} s (it hangs)")


def test_os_fork_child_uploads_with_a_new_and_the_parents_handler(parent: Parent) -> None:
    out = parent.folder / "os-fork.json"
    with parent.handler.run() as run:
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                _report(out, lambda: child_work("os-fork"))
                code = 0
            finally:
                os._exit(code)
    assert _wait_or_kill(pid) == 0, _outcome(out)
    made = _outcome(out)
    _check_in_parent(parent, made, "os-fork")
    # Forked inside the run, the child's artifacts belong to it.
    assert made["own run"] == made["inherited run"] == run.run_id


def _process_main(out: str) -> None:
    _report(Path(out), lambda: child_work("mp-process"))


def test_multiprocessing_fork_process_uploads(parent: Parent) -> None:
    out = parent.folder / "mp-process.json"
    process = FORK.Process(target=_process_main, args=(str(out),))
    process.start()
    process.join(DEADLINE)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail(f"the forked process did not finish within {DEADLINE:.0f} s (it hangs)")
    assert process.exitcode == 0, _outcome(out)
    _check_in_parent(parent, _outcome(out), "mp-process")


def test_process_pool_worker_uploads(parent: Parent) -> None:
    pool = ProcessPoolExecutor(max_workers=1, mp_context=FORK)
    try:
        made = pool.submit(child_work, "pool").result(timeout=DEADLINE)
    except FutureTimeout:
        for child in FORK.active_children():
            child.kill()
        pytest.fail(f"the pool worker did not finish within {DEADLINE:.0f} s (it hangs)")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    _check_in_parent(parent, made, "pool")


def _in_child(work: Callable[[], object], folder: Path) -> Any:
    """Run ``work`` in an ``os.fork`` child; what it returned, or its error's repr."""
    out = folder / f"child-{uuid.uuid4().hex}.json"
    pid = os.fork()
    if pid == 0:
        try:

            def caught() -> object:
                try:
                    return work()
                except Exception as err:
                    return f"{type(err).__name__}: {err}"

            _report(out, caught)
        finally:
            os._exit(0)
    assert _wait_or_kill(pid) == 0
    return _outcome(out)


def test_an_artifact_got_before_the_fork_reads_in_the_child(parent: Parent) -> None:
    source = parent.handler.get(parent.artifact_id)
    said = _in_child(lambda: source.files["source.bin"].read_bytes().hex(), parent.folder)
    assert said == parent.content.hex()


def test_locks_held_by_another_thread_at_fork_time_do_not_block_the_child(
    tmp_path: Path,
) -> None:
    import fsspec

    from elliptio import _protocol, _transfer, _urls

    storage, catalog = str(tmp_path / "store"), f"sqlite:///{tmp_path / 'catalog.db'}"
    (tmp_path / "a.txt").write_text("a")
    h = eio.Handler(storage=storage, catalog=catalog)
    artifact_id = h.upload(tmp_path / "a.txt").artifact_id

    def child() -> list[Any]:
        got = h.get(artifact_id).artifact_id  # notes an input of the run
        listed = len(eio.ls(str(tmp_path))) > 0  # the default URL tools
        url = f"elliptio://{artifact_id}/a.txt"  # the handlers of elliptio:// URLs
        with fsspec.open(url, "rt", storage=storage, catalog=catalog) as f:
            text = f.read()
        (tmp_path / "big.bin").write_bytes(os.urandom(BIG))
        h.upload(tmp_path / "big.bin")  # the hash pool
        return [got, listed, text]

    try:
        with h.run() as run:
            # As if other threads were inside elliptio when the process forked.
            locks = (run._lock, _urls._default._lock, _protocol._handlers_lock)
            for lock in (*locks, _transfer._hash_pool._lock):
                lock.acquire()
            try:
                said = _in_child(child, tmp_path)
            finally:
                for lock in (*locks, _transfer._hash_pool._lock):
                    lock.release()
    finally:
        h.close()
    assert said == [artifact_id, True, "a"]


def test_an_in_memory_catalog_refuses_a_forked_child(tmp_path: Path) -> None:
    name = f"forked-{uuid.uuid4().hex[:8]}"
    h = eio.Handler(storage=tmp_path / "store", catalog=f"memory://{name}")
    (tmp_path / "a.txt").write_text("a")
    h.upload(tmp_path / "a.txt")
    try:
        said = _in_child(h.count, tmp_path)
    finally:
        h.close()
    # Its writes would land in a copy the parent never sees: it says so.
    assert said.startswith("CatalogError: "), said
    assert f"memory://{name}" in said
    assert "fork" in said
    assert "sqlite:///" in said


def test_a_mongodb_catalog_made_from_a_url_gets_a_new_client_in_the_child(
    tmp_path: Path,
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"mongodb://127.0.0.1:{port}/team?serverSelectionTimeoutMS=100"
    h = eio.Handler(storage=tmp_path / "store", catalog=url)
    try:
        with pytest.raises(eio.CatalogUnavailableError):
            h.count()  # the parent's client is made, on the parent's IO loop
        said = _in_child(h.count, tmp_path)
    finally:
        h.close()
    # The child tried the server with a client of its own.
    assert said.startswith("CatalogUnavailableError: "), said


def test_a_mongodb_client_passed_in_is_refused_in_the_child(tmp_path: Path) -> None:
    from mongomock_motor import AsyncMongoMockClient

    h = eio.Handler(storage=tmp_path / "store", catalog=AsyncMongoMockClient())
    try:
        assert h.count() == 0
        said = _in_child(h.count, tmp_path)
    finally:
        h.close()
    assert said.startswith("CatalogError: "), said
    assert "fork" in said
    assert "make the client" in said


def test_a_fork_while_another_thread_commits_leaves_the_child_a_working_catalog(
    tmp_path: Path,
) -> None:
    """A pipeline forks workers while a thread of it keeps committing. A child
    forked in the middle of that thread's SQLite transaction inherited the lock
    table of a connection that does not exist in it, and waited two minutes for
    that lock before failing (about 1 child in 12 on the 2-core test machine)."""
    import threading

    storage, catalog = str(tmp_path / "store"), f"sqlite:///{tmp_path / 'catalog.db'}"
    h = eio.Handler(storage=storage, catalog=catalog)
    stop = threading.Event()

    def commit_until_stopped() -> None:
        n = 0
        while not stop.is_set():
            source = tmp_path / f"busy-{n % 3}.txt"
            source.write_text(str(n))
            h.upload(source)
            n += 1

    def child(k: int) -> str:
        source = tmp_path / f"child-{k}.txt"
        source.write_text(str(k))
        with eio.Handler(storage=storage, catalog=catalog) as own:
            return own.upload(source).artifact_id

    busy = threading.Thread(target=commit_until_stopped)
    busy.start()
    made = []
    try:
        for k in range(60):
            out = tmp_path / f"child-{k}.json"
            pid = os.fork()
            if pid == 0:
                try:
                    _report(out, lambda k=k: child(k))
                finally:
                    os._exit(0)
            deadline = time.monotonic() + 20
            while not (done := os.waitpid(pid, os.WNOHANG))[0]:
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    pytest.fail(f"child {k} waited more than 20 s for the catalog")
                time.sleep(0.01)
            assert os.waitstatus_to_exitcode(done[1]) == 0
            made.append(_outcome(out))
    finally:
        stop.set()
        busy.join()
    assert set(h.find({"artifact_id": {"$in": made}}).index) == set(made)
    h.close()


def test_a_fork_waits_for_other_threads_sqlite_calls_and_never_for_its_own(
    tmp_path: Path,
) -> None:
    """A fork that went ahead while another thread was inside SQLite (after a
    bounded wait) left children hung for ever on a mutex that thread held; a
    fork made from inside a SQLite call (a logging handler, a callback) waited
    for itself for ever (helper-49, helper-50). Each case runs in its own
    process, with a deadline."""
    import subprocess
    import sys

    long_call = (
        "import os, sqlite3, threading, time\n"
        "from elliptio._catalog.sqlite import _fork_gate\n"
        f"db = {str(tmp_path / 'x.db')!r}\n"
        "inside = threading.Event()\n"
        "def call():\n"
        "    with _fork_gate.call():\n"
        "        inside.set()\n"
        "        c = sqlite3.connect(db)\n"
        "        end = time.monotonic() + 6\n"
        "        while time.monotonic() < end:\n"
        "            c.execute('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1"
        " FROM n WHERE i < 20000) SELECT sum(i) FROM n').fetchone()\n"
        "        c.close()\n"
        "t = threading.Thread(target=call)\n"
        "t.start()\n"
        "inside.wait()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    c = sqlite3.connect(db)\n"
        "    c.execute('SELECT 1').fetchone()\n"
        "    os._exit(0)\n"
        "print('call over at fork:', not t.is_alive(), flush=True)\n"
        "assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0\n"
        "t.join()\n"
        "print('child done')\n"
    )

    def printed(script: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert not done.stderr, done.stderr
        return done.stdout

    assert printed(long_call) == "call over at fork: True\nchild done\n"

    own_call = (
        "import os\n"
        "from elliptio._catalog.sqlite import _fork_gate\n"
        "with _fork_gate.call():\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
        "print('forked')\n"
    )
    assert printed(own_call) == "forked\n"
