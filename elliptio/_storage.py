"""Storage: one fsspec filesystem plus a root, chosen by URL. All byte I/O lives here.

Three paths, one interface:

* local disk: exclusive ``O_EXCL`` creates and copies that hash each chunk while
  the same buffer is written (`elliptio._transfer.copy_hashing`); committed files
  are made read-only by `seal`;
* S3 (``s3fs``): the async fast path of `elliptio._s3` (concurrent coroutines,
  parallel multipart, ``If-None-Match`` exclusive creates);
* any other fsspec filesystem: its ``open(path, "xb")`` / ``open(path, "rb")`` on
  a bounded thread pool, so the async core never blocks its loop.

Every path computes size and sha256 in the single pass that moves the bytes, and
reports progress through fsspec callbacks (`elliptio._progress`). Errors are
translated at this boundary into `StorageError` / `ArtifactExistsError` /
`IntegrityError`, with URLs stripped of credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import fsspec
from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.implementations.local import LocalFileSystem

from ._cache import Cache
from ._errors import ArtifactExistsError, ConfigError, ElliptioError, IntegrityError, StorageError
from ._progress import is_interactive, make_progress
from ._redact import known_secrets, redact_text, redact_url
from ._s3 import S3Transfers, is_s3, with_s3_defaults
from ._transfer import CHUNK, HashResult, copy_hashing, gather_all, write_all

__all__ = ["DEFAULT_PART_SIZE", "HashingWriter", "Storage"]

# Multipart part size (and the largest single PUT). Measured with
# benchmarks/transfer.py against boto3's TransferManager on one 200 MB file.
DEFAULT_PART_SIZE = 8 * 2**20
P = ParamSpec("P")
T = TypeVar("T")
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
# Hashing a buffer this large on the event loop would stall it; use a thread.
INLINE_HASH = 1 * 2**20


def _digest(data: bytes | memoryview) -> str:
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

    Args:
        url: local path or fsspec URL of the store's root.
        options: fsspec storage options (credentials, ``endpoint_url``, ...).
        max_workers: transfers (files, or parts of a large file) in flight at once.
        part_size: bytes per part of a multipart upload where the store has one.
        progress: the ``progress`` setting (``None``: bars when interactive).
    """

    def __init__(
        self,
        url: str,
        options: Mapping[str, Any] | None = None,
        *,
        max_workers: int = 16,
        part_size: int = DEFAULT_PART_SIZE,
        progress: bool | None = None,
        cache: Cache | None = None,
        offline: bool = False,
    ) -> None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigError("storage URL is empty; give a local path or an fsspec URL")
        options = dict(options or {})
        self.safe_url = redact_url(url)
        # Secrets of the URL and the options, masked in every message built from a
        # backend error (botocore, for one, quotes a bucket name with its userinfo).
        self._secrets = known_secrets([url], options)
        try:
            fs, root = fsspec.core.url_to_fs(url, **with_s3_defaults(url, options))
        except (ImportError, ValueError) as err:
            raise ConfigError(
                f"cannot open storage {self.safe_url!r}: {self._redact(str(err))}; install "
                "the filesystem's package (for s3://: pip install 'elliptio[s3]') or check "
                "the URL"
            ) from None
        if any(f":{secret}@" in root for secret in known_secrets([url])):
            # The filesystem kept the credentials in its paths, so they would be in
            # every file URL of every record.
            raise ConfigError(
                f"storage URL {self.safe_url!r} carries credentials that would be written "
                "into every record; pass them in storage_options (ELLIPTIO_STORAGE_OPTIONS) "
                "instead"
            )
        self.fs: fsspec.AbstractFileSystem = fs
        self.options = options
        # Reads of remote stores go through the local cache; local and in-memory
        # stores are read in place (a local path of an in-memory file still needs it).
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self.cache = cache
        self.cache_reads = cache is not None and not (
            isinstance(fs, LocalFileSystem) or protocols & {"file", "local", "memory"}
        )
        self.offline = offline
        self.progress = progress
        self.max_concurrency = max_workers
        self.is_local = isinstance(fs, LocalFileSystem)
        if self.is_local:
            root = os.path.abspath(os.path.expanduser(root))
        self.root: str = root.rstrip("/") or "/"
        self._pool: tuple[int, ThreadPoolExecutor] | None = None
        self._s3 = (
            S3Transfers(fs, part_size=part_size, max_concurrency=max_workers, error=self._error)
            if is_s3(fs)
            else None
        )

    @property
    def _executor(self) -> ThreadPoolExecutor:
        # Made on first use in each process: a child made by fork inherits a copy
        # of the parent's pool without its threads, where work would wait forever.
        pool = self._pool
        if pool is None or pool[0] != os.getpid():
            executor = ThreadPoolExecutor(
                max_workers=self.max_concurrency, thread_name_prefix="elliptio-storage"
            )
            pool = self._pool = (os.getpid(), executor)
        return pool[1]

    # -- naming -------------------------------------------------------------
    def url(self, path: str) -> str:
        """The URL of a storage path: a plain absolute path on local disk."""
        return path if self.is_local else self.fs.unstrip_protocol(path)

    @property
    def root_url(self) -> str:
        """The URL of the store's root."""
        return self.url(self.root)

    def _redact(self, text: str) -> str:
        return redact_text(redact_url(text), self._secrets)

    def _error(self, err: BaseException, action: str, path: str) -> ElliptioError:
        where = self._redact(self.url(path))
        if isinstance(err, ElliptioError):
            return err
        if isinstance(err, FileExistsError):
            return ArtifactExistsError(
                f"{where} exists already; committed files are never overwritten, "
                "so save the new content as a new artifact"
            )
        return StorageError(
            f"cannot {action} {where}: {type(err).__name__}: {self._redact(str(err))}; "
            "check that the storage is reachable and writable, then retry"
        )

    async def _run(self, action: str, path: str, func: Callable[P, T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(func, *args))
        except Exception as err:
            raise self._error(err, action, path) from err

    def progress_for(
        self, desc: str, *, files: int, nbytes: int | Callable[[], int] | None = None
    ) -> Any:
        """A progress callback (fsspec `Callback`) for a transfer of ``files`` files.

        Bars follow the ``progress`` setting; when they are off this is the no-op
        callback and ``nbytes`` (the total size, or a function computing it) is
        never evaluated.
        """
        if not (is_interactive() if self.progress is None else self.progress):
            return DEFAULT_CALLBACK
        total = nbytes() if callable(nbytes) else nbytes
        return make_progress(self.progress, desc, files=files, nbytes=total)

    # -- writing ------------------------------------------------------------
    def _ensure_parent(self, path: str) -> None:
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)

    def open_exclusive_sync(self, path: str) -> IO[bytes]:
        """Open a new file for writing; fail if it exists (where the fs can tell)."""
        self._ensure_parent(path)
        return self.fs.open(path, "xb")  # type: ignore[no-any-return]

    def _create_local(self, path: str) -> int:
        self._ensure_parent(path)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))

    def _put_file(self, local: Path, path: str, progress: Any) -> HashResult:
        if self.is_local:
            fd = self._create_local(path)
            try:
                with open(local, "rb", buffering=0) as src:
                    return copy_hashing(src, fd, progress)
            finally:
                os.close(fd)
        digest = hashlib.sha256()
        size = 0
        with open(local, "rb") as src, self.open_exclusive_sync(path) as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
                progress.relative_update(len(chunk))
        return size, digest.hexdigest()

    async def put_files(
        self, items: Sequence[tuple[Path, str]], progress: Any = DEFAULT_CALLBACK
    ) -> list[HashResult]:
        """Copy local files to new storage paths, concurrently; sizes and sha256s in order.

        Each file's bytes are hashed while they stream, in one pass; an existing
        storage path is never overwritten (`ArtifactExistsError`). On the first
        failure the other transfers are cancelled before the error propagates.

        Args:
            items: ``(local file, storage path)`` pairs.
            progress: an fsspec callback for the whole transfer (see
                `progress_for`); each file gets ``progress.branched(...)`` for its
                bytes, and ``progress.relative_update(1)`` when it is done.
        """
        if self._s3 is not None:
            return await self._s3.put_files(list(items), progress)

        async def one(local: Path, path: str) -> HashResult:
            child = progress.branched(str(local), self.url(path))
            result = await self._run("write", path, self._put_file, local, path, child)
            progress.relative_update(1)
            return result

        return await gather_all(one(local, path) for local, path in items)

    async def put_file(self, local: Path, path: str) -> HashResult:
        """Copy one local file to a new storage path; its size and sha256."""
        return (await self.put_files([(local, path)]))[0]

    def _write_bytes(self, path: str, data: memoryview) -> HashResult:
        if self.is_local:
            fd = self._create_local(path)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
        else:
            with self.open_exclusive_sync(path) as dst:
                dst.write(data)
        return len(data), _digest(data)

    async def write_bytes(self, path: str, data: bytes | bytearray | memoryview) -> HashResult:
        """Write ``data`` to a new storage path (no temporary file); its size and sha256."""
        if self._s3 is not None:
            return await self._s3.put_bytes(path, data)
        return await self._run("write", path, self._write_bytes, path, memoryview(data).cast("B"))

    async def makedirs(self, path: str) -> None:
        """Create a folder on local disk (a no-op on object stores)."""
        if self.is_local:
            await self._run("create", path, os.makedirs, path, 0o777, True)

    def _seal(self, paths: Sequence[str]) -> None:
        for path in paths:
            os.chmod(path, READ_ONLY)

    async def seal(self, paths: Sequence[str]) -> None:
        """Make committed files read-only where the filesystem has permissions (local disk).

        Object stores need no step: elliptio never writes an existing key, and S3
        Object Lock makes that a hard guarantee (see the README).
        """
        if self.is_local and paths:
            await self._run("protect", paths[0], self._seal, paths)

    # -- reading ------------------------------------------------------------
    def _hash_file(self, path: str) -> HashResult | None:
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

    async def hash_file(self, path: str) -> HashResult | None:
        """Size and sha256 of a stored file, or ``None`` if it does not exist."""
        if self._s3 is not None:
            return await self._s3.hash_object(path)
        return await self._run("read", path, self._hash_file, path)

    def _mismatch(self, path: str, sha256: str, consequence: str) -> IntegrityError:
        return IntegrityError(
            f"{self._redact(self.url(path))} does not match its recorded sha256 {sha256}; "
            f"the stored file was changed or damaged; {consequence}"
        )

    async def read_bytes(self, path: str, sha256: str | None = None) -> bytes:
        """The bytes of a stored file, in memory, checked against ``sha256`` when given."""
        if self._s3 is not None:
            data = await self._s3.read_bytes(path)
        else:
            data = await self._run("read", path, self.fs.cat_file, path)
        if sha256 is not None:
            found = (
                _digest(data)
                if len(data) <= INLINE_HASH
                else await asyncio.to_thread(_digest, data)
            )
            if found != sha256:
                raise self._mismatch(path, sha256, "restore it from a copy or re-create it")
        return data

    def _copy_to_fd(self, path: str, fd: int, progress: Any) -> HashResult:
        src: Any = open(path, "rb", buffering=0) if self.is_local else self.fs.open(path, "rb")  # noqa: SIM115
        with src:
            if progress is not DEFAULT_CALLBACK:
                progress.set_size(self.fs.size(path))
            return copy_hashing(src, fd, progress)

    async def download(
        self,
        path: str,
        local: Path,
        sha256: str | None = None,
        progress: Any = DEFAULT_CALLBACK,
    ) -> None:
        """Copy a stored file to ``local`` atomically, verifying ``sha256``.

        The bytes go to a temporary file beside ``local``, hashed as they are
        written; only a verified copy is renamed into place, so a damaged
        download leaves nothing at ``local`` (and no temporary file).
        """
        fd, tmp = await asyncio.to_thread(_temp_beside, local)
        try:
            try:
                child = progress.branched(self.url(path), str(local))
                if self._s3 is not None:
                    _, digest = await self._s3.download(path, fd, child)
                else:
                    _, digest = await self._run("download", path, self._copy_to_fd, path, fd, child)
            finally:
                os.close(fd)
            if sha256 is not None and digest != sha256:
                raise self._mismatch(path, sha256, f"nothing was written to {str(local)!r}")
            await asyncio.to_thread(os.replace, tmp, local)
            progress.relative_update(1)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def open_sync(self, path: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """Open a stored file for reading through fsspec."""
        try:
            return self.fs.open(path, mode, **kwargs)  # type: ignore[no-any-return]
        except (OSError, ValueError) as err:
            raise self._error(err, "open", path) from err

    # -- housekeeping -------------------------------------------------------
    async def exists(self, path: str) -> bool:
        """Whether a storage path exists."""
        return await self._run("check", path, self.fs.exists, path)

    def _object_size(self, path: str) -> int | None:
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    async def object_size(self, path: str) -> int | None:
        """The size of the file at a storage path, or ``None`` if there is none."""
        return await self._run("check", path, self._object_size, path)

    def _listed_sizes(self, folder: str) -> dict[str, int]:
        try:
            entries = self.fs.ls(folder, detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        return {
            self.fs._strip_protocol(e["name"]): int(e["size"])
            for e in entries
            if e.get("type") == "file"
        }

    async def object_sizes(self, paths: Sequence[str]) -> dict[str, int | None]:
        """The sizes of files at storage paths (``None`` where there is none).

        Files in one folder are listed together: one request for a whole
        folder on an object store, instead of one per file.
        """
        folders: dict[str, list[str]] = {}
        for path in dict.fromkeys(paths):
            folders.setdefault(path.rsplit("/", 1)[0], []).append(path)

        async def sizes(folder: str, members: list[str]) -> dict[str, int | None]:
            if len(members) == 1:
                return {members[0]: await self.object_size(members[0])}
            listed = await self._run("list", folder, self._listed_sizes, folder)
            return {path: listed.get(path) for path in members}

        found: dict[str, int | None] = {}
        for part in await asyncio.gather(*(sizes(f, m) for f, m in folders.items())):
            found.update(part)
        return found

    def _remove_file(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    async def remove_file(self, path: str) -> None:
        """Remove one file, if it exists."""
        await self._run("remove", path, self._remove_file, path)

    def _remove_tree(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    async def remove_tree(self, path: str) -> None:
        """Remove a folder and everything under it, if it exists."""
        await self._run("remove", path, self._remove_tree, path)

    def close(self) -> None:
        """Stop the worker threads."""
        self._executor.shutdown(wait=False)


def _temp_beside(local: Path) -> tuple[int, str]:
    local.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".part")
