"""The sync layer: one IO-loop thread, context carried across, clear misuse errors."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import warnings

import pytest

from elliptio._sync import get_loop, sync

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
