"""Artifacts being written with ``handler.new()``: files you write, committed on exit.

A file of a new artifact can be written three ways, all committed by the same
protocol when the ``with`` block ends without an exception:

* any fsspec-aware writer (or, on local disk, any path writer) at ``file.url``;
  the bytes are hashed at commit by reading them back;
* ``file.open("wb")`` / ``file.write_bytes(...)``: hashed while writing;
* ``file.local_path``: a staging file for libraries that only write local
  paths; uploaded and hashed in one pass at commit.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from ._errors import CommitError, ImmutableError, UsageError
from ._files import FileMap, listing
from ._process import InProcess
from ._storage import HashingWriter, Storage
from ._sync import sync

if TYPE_CHECKING:
    from ._artifact import Artifact

__all__ = ["NewArtifact", "NewFile"]


# What to send another process instead of an artifact being written (see `InProcess`).
_SEND_NEW = (
    "nothing of it: write its files in this process; once it committed, send the "
    "artifact's id or its files' eio_url"
)


class _StagingPath(type(Path())):  # type: ignore[misc]
    """A staging file's path that may also be called, giving itself."""

    def __call__(self) -> Path:
        return self


class NewFile(InProcess):
    """A file of an artifact that is being written.

    Attributes:
        relpath: the path inside the artifact.
        url: where to write it with any fsspec-aware writer (a plain absolute path
            on local disk); also as ``remote_url``. Once the artifact committed, the
            URL of its committed file: another artifact's, when the same bytes
            were committed before (the copy written here is then removed).
    """

    def _travel_hint(self) -> tuple[str, str]:
        return (
            "a file of an artifact being written (h.new)",
            _SEND_NEW,
        )

    def __init__(self, owner: NewArtifact, relpath: str, path: str) -> None:
        self._owner = owner
        self.relpath = relpath
        self._path = path
        self._url = owner._storage.url(path)
        self._written: tuple[int, str] | None = None
        self._open_writer = False
        self._staging: Path | None = None

    @property
    def url(self) -> str:
        committed = self._owner._artifact
        return committed.files[self.relpath].url if committed is not None else self._url

    remote_url = url

    @property
    def storage_options(self) -> dict[str, Any]:
        """The fsspec options of the store, for writers such as ``df.to_csv``."""
        return dict(self._owner._storage.options)

    @property
    def local_path(self) -> Path:
        """A local staging file to write; it is uploaded when the artifact commits.

        Calling it gives the same path (``new.file.local_path()``), as a
        committed file's `File.local_path()` is called.
        """
        self._owner._check_open()
        if self._staging is None:
            self._staging = _StagingPath(self._owner._staging_dir() / self.relpath)
            self._staging.parent.mkdir(parents=True, exist_ok=True)
        return self._staging

    def open(self, mode: str = "wb", encoding: str = "utf-8") -> IO[Any]:
        """Open the file for writing (``"wb"`` or ``"w"``); bytes are hashed as written."""
        self._owner._check_open()
        if mode not in ("wb", "w"):
            raise UsageError(
                f"{self.relpath!r} can be opened for writing with mode 'wb' or 'w', not {mode!r}"
            )
        if self._written is not None or self._open_writer:
            raise UsageError(f"{self.relpath!r} was written already; write each file once")
        target = self._owner._storage.open_exclusive_sync(self._path)
        self._open_writer = True

        def done(size: int, sha256: str) -> None:
            self._written = (size, sha256)
            self._open_writer = False

        raw = HashingWriter(target, done)
        if mode == "wb":
            return io.BufferedWriter(raw)
        return io.TextIOWrapper(io.BufferedWriter(raw), encoding=encoding)

    async def awrite_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Write the whole file from ``data`` in memory, with no temporary file.

        The bytes go straight to the store (on S3 one PUT, or parallel multipart
        parts when larger than ``part_size``), hashed on the way.
        """
        self._owner._check_open()
        if self._written is not None or self._open_writer:
            raise UsageError(f"{self.relpath!r} was written already; write each file once")
        self._open_writer = True
        try:
            self._written = await self._owner._storage.write_bytes(self._path, data)
        finally:
            self._open_writer = False

    async def awrite_text(self, text: str, encoding: str = "utf-8") -> None:
        """Write the whole file from ``text``."""
        await self.awrite_bytes(text.encode(encoding))

    def write_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Sync twin of `awrite_bytes`."""
        sync(self.awrite_bytes(data))

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        """Sync twin of `awrite_text`."""
        sync(self.awrite_text(text, encoding))

    async def _finish(self) -> tuple[int, str]:
        storage = self._owner._storage
        where = f"{self.relpath!r} of {self._owner.artifact_id}"
        if self._open_writer:
            raise CommitError(f"{where} is still open for writing; close it inside the block")
        if self._written is not None:
            return self._written
        staged = self._staging is not None and self._staging.is_file()
        found = await storage.hash_file(self._path)
        if staged and found is not None:
            raise CommitError(
                f"{where} was written both at its url and at its local_path; write one"
            )
        if staged and self._staging is not None:
            progress = storage.progress_for(
                f"upload {self.relpath}", files=1, nbytes=self._staging.stat().st_size
            )
            try:
                return (await storage.put_files([(self._staging, self._path)], progress))[0]
            finally:
                progress.close()
        if found is None:
            raise CommitError(
                f"{where} was never written; write it at .url, with .open('wb') "
                "or at .local_path before the block ends"
            )
        return found


class NewArtifact(InProcess):
    """An artifact being written; use it as ``with`` (sync) or ``async with``.

    On a clean exit the artifact commits (files, then sidecar, then catalog
    record); `artifact` then holds it. On an exception nothing becomes visible,
    the files written so far are removed and the exception propagates; if `gc`
    took the unfinished artifact meanwhile, a `CommitError` saying so replaces
    it (chained), as when gc wins against the commit itself.
    """

    def _travel_hint(self) -> tuple[str, str]:
        return (
            "an artifact being written (h.new)",
            _SEND_NEW,
        )

    def __init__(
        self,
        storage: Storage,
        artifact_id: str,
        prefix: str,
        relpaths: list[str],
        commit: Callable[[NewArtifact, dict[str, tuple[int, str]]], Awaitable[Artifact]],
        discard: Callable[[NewArtifact, BaseException | None], Awaitable[None]],
        begin: Callable[[NewArtifact], Awaitable[None]] | None = None,
    ) -> None:
        self._storage = storage
        self.artifact_id = artifact_id
        self.prefix = prefix
        self.files: Mapping[str, NewFile] = FileMap(
            ((r, NewFile(self, r, f"{prefix}/{r}")) for r in relpaths), artifact_id
        )
        self._commit = commit
        self._discard = discard
        self._begin = begin
        self._state = "new"
        self._tmp: Path | None = None
        self._artifact: Artifact | None = None

    @property
    def file(self) -> NewFile:
        """The only file of the artifact.

        Raises:
            UsageError: the artifact has several files; use ``files[relpath]``.
        """
        if len(self.files) != 1:
            raise UsageError(
                f"{self.artifact_id} has {len(self.files)} files, so .file is ambiguous; "
                f"use .files[relpath] with one of {listing(self.files)}"
            )
        return next(iter(self.files.values()))

    @property
    def artifact(self) -> Artifact:
        """The committed artifact (after the ``with`` block ended cleanly)."""
        if self._artifact is None:
            raise UsageError(f"{self.artifact_id} is not committed (state: {self._state})")
        return self._artifact

    def _check_open(self) -> None:
        if self._state in ("committed", "discarded"):
            raise ImmutableError(
                f"{self.artifact_id} is {self._state}, so its files cannot be written any "
                "more; write them inside the with block, or open another with new()"
            )
        if self._state != "open":
            raise UsageError(
                f"{self.artifact_id} is {self._state}; write its files inside the with block"
            )

    def _staging_dir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=f"elliptio-{self.artifact_id}-"))
        return self._tmp

    async def _enter(self) -> NewArtifact:
        if self._state != "new":
            raise UsageError(f"{self.artifact_id} was opened already; call new() again")
        try:
            if self._begin is not None:
                await self._begin(self)
            if self._storage.is_local:
                # Path-only writers (Path(url).write_text) need the folders to exist.
                for path in {f._path.rsplit("/", 1)[0] for f in self.files.values()}:
                    await self._storage.makedirs(path)
        except BaseException:
            # Failed or cancelled, maybe once the lease was in the catalog: nothing
            # of the block was written yet, so its folder and lease go.
            self._state = "discarded"
            await self._discard(self, None)
            raise
        self._state = "open"
        return self

    async def _exit(self, failed: BaseException | None) -> None:
        try:
            if failed is not None:
                self._state = "discarded"
                await self._discard(self, failed)
                return
            try:
                written = {r: await f._finish() for r, f in self.files.items()}
                self._artifact = await self._commit(self, written)
            except BaseException as err:
                self._state = "discarded"
                await self._discard(self, err)
                raise
            self._state = "committed"
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> NewArtifact:
        return sync(self._enter())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sync(self._exit(exc))

    async def __aenter__(self) -> NewArtifact:
        return await self._enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit(exc)

    def __repr__(self) -> str:
        return f"NewArtifact(artifact_id={self.artifact_id!r}, files={sorted(self.files)!r})"
