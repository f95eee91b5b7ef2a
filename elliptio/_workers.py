"""Thread pools that keep working while the interpreter waits for the program's threads.

When the main thread ends, Python runs ``concurrent.futures``' exit hook *before*
it waits for the program's other (non-daemon) threads: from then on every
``ThreadPoolExecutor`` refuses new work, and a worker thread of the program that
still uploads would fail at its next call. elliptio's pools are `Workers`
instead: daemon threads, like the IO loop's, that take work until shut down;
`to_thread` replaces ``asyncio.to_thread`` (whose pool is the loop's: fsspec's
loop for s3fs) and the IO loop's default executor is `spare`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from ._process import ProcessLocal

__all__ = ["Workers", "spare", "to_thread"]

T = TypeVar("T")
P = ParamSpec("P")

_Job = tuple[Future[Any], Callable[[], Any]] | None


def _work(jobs: queue.SimpleQueue[_Job], idle: threading.Semaphore) -> None:
    while True:
        job = jobs.get()
        if job is None:
            jobs.put(None)  # the next thread stops too
            return
        future, call = job
        del job
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(call())
            except BaseException as err:
                future.set_exception(err)
        del future, call  # nothing of the job stays alive while idle
        idle.release()


class Workers(ThreadPoolExecutor):
    """Up to ``max_workers`` daemon threads, started as work arrives.

    A `ThreadPoolExecutor` by type only (asyncio's default executor must be one);
    none of its machinery runs, so its exit hook does not stop these threads.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers, thread_name_prefix)
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._started: list[threading.Thread] = []
        self._closed = False
        self._guard = threading.Lock()
        # Dropped without shutdown(): its threads end once the queue drains.
        weakref.finalize(self, self._jobs.put, None).atexit = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a thread of the pool."""
        with self._guard:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future: Future[T] = Future()
            self._jobs.put((future, functools.partial(fn, *args, **kwargs)))
            if not self._idle.acquire(blocking=False) and len(self._started) < self._max_workers:
                thread = threading.Thread(
                    target=_work,
                    args=(self._jobs, self._idle),
                    name=f"{self._thread_name_prefix}_{len(self._started)}",
                    daemon=True,
                )
                thread.start()
                self._started.append(thread)
            return future

    def runs(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` is one of the pool's."""
        return thread in self._started

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Take no more work; the threads end once the work queued is done."""
        with self._guard:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None:
                        job[0].cancel()
            self._jobs.put(None)
        if wait:
            for thread in self._started:
                if thread is not threading.current_thread():
                    thread.join()


# Short blocking jobs of the async core (reading a local file, hashing a buffer,
# writing a received chunk); asyncio's default thread count.
spare: ProcessLocal[Workers] = ProcessLocal(
    lambda: Workers(min(32, (os.cpu_count() or 1) + 4), "elliptio-worker")
)


async def to_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``asyncio.to_thread`` on `spare`, from any event loop."""
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(spare.get(), call)
