"""Committed artifacts and their files: the read side.

Each `File` method has an async twin prefixed with ``a`` (``read_bytes`` /
``aread_bytes``), the fsspec convention; the sync ones run the async core on the
IO-loop thread. Every read records the artifact as an input of the current run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ._errors import ElliptioError
from ._models import FileRecord, Metadata
from ._runs import current_run
from ._storage import Storage
from ._sync import sync

__all__ = ["Artifact", "File"]


class File:
    """One committed file of an artifact.

    Attributes:
        relpath: the path inside the artifact, e.g. ``"test.txt"``.
        url: a plain fsspec URL (an absolute path on local disk) that pandas and
            any fsspec-aware reader open directly; also as ``remote_url``.
        size: bytes. sha256: hex digest of the content.
    """

    def __init__(self, record: FileRecord, artifact_id: str, storage: Storage) -> None:
        self._record = record
        self.artifact_id = artifact_id
        self._storage = storage

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
        return self._storage.fs._strip_protocol(self.url)  # type: ignore[no-any-return]

    def _record_read(self) -> None:
        current_run().record_input(self.artifact_id)

    async def aread_bytes(self) -> bytes:
        """The file's bytes, checked against the recorded sha256."""
        data = await self._storage.read_bytes(self._path, self.sha256)
        self._record_read()
        return data

    async def aread_text(self, encoding: str = "utf-8") -> str:
        """The file's text, checked against the recorded sha256."""
        return (await self.aread_bytes()).decode(encoding)

    async def adownload(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Copy the file to ``path`` (default: its name in the current folder).

        The copy is written to a temporary file beside ``path``, verified against
        the recorded sha256 and renamed into place, so a damaged download never
        leaves a file at ``path``. A folder as ``path`` receives the file by name.

        Returns:
            The local path written.
        """
        target = Path(path) if path is not None else Path.cwd() / Path(self.relpath).name
        if target.is_dir():
            target = target / Path(self.relpath).name
        await self._storage.download(self._path, target, self.sha256)
        self._record_read()
        return target.resolve()

    def read_bytes(self) -> bytes:
        """Sync twin of `aread_bytes`."""
        return sync(self.aread_bytes())

    def read_text(self, encoding: str = "utf-8") -> str:
        """Sync twin of `aread_text`."""
        return sync(self.aread_text(encoding))

    def download(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Sync twin of `adownload`."""
        return sync(self.adownload(path))

    def open(self, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """Open the file for reading (``"rb"`` or ``"r"``) as a file object."""
        if mode not in ("rb", "r"):
            raise ElliptioError(
                f"{self.relpath!r} of {self.artifact_id} is committed and immutable; "
                f"open it with mode 'rb' or 'r', not {mode!r}"
            )
        handle = self._storage.open_sync(self._path, mode, **kwargs)
        self._record_read()
        return handle

    def __repr__(self) -> str:
        return f"File(relpath={self.relpath!r}, url={self.url!r}, size={self.size})"


@dataclass(frozen=True, repr=False)
class Artifact:
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
    def from_metadata(cls, metadata: Metadata, storage: Storage) -> Artifact:
        """Bind a record to the storage its files live in."""
        aid = metadata.artifact_id
        return cls(
            metadata=metadata,
            files={r.relpath: File(r, aid, storage) for r in metadata.files},
            logs={r.relpath: File(r, aid, storage) for r in metadata.logs},
        )

    @property
    def artifact_id(self) -> str:
        """The artifact's id, ``artifact_<uuid4>``."""
        return self.metadata.artifact_id

    @property
    def file(self) -> File:
        """The artifact's only file.

        Raises:
            ElliptioError: the artifact has more than one file; use ``files[...]``.
        """
        if len(self.files) != 1:
            raise ElliptioError(
                f"{self.artifact_id} has {len(self.files)} files, so .file is ambiguous; "
                f"use .files[relpath] with one of {sorted(self.files)}"
            )
        return next(iter(self.files.values()))

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"Artifact(artifact_id={m.artifact_id!r}, username={m.username!r}, "
            f"creation_time={m.creation_time.isoformat()!r}, files={sorted(self.files)!r})"
        )
