"""The ``elliptio://`` fsspec protocol: artifact files by id, read through the cache.

``elliptio://<artifact_id>/<relpath>`` works wherever fsspec does, for instance
``pd.read_csv("elliptio://artifact_.../test.txt")``, in any process where elliptio
is installed (it is registered through the ``fsspec.specs`` entry point). Opening
a file resolves the artifact in the configured catalog, records it as an input of
the current run (lineage by wrapping open), and serves the bytes from the local
cache, fetching and verifying them on a miss. Artifacts are immutable, so writes
are refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, NoReturn

from fsspec import AbstractFileSystem
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.utils import isfilelike

from ._errors import (
    ArtifactDeletedError,
    ArtifactNotFoundError,
    ArtifactUrlNotFoundError,
    ConfigError,
    CorruptRecordError,
    ElliptioError,
    ImmutableError,
    OfflineError,
    StorageError,
    UrlNotFoundError,
    UsageError,
)
from ._names import ID_PREFIX
from ._runs import (
    RUN_HANDLER_ENV,
    Run,
    _current,
    current_run,
    find_run,
    inherited_gap,
    inherited_handler,
)
from ._sync import sync

if TYPE_CHECKING:
    from ._artifact import Artifact, File
    from ._handler import AsyncHandler
    from ._sync_handler import Handler

__all__ = ["ElliptioFileSystem", "artifact_url"]

PROTOCOL = "elliptio"


_handlers: dict[str, Handler] = {}
# What the settings were read from -> the handler they gave: skips rebuilding the
# settings (about 2 ms, most of a small read) while nothing they depend on changed.
_by_source: dict[tuple[Any, ...], Handler] = {}
# Variables besides ELLIPTIO_* that the default locations depend on.
_PLACES = ("HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "LOCALAPPDATA")
_handlers_lock = threading.Lock()
# Which handlers made or read each artifact lately (the latest first), so that its
# ``eio_url`` resolves through one of them still open (its store, catalog and
# options) in this process: a second handler that read it and was closed since
# leaves the first to answer. Kept by artifact id, and by name for the URLs that
# name one (``elliptio://train-set:v3/...``; no name starts as an id does).
_made: OrderedDict[str, list[weakref.ref[AsyncHandler]]] = OrderedDict()
_MADE_MAX = 100_000
_MADE_PER_ARTIFACT = 4


def _forget_handlers() -> None:
    global _handlers_lock
    _handlers.clear()
    _by_source.clear()
    _handlers_lock = threading.Lock()  # another thread may have held it at fork time


os.register_at_fork(after_in_child=_forget_handlers)


def remember_handler(artifact_id: str, handler: AsyncHandler) -> None:
    """Note that ``handler`` made or read ``artifact_id`` (or an artifact of that
    name): its URLs resolve through it."""
    with _handlers_lock:
        kept = [r for r in _made.get(artifact_id, []) if _open(r) not in (None, handler)]
        _made[artifact_id] = [weakref.ref(handler), *kept][:_MADE_PER_ARTIFACT]
        _made.move_to_end(artifact_id)
        if len(_made) > _MADE_MAX:
            _made.popitem(last=False)


def _open(ref: weakref.ref[AsyncHandler]) -> AsyncHandler | None:
    """The handler of ``ref`` if it lives and is open."""
    handler = ref()
    return handler if handler is not None and not handler._closed else None


def _settings_source(storage: str | None, catalog: str | None, options: Any) -> tuple[Any, ...]:
    """Everything `load_settings` reads: the arguments, ELLIPTIO_* and the variables
    of the default places, the working folder and its ``.env`` file."""
    try:
        st = os.stat(".env")
        dotenv: tuple[int, ...] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        dotenv = None
    env = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith("ELLIPTIO_") or k in _PLACES)
    )
    given = None if options is None else json.dumps(options, sort_keys=True, default=str)
    return (storage, catalog, given, env, os.getcwd(), dotenv)


def _handler_that_made(artifact_id: str) -> AsyncHandler | None:
    with _handlers_lock:
        refs = list(_made.get(artifact_id, []))
    return next((h for h in map(_open, refs) if h is not None), None)


def _latest_handler() -> AsyncHandler | None:
    """The live handler that made or read an artifact last, if any."""
    with _handlers_lock:
        refs = [r for many in list(reversed(_made.values()))[:64] for r in many]
    return next((h for h in map(_open, refs) if h is not None), None)


def _run_maker() -> AsyncHandler | None:
    """The open handler whose ``run()`` opened the current run, if any: in this
    process, or in the parent of a forked child, which holds a copy of it."""
    run = current_run()
    maker = run.maker() if run.maker is not None else None
    return maker if maker is not None and not maker._closed else None


def artifact_url(artifact_id: str, relpath: str) -> str:
    """The ``elliptio://`` URL of one artifact file."""
    return f"{PROTOCOL}://{artifact_id}/{relpath}"


class ElliptioFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Read-only filesystem over committed artifacts: ``elliptio://<id>/<relpath>``.

    An artifact resolves through the handler that made or read it in this
    process, else (a name, an id read nowhere here yet) the handler whose
    ``run()`` the read is in, as in the children that inherit that run;
    otherwise (or when that handler's lake does not hold it) through the
    arguments, else the store and catalog of the run this process was started
    in, else the ``ELLIPTIO_*`` settings.

    Pickled (as Dask and Ray send it to workers), it carries the store and catalog
    settings it resolved through, storage options included (inside the pickle
    only), and the run it was made or pickled in: reads on a worker count as
    inputs of that run.

    Args:
        storage, catalog, storage_options: as for `Handler`; by default see above.
    """

    protocol = PROTOCOL
    root_marker = ""
    # Settings may change between opens (env, .env): handlers are cached per
    # effective settings below instead of fsspec caching one instance forever.
    cachable = False

    def __init__(
        self,
        storage: str | None = None,
        catalog: str | None = None,
        storage_options: dict[str, Any] | None = None,
        reference_roots: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._handler_args = (storage, catalog, storage_options)
        # Reference roots travel with the pickle, as storage options do (see __reduce__).
        self._reference_roots = reference_roots
        self._via: AsyncHandler | None = None
        # The run this filesystem reads in when no run is open where it reads.
        self._run: Run | None = _current.get()
        self._origin: tuple[int, str] | None = None  # (pid, host) it was pickled in

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        if text.startswith(f"{PROTOCOL}://"):
            text = text[len(PROTOCOL) + 3 :]
        return text.strip("/")

    @property
    def handler(self) -> Handler:
        """The handler for the arguments or the process's settings, shared by
        every filesystem with the same settings."""
        from ._config import load_settings

        storage, catalog, options = self._handler_args
        if storage is None and catalog is None:
            inherited = inherited_handler()  # the run this process was started in
            storage, catalog = inherited.get("storage"), inherited.get("catalog")
        self._check_reachable(storage, catalog)
        roots = self._reference_roots
        source = (
            *_settings_source(storage, catalog, options),
            None if roots is None else tuple(roots),
        )
        with _handlers_lock:
            known = _by_source.get(source)
        if known is not None:
            return known
        settings = load_settings(
            storage_url=storage,
            catalog_url=catalog,
            storage_options=options,
            reference_roots=roots,
        )
        key = json.dumps(
            [
                settings.resolved_storage_url(),
                settings.storage_options,
                settings.resolved_catalog_url(),
                str(settings.resolved_cache_dir()),
                settings.offline,
                settings.reference_roots,
            ],
            sort_keys=True,
            default=str,
        )
        with _handlers_lock:
            handler = _handlers.get(key)
            if handler is None:
                from ._sync_handler import Handler

                handler = _handlers[key] = Handler(storage, catalog, options, reference_roots=roots)
            if len(_by_source) > 64:
                _by_source.clear()
            _by_source[source] = handler
        return handler

    def _check_reachable(self, storage: str | None, catalog: str | None) -> None:
        """On a worker: refuse settings that only the pickling process could open."""
        if self._origin is None or self._origin[0] == os.getpid():
            return
        pid, host = self._origin
        for what, url in (("storage", storage), ("catalog", catalog)):
            if url and url.startswith("memory:"):
                raise ConfigError(
                    f"the elliptio:// filesystem came from process {pid} on {host} with the "
                    f"{what} {url!r}, which lives in that process's memory; give the handler "
                    f"a {what} every worker reaches (a folder, s3://..., or for the catalog "
                    "sqlite:////shared/path.db or a MongoDB URL)"
                )
        if catalog and catalog.startswith("sqlite:///"):
            path = os.path.abspath(os.path.expanduser(catalog[len("sqlite:///") :]))
            if not os.path.exists(path):
                raise ConfigError(
                    f"the elliptio:// filesystem came from {host} with the SQLite catalog "
                    f"{catalog!r}, which does not exist on {socket.gethostname()}: a SQLite "
                    "catalog is a file on one machine. Give workers on other machines a "
                    "catalog they all reach: a MongoDB URL as the handler's catalog "
                    "(catalog='mongodb://...' or ELLIPTIO_CATALOG_URL)"
                )

    def _handler_for(self, artifact_id: str) -> tuple[Handler, bool]:
        """The handler to look ``artifact_id`` up through, and whether it is the
        handler of the current run (no handler here made or read it)."""
        if not any(arg is not None for arg in self._handler_args):
            # Else the handler whose run() the reading context is in: a name, or an
            # id no handler here read yet, resolves in its lake, as it does in the
            # children that inherit the run. A reference (train-set:v3) first
            # resolves through a handler that made or read an artifact of that name:
            # the same name elsewhere is another one.
            key = artifact_id if artifact_id.startswith(ID_PREFIX) else artifact_id.split(":")[0]
            made = _handler_that_made(key)
            chosen = made if made is not None else _run_maker()
            if chosen is not None:
                self._via = chosen
                from ._sync_handler import Handler

                return Handler._over(chosen), made is None
        return self.handler, False

    def _split(self, path: str) -> tuple[str, str]:
        artifact_id, _, relpath = self._strip_protocol(path).partition("/")
        return artifact_id, relpath

    def _artifact(self, artifact_id: str) -> Artifact:
        """The artifact, not yet recorded as an input: its files note the read in
        the current run (or the carried one) once their bytes are verified, so a
        damaged or missing file is no input."""
        handler, of_run = self._handler_for(artifact_id)
        try:
            with self._carried_run():
                try:
                    return sync(handler.aio._lookup(artifact_id))
                except ArtifactNotFoundError as err:
                    # Not in the run's lake: the settings' lake, as before the run.
                    if not of_run or isinstance(err, ArtifactDeletedError):
                        raise
                    try:
                        fallback = self.handler
                    except ElliptioError:
                        raise err from None
                    if fallback.aio is handler.aio:
                        raise
                    self._via = None
                    return sync(fallback.aio._lookup(artifact_id))
        except ArtifactNotFoundError as err:
            raise ArtifactUrlNotFoundError(
                f"{artifact_url(artifact_id, '')}: {err} (elliptio:// looks an artifact "
                "up through the handler that made or read it in this process, else through "
                "that of the current run, the filesystem's arguments or the ELLIPTIO_* "
                "settings; to a worker, send "
                "fsspec.open(url) or fsspec.filesystem('elliptio') with the task, which "
                "carry the handler's settings)"
            ) from err

    @contextlib.contextmanager
    def _carried_run(self) -> Iterator[None]:
        """Sent to a worker, it reads in the run it was sent from (unless the
        reading context opened one itself); in the process that made it, in the
        current run."""
        carried = self._run if self._origin is not None else None
        # A run of the parent, in a child forked inside it, is not one the
        # reading context opened: a fork pool may outlive that run.
        own = _current.get()
        token = _current.set(carried) if carried and (own is None or own.remote) else None
        try:
            yield
        except (StorageError, OfflineError, ArtifactNotFoundError, CorruptRecordError) as err:
            # Started in a run whose store this process may not reach: say why,
            # once reaching it failed (its own settings may reach it all the same).
            inherits = not any(arg is not None for arg in self._handler_args)
            gap = inherited_gap() if inherits else None
            if gap is None or isinstance(err, ArtifactDeletedError):
                raise
            kind, why = gap
            if isinstance(err, ArtifactNotFoundError):  # still a KeyError, FileNotFoundError
                raise type(err)(f"{err}; perhaps because {why}") from err
            # Blamed on the gap only when the parent's store is what failed: the
            # inherited store (options), or a record naming the parent's memory
            # store; a damaged record, or this process's own store, is not.
            corrupt = isinstance(err, CorruptRecordError)
            if kind == "memory" and not (corrupt and "'memory:/" in str(err)):
                raise
            if kind == "options" and corrupt:
                raise
            raise ConfigError(f"{why} ({type(err).__name__}: {err})") from err
        finally:
            if token is not None:
                _current.reset(token)

    # -- pickling (Dask, Ray, multiprocessing) ---------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        storage, catalog, options = self._handler_args
        roots = self._reference_roots
        run = _current.get() or self._run or current_run()
        via = self._via
        if via is None and run.maker is not None:
            via = run.maker()  # the handler whose run() this is
        if via is None:
            via = _latest_handler()
        if storage is None and catalog is None and via is not None:
            if via._travel_catalog_url() is None:
                raise ConfigError(
                    "this elliptio:// filesystem resolves through a handler whose catalog "
                    "is a client object, which cannot travel to another process; build the "
                    "handler with a catalog URL (catalog='mongodb://...' or "
                    "ELLIPTIO_CATALOG_URL)"
                )
            storage = via._travel_storage_url()
            catalog = via._travel_catalog_url()
            options = dict(via.settings.storage_options)
            roots = list(via.settings.reference_roots)
        run.exported = True  # its commits ask the catalog what workers read
        state = {
            "run": (run.run_id, run.env().get(RUN_HANDLER_ENV)),
            "origin": (os.getpid(), socket.gethostname()),
            "reference_roots": roots,
        }
        return (_rebuild, ((storage, catalog, options), state))

    # -- listing ------------------------------------------------------------------
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        artifact_id, relpath = self._split(path)
        artifact = self._artifact(artifact_id)
        if not relpath:
            return {"name": artifact_id, "type": "directory", "size": 0}
        file = artifact.files.get(relpath)
        if file is not None:
            return {
                "name": f"{artifact_id}/{relpath}",
                "type": "file",
                "size": file.size,
                "sha256": file.sha256,
                "url": file.url,
            }
        if _is_folder(artifact, relpath):
            return {"name": f"{artifact_id}/{relpath}", "type": "directory", "size": 0}
        raise _not_found(artifact, relpath)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        artifact_id, relpath = self._split(path)
        if not artifact_id:
            raise UsageError(
                "elliptio:// lists the files of one artifact: elliptio://<artifact_id>/; "
                "find artifacts with Handler.find()"
            )
        artifact = self._artifact(artifact_id)
        prefix = f"{relpath}/" if relpath else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, file in artifact.files.items():
            if not name.startswith(prefix):
                continue
            head, sep, _ = name[len(prefix) :].partition("/")
            full = f"{artifact_id}/{prefix}{head}"
            if sep:
                entries.setdefault(full, {"name": full, "type": "directory", "size": 0})
            else:
                entries[full] = {"name": full, "type": "file", "size": file.size}
        if not entries and relpath:
            return [self.info(path)] if detail else [self.info(path)["name"]]
        listing = sorted(entries.values(), key=lambda e: e["name"])
        return listing if detail else [e["name"] for e in listing]

    def created(self, path: str) -> datetime:
        """When the artifact was committed (its files never change after)."""
        return self._artifact(self._split(path)[0]).metadata.creation_time

    modified = created  # DuckDB asks; an immutable file was last modified when committed

    # -- reading ------------------------------------------------------------------
    def _file(self, path: str) -> File:
        """The artifact file at ``path`` (its read is noted when it is opened)."""
        artifact_id, relpath = self._split(path)
        artifact = self._artifact(artifact_id)
        file = artifact.files.get(relpath)
        if file is None:
            raise _not_found(artifact, relpath)
        return file

    def _artifact_file(self, path: str) -> File:
        """`_file` in the run this filesystem reads in (see `_carried_run`)."""
        with self._carried_run():
            return self._file(path)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> _Handle:
        if mode != "rb":
            self._refuse(path)
        with self._carried_run():
            file = self._file(path)
            return _Handle(file.open("rb"), file.size)

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """The bytes ``start:end`` of a file; negative values count from its end,
        as in a slice."""
        with self._open(path, "rb") as f:
            first, stop, _ = slice(start, end).indices(f.size)
            if first:
                f.seek(first)
            return f.read() if end is None else f.read(max(0, stop - first))

    def get_file(
        self,
        rpath: str,
        lpath: Any,
        callback: Callback = DEFAULT_CALLBACK,
        outfile: IO[bytes] | None = None,
        **kwargs: Any,
    ) -> None:
        """Copy one artifact file to ``lpath`` (verified); a folder becomes a local folder."""
        with self._carried_run():
            self._get_file(rpath, lpath, callback, outfile)

    def _get_file(
        self, rpath: str, lpath: Any, callback: Callback, outfile: IO[bytes] | None
    ) -> None:
        artifact_id, relpath = self._split(rpath)
        artifact = self._artifact(artifact_id)
        file = artifact.files.get(relpath)
        if outfile is None and isfilelike(lpath):
            outfile = lpath
        if outfile is None:
            from ._urls import refuse_store_target

            refuse_store_target(lpath)  # before any folder is made there
        if file is None:
            if (not relpath or _is_folder(artifact, relpath)) and outfile is None:
                os.makedirs(lpath, exist_ok=True)
                return
            raise _not_found(artifact, relpath)
        callback.set_size(file.size)
        if outfile is not None:
            with file.open("rb") as f:
                shutil.copyfileobj(f, outfile)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(lpath)), exist_ok=True)
            file.download(lpath)  # verified, and renamed into place only when whole
        callback.relative_update(file.size)

    # -- writing: refused -----------------------------------------------------------
    def _refuse(self, path: Any, *args: Any, **kwargs: Any) -> NoReturn:
        first = path[0] if isinstance(path, list | tuple) and path else path
        raise ImmutableError(
            f"{PROTOCOL}://{self._strip_protocol(first)} cannot be written: elliptio:// is "
            "read-only, committed artifacts never change. Write new files with "
            "Handler.new() or Handler.upload()"
        )

    def _refuse_to(self, source: Any, path: Any, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse(path)

    rm = rm_file = _rm = rmdir = mkdir = makedirs = touch = pipe_file = _refuse
    put_file = cp_file = mv = _refuse_to


class _Handle(io.IOBase):
    """An open artifact file as fsspec hands out files: with ``.size``, and closed
    quietly when dropped unclosed (pyarrow and DuckDB leave that to the collector),
    as fsspec's own local files are."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self.f = f
        self.size = size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        return self.f.read(-1 if n is None else n)

    def readinto(self, buffer: Any) -> int:
        return self.f.readinto(buffer)  # type: ignore[attr-defined,no-any-return]

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()

    def fileno(self) -> int:
        return self.f.fileno()

    def close(self) -> None:
        self.f.close()
        super().close()

    def __getattr__(self, name: str) -> Any:
        if name == "f":  # not set yet: never recurse
            raise AttributeError(name)
        return getattr(self.f, name)


def _is_folder(artifact: Artifact, relpath: str) -> bool:
    return any(r.startswith(relpath + "/") for r in artifact.files)


def _not_found(artifact: Artifact, relpath: str) -> UrlNotFoundError:
    some = sorted(artifact.files)[:5]
    return UrlNotFoundError(
        f"{artifact_url(artifact.artifact_id, relpath)} is no file or folder of the "
        f"artifact; its files include {some} (see Handler.get(...).files)"
    )


def _rebuild(
    args: tuple[str | None, str | None, dict[str, Any] | None], state: dict[str, Any]
) -> ElliptioFileSystem:
    """Unpickle an `ElliptioFileSystem`, joining the run it was sent in."""
    fs = ElliptioFileSystem(*args, reference_roots=state.get("reference_roots"))
    run_id, handler = state["run"]
    try:
        settings = json.loads(handler) if handler else None
    except ValueError:
        settings = None
    fs._run = find_run(run_id, settings if isinstance(settings, dict) else None)
    fs._origin = tuple(state["origin"])
    return fs
