"""Runs: the scope in which artifacts are read and written, kept in a ContextVar.

Every process has one default run. ``handler.run()`` opens a nested run for a
``with`` / ``async with`` block; asyncio tasks copy the context when they are
created, so concurrent tasks that each open a run keep separate lineage.

Across processes: a process started with ``ELLIPTIO_RUN_ID`` set makes that its
default run, so its artifacts join the parent's run. `run_env` gives the
environment that does it (``subprocess.run(cmd, env=eio.run_env())``); the
library itself never writes ``os.environ``, which concurrent runs of one process
share. A child made by ``fork`` keeps the run of the context that forked it.
"""

from __future__ import annotations

import os
import re
import threading
import weakref
from contextvars import ContextVar, Token
from types import TracebackType

from ._layout import new_run_id

RUN_ID_ENV = "ELLIPTIO_RUN_ID"
_RUN_ID_RE = re.compile(r"run_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

__all__ = ["Run", "RunScope", "current_run", "run_env"]


class Run:
    """One run: its id and the artifacts read in it, in first-read order."""

    def __init__(self, run_id: str | None = None, name: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self.name = name
        self._inputs: dict[str, None] = {}
        self._lock = threading.Lock()
        _runs.add(self)

    def record_input(self, artifact_id: str) -> None:
        """Note that ``artifact_id`` was read in this run (once, in order)."""
        with self._lock:
            self._inputs.setdefault(artifact_id, None)

    @property
    def inputs(self) -> list[str]:
        """The artifact ids read in this run so far."""
        with self._lock:
            return list(self._inputs)

    def __repr__(self) -> str:
        return f"Run(run_id={self.run_id!r}, inputs={self.inputs!r})"


_current: ContextVar[Run | None] = ContextVar("elliptio_run", default=None)
_process_run: Run | None = None
_process_lock = threading.Lock()
# Every live run, so that a forked child can renew their locks.
_runs: weakref.WeakSet[Run] = weakref.WeakSet()


def current_run() -> Run:
    """The innermost open run, or the process's default run."""
    run = _current.get()
    if run is not None:
        return run
    global _process_run
    if _process_run is None:
        with _process_lock:
            if _process_run is None:
                inherited = os.environ.get(RUN_ID_ENV, "")
                # A malformed value is ignored rather than trusted into records.
                _process_run = Run(inherited if _RUN_ID_RE.fullmatch(inherited) else None)
    return _process_run


def run_env() -> dict[str, str]:
    """The environment for a child process that joins the current run.

    A copy of ``os.environ`` with ``ELLIPTIO_RUN_ID`` set to the current run's id;
    ``os.environ`` itself is left as it is.

    Example:
        >>> with h.run():  # doctest: +SKIP
        ...     subprocess.run(["python", "step.py"], env=eio.run_env(), check=True)
    """
    return {**os.environ, RUN_ID_ENV: current_run().run_id}


def _reset_after_fork() -> None:
    global _process_run, _process_lock
    _process_run = None
    _process_lock = threading.Lock()
    for run in list(_runs):  # another thread may have held one at fork time
        run._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


class RunScope:
    """Context manager (``with`` and ``async with``) that opens a new run."""

    def __init__(self, name: str | None = None) -> None:
        self.run = Run(name=name)
        self._token: Token[Run | None] | None = None

    def __enter__(self) -> Run:
        if self._token is not None:
            raise RuntimeError("this run scope is open already; call handler.run() again")
        self._token = _current.set(self.run)
        return self.run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
