"""Transfer building blocks shared by every backend: the one hashing copy and bounded gathers.

Pure mechanics with no knowledge of URLs or errors: the storage backends
(`elliptio._backends`, `elliptio._s3`) build every transfer from these.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

from ._process import ProcessLocal
from ._workers import Workers

__all__ = [
    "CHUNK",
    "KERNEL_COPY_MIN",
    "CheckedReader",
    "HashResult",
    "copy_hashing",
    "copying_reader",
    "gather_all",
    "hash_file",
    "write_all",
]

# Read/write granularity of local copies and streamed reads. 4 MiB measured
# fastest for a 1 GB local copy (1 MiB and 16 MiB were within noise or slower).
CHUNK = 4 * 2**20
# Below this a chunk is hashed on the copying thread: a hop to the hash thread
# costs more than it saves.
_INLINE_HASH = 256 * 1024

T = TypeVar("T")
HashResult = tuple[int, str]
Reader = Callable[[memoryview], int]
Writer = Callable[[memoryview], object]

# Hashing runs beside the writes (hashlib releases the GIL on large buffers) on
# threads of its own: hash jobs never wait on anything, so they cannot
# deadlock behind the storage workers that submit them. Created on first use and
# made again in a forked child, whose copy of the threads does not exist.
_hash_pool = ProcessLocal(
    lambda: Workers(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="elliptio-hash")
)


def write_all(fd: int, view: memoryview) -> None:
    """Write every byte of ``view`` to ``fd`` (``os.write`` may write less)."""
    while view:
        written = os.write(fd, view)
        view = view[written:]


def copy_hashing(
    readinto: Reader, write: Writer | None, progress: Any = None, size_hint: int | None = None
) -> HashResult:
    """Move bytes from ``readinto`` to ``write``, hashing them in the same pass.

    The one hashing copy of elliptio: uploads, downloads, verified reads and
    re-hashes all go through it. Each chunk is read once; a large chunk's sha256
    update runs on the hash thread while the same buffer is written, so a large
    copy costs about max(hash, copy) rather than their sum (two buffers
    alternate, so reading the next chunk overlaps too).

    Args:
        readinto: fills a buffer, returns the bytes read (0 at the end).
        write: takes each chunk; ``None`` only hashes.
        progress: an fsspec callback told each chunk's size, or ``None``.
        size_hint: the expected size, so small files get small buffers.

    Returns:
        The size and sha256 hex digest of what was moved.
    """
    digest = hashlib.sha256()
    first = CHUNK if size_hint is None else max(1, min(CHUNK, size_hint + 1))
    buffers = [bytearray(first)]
    pending: Future[None] | None = None
    size = 0
    turn = 0
    try:
        while True:
            buffer = buffers[turn]
            n = readinto(memoryview(buffer))
            if not n:
                break
            view = memoryview(buffer)[:n]
            if pending is not None:
                pending.result()  # keeps the updates in order, frees the other buffer
                pending = None
            if n < _INLINE_HASH:
                digest.update(view)
            else:
                pending = _hash_pool.get().submit(digest.update, view)
                if len(buffers) == 1:
                    buffers.append(bytearray(len(buffer)))
            if write is not None:
                write(view)
            size += n
            if progress is not None:
                progress.relative_update(n)
            turn = (turn + 1) % len(buffers)
    finally:
        if pending is not None:
            pending.result()
    return size, digest.hexdigest()


# A local file at least this large is copied inside the kernel
# (`copying_reader`); pseudo-files (``/proc``, ``/sys``) report smaller sizes.
KERNEL_COPY_MIN = CHUNK


def copying_reader(src: int, dst: int) -> Reader:
    """A `copy_hashing` reader that copies file ``src`` to file ``dst`` as it goes.

    Each call moves the next chunk into ``dst`` and fills the buffer with that
    chunk as it landed there, so `copy_hashing` (with no writer) hashes the
    stored bytes. The move runs inside the kernel where it can:
    ``copy_file_range`` on one filesystem, ``sendfile`` across (Linux), and the
    chunk is read back from ``dst``'s page cache; the Python bytes copy of the
    write is gone, so a 1 GB copy costs about one sha256 pass. Where the kernel
    cannot copy between these files at all, before any byte moved, the chunk
    is read from ``src`` and written to ``dst`` instead, as is the rest after a
    kernel copy stops (a read confirms the end). ``dst`` must be open for
    reading too.
    """
    moves: list[Callable[[int], int]] = []
    if hasattr(os, "copy_file_range") and hasattr(os, "preadv"):  # Linux
        moves.append(lambda n: os.copy_file_range(src, dst, n))
        moves.append(lambda n: os.sendfile(dst, src, None, n))  # any file since 2.6.33
    moved = 0

    def readinto(buffer: memoryview) -> int:
        nonlocal moved
        while moves:
            try:
                n = moves[0](len(buffer))
            except OSError as err:
                # Before any byte moved, any refusal (another filesystem, an old
                # kernel, a sandbox's EPERM) hands over to the next way, as
                # shutil's fast copy does; a full disk is a full disk.
                if moved or err.errno == errno.ENOSPC:
                    raise
                moves.pop(0)
                continue
            if not n:
                # A read tells the end: kernel copies stop early on some files.
                moves.clear()
                break
            if os.preadv(dst, [buffer[:n]], moved) != n:
                raise OSError(errno.EIO, "the copy reads back shorter than what was copied")
            moved += n
            return n
        n = os.readv(src, [buffer])
        write_all(dst, buffer[:n])
        moved += n
        return n

    return readinto


def hash_file(path: str | os.PathLike[str]) -> HashResult:
    """The size and sha256 hex digest of a local file, read once."""
    with open(path, "rb", buffering=0) as f:
        return copy_hashing(f.readinto, None, size_hint=os.fstat(f.fileno()).st_size)


async def gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Await all, in order; on the first failure cancel the rest, wait, and raise it.

    Unlike `asyncio.gather`, nothing keeps running after a failure, so the caller
    can clean up knowing no transfer will land behind its back.
    """
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.wait(tasks)
    # Look at every exception (that marks it retrieved, so asyncio does not log
    # "Task exception was never retrieved" for the others), then raise the first.
    errors = [task.exception() for task in tasks if not task.cancelled()]
    first = next((err for err in errors if err is not None), None)
    if first is not None:
        raise first
    return [task.result() for task in tasks]


class CheckedReader(io.RawIOBase):
    """A file read through this object, checked against its sha256 as it is read.

    What the file held when it was opened was hashed already; this guards the
    reads themselves against a change made while it is open. Bytes read in order
    from the start are hashed as they pass; the read that reaches the recorded
    size raises ``mismatch()`` instead of returning its bytes when the hash or
    the size differ, so a sequential read (``read()``, a copy, a streamed
    download) never completes with changed bytes, and ``read()`` of the whole
    file never returns any. Every read (one in order that stops before the end,
    one after a seek: parquet reads its footer first, zip its central directory)
    is checked against the file's status (inode, size, modification and change
    times) taken before it was hashed at open: when that changed, the file is
    hashed again before the read returns, and ``mismatch()`` raised if it no
    longer matches. Bytes read through the descriptor (``fileno()``, as
    ``numpy.fromfile`` reads) are checked only by the hash taken at open.
    """

    def __init__(
        self,
        raw: io.FileIO,
        size: int,
        sha256: str,
        mismatch: Callable[[], Exception],
        name: str | None = None,
        status: os.stat_result | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._name = raw.name if name is None else name
        self._size = size
        self._sha256 = sha256
        self._mismatch = mismatch
        self._digest = hashlib.sha256()
        self._hashed = 0  # bytes hashed in order from the start
        self._bad = False
        self._stamp = _stamp(os.fstat(raw.fileno()) if status is None else status)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    @property
    def name(self) -> Any:
        """The path, as ``open()``'s file has it (readers name files by it)."""
        return self._name

    @property
    def mode(self) -> str:
        return "rb"

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._raw.seek(offset, whence)
        if position == 0:
            self._digest = hashlib.sha256()
            self._hashed = 0
        return position

    def readinto(self, buffer: Any) -> int:
        if self._bad:
            raise self._mismatch()
        if not memoryview(buffer).nbytes:
            return 0  # read(0): nothing asked, nothing read, and no sign of the end
        position = self._raw.tell()
        n = self._raw.readinto(buffer) or 0
        # Every read, in order or not: bytes read from the start are checked by the
        # hash only once the end is reached, and a reader that stops before it (zip
        # reads its first member after a seek back to 0) would get changed bytes.
        self._check_unchanged()
        if position != self._hashed:
            return n
        if n:
            self._digest.update(memoryview(buffer).cast("B")[:n])
            self._hashed += n
        if self._hashed > self._size or (
            (self._hashed == self._size or not n)
            and (self._hashed != self._size or self._digest.hexdigest() != self._sha256)
        ):
            self._bad = True
            raise self._mismatch()
        return n

    def _check_unchanged(self) -> None:
        """Raise ``mismatch()`` if the file changed since it was hashed at open:
        its status tells; a status changed by what keeps the bytes (``chmod``, a
        hard link, a removal of the path) costs one more hash, never an error."""
        stamp = _stamp(os.fstat(self._raw.fileno()))
        if stamp == self._stamp:
            return
        if stamp[1] == self._size:
            position = self._raw.tell()
            self._raw.seek(0)
            try:
                found = copy_hashing(self._raw.readinto, None, size_hint=self._size)
            finally:
                self._raw.seek(position)
            if found == (self._size, self._sha256):
                self._stamp = stamp
                return
        self._bad = True
        raise self._mismatch()

    def close(self) -> None:
        self._raw.close()
        super().close()


def _stamp(status: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file's bytes are written: inode, size, mtime, ctime."""
    return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
