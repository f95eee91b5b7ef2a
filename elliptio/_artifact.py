"""Committed artifacts and their files: the read side.

Each `File` method has an async twin prefixed with ``a`` (``read_bytes`` /
``aread_bytes``), the fsspec convention; the sync ones run the async core on the
IO-loop thread. Every read records the artifact as an input of the current run.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import logging
import operator
import os
import shutil
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import IO, Any, cast

from fsspec.callbacks import DEFAULT_CALLBACK

from ._errors import (
    ArtifactExistsError,
    ElliptioError,
    ImmutableError,
    InvalidPathError,
    OfflineError,
    StorageError,
    UsageError,
)
from ._files import FileMap, listing
from ._layout import relpath_clash
from ._models import FileRecord, Metadata
from ._process import InProcess
from ._protocol import artifact_url
from ._runs import Run, current_run
from ._sizes import human_size
from ._storage import MissingFileError, Storage, discard_temp, temp_beside
from ._sync import sync
from ._transfer import gather_all
from ._urls import is_unreachable, refuse_store_target
from ._workers import to_thread

log = logging.getLogger(__name__)

__all__ = ["Artifact", "File"]

# Cached files up to this size are read on the loop; larger ones on a thread.
_INLINE_READ = 4 * 2**20


Publish = Callable[[Run, str], Coroutine[Any, Any, None]]
# The error to raise instead when an artifact's files are gone because it was deleted.
Gone = Callable[[str], Coroutine[Any, Any, BaseException | None]]


class File(InProcess):
    """One committed file of an artifact.

    Attributes:
        relpath: the path inside the artifact, e.g. ``"test.txt"``.
        url: a plain fsspec URL (an absolute path on local disk) that pandas and
            any fsspec-aware reader open directly, as is: neither verified nor
            recorded as an input (``eio_url`` and `eio.open` are both); also as
            ``remote_url``.
        size: bytes. sha256: hex digest of the content.
    """

    def __init__(
        self,
        record: FileRecord,
        artifact_id: str,
        storage: Storage,
        *,
        log: bool = False,
        publish: Publish | None = None,
        gone: Gone | None = None,
        reference: bool = False,
    ) -> None:
        self._record = record
        self._reference = reference
        self.artifact_id = artifact_id
        self._storage = storage
        self._log = log
        self._publish = publish
        self._gone = gone
        self._checked: str | None = None

    relpath = property(lambda self: self._record.relpath)
    url = property(lambda self: self._record.url)
    remote_url = url
    size = property(lambda self: self._record.size)
    sha256 = property(lambda self: self._record.sha256)

    @property
    def storage_options(self) -> dict[str, Any]:
        """The fsspec options of the store, for readers such as ``pd.read_csv``."""
        return dict(self._storage.options)

    @property
    def _path(self) -> str:
        """The storage path, checked against the layout (`CorruptRecordError` if the
        record names anything else)."""
        if self._checked is None:  # the record is immutable: once is enough
            self._checked = self._storage.file_path(
                self.url, self.artifact_id, self.relpath, log=self._log, reference=self._reference
            )
        return self._checked

    def _record_read(self) -> None:
        """Note the read in the current run (sync callers: a user's thread)."""
        run = current_run()
        if run.record_input(self.artifact_id, self._publish) and self._publish is not None:
            sync(self._publish(run, self.artifact_id))

    async def _arecord_read(self) -> None:
        """Note the read in the current run; a joined run's catalog hears of it first."""
        run = current_run()
        if run.record_input(self.artifact_id, self._publish) and self._publish is not None:
            await self._publish(run, self.artifact_id)

    async def _deleted(self) -> BaseException | None:
        """`ArtifactDeletedError` if the artifact was deleted meanwhile (a file of
        it is missing), else ``None``."""
        if self._gone is not None:
            with contextlib.suppress(ElliptioError):
                return await self._gone(self.artifact_id)
        return None

    async def aread_bytes(self) -> bytes:
        """The file's bytes, checked against the recorded sha256.

        From a remote store they come through the local cache: a cached file is
        read without any request to storage. Otherwise they are read in memory.

        Raises:
            IntegrityError: the stored bytes do not match the recorded sha256.
            OfflineError: offline and the file is not cached.
        """
        if self._storage.cache_reads:
            retried = False
            while True:
                path = await self.alocal_path()
                try:
                    if self.size <= _INLINE_READ:
                        return path.read_bytes()
                    return await to_thread(path.read_bytes)
                except FileNotFoundError as err:  # removed meanwhile: see `_cached`
                    await self._entry_gone(err, retried)
                    retried = True
        try:
            data = await self._storage.read_bytes(self._path, self.sha256, self.size)
        except MissingFileError as err:
            if (deleted := await self._deleted()) is not None:
                raise deleted from err
            raise
        await self._arecord_read()
        return data

    async def alocal_path(self) -> Path:
        """A local path with the file's bytes, for libraries that only take paths.

        On local disk it is the stored file itself (read-only), re-hashed against
        the recorded sha256 on every call; otherwise a verified copy in the local
        cache, fetched on first use. Treat it as read-only: the cache shares it
        between artifacts with the same bytes.

        The path ends in the file's own name (``.../test.csv``), so libraries that
        pick a reader by extension work on it.

        Raises:
            IntegrityError: the stored bytes do not match the recorded sha256.
            OfflineError: offline (or storage unreachable) and not cached.
        """
        return self._named(await self._cached(DEFAULT_CALLBACK))

    def _named(self, path: Path) -> Path:
        """A cache entry under the file's own name (a stored local file has it already)."""
        cache = self._storage.cache
        if self._storage.is_local or cache is None:
            return path
        return cache.named(path, self.relpath)

    def _hit(self) -> Path | None:
        """The verified copy in the local cache; ``None`` on a miss (always on local disk).

        A stat and a tiny read: cheap enough for any thread, so the sync API
        serves hits without a hop to the IO loop.
        """
        _ = self._path  # a record naming a path outside the layout is never served
        cache = self._storage.cache
        if self._storage.is_local or cache is None:
            return None
        found = cache.lookup(self.sha256)
        if found is not None:
            log.debug("cache hit: %r of %s", self.relpath, self.artifact_id)
        return found

    async def _cached(self, progress: Any) -> Path:
        retried = False
        while True:
            try:
                return await self._cached_or_missing(progress)
            except MissingFileError as err:
                if (deleted := await self._deleted()) is not None:
                    raise deleted from err
                raise
            except FileNotFoundError as err:
                await self._entry_gone(err, retried)
                retried = True

    async def _entry_gone(self, err: FileNotFoundError, retried: bool) -> None:
        """For a cache entry gone between its fetch and its use: a delete of this
        artifact (which removes this machine's copies) raises its error; an
        eviction by another process returns, to fetch once more, and a second
        raises."""
        if (deleted := await self._deleted()) is not None:
            raise deleted from err
        if retried:
            raise StorageError(
                f"the cached copy of {self.relpath!r} of {self.artifact_id} was removed "
                "twice while it was read (another process evicting the cache, or clearing "
                "it); read it again, or give the cache more room (ELLIPTIO_CACHE_MAX_BYTES)"
            ) from err

    async def _cached_or_missing(self, progress: Any) -> Path:
        found = self._hit()
        if found is None and self._storage.is_local:
            path = self._path
            await self._storage.verify(path, self.sha256, self.size)
            found = Path(path)
        elif found is None:
            found = await self._fetch(progress)
        await self._arecord_read()
        return found

    def _not_cached(self, action: str, err: BaseException | None = None) -> OfflineError:
        """The error for a file not in the local cache while offline (``err``: the
        storage could not be reached); ``action`` is what to do once online."""
        where = f"{self.relpath!r} of {self.artifact_id} is not in the local cache and"
        if err is None:
            return OfflineError(f"{where} ELLIPTIO_OFFLINE is set; {action} while online")
        return OfflineError(
            f"{where} the storage cannot be reached ({type(err).__name__}); {action} when online"
        )

    async def _fetch(self, progress: Any) -> Path:
        cache = self._storage.cache
        if cache is None:
            raise UsageError(f"{self.url} has no local path: this handler has no cache")
        if self._storage.offline and self._storage.remote:
            raise self._not_cached("read it once")
        cache.folder()  # made private before anything is written in it
        target = cache.path_for(self.sha256)
        try:
            # Private from the first byte: readable by others while it downloads,
            # a file that holds them open would keep them reading it.
            await self._storage.download(
                self._path, target, self.sha256, progress, self.size, mode=cache.file_mode
            )
        except ElliptioError as err:
            if is_unreachable(err):
                raise self._not_cached("retry", err) from err
            raise
        return await to_thread(cache.adopt, target, self.relpath)

    async def aread_text(self, encoding: str = "utf-8") -> str:
        """The file's text, checked against the recorded sha256."""
        return (await self.aread_bytes()).decode(encoding)

    async def adownload(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Copy the file to ``path`` (default: its name in the current folder).

        The copy is written to a temporary file beside ``path``, verified against
        the recorded sha256 and renamed into place, so a damaged download never
        leaves a file at ``path``. A folder as ``path`` (one that exists, or a path
        ending in ``/``, made if missing) receives the file by name. A file at
        ``path`` is replaced, as ``cp`` replaces one. A progress bar shows for long
        downloads (see the ``progress`` setting).

        Raises:
            IntegrityError: the stored bytes do not match the recorded sha256;
                nothing is left at ``path``.

        Returns:
            The local path written.
        """
        target = Path(path) if path is not None else Path.cwd() / Path(self.relpath).name
        folder = path is not None and os.fspath(path).endswith(("/", os.sep))
        if folder or target.is_dir():
            target = target / Path(self.relpath).name
        refuse_store_target(target)
        progress = self._storage.progress_for(f"download {self.relpath}", files=1, nbytes=self.size)
        try:
            return await self._save(target, progress)
        finally:
            progress.close()

    async def _save(self, target: Path, progress: Any) -> Path:
        """Write the verified bytes to ``target``, reporting to ``progress``.

        A file in the local cache is copied from it, without a request. Any other
        is streamed from storage straight to ``target`` and not added to the
        cache: the download is the local copy, so its bytes are written (and
        take disk space) once.
        """
        cached = self._hit() if self._storage.cache_reads else None
        if cached is not None:
            await to_thread(_copy_atomically, cached, target)
            progress.branched(str(cached), str(target)).relative_update(self.size)
            progress.relative_update(1)
            await self._arecord_read()
            return await to_thread(target.resolve)
        if self._storage.cache_reads and self._storage.offline:
            raise self._not_cached("download it")
        try:
            await self._storage.download(self._path, target, self.sha256, progress, self.size)
        except MissingFileError as err:
            if (deleted := await self._deleted()) is not None:
                raise deleted from err
            raise
        except ElliptioError as err:
            if self._storage.cache_reads and is_unreachable(err):
                raise self._not_cached("retry", err) from err
            raise
        await self._arecord_read()
        return await to_thread(target.resolve)

    def read_bytes(self) -> bytes:
        """Sync twin of `aread_bytes`."""
        if self._storage.cache_reads and (hit := self._hit()) is not None:
            # An entry removed since it was found (another process clearing the
            # cache) is read as a miss: `aread_bytes` tells a delete, or fetches.
            with contextlib.suppress(FileNotFoundError):
                data = hit.read_bytes()
                self._record_read()
                return data
        return sync(self.aread_bytes())

    def read_text(self, encoding: str = "utf-8") -> str:
        """Sync twin of `aread_text`."""
        return sync(self.aread_text(encoding))

    def download(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Sync twin of `adownload`."""
        return sync(self.adownload(path))

    def local_path(self) -> Path:
        """Sync twin of `alocal_path`."""
        if (hit := self._hit()) is not None:
            named = self._named(hit)
            if named.exists():  # else removed since it was found: as a miss
                self._record_read()
                return named
        return sync(self.alocal_path())

    @property
    def eio_url(self) -> str:
        """``elliptio://<artifact_id>/<relpath>``: opening it anywhere records lineage."""
        return artifact_url(self.artifact_id, self.relpath)

    def _travel_hint(self) -> tuple[str, str]:
        return (
            f"a File ({self.relpath!r} of {self.artifact_id})",
            "file.eio_url (opened there with pandas or fsspec, lineage included) or "
            "fsspec.open(file.eio_url)",
        )

    def open(self, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """Open the file for reading (``"rb"`` or ``"r"``, ``"rt"`` too) as a file object.

        It opens `local_path`, so its bytes were checked against the recorded
        sha256 first (`IntegrityError` if they do not match). Keyword
        arguments are those of `open` (``buffering``; ``encoding``, ``errors``
        and ``newline`` in text mode).
        """
        mode = {"rt": "r", "tr": "r", "br": "rb"}.get(mode, mode)  # as open() spells them
        if mode not in ("rb", "r") and not (isinstance(mode, str) and set(mode) & set("wax+")):
            # 'b', 'rr', 'x y': no mode open() takes, and no write
            raise UsageError(f"invalid mode {mode!r} to read {self.relpath!r}: give 'rb' or 'r'")
        if mode not in ("rb", "r"):
            raise ImmutableError(
                f"{self.relpath!r} of {self.artifact_id} is committed and immutable; "
                f"open it with mode 'rb' or 'r', not {mode!r}"
            )
        unknown = set(kwargs) - {"buffering", *_TEXT_ARGUMENTS}
        if unknown:
            raise UsageError(
                f"File.open takes open()'s buffering, encoding, errors and newline, not "
                f"{', '.join(sorted(unknown))}"
            )
        # None is open()'s default for each of them, in either mode.
        text = {k: v for k, v in kwargs.items() if k in _TEXT_ARGUMENTS and v is not None}
        buffering = operator.index(kwargs.get("buffering", -1))  # TypeError, as open()
        if mode == "rb" and text:
            raise UsageError(f"binary mode ('rb') takes no {', '.join(sorted(text))} argument")
        if mode == "r" and buffering == 0:
            raise UsageError("text mode ('r') cannot be unbuffered: give buffering=1 or more")
        if mode == "r":
            # A bad encoding, errors or newline raises what open() raises, before the
            # file is opened or its read noted.
            io.TextIOWrapper(io.BytesIO(), **text).detach()
        if self._storage.is_local:
            # Hashed through the very file handed out: a swap of the path after
            # the check is not read.
            try:
                raw = self._storage.open_local(self._path, self.sha256, self.size)
            except MissingFileError as err:
                if (deleted := sync(self._deleted())) is not None:
                    raise deleted from err
                raise
            self._record_read()
            # open()'s keyword arguments: buffering as it takes it, the rest
            # (encoding, errors, newline) for the text layer.
            if buffering == 0:
                return cast(IO[Any], raw)
            binary = io.BufferedReader(raw, buffering if buffering > 1 else io.DEFAULT_BUFFER_SIZE)
            if mode == "rb":
                return binary
            wrapper = io.TextIOWrapper(binary, line_buffering=buffering == 1, **text)
            wrapper.mode = mode  # type: ignore[misc]  # as open() sets it
            return wrapper
        try:
            return open(self.local_path(), mode, buffering, **text)
        except FileNotFoundError:
            # The cache entry went since it was found (another process clearing
            # the cache): found or fetched again, or the delete's error.
            return open(sync(self.alocal_path()), mode, buffering, **text)

    def __repr__(self) -> str:
        return f"File(relpath={self.relpath!r}, url={self.url!r}, size={self.size})"


# The keyword arguments of open() for its text layer.
_TEXT_ARGUMENTS = ("encoding", "errors", "newline")


def _copy_atomically(src: Path, target: Path) -> None:
    fd, tmp, made = temp_beside(target)
    try:
        os.close(fd)
        shutil.copyfile(src, tmp)  # in the kernel where it can (copy_file_range, sendfile)
        os.replace(tmp, target)
    except BaseException:
        discard_temp(tmp, target, made)
        raise


@dataclass(frozen=True, repr=False)
class Artifact(InProcess):
    """A committed artifact: its metadata record and its files.

    Attributes:
        metadata: the full `Metadata` record.
        files: the files by relpath, e.g. ``artifact.files["test.txt"].url``.
        logs: the log files by relpath.
    """

    metadata: Metadata
    files: Mapping[str, File] = field(default_factory=dict)
    logs: Mapping[str, File] = field(default_factory=dict)

    @classmethod
    def from_metadata(
        cls,
        metadata: Metadata,
        storage: Storage,
        publish: Publish | None = None,
        gone: Gone | None = None,
    ) -> Artifact:
        """Bind a record to the storage its files live in.

        ``publish`` tells the catalog that a run read the artifact, for reads in a
        process that joined the run (see `elliptio._runs`); ``gone`` tells a read
        that finds a file missing whether the artifact was deleted meanwhile.
        """
        aid = metadata.artifact_id
        ref = metadata.reference is not None
        return cls(
            metadata=metadata,
            files=FileMap(
                (
                    (r.relpath, File(r, aid, storage, publish=publish, gone=gone, reference=ref))
                    for r in metadata.files
                ),
                aid,
            ),
            logs=FileMap(
                (
                    (r.relpath, File(r, aid, storage, log=True, publish=publish, gone=gone))
                    for r in metadata.logs
                ),
                aid,
                "log file",
            ),
        )

    @property
    def storage_options(self) -> dict[str, Any]:
        """The fsspec options of the store its files live in, for other readers.

        Example:
            >>> pd.read_csv(art.files["a.csv"].url, storage_options=art.storage_options)
            ... # doctest: +SKIP
        """
        first = next(iter(self.files.values()), None) or next(iter(self.logs.values()), None)
        return first.storage_options if first is not None else {}

    @property
    def artifact_id(self) -> str:
        """The artifact's id, ``artifact_<uuid4>``."""
        return self.metadata.artifact_id

    @property
    def name(self) -> str | None:
        """The name it was committed under, if any."""
        return self.metadata.name

    @property
    def name_version(self) -> int | None:
        """Its version under `name` (3 for ``train-set:v3``), if named."""
        return self.metadata.name_version

    @property
    def ref(self) -> str | None:
        """``name:v<n>``, which `get` accepts, for a named artifact; else ``None``."""
        return self.metadata.ref

    @property
    def file(self) -> File:
        """The artifact's only file.

        Raises:
            UsageError: the artifact has more than one file; use ``files[...]``.
        """
        if len(self.files) != 1:
            raise UsageError(
                f"{self.artifact_id} has {len(self.files)} files, so .file is ambiguous; "
                f"use .files[relpath] with one of {listing(self.files)}"
            )
        return next(iter(self.files.values()))

    def _repr_html_(self) -> str:
        """Jupyter: name:vN, id, user, time, labels, files with sizes and based_on,
        every value HTML-escaped."""
        m = self.metadata
        labels = m.labels
        rows: list[tuple[str, str]] = [("name", m.ref or ""), ("artifact_id", m.artifact_id)]
        rows += [
            ("user", f"{m.username}@{m.hostname}" if m.hostname else m.username),
            ("created", m.creation_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ]
        rows += [
            (f"labels.{key}", getattr(labels, key))
            for key in ("datatype", "project", "ticket", "dataset", "description")
        ]
        rows += [("based_on", ", ".join(m.based_on) or "(nothing read)")]
        shown = "".join(
            f"<tr><th style='text-align:left'>{key}</th><td>{_html(value)}</td></tr>"
            for key, value in rows
            if value
        )
        right = "style='text-align:right'"
        files = "".join(
            f"<tr><td>{_html(f.relpath)}</td><td {right}>{human_size(f.size)}</td></tr>"
            for _, f in sorted(self.files.items())
        )
        total = human_size(sum(f.size for f in self.files.values()))
        title = _html(m.ref or m.artifact_id)
        return (
            f"<div><b>Artifact {title}</b><table>{shown}</table>"
            f"<table><thead><tr><th style='text-align:left'>{_count(len(self.files), 'file')}</th>"
            f"<th style='text-align:right'>{total}</th></tr></thead>"
            f"<tbody>{files}</tbody></table></div>"
        )

    async def adownload(
        self, folder: str | os.PathLike[str] = ".", *, overwrite: bool = False
    ) -> list[Path]:
        """Write every file under ``folder`` at its relpath, verified by sha256.

        Each file goes to a temporary file beside its target and is renamed into
        place only once its bytes match the record. One progress bar covers the
        artifact (see the ``progress`` setting).

        Args:
            folder: where to write (made if missing).
            overwrite: replace files that exist already; by default their
                existence stops the download before anything is written.

        Raises:
            ArtifactExistsError: a target exists and ``overwrite`` is false.
            IntegrityError: stored bytes do not match; nothing is left at that
                file's target.

        Returns:
            The local paths written, in relpath order.
        """
        root = Path(folder)
        _check_folder(root, self.artifact_id)
        items = sorted(self.files.items())
        clash = relpath_clash(relpath for relpath, _ in items)
        if clash is not None:  # a reference written before 0.11 may hold "a" and "a/b"
            raise InvalidPathError(
                f"{self.artifact_id} cannot be downloaded into one folder: {clash}; "
                "download its files one by one (file.download(path))"
            )
        targets = [root / relpath for relpath, _ in items]
        for target in [root, *targets]:
            refuse_store_target(target)
        folders = [str(t) for t in targets if t.is_dir()]
        if folders:
            raise InvalidPathError(
                f"{folders[0]!r} is a folder, where {self.artifact_id} has a file; "
                "download somewhere else"
            )
        if not overwrite:
            existing = [str(t) for t in targets if t.exists()]
            if existing:
                raise ArtifactExistsError(
                    f"{len(existing)} file(s) of {self.artifact_id} exist already under "
                    f"{str(root)!r}, e.g. {existing[0]!r}; pass overwrite=True "
                    "(--overwrite) to replace them, or download somewhere else"
                )
        if not items:
            return []
        storage = items[0][1]._storage
        progress = storage.progress_for(
            f"download {self.artifact_id}",
            files=len(items),
            nbytes=sum(f.size for _, f in items),
        )
        slots = asyncio.Semaphore(storage.max_concurrency)

        async def save(file: File, target: Path) -> Path:
            async with slots:
                return await file._save(target, progress)

        made = _new_paths(root, targets)
        try:
            # On the first failure the other files stop, and the files and folders
            # this call made go: nothing is left of a download that failed.
            return await gather_all(save(f, t) for (_, f), t in zip(items, targets, strict=True))
        except BaseException:
            await to_thread(_remove_made, made)
            raise
        finally:
            progress.close()

    def download(
        self, folder: str | os.PathLike[str] = ".", *, overwrite: bool = False
    ) -> list[Path]:
        """Sync twin of `adownload`: every file under ``folder``, verified."""
        return sync(self.adownload(folder, overwrite=overwrite))

    def _travel_hint(self) -> tuple[str, str]:
        return (
            f"an Artifact ({self.metadata.artifact_id})",
            "its id (h.get(id) there) or its files' eio_url (opened with pandas or "
            "fsspec, lineage included)",
        )

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"Artifact(artifact_id={m.artifact_id!r}, username={m.username!r}, "
            f"creation_time={m.creation_time.isoformat()!r}, files={sorted(self.files)!r}"
            + (f", ref={m.ref!r})" if m.ref else ")")
        )


def _check_folder(root: Path, artifact_id: str) -> None:
    if root.exists() and not root.is_dir():
        raise InvalidPathError(
            f"{str(root)!r} is a file, not a folder; give the folder to write the files "
            f"of {artifact_id} under (made if missing)"
        )


def _new_paths(root: Path, targets: Sequence[Path]) -> list[Path]:
    """The targets and folders above them (up to ``root`` and ``root`` itself)
    that do not exist yet, deepest first: what a download makes."""
    found: dict[Path, None] = {}
    for target in targets:
        path = target
        while not os.path.lexists(path):  # a link, even one leading nowhere, is not ours
            found[path] = None
            if path == root or path.parent == path:
                break
            path = path.parent
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _remove_made(paths: Sequence[Path]) -> None:
    """Remove what `_new_paths` listed and a download made: files, then folders
    left empty."""
    for path in paths:
        with contextlib.suppress(OSError):
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            else:
                path.rmdir()


def _html(text: str) -> str:
    return html.escape(text, quote=True)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"
