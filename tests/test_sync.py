"""The sync layer: one IO-loop thread, context carried across, clear misuse errors."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import subprocess
import sys
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from elliptio._sync import get_loop, sync
from tests.conftest import S3_BUCKET

_var: contextvars.ContextVar[str] = contextvars.ContextVar("_var", default="unset")


def test_one_named_daemon_loop_thread() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert sync(where()) == "elliptio-io"
    assert get_loop() is get_loop()
    names = [t for t in threading.enumerate() if t.name == "elliptio-io"]
    assert len(names) == 1
    assert names[0].daemon


def test_context_variables_travel_with_the_call() -> None:
    async def read() -> str:
        return _var.get()

    token = _var.set("from caller")
    try:
        assert sync(read()) == "from caller"
    finally:
        _var.reset(token)


def test_errors_propagate_unchanged() -> None:
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        sync(boom())


def test_calling_sync_from_the_io_loop_is_refused() -> None:
    async def nested() -> None:
        async def inner() -> int:
            return 1

        sync(inner())

    with pytest.raises(RuntimeError, match="AsyncHandler"):
        sync(nested())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_child_after_fork_gets_its_own_loop() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    sync(answer())  # the parent's loop thread exists
    read, write = os.pipe()
    with warnings.catch_warnings():  # 3.12+ warns about fork with threads; that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.write(write, b"ok" if sync(answer(), timeout=10) == 42 else b"no")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok"
    assert status == 0


@pytest.mark.parametrize("store", ["file", "s3"])
def test_a_thread_that_outlives_the_main_thread_keeps_working(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Python waits for a program's other threads when its main thread ends, but
    runs ``concurrent.futures``' exit hook first: from then on every
    ``ThreadPoolExecutor`` refuses work. Every call of a worker thread still
    uploading then failed with a bare ``RuntimeError`` ("cannot schedule new
    futures after interpreter shutdown").

    The S3 store is used before the main thread ends: s3fs runs on fsspec's
    event loop, whose default executor (aiobotocore's first client, DNS) is
    fsspec's, not elliptio's, and has the same limit."""
    options: dict[str, Any] = {}
    if store == "s3":
        options = request.getfixturevalue("s3_options")
        url = f"s3://{S3_BUCKET}/lake-{uuid.uuid4().hex[:8]}"
    else:
        url = str(tmp_path / "store")
    script = (
        "import json, os, sys, threading\n"
        "import elliptio as eio\n"
        "url, catalog, folder, options = sys.argv[1:]\n"
        "h = eio.Handler(storage=url, catalog=catalog, storage_options=json.loads(options))\n"
        "with open(os.path.join(folder, 'early.txt'), 'w') as f:\n"
        "    f.write('early')\n"
        "h.upload(os.path.join(folder, 'early.txt'))  # the catalog's thread exists now\n"
        "def work():\n"
        "    threading.main_thread().join()  # the interpreter is shutting down now\n"
        "    source = os.path.join(folder, 'late.bin')\n"
        "    content = os.urandom(256 * 1024)\n"
        "    with open(source, 'wb') as f:\n"
        "        f.write(content)\n"
        "    art = h.upload(source, labels={'project': 'late'})\n"
        "    assert h.get(art.artifact_id).file.read_bytes() == content\n"
        "    assert h.get(art.artifact_id).file.local_path().read_bytes() == content\n"
        "    print(h.count(), len(h.find({'labels.project': 'late'})), flush=True)\n"
        "threading.Thread(target=work).start()\n"
    )
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    done = subprocess.run(
        [sys.executable, "-c", script, url, catalog, str(tmp_path), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout == "2 1\n"
    assert done.returncode == 0


def test_an_interrupted_call_whose_clean_up_lasts_says_that_it_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C (here a timeout) waits for the call's clean-up, which runs into
    network timeouts for minutes when the store stopped answering: the caller is
    told why nothing happens, and that a second Ctrl-C stops waiting."""
    from elliptio import _sync

    monkeypatch.setattr(_sync, "CLEANUP_NOTICE_SECONDS", 0)
    with warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always")

        async def call() -> None:
            try:
                await asyncio.sleep(3600)
            finally:  # the clean-up lasts until the caller is told
                for _ in range(3000):
                    if told:
                        break
                    await asyncio.sleep(0.01)

        with pytest.raises(TimeoutError):
            sync(call(), timeout=0.01)
    assert any("Ctrl-C again" in str(w.message) for w in told)


def test_ctrl_c_that_the_os_hands_to_another_thread_still_stops_the_upload(
    tmp_path: Path,
) -> None:
    """Ctrl-C is a signal to the process, and the OS may hand it to any thread of
    it (here, pthread_kill to a thread of the program's own): Python runs its
    handler only when the main thread wakes, and the sync call's wait woke only
    when the upload was over, committed. The Jupyter interrupt test failed so, 3
    full runs in 6 under load. The upload now stops, and nothing stays."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}.bin").write_bytes(os.urandom(10_000))
    store = tmp_path / "store"
    script = (
        "import os, signal, sys, threading, time\n"
        "import elliptio as eio\n"
        "src, store, catalog = sys.argv[1:]\n"
        "h = eio.Handler(storage=store, catalog=catalog)\n"
        "backend = h.aio.storage.backend\n"
        "real_put = backend._put_file\n"
        "sent = threading.Event()\n"
        "def slow_put(local, *args):\n"
        "    if local.name == 'f7.bin':  # lands only after Ctrl-C (and a second more)\n"
        "        sent.wait(60)\n"
        "        time.sleep(1)\n"
        "    return real_put(local, *args)\n"
        "backend._put_file = slow_put\n"
        "def ctrl_c():\n"
        "    while not any(n.endswith('.bin') for *_, ns in os.walk(store) for n in ns):\n"
        "        time.sleep(0.001)\n"
        "    signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # not the main thread\n"
        "    sent.set()\n"
        "threading.Thread(target=ctrl_c).start()\n"
        "try:\n"
        "    h.upload(src)\n"
        "    print('not interrupted')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
        "print(h.count())\n"
    )
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    done = subprocess.run(
        [sys.executable, "-c", script, str(src), str(store), catalog],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout == "interrupted\n0\n", done.stdout + done.stderr
    assert [p for p in store.rglob("*") if p.is_file()] == []
