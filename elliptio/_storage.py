"""Storage: one fsspec filesystem plus a root, chosen by URL. All byte I/O lives here.

Filesystem calls run on a bounded thread pool so the async core never blocks its
loop; every fsspec implementation (sync or async) works through the same calls.
Errors are translated at this boundary into `StorageError` /
`ArtifactExistsError`, with URLs stripped of credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ._errors import ArtifactExistsError, ConfigError, ElliptioError, IntegrityError, StorageError
from ._redact import redact_url

__all__ = ["HashingWriter", "Storage"]

CHUNK = 4 * 2**20
P = ParamSpec("P")
T = TypeVar("T")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class HashingWriter(io.RawIOBase):
    """A binary writer that hashes and counts bytes as they pass to ``target``.

    ``on_close(size, sha256)`` is called once the target is closed cleanly.
    """

    def __init__(self, target: IO[bytes], on_close: Callable[[int, str], None]) -> None:
        super().__init__()
        self._target = target
        self._hash = hashlib.sha256()
        self._size = 0
        self._on_close = on_close

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self._target.write(view)
        self._size += len(view)
        return len(view)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._target.close()
        finally:
            super().close()
        self._on_close(self._size, self._hash.hexdigest())


class Storage:
    """The store's filesystem and root path; every method works on storage paths.

    A storage path is the filesystem's own path (no protocol), as returned by
    `path`; `url` turns it into the URL users hand to pandas and friends.
    """

    def __init__(
        self, url: str, options: Mapping[str, Any] | None = None, *, max_workers: int = 16
    ) -> None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigError("storage URL is empty; give a local path or an fsspec URL")
        options = dict(options or {})
        self.safe_url = redact_url(url)
        try:
            fs, root = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as err:
            raise ConfigError(
                f"cannot open storage {self.safe_url!r}: {err}; install the filesystem's "
                "package (for s3://: pip install 'elliptio[s3]') or check the URL"
            ) from None
        self.fs: fsspec.AbstractFileSystem = fs
        self.options = options
        self.is_local = isinstance(fs, LocalFileSystem)
        if self.is_local:
            root = os.path.abspath(os.path.expanduser(root))
        self.root: str = root.rstrip("/") or "/"
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="elliptio-storage"
        )

    # -- naming -------------------------------------------------------------
    def url(self, path: str) -> str:
        """The URL of a storage path: a plain absolute path on local disk."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    @property
    def root_url(self) -> str:
        """The URL of the store's root."""
        return self.url(self.root)

    def _error(self, err: BaseException, action: str, path: str) -> ElliptioError:
        where = redact_url(self.url(path))
        if isinstance(err, FileExistsError):
            return ArtifactExistsError(
                f"{where} exists already; committed files are never overwritten"
            )
        if isinstance(err, ElliptioError):
            return err
        return StorageError(
            f"cannot {action} {where}: {type(err).__name__}: {redact_url(str(err))}; "
            "check that the storage is reachable and writable, then retry"
        )

    async def _run(self, action: str, path: str, func: Callable[P, T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(func, *args))
        except (OSError, ValueError, RuntimeError, ElliptioError) as err:
            raise self._error(err, action, path) from err

    # -- writing ------------------------------------------------------------
    def _ensure_parent(self, path: str) -> None:
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)

    def open_exclusive_sync(self, path: str) -> IO[bytes]:
        """Open a new file for writing; fail if it exists (where the fs can tell)."""
        self._ensure_parent(path)
        return self.fs.open(path, "xb")  # type: ignore[no-any-return]

    def _put_file(self, local: Path, path: str) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        with open(local, "rb") as src, self.open_exclusive_sync(path) as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    async def put_file(self, local: Path, path: str) -> tuple[int, str]:
        """Copy a local file to a new storage path; return its size and sha256.

        The bytes are hashed while they stream, in one pass.
        """
        return await self._run("write", path, self._put_file, local, path)

    def _write_bytes(self, path: str, data: bytes) -> None:
        with self.open_exclusive_sync(path) as dst:
            dst.write(data)

    async def write_bytes(self, path: str, data: bytes) -> tuple[int, str]:
        """Write ``data`` to a new storage path; return its size and sha256."""
        await self._run("write", path, self._write_bytes, path, data)
        return len(data), _digest(data)

    async def makedirs(self, path: str) -> None:
        """Create a folder on local disk (a no-op on object stores)."""
        if self.is_local:
            await self._run("create", path, os.makedirs, path, 0o777, True)

    # -- reading ------------------------------------------------------------
    def _hash_file(self, path: str) -> tuple[int, str] | None:
        try:
            f = self.fs.open(path, "rb")
        except FileNotFoundError:
            return None
        digest = hashlib.sha256()
        size = 0
        with f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    async def hash_file(self, path: str) -> tuple[int, str] | None:
        """Size and sha256 of a stored file, or ``None`` if it does not exist."""
        return await self._run("read", path, self._hash_file, path)

    def _read_bytes(self, path: str, sha256: str | None) -> bytes:
        data: bytes = self.fs.cat_file(path)
        if sha256 is not None and _digest(data) != sha256:
            raise IntegrityError(
                f"{redact_url(self.url(path))} does not match its recorded sha256 "
                f"{sha256}; the stored file was changed or damaged"
            )
        return data

    async def read_bytes(self, path: str, sha256: str | None = None) -> bytes:
        """The bytes of a stored file, checked against ``sha256`` when given."""
        return await self._run("read", path, self._read_bytes, path, sha256)

    def _download(self, path: str, local: Path, sha256: str | None) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".part")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as dst, self.fs.open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
            if sha256 is not None and digest.hexdigest() != sha256:
                raise IntegrityError(
                    f"{redact_url(self.url(path))} does not match its recorded sha256 "
                    f"{sha256}; nothing was written to {str(local)!r}"
                )
            os.replace(tmp, local)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    async def download(self, path: str, local: Path, sha256: str | None = None) -> None:
        """Copy a stored file to ``local`` atomically, verifying ``sha256``."""
        await self._run("download", path, self._download, path, local, sha256)

    def open_sync(self, path: str, mode: str = "rb") -> IO[Any]:
        """Open a stored file for reading through fsspec."""
        try:
            return self.fs.open(path, mode)  # type: ignore[no-any-return]
        except (OSError, ValueError) as err:
            raise self._error(err, "open", path) from err

    # -- housekeeping -------------------------------------------------------
    async def exists(self, path: str) -> bool:
        """Whether a storage path exists."""
        return await self._run("check", path, self.fs.exists, path)

    def _remove_tree(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    async def remove_tree(self, path: str) -> None:
        """Remove a folder and everything under it, if it exists."""
        await self._run("remove", path, self._remove_tree, path)

    def close(self) -> None:
        """Stop the worker threads."""
        self._executor.shutdown(wait=False)
