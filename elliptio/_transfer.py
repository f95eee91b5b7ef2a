"""Transfer building blocks shared by every storage: hashing copies and bounded gathers.

Pure mechanics with no knowledge of URLs or errors: `Storage` and the S3 fast path
(`elliptio._s3`) build their transfers from these.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Awaitable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["CHUNK", "HashResult", "copy_hashing", "gather_all", "hash_file", "write_all"]

# Read/write granularity of local copies and streamed reads. 4 MiB measured
# fastest for a 1 GB local copy (1 MiB and 16 MiB were within noise or slower).
CHUNK = 4 * 2**20

T = TypeVar("T")
HashResult = tuple[int, str]

# Hashing runs beside the writes (hashlib releases the GIL on large buffers). Its
# own small pool, because hash jobs never wait on anything, so they cannot
# deadlock behind the storage workers that submit them. Made on first use and
# forgotten in a forked child, whose copy has no threads behind it.
_hash_pool: ThreadPoolExecutor | None = None
_hash_lock = threading.Lock()


def _hash_executor() -> ThreadPoolExecutor:
    global _hash_pool
    pool = _hash_pool
    if pool is None:
        with _hash_lock:
            if _hash_pool is None:
                _hash_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="elliptio-hash")
            pool = _hash_pool
    return pool


def _reset_after_fork() -> None:
    global _hash_pool, _hash_lock
    _hash_pool = None
    _hash_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def write_all(fd: int, view: memoryview) -> None:
    """Write every byte of ``view`` to ``fd`` (``os.write`` may write less)."""
    while view:
        written = os.write(fd, view)
        view = view[written:]


def hash_file(path: str | os.PathLike[str]) -> HashResult:
    """The size and sha256 hex digest of a local file, read once."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def copy_hashing(src: Any, dst_fd: int, progress: Any) -> HashResult:
    """Copy a binary file object to ``dst_fd``, hashing in the same pass.

    Each chunk is read once; its sha256 update runs on the hash pool while the
    same buffer is written, so a large copy costs about max(hash, copy) rather
    than their sum (two buffers alternate, so reading the next chunk overlaps too).

    Args:
        src: an object with ``readinto`` (a file opened ``"rb"``).
        dst_fd: an open file descriptor to write.
        progress: an fsspec callback, told each chunk's size.

    Returns:
        The size and sha256 hex digest of what was copied.
    """
    digest = hashlib.sha256()
    buffers = (bytearray(CHUNK), bytearray(CHUNK))
    pending: Future[None] | None = None
    size = 0
    turn = 0
    try:
        while True:
            buffer = buffers[turn]
            n = src.readinto(buffer)
            if not n:
                break
            view = memoryview(buffer)[:n]
            if n < 64 * 1024:  # handing tiny chunks to a thread costs more than it saves
                if pending is not None:
                    pending.result()
                    pending = None
                digest.update(view)
            else:
                if pending is not None:
                    pending.result()  # keeps the updates in order
                pending = _hash_executor().submit(digest.update, view)
            write_all(dst_fd, view)
            size += n
            progress.relative_update(n)
            turn ^= 1
    finally:
        if pending is not None:
            pending.result()
    return size, digest.hexdigest()


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
