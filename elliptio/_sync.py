"""Run the async core from sync code on one dedicated IO-loop thread.

The pattern of ``fsspec.asyn`` and zarr's ``core/sync.py``: one named daemon
thread runs an event loop for the whole process; sync calls submit coroutines to
it and wait. Because the caller's own loop (Jupyter's, say) is never used, the
sync API works inside a running event loop too. The caller's context variables
(current run, mocked username) travel with each call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
import warnings
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._runs import _current, current_run
from ._workers import spare

__all__ = ["get_loop", "sync"]

T = TypeVar("T")
# How long an interrupted call's clean-up runs before the caller is told it waits
# (a store that stopped answering holds it for each request's network timeouts).
CLEANUP_NOTICE_SECONDS = 1.0
# How often a waiting sync call wakes, so that Ctrl-C is raised within it (see `_result`).
WAKE_SECONDS = 0.1

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """Return elliptio's IO loop, starting its thread on first use."""
    global _loop, _thread
    if _loop is None:
        with _lock:
            if _loop is None:
                loop = asyncio.new_event_loop()
                # Other libraries' thread jobs on this loop (DNS lookups, motor)
                # go to threads that keep working while the interpreter waits for
                # the program's threads at exit (see _workers).
                loop.set_default_executor(spare.get())
                thread = threading.Thread(target=loop.run_forever, name="elliptio-io", daemon=True)
                thread.start()
                _thread = thread
                _loop = loop
    return _loop


def _reset_after_fork() -> None:
    global _loop, _thread, _lock
    _loop = None
    _thread = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the IO loop and return its result (or raise its error).

    Raises:
        RuntimeError: called from the IO loop's own thread, where waiting would
            deadlock; use the `AsyncHandler` there.
    """
    loop = get_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError(
            "elliptio's sync API was called from elliptio's own IO loop; "
            "await the AsyncHandler's methods instead"
        )
    # run_coroutine_threadsafe copies this thread's contextvars into the task;
    # the run is the one this thread reads into (see `current_run`), not the
    # one the IO loop's thread would.
    token = _current.set(current_run()) if _current.get() is None else None
    finished = threading.Event()
    try:
        future = asyncio.run_coroutine_threadsafe(_until_done(coro, finished), loop)
    finally:
        if token is not None:
            _current.reset(token)
    try:
        return _result(future, timeout)
    except BaseException:
        # Ctrl-C (or a timeout) here: the call's clean-up (aborting an upload,
        # closing its lease) runs once it is cancelled, and the caller returns only
        # after it, or the process could exit under it. A second Ctrl-C stops waiting.
        if future.cancel() and not finished.wait(CLEANUP_NOTICE_SECONDS):
            # Told whatever logging is set up: nothing else shows why Ctrl-C did nothing.
            warnings.warn(
                "interrupted: waiting for the call's clean-up (aborting what it began, "
                "closing its lease), which lasts while the store or catalog does not "
                "answer; press Ctrl-C again to stop waiting ('elliptio gc' ends what is left)",
                UserWarning,
                stacklevel=3,
            )
            finished.wait()
        raise


def _result(future: concurrent.futures.Future[T], timeout: float | None) -> T:
    """``future.result(timeout)``, waking every `WAKE_SECONDS` meanwhile.

    Ctrl-C is a signal to the process, which the OS may hand to any of its
    threads (an IO or storage thread of elliptio's): Python then runs its handler,
    the KeyboardInterrupt, only once the main thread wakes, and a wait without
    end woke only when the call was over, the upload committed.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = WAKE_SECONDS
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        try:
            return future.result(wait)
        except TimeoutError:
            if future.done():  # done meanwhile, or the call's own TimeoutError
                return future.result()
            if deadline is not None and time.monotonic() >= deadline:
                raise


async def _until_done(coro: Coroutine[Any, Any, T], finished: threading.Event) -> T:
    # The task's first step always runs before a cancellation sent from another
    # thread reaches it, so ``finished`` is always set.
    try:
        return await coro
    finally:
        finished.set()
