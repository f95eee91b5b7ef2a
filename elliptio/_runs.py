"""Runs: the scope in which artifacts are read and written, kept in a ContextVar.

Every process has one default run. ``handler.run()`` opens a nested run for a
``with`` / ``async with`` block; asyncio tasks copy the context when they are
created, so concurrent tasks that each open a run keep separate lineage.

Across processes: while a run is open its id is exported as ``ELLIPTIO_RUN_ID``,
so subprocesses started inside it (a pipeline step, a script) inherit it; a
process started with ``ELLIPTIO_RUN_ID`` set makes that its default run, so its
artifacts join the parent's run.
"""

from __future__ import annotations

import os
import re
import threading
from contextvars import ContextVar, Token
from types import TracebackType

from ._layout import new_run_id

RUN_ID_ENV = "ELLIPTIO_RUN_ID"
_RUN_ID_RE = re.compile(r"run_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

__all__ = ["Run", "RunScope", "current_run"]


class Run:
    """One run: its id and the artifacts read in it, in first-read order."""

    def __init__(self, run_id: str | None = None, name: str | None = None) -> None:
        self.run_id = run_id or new_run_id()
        self.name = name
        self._inputs: dict[str, None] = {}
        self._lock = threading.Lock()

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


def _reset_after_fork() -> None:
    global _process_run, _process_lock
    _process_run = None
    _process_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


class RunScope:
    """Context manager (``with`` and ``async with``) that opens a new run."""

    def __init__(self, name: str | None = None) -> None:
        self.run = Run(name=name)
        self._token: Token[Run | None] | None = None
        self._previous_env: str | None = None

    def __enter__(self) -> Run:
        if self._token is not None:
            raise RuntimeError("this run scope is open already; call handler.run() again")
        self._token = _current.set(self.run)
        self._previous_env = os.environ.get(RUN_ID_ENV)
        os.environ[RUN_ID_ENV] = self.run.run_id  # subprocesses join this run
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
            if self._previous_env is None:
                os.environ.pop(RUN_ID_ENV, None)
            else:
                os.environ[RUN_ID_ENV] = self._previous_env

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
