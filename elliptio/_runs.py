"""Runs: the scope in which artifacts are read and written, kept in a ContextVar.

Every process has one default run. ``handler.run()`` opens a nested run for a
``with`` / ``async with`` block; asyncio tasks copy the context when they are
created, so concurrent tasks that each open a run keep separate lineage.

Across processes, a run's inputs live in the catalog (`Catalog.add_run_inputs`):
a process that reads inside a run it does not own (a forked child, a worker
started inside ``h.run()``, a Dask or Ray task carrying a pickled
``elliptio://`` filesystem) writes each artifact it reads there once, before the
bytes are handed out, and a commit lists the union of what every process of its
run read so far. The owning process keeps its own reads in memory.

How other processes join (see `RunScope` for the environment rule):

- ``fork`` (``os.fork``, multiprocessing's default on Linux): the child keeps the
  run of the context that forked it.
- children started while run scopes are open, by any means (multiprocessing
  ``spawn`` or ``forkserver``, ``ProcessPoolExecutor``, Dask and Ray processes,
  ``subprocess``): through ``ELLIPTIO_RUN_ID`` in the environment they inherit.
- a subprocess started elsewhere: ``env={**os.environ, **run.env()}``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from ._errors import ElliptioError, UsageError
from ._layout import new_run_id
from ._process import InProcess

RUN_ID_ENV = "ELLIPTIO_RUN_ID"
RUN_HANDLER_ENV = "ELLIPTIO_RUN_HANDLER"
_ENV_KEYS = (RUN_ID_ENV, RUN_HANDLER_ENV)
_RUN_ID_RE = re.compile(r"run_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

log = logging.getLogger(__name__)
# What to send another process instead of a run or its scope (see `InProcess`).
_SEND_RUN = (
    "run.env() in the child's environment (subprocess.run(cmd, env={**os.environ, "
    "**run.env()})), or fsspec.filesystem('elliptio') or a file's eio_url with the task, "
    "which carry the run"
)

__all__ = [
    "Run",
    "RunScope",
    "current_run",
    "find_run",
    "inherited_handler",
    "joined_run",
    "run_env",
]


class Run(InProcess):
    """One run: its id and the artifacts read in it, in first-read order.

    Attributes:
        run_id: ``run_<uuid4>``.
        name: the name given to ``handler.run(name)``, if any.
    """

    def _travel_hint(self) -> tuple[str, str]:
        return (
            f"a run ({self.run_id})",
            _SEND_RUN,
        )

    def __init__(
        self,
        run_id: str | None = None,
        name: str | None = None,
        *,
        handler: Mapping[str, str] | None = None,
        owned: bool = True,
        maker: object | None = None,
    ) -> None:
        self.run_id = run_id or new_run_id()
        self.name = name
        self._inputs: dict[str, None] = {}
        self._published: set[str] = set()
        self._lock = threading.Lock()
        # The process that keeps this run's reads in memory; any other process
        # (a forked child, a joined worker) writes its reads to the catalog.
        self._owner = os.getpid() if owned else -1
        self._handler = dict(handler or {})
        # The handler whose ``run()`` opened it: a filesystem pickled in the run
        # carries its settings.
        self.maker: weakref.ref[Any] | None = weakref.ref(maker) if maker is not None else None
        self.exported = False
        # How the latest read not yet in the catalog would be noted there (its
        # handler's `_publish_read`): the run's earlier reads go that way when the
        # run is first shared (see `_publish_earlier`).
        self._via: weakref.WeakMethod[Any] | None = None
        _runs.add(self)

    def record_input(self, artifact_id: str, publish: Any = None) -> bool:
        """Note that ``artifact_id`` was read in this run (``publish``: the bound
        ``_publish_read`` of the handler it was read through); ``True`` if the
        catalog must hear of it too: the run is shared with other processes
        (joined here, or exported to children) and the catalog does not hold it yet."""
        with self._lock:
            self._inputs.setdefault(artifact_id, None)
            if hasattr(publish, "__self__") and artifact_id not in self._published:
                self._via = weakref.WeakMethod(publish)
            return self.shared and artifact_id not in self._published

    def unpublished(self) -> list[str]:
        """The inputs read here that the catalog does not hold yet, first read first."""
        with self._lock:
            return [a for a in self._inputs if a not in self._published]

    def published(self, artifact_ids: list[str]) -> None:
        """Note that the catalog holds ``artifact_ids`` as inputs of this run."""
        with self._lock:
            self._published.update(artifact_ids)

    @property
    def remote(self) -> bool:
        """Whether this process joined the run rather than opened it."""
        return self._owner != os.getpid()

    @property
    def shared(self) -> bool:
        """Whether other processes may have read in this run (its catalog entries count)."""
        return self.exported or self.remote

    @property
    def inputs(self) -> list[str]:
        """The artifact ids read in this run so far, in this process."""
        with self._lock:
            return list(self._inputs)

    def env(self) -> dict[str, str]:
        """The environment variables that make a child process join this run.

        They name the run and its store and catalog URLs (never a password or
        storage options), so ``elliptio://`` URLs resolve in the child as here.

        Example:
            >>> with h.run() as run:  # doctest: +SKIP
            ...     subprocess.run(["python", "step.py"], env={**os.environ, **run.env()})
        """
        env = self._env({})
        self._publish_earlier()
        return env

    def _env(self, extra: Mapping[str, Any]) -> dict[str, str]:
        self.exported = True
        env = {RUN_ID_ENV: self.run_id}
        if self._handler or extra:
            env[RUN_HANDLER_ENV] = json.dumps({**self._handler, **extra}, sort_keys=True)
        return env

    def _publish_earlier(self) -> None:
        """Put the reads made here before the run was shared into the catalog, so
        that a child's commit counts them (later reads go there as they happen).

        A catalog that cannot take them (down, or bound to another event loop)
        is logged: the environment is handed out all the same, and a child's
        commit misses them.
        """
        if not self.unpublished():
            return
        publish = self._via() if self._via is not None else None
        if publish is None or getattr(publish.__self__, "_closed", False):
            return
        from ._sync import sync

        try:
            sync(publish(self, self.unpublished()[-1]))
        except RuntimeError:  # on elliptio's IO loop itself: the next read publishes them
            log.debug("run %s: earlier reads not published from the IO loop", self.run_id)
        except ElliptioError as err:
            log.warning(
                "run %s is shared now, but what it read before could not be noted in "
                "the catalog (%s); commits of other processes will not list it",
                self.run_id,
                err.__cause__ or err,
            )

    def __repr__(self) -> str:
        return f"Run(run_id={self.run_id!r}, inputs={self.inputs!r})"


_current: ContextVar[Run | None] = ContextVar("elliptio_run", default=None)
_process_run: Run | None = None
_process_lock = threading.Lock()
# Every live run, so that a forked child can renew their locks.
_runs: weakref.WeakSet[Run] = weakref.WeakSet()
# Runs of other processes this process joined, by id.
_joined: dict[str, Run] = {}
# What this process inherited: read once, before any scope here writes the variables.
_inherited = {key: os.environ.get(key) for key in _ENV_KEYS}


def joined_run(run_id: str, handler: Mapping[str, str] | None = None) -> Run:
    """The run ``run_id`` of another process, as this process takes part in it."""
    with _process_lock:
        run = _joined.get(run_id)
        if run is None:
            run = _joined[run_id] = Run(run_id, handler=handler, owned=False)
        return run


def find_run(run_id: str, handler: Mapping[str, str] | None = None) -> Run:
    """This process's own run ``run_id`` if it has one, else the run joined."""
    for run in list(_runs):
        if run.run_id == run_id and not run.remote:
            return run
    return joined_run(run_id, handler)


def current_run() -> Run:
    """The innermost open run, or the process's default run.

    A thread started inside ``with h.run():`` (``threading.Thread``, a thread
    pool, Dask's threaded scheduler) does not inherit the context it was started
    in; it joins the innermost run while the open run scopes form one chain, as
    a child process does (the environment rule), and the default run otherwise.
    Like a child process, it cannot tell whose run it was started in: while one
    thread has a run open, the others read into it unless they open their own.
    The thread that opened the run is not among them: its other contexts
    (concurrent asyncio tasks) keep the run they have.
    """
    run = _current.get()
    if run is None:
        run = _thread_run()
    if run is not None:
        return run
    global _process_run
    if _process_run is None:
        inherited = _inherited_run()
        if inherited is not None:
            _process_run = joined_run(inherited, inherited_handler())
        else:
            with _process_lock:
                if _process_run is None:
                    _process_run = Run()
    return _process_run


def _inherited_run() -> str | None:
    """The run this process was started in, if it may join it.

    A malformed id is ignored rather than trusted into records. Variables that a
    run scope put in its process's environment (they name that process) are
    honoured by its direct children only: a forkserver's children, or anything a
    long-lived helper process starts later, did not start inside that run.
    `Run.env` passed explicitly names no process and is always honoured.
    """
    run_id = _inherited[RUN_ID_ENV] or ""
    if not _RUN_ID_RE.fullmatch(run_id):
        return None
    owner = _inherited_settings().get("pid")
    if owner is not None and owner != os.getppid():
        return None
    return run_id


def _inherited_settings() -> dict[str, Any]:
    try:
        value = json.loads(_inherited[RUN_HANDLER_ENV] or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def inherited_handler() -> dict[str, str]:
    """The store and catalog URLs of the run this process was started in, if any."""
    if _inherited_run() is None:
        return {}
    value = _inherited_settings()
    return {k: v for k, v in value.items() if k in ("storage", "catalog") and isinstance(v, str)}


def inherited_gap() -> tuple[str, str] | None:
    """Why this process may not reach the store of the run it was started in,
    as ``(kind, message)``: the store lives in the parent's memory (``memory``),
    or was opened with storage options that the environment does not carry
    (``options``). Told only once reaching it failed: the process's own settings
    (a ``.env`` file, ``AWS_*`` variables, its own ``ELLIPTIO_STORAGE_URL``) may
    reach it all the same."""
    if _inherited_run() is None:
        return None
    value = _inherited_settings()
    if isinstance(memory := value.get("memory_storage"), str):
        return "memory", (
            f"the run this process was started in uses the store {memory!r}, which lives "
            "in the memory of the process that opened it; give the handler a store every "
            "process reaches (a folder, or s3://...)"
        )
    if value.get("storage_options") and "ELLIPTIO_STORAGE_OPTIONS" not in os.environ:
        return "options", (
            f"the run this process was started in opened its store {value.get('storage')!r} "
            "with storage options, which never travel in the environment; set "
            "ELLIPTIO_STORAGE_OPTIONS (a JSON object: endpoint_url, credentials, ...) for "
            "this process, or send the file's filesystem (fsspec.open(file.eio_url)) "
            "instead of the URL string"
        )
    return None


def run_env() -> dict[str, str]:
    """The environment for a child process that joins the current run.

    A copy of ``os.environ`` plus `Run.env` of the current run; ``os.environ``
    itself is left as it is.

    Example:
        >>> with h.run():  # doctest: +SKIP
        ...     subprocess.run(["python", "step.py"], env=eio.run_env(), check=True)
    """
    return {**os.environ, **current_run().env()}


def _before_fork() -> None:
    for run in list(_runs):  # the child may read in them: commits ask the catalog
        run.exported = True


def _reset_after_fork() -> None:
    global _process_lock, _env_lock
    _process_lock = threading.Lock()
    _env_lock = threading.Lock()
    for run in list(_runs):  # another thread may have held one at fork time
        run._lock = threading.Lock()


os.register_at_fork(before=_before_fork, after_in_child=_reset_after_fork)


# -- the environment children inherit ------------------------------------------------
# While run scopes are open, os.environ carries the innermost run's id, so that
# every child started inside it joins it, whatever starts it. Only when the open
# scopes form one chain (each opened inside the previous one) does any run own the
# variables; while runs overlap (two tasks, two threads) they are removed, so no
# child joins a run that is not its own. When the last scope closes, the
# variables are exactly as before the first one opened.
_open: list[RunScope] = []
_env_saved: dict[str, str | None] | None = None
# The scope whose run contexts without one of their own read into, in threads
# other than its own (threads started inside it): the innermost open scope while
# the scopes form one chain, like the variables above.
_shared_scope: RunScope | None = None
_env_lock = threading.Lock()


def _set_environ(values: Mapping[str, str | None]) -> None:
    for key in _ENV_KEYS:
        value = values.get(key)
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _thread_run() -> Run | None:
    """The shared run, for a context of another thread than the one that opened it."""
    scope = _shared_scope
    if scope is None or scope.thread == threading.get_ident():
        return None
    return scope.run


def _update_environ() -> Run | None:
    """Put the run of the open scopes' chain in ``os.environ``; that run, whose
    earlier reads the caller publishes (`Run._publish_earlier`) outside the lock."""
    global _env_saved, _shared_scope
    if not _open:
        _shared_scope = None
        if _env_saved is not None:
            _set_environ(_env_saved)
            _env_saved = None
        return None
    if _env_saved is None:
        _env_saved = {key: os.environ.get(key) for key in _ENV_KEYS}
    chain = all(later.parent is earlier.run for earlier, later in itertools.pairwise(_open))
    _shared_scope = _open[-1] if chain else None
    shared = _shared_scope.run if _shared_scope is not None else None
    _set_environ(shared._env({"pid": os.getpid()}) if shared is not None else {})
    return shared


class RunScope(InProcess):
    """Context manager (``with`` and ``async with``) that opens a new run.

    While it is open, and no other run scope of the process overlaps it, the
    run's `Run.env` is in ``os.environ``, so that child processes started inside
    it join it.
    """

    def _travel_hint(self) -> tuple[str, str]:
        return (
            "a run scope (h.run())",
            _SEND_RUN,
        )

    def __init__(
        self,
        name: str | None = None,
        handler: Mapping[str, str] | None = None,
        maker: object | None = None,
    ) -> None:
        self.run = Run(name=name, handler=handler, maker=maker)
        self.parent: Run | None = None
        self.thread = 0  # the thread that opened it
        self._token: Token[Run | None] | None = None

    def __enter__(self) -> Run:
        if self._token is not None:
            raise UsageError("this run scope is open already; call handler.run() again")
        self.parent = _current.get()
        self.thread = threading.get_ident()
        self._token = _current.set(self.run)
        with _env_lock:
            _open.append(self)
            shared = _update_environ()
        if shared is not None:
            shared._publish_earlier()
        return self.run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # closed in another context than it was opened in
                _current.set(self.parent)
            self._token = None
            with _env_lock:
                if self in _open:
                    _open.remove(self)
                shared = _update_environ()
            if shared is not None:
                shared._publish_earlier()

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
