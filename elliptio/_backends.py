"""Storage backends: every byte elliptio moves goes through one small async interface.

`Backend` is that interface and its generic implementation on any fsspec
filesystem (the filesystem's sync calls on a small thread pool, so the async
core never blocks its loop). Two subclasses specialise it where a benchmark or a
guarantee asks for it:

* `LocalBackend`: ``O_EXCL`` creates, read-only sealing (``chmod 0444``), and no
  symlink inside the store is ever followed for a read, a write, a seal or a
  removal;
* ``S3Backend`` (`elliptio._s3`): native async s3fs calls, parallel multipart,
  ``If-None-Match`` exclusive creates.

Each backend has one URL-to-path mapping (`url` / `path`), one error translation
(`error`: `StorageError`, `ArtifactExistsError`, URLs and secrets redacted) and
one hashing copy (`elliptio._transfer.copy_hashing`) for every transfer, so size
and sha256 always come from the single pass that moves the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import io
import os
import posixpath
import re
import stat
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ._errors import ArtifactExistsError, ElliptioError, StorageError
from ._transfer import (
    KERNEL_COPY_MIN,
    HashResult,
    Writer,
    copy_hashing,
    copying_reader,
    gather_all,
    write_all,
)
from ._workers import Workers

__all__ = [
    "Backend",
    "LocalBackend",
    "PlantedFileError",
    "glob_literal",
    "make_backend",
    "rm_path",
]

T = TypeVar("T")
# A local-disk call that moves at most this many bytes and touches at most
# INLINE_FILES files runs on the event loop itself: a hop to a worker thread and
# back costs about 0.1 ms of CPU (measured on the 2-core benchmark machine), more
# than writing a few KiB into the page cache.
INLINE_BYTES = 256 * 1024
INLINE_FILES = 8
READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


# The actions that change nothing in storage (a download's reader stops writing
# its local copy once cancelled).
_READING = frozenset({"read", "list", "check", "open", "download"})
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _next_step(err: BaseException, action: str) -> str:
    """What to do about a storage error, by its cause where that is known."""
    text = f"{type(err).__name__}: {err}"
    if "NoCredentialsError" in text or "Unable to locate credentials" in text:
        return (
            "give the storage credentials: key and secret in storage_options "
            "(ELLIPTIO_STORAGE_OPTIONS), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE"
        )
    if "NoSuchBucket" in text or "bucket does not exist" in text:
        return "check the bucket in the storage URL (ELLIPTIO_STORAGE_URL), or create it"
    if isinstance(err, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return f"check that these credentials may {action} there"
    if isinstance(err, OSError) and err.errno in _NO_ROOM:
        # Raised by the local write (the cache, a download, a local store), not by
        # the storage: a network check would be the wrong lead.
        return (
            "there is no room on the local disk it was written to (full, over a quota "
            "or a file size limit): free space (elliptio cache prune, or ELLIPTIO_CACHE_DIR "
            "on a larger disk), then retry"
        )
    if action in _READING:
        return "check that the storage is reachable, then retry"
    return "check that the storage is reachable and writable, then retry"


def glob_literal(path: str) -> str:
    """``path`` as a glob pattern that matches that name only: each ``*``, ``?``
    and ``[`` in a class of its own (fsspec's ``glob`` reads them as patterns on
    every filesystem, local disk too)."""
    return re.sub(r"([*?\[])", r"[\1]", path)


def rm_path(fs: Any, path: str) -> str:
    """``path`` as ``fs.rm`` takes it to remove that name and nothing else.

    fsspec's generic ``rm`` (memory, S3, ...) reads ``*``, ``?`` and ``[`` as
    patterns (a user folder ``ci[bot]`` would name ``cib``, ``cio`` and ``cit``,
    and a URL ``s3://b/[l]ake`` the store at ``s3://b/lake``): there each such
    character goes in a class of its own. The local filesystem's ``rm`` takes
    names as they are.
    """
    if isinstance(fs, LocalFileSystem):
        return path
    return glob_literal(path)


def canonical_path(fs: Any, path: str) -> str:
    """``path`` without the spellings a remote filesystem reads alike or that
    name a folder above (leading, doubled and ``.`` segments, ``..``), with the
    filesystem's root marker: to tell whether it lies in the store."""
    marker = getattr(fs, "root_marker", "") or _absolute_marker(fs.__class__)
    plain = posixpath.normpath("/" + path).lstrip("/")
    return marker + plain if plain != "." else marker


@functools.cache
def _absolute_marker(kind: type) -> str:
    """``"/"`` for a filesystem without a root marker whose paths are absolute all
    the same (SFTP, SMB, WebHDFS keep the host in their options: the path of
    ``sftp://host/home/me`` is ``/home/me``), so that its leading ``/`` is kept."""
    protocol = getattr(kind, "protocol", "")
    protocol = protocol if isinstance(protocol, str) else protocol[0]
    try:
        path = getattr(kind, "_strip_protocol")(f"{protocol}://host/x")  # noqa: B009
    except Exception:  # a filesystem's own parser: no answer is no marker
        return ""
    return "/" if isinstance(path, str) and path.startswith("/") else ""


class Backend:
    """Byte I/O on one fsspec filesystem.

    Args:
        fs: the filesystem.
        max_workers: transfers in flight at once.
        redact: masks URLs and known secrets in a message.
    """

    def __init__(self, fs: Any, *, max_workers: int, redact: Callable[[str], str]) -> None:
        self._fs: fsspec.AbstractFileSystem = fs
        self.max_workers = max(1, max_workers)
        self.redact = redact
        self._executor: Workers | None = None
        # Threads for blocking calls: more than the cores only buys hand-offs.
        self.workers = max(2, min(self.max_workers, (os.cpu_count() or 1) * 2))
        self._pid = os.getpid()
        self._lock = threading.Lock()
        _live.add(self)

    # -- per process ---------------------------------------------------------------
    def _renew_after_fork(self) -> None:
        # The parent's threads do not exist in a forked child, and async
        # filesystems (s3fs, gcsfs, ...) refuse to run on the parent's loop: the
        # child makes its own on first use.
        self._lock = threading.Lock()
        self._executor = None

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The filesystem, opened again in a forked child (same arguments)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    fs = self._fs
                    self._fs = type(fs)(*fs.storage_args, **fs.storage_options)
                    self._pid = os.getpid()
        return self._fs

    # -- naming: the one URL-to-path mapping -------------------------------------
    def url(self, path: str) -> str:
        """The URL of a storage path."""
        return self.fs.unstrip_protocol(path)  # type: ignore[no-any-return]

    def path(self, url: str) -> str:
        """The storage path of a URL of this filesystem."""
        return self.fs._strip_protocol(url)  # type: ignore[no-any-return]

    def plain(self, path: str) -> bool:
        """Whether the filesystem reads ``path`` as the object it names (no version
        or other suffix it would cut off), spelled one way only (see `canonical_path`)."""
        return canonical_path(self.fs, path) == path

    def key_limit(self, path: str) -> int | None:
        """The store's longest name in bytes, if ``path`` is longer; else ``None``."""
        return None

    # -- errors: the one translation ---------------------------------------------
    def error(self, err: BaseException, action: str, path: str) -> ElliptioError:
        """``err`` as the `ElliptioError` to raise, its URL and secrets masked."""
        if isinstance(err, ElliptioError):
            return err
        where = self.redact(self.url(path))
        if isinstance(err, FileExistsError):
            return ArtifactExistsError(
                f"{where} exists already; committed files are never overwritten, "
                "so save the new content as a new artifact"
            )
        if isinstance(err, IsADirectoryError):
            return PlantedFileError(
                f"cannot {action} {where}: it is a folder, not a file elliptio wrote; "
                "someone with write access to the store made it. Remove it"
            )
        return StorageError(
            f"cannot {action} {where}: {type(err).__name__}: {self.redact(str(err))}; "
            f"{_next_step(err, action)}"
        )

    def _pool(self) -> Workers:
        # Created on first use (again in a forked child, see _renew_after_fork).
        with self._lock:
            if self._executor is None:
                self._executor = Workers(
                    max_workers=self.workers, thread_name_prefix="elliptio-storage"
                )
            return self._executor

    def inline(self, nbytes: int, nfiles: int) -> bool:
        """Whether a call moving ``nbytes`` over ``nfiles`` files may block the loop
        (never on a filesystem that may be a network away)."""
        return False

    async def run(
        self, action: str, path: str, func: Callable[..., T], *args: Any, inline: bool = False
    ) -> T:
        """Run a blocking call on the backend's threads (or here, if ``inline``);
        errors translated."""
        try:
            if inline:
                return func(*args)
            job = self._pool().submit(func, *args)
            try:
                return await asyncio.wrap_future(job)
            except asyncio.CancelledError:
                # The thread does not stop with the caller: the caller's clean-up
                # (removing a folder) waits until a write is done, so nothing lands
                # behind it. A read lands nothing (a download's reader stops writing
                # once it is cancelled): Ctrl-C ends it at once, not once the whole
                # file is read. A job still queued never starts.
                if not job.cancel() and action not in _READING:
                    with contextlib.suppress(Exception):
                        await asyncio.wrap_future(job)
                raise
        except Exception as err:
            raise self.error(err, action, path) from err

    # -- writing (never over an existing file) -------------------------------------
    def open_exclusive(self, path: str) -> IO[bytes]:
        """Open a new file for writing; fail if it exists (where the fs can tell)."""
        try:
            return self.fs.open(path, "xb")  # type: ignore[no-any-return]
        except Exception as err:
            raise self.error(err, "write", path) from err

    def _put_file(self, local: Path, path: str, progress: Any) -> HashResult:
        with open(local, "rb", buffering=0) as src, self.fs.open(path, "xb") as dst:
            return copy_hashing(src.readinto, dst.write, progress, os.fstat(src.fileno()).st_size)

    def _prepare(self, paths: Sequence[str]) -> None:
        """Whatever must exist before files are created at ``paths``."""

    async def put_files(self, items: Sequence[tuple[Path, str]], progress: Any) -> list[HashResult]:
        """Copy local files to new storage paths; sizes and sha256s in order.

        Files are split among at most `workers` threads, each copying its share
        one after the other: a thread hop per batch, not per file. On the first
        failure the others stop before their next file.
        """
        items = list(items)
        if not items:
            return []
        results: list[HashResult | None] = [None] * len(items)
        failed = threading.Event()

        def batch(indices: range) -> None:
            path = items[indices[0]][1]
            try:
                self._prepare([items[i][1] for i in indices])
                for i in indices:
                    if failed.is_set():
                        return
                    local, path = items[i]
                    child = _Stopping(progress.branched(str(local), self.url(path)), failed)
                    results[i] = self._put_file(local, path, child)
                    progress.relative_update(1)
            except _Stop:
                return  # another thread failed, or the call was cancelled
            except Exception as err:
                failed.set()
                raise self.error(err, "write", path) from err
            except BaseException:  # KeyboardInterrupt on the loop's thread stays itself
                failed.set()
                raise

        n = min(self.workers, len(items))
        if len(items) <= INLINE_FILES and self.inline(_total_size(items), len(items)):
            batch(range(len(items)))
            return [r for r in results if r is not None]
        pool = self._pool()
        jobs = [pool.submit(batch, range(k, len(items), n)) for k in range(n)]
        try:
            await gather_all(asyncio.wrap_future(job) for job in jobs)
        except BaseException:
            # Cancelled (Ctrl-C through the sync API), or a thread failed: the others
            # stop at their next chunk, and the caller's clean-up (removing the
            # folder) runs only once none of them writes any more.
            failed.set()
            running = [asyncio.wrap_future(job) for job in jobs if not job.cancel()]
            await asyncio.gather(*running, return_exceptions=True)
            raise
        return [r for r in results if r is not None]

    def _write_bytes(self, path: str, data: memoryview) -> HashResult:
        with self.fs.open(path, "xb") as dst:
            return copy_hashing(_reader(data), dst.write, None, len(data))

    def _write_sealed(self, path: str, data: memoryview, seal: Sequence[str] | None) -> HashResult:
        result = self._write_bytes(path, data)
        if seal is not None:
            self._seal([*seal, path])
        return result

    async def put_bytes(
        self, path: str, data: bytes | bytearray | memoryview, seal: Sequence[str] | None = None
    ) -> HashResult:
        """Write ``data`` to a new storage path (no temporary file); its size and sha256.

        Args:
            seal: files to `seal` together with this one once it is written, in
                the same call (a commit's files and its sidecar); ``None`` seals
                nothing.
        """
        view = memoryview(data).cast("B")
        inline = self.inline(len(view), 1 + len(seal or ()))
        return await self.run("write", path, self._write_sealed, path, view, seal, inline=inline)

    def _move(self, source: str, target: str) -> None:
        # One file to one path: ``mv`` would read glob characters in the paths.
        self.fs.cp_file(source, target)
        self.fs.rm_file(source)

    async def replace_bytes(self, path: str, data: bytes) -> None:
        """Put ``data`` at ``path`` in place of what is there, in one step: a reader
        sees the old bytes or the new, never a part (a sidecar that changes).

        The bytes go to a new object beside it first (sealed like it), then move
        over it; on object stores that move is a server-side copy.
        """
        temp = f"{path}.{uuid.uuid4().hex}.tmp"
        await self.put_bytes(temp, data, seal=[])
        try:
            await self.run("replace", path, self._move, temp, path)
        except BaseException:
            with contextlib.suppress(ElliptioError):
                await self.remove_file(temp)
            raise

    async def makedirs(self, path: str) -> None:
        """Create a folder where the filesystem has folders (a no-op here)."""

    def _seal(self, paths: Sequence[str]) -> None:
        """Make files read-only where the filesystem can (a no-op here)."""

    async def seal(self, paths: Sequence[str]) -> None:
        """Make committed files read-only where the filesystem can."""
        if paths:
            await self.run("protect", paths[0], self._seal, paths)

    # -- reading ---------------------------------------------------------------------
    def _stream(self, path: str, write: Writer | None, progress: Any) -> HashResult | None:
        try:
            src = self.fs.open(path, "rb")
        except FileNotFoundError:
            return None
        with src:
            if progress is not None:
                progress.set_size(getattr(src, "size", None))
            readinto = getattr(src, "readinto", None) or _reader_of(src)
            return copy_hashing(readinto, write, progress)

    async def stream(
        self, path: str, write: Writer | None, progress: Any = None
    ) -> HashResult | None:
        """Pass every byte of a stored file to ``write`` (on a worker thread), hashing.

        Returns:
            The size and sha256 of what was read, or ``None`` if there is no file.
        """
        return await self.run("read", path, self._stream, path, write, progress)

    def _exists(self, path: str) -> bool:
        if type(self.fs).exists is not fsspec.AbstractFileSystem.exists:
            return self.fs.exists(path)  # type: ignore[no-any-return]
        # fsspec's own answers False to every error (a refused connection too), which
        # would report a store that cannot be reached as one without the file.
        try:
            self.fs.info(path)
        except FileNotFoundError:
            return False
        except OSError as err:
            if err.errno == errno.ENOENT:  # a library's own OSError subclass (smbclient's)
                return False
            raise
        return True

    async def exists(self, path: str) -> bool:
        """Whether a storage path exists (an error that is no "not found" raises)."""
        return await self.run("check", path, self._exists, path)

    async def glob(self, pattern: str) -> list[str]:
        """Storage paths matching a glob pattern."""
        return await self.run("list", pattern, self.fs.glob, pattern)

    async def find(self, path: str) -> list[str]:
        """Every file under a folder."""
        found: list[str] = await self.run("list", path, self.fs.find, path)
        return found

    async def open_uploads(self, path: str) -> list[tuple[str, str, datetime | None]]:
        """Multipart uploads begun under a folder and neither completed nor aborted:
        ``(path, upload id, when begun)`` each; none on stores without them."""
        return []

    # -- removing ------------------------------------------------------------------
    async def abort_upload(self, path: str, upload_id: str) -> None:
        """End an upload of `open_uploads`, dropping the parts it holds."""

    def _remove_file(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    async def remove_file(self, path: str) -> None:
        """Remove one file, if it exists."""
        await self.run("remove", path, self._remove_file, path)

    def _remove_tree(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(rm_path(self.fs, path), recursive=True)

    async def remove_tree(self, path: str) -> None:
        """Remove a folder and everything under it, if it exists."""
        await self.run("remove", path, self._remove_tree, path)

    def close(self) -> None:
        """Stop the worker threads."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        self._executor = None


class _Stop(Exception):
    """A copy told to stop: another copy of its call failed, or the call was cancelled."""


class _Stopping:
    """A progress callback of one file's copy that stops the copy once ``stop`` is set."""

    def __init__(self, inner: Any, stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop

    def relative_update(self, inc: int = 1) -> None:
        if self._stop.is_set():
            raise _Stop
        self._inner.relative_update(inc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_live: weakref.WeakSet[Backend] = weakref.WeakSet()


def _renew_all() -> None:
    for backend in list(_live):
        backend._renew_after_fork()


os.register_at_fork(after_in_child=_renew_all)


class LocalBackend(Backend):
    """Local disk: ``O_EXCL`` creates, sealing, and no symlink followed inside the store.

    Args:
        root: the store's root; a storage path whose real location is not the
            same place under the root's real location (a symlink planted in the
            store) is never read, written, sealed or removed.
    """

    def __init__(self, fs: Any, root: str, **kwargs: Any) -> None:
        super().__init__(fs, **kwargs)
        self.root = root
        self._real_root: str | None = None

    def url(self, path: str) -> str:
        return path

    def plain(self, path: str) -> bool:
        return True  # made absolute, and compared through realpath where it matters

    def inline(self, nbytes: int, nfiles: int) -> bool:
        return nbytes <= INLINE_BYTES and nfiles <= INLINE_FILES

    def _real(self, path: str, action: str, checked: set[str] | None = None) -> str:
        """``path`` if no part of it below the root is a symlink; else an error.

        ``checked``: folders found no link earlier in the same call (not looked at
        again); the folders found now are added to it.
        """
        if not self._has_link(path, checked):
            return path
        if not path.startswith(self.root.rstrip("/") + "/"):  # a reference's source
            raise PlantedFileError(
                f"refusing to {action} {self.redact(path)}: it is (or lies under) a "
                "symbolic link, and elliptio reads references only where they really "
                f"lie: {self.redact(os.path.realpath(path))} (put its folder in "
                "ELLIPTIO_REFERENCE_ROOTS and reference it there)"
            )
        raise PlantedFileError(
            f"refusing to {action} {self.redact(path)}: it is (or lies under) a "
            "symbolic link inside the store, which elliptio never writes; someone "
            "with write access to the store made it. Remove the link"
        )

    def _has_link(self, path: str, checked: set[str] | None = None) -> bool:
        """Whether a part of ``path`` below the root is a symbolic link (see `_real`)."""
        prefix = self.root.rstrip("/") + "/"
        if path.startswith(prefix) and os.path.normpath(path) == path:
            # One lstat per part below the root, down to the first that does not exist.
            current = self.root.rstrip("/")
            for part in path[len(prefix) :].split("/"):
                current = f"{current}/{part}"
                if checked is not None and current in checked:
                    continue
                try:
                    found = os.lstat(current).st_mode
                except FileNotFoundError:
                    return False
                if stat.S_ISLNK(found):
                    return True
                if checked is not None and stat.S_ISDIR(found):
                    checked.add(current)
            return False
        real_root = self._real_root
        if real_root is None:
            real_root = os.path.realpath(self.root)
            if os.path.isdir(self.root):  # fixed once the root exists
                self._real_root = real_root
        rel = os.path.relpath(path, self.root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            # Outside the store (a reference's source): the root's own links, if the
            # store is reached through one, say nothing of where this path lies.
            return os.path.realpath(path) != os.path.normpath(path)
        return os.path.realpath(path) != os.path.normpath(os.path.join(real_root, rel))

    def _makedirs(self, folder: str) -> None:
        """Create ``folder``, never through a symbolic link planted in the store."""
        existing = folder
        while not os.path.lexists(existing) and existing != os.path.dirname(existing):
            existing = os.path.dirname(existing)
        if existing == folder or existing.startswith(self.root.rstrip("/") + "/"):
            self._real(existing, "write into")
        os.makedirs(folder, exist_ok=True)

    def _open_regular(self, path: str, action: str, checked: set[str] | None = None) -> int:
        """An fd of the regular file at ``path`` (no link, no FIFO, no device)."""
        fd = os.open(self._real(path, action, checked), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise PlantedFileError(
                f"refusing to {action} {self.redact(path)}: it is not a regular file, "
                "which elliptio never writes; someone with write access to the store made "
                "it. Remove it"
            )
        return fd

    def open_exclusive(self, path: str) -> IO[bytes]:
        try:
            self._makedirs(os.path.dirname(path))
            return open(path, "xb")
        except Exception as err:
            raise self.error(err, "write", path) from err

    def _create(self, path: str) -> int:
        # Read and write: a kernel copy hashes what landed by reading it back.
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0))

    def _prepare(self, paths: Sequence[str]) -> None:
        for folder in {os.path.dirname(p) for p in paths}:
            self._makedirs(folder)

    def _put_file(self, local: Path, path: str, progress: Any) -> HashResult:
        fd = self._create(path)
        try:
            with open(local, "rb", buffering=0) as src:
                found = os.fstat(src.fileno())
                if stat.S_ISREG(found.st_mode) and found.st_size >= KERNEL_COPY_MIN:
                    return copy_hashing(copying_reader(src.fileno(), fd), None, progress)
                write = functools.partial(write_all, fd)
                return copy_hashing(src.readinto, write, progress, found.st_size)
        finally:
            os.close(fd)

    def _write_sealed(self, path: str, data: memoryview, seal: Sequence[str] | None) -> HashResult:
        # Sealing looks at each folder once for all of ``seal`` and this file, after
        # its bytes are written: a link swapped in since the folder was made (for the
        # sidecar's folder, or the artifact's) is refused, never sealed through. The
        # new file is sealed through the fd it was made with.
        self._makedirs(os.path.dirname(path))
        fd = self._create(path)
        try:
            result = copy_hashing(_reader(data), functools.partial(write_all, fd), None, len(data))
            if seal is not None:
                checked: set[str] = set()
                self._seal(seal, checked)
                self._real(path, "seal", checked)
                self._seal_fd(fd, path)
            return result
        finally:
            os.close(fd)

    async def makedirs(self, path: str) -> None:
        await self.run("create", path, self._makedirs, path)

    def _move(self, source: str, target: str) -> None:
        # Over a sealed (read-only) file too: renaming needs only the folder writable.
        os.replace(self._real(source, "write"), self._real(target, "write"))

    def _seal(self, paths: Sequence[str], checked: set[str] | None = None) -> None:
        """Make committed files read-only (``chmod 0444``); symlinks are refused."""
        checked = set() if checked is None else checked  # a folder is checked once
        for path in paths:
            fd = self._open_regular(path, "seal", checked)
            try:
                self._seal_fd(fd, path)
            finally:
                os.close(fd)

    def _seal_fd(self, fd: int, path: str) -> None:
        if os.fstat(fd).st_nlink != 1:  # elliptio never makes hard links
            raise StorageError(
                f"refusing to seal {self.redact(path)}: it has other names (hard "
                "links), which elliptio never makes; remove them"
            )
        os.fchmod(fd, READ_ONLY)

    def _stream(self, path: str, write: Writer | None, progress: Any) -> HashResult | None:
        try:
            fd = self._open_regular(path, "read")
        except FileNotFoundError:
            return None
        with open(fd, "rb", buffering=0) as src:
            size = os.fstat(fd).st_size
            if progress is not None:
                progress.set_size(size)
            return copy_hashing(src.readinto, write, progress, size)

    def open_hashed(
        self, path: str, size: int | None = None
    ) -> tuple[io.FileIO, HashResult, os.stat_result]:
        """Open a stored file and hash it through the same open file, rewound.

        What the caller then reads is what was hashed, even if the path is
        changed meanwhile. A file whose size is not ``size`` (the recorded one)
        is not read: its sha256 comes back empty, which matches no record (a
        planted sparse file of a terabyte is refused at once). Also returns the
        file's status taken before it was hashed: a change since shows in it.
        """
        fd = self._open_regular(path, "read")
        src = io.FileIO(fd, "rb")
        try:
            status = os.fstat(fd)
            if size is not None and status.st_size != size:
                return src, (status.st_size, ""), status
            found = copy_hashing(src.readinto, None, None, status.st_size)
            src.seek(0)
        except BaseException:
            src.close()
            raise
        return src, found, status

    def _remove_tree(self, path: str) -> None:
        if os.path.lexists(path):
            super()._remove_tree(self._real(path, "remove"))

    def _remove_file(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._real(path, "remove"))


class PlantedFileError(StorageError):
    """What a store's path holds is not what elliptio writes there (a symbolic
    link, a FIFO, a folder): someone with write access to the store made it."""


def protocols(fs: Any) -> set[str]:
    """The protocols a filesystem answers to (fsspec gives a str or a tuple)."""
    return {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)


def is_remote(fs: Any) -> bool:
    """Whether a filesystem is a network away: not local disk, not this process's memory."""
    return not (isinstance(fs, LocalFileSystem) or protocols(fs) & {"file", "local", "memory"})


def make_backend(fs: Any, root: str, *, max_workers: int, part_size: int, redact: Any) -> Backend:
    """The backend for a filesystem: the S3 fast path, local disk, or generic fsspec."""
    from ._s3 import S3Backend, is_s3

    if is_s3(fs):
        return S3Backend(fs, part_size=part_size, max_workers=max_workers, redact=redact)
    if isinstance(fs, LocalFileSystem):
        return LocalBackend(fs, root, max_workers=max_workers, redact=redact)
    return Backend(fs, max_workers=max_workers, redact=redact)


def _total_size(items: Sequence[tuple[Path, str]]) -> int:
    """The bytes of the local files in ``items`` (unbounded if one cannot be read:
    the transfer then reports it)."""
    try:
        return sum(os.stat(local).st_size for local, _ in items)
    except OSError:
        return 2**63


def _reader(data: memoryview) -> Callable[[memoryview], int]:
    """A ``readinto`` over bytes in memory."""
    offset = 0

    def readinto(buffer: memoryview) -> int:
        nonlocal offset
        n = min(len(buffer), len(data) - offset)
        buffer[:n] = data[offset : offset + n]
        offset += n
        return n

    return readinto


def _reader_of(src: Any) -> Callable[[memoryview], int]:
    """A ``readinto`` over a file object that only has ``read``."""

    def readinto(buffer: memoryview) -> int:
        chunk = src.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    return readinto
