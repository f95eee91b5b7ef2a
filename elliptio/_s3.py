"""The S3 fast path: native async s3fs calls, parallel multipart, hashing in the same pass.

`S3Backend` is the storage backend (`elliptio._backends.Backend`) of an
``s3fs.S3FileSystem``: it overrides the transfers and inherits the rest (listing,
removal, naming, error translation) from the generic fsspec backend. What this path adds,
each kept because `benchmarks/transfer.py` measured it faster than the generic
calls or it gives a guarantee they cannot:

* Files of an artifact go concurrently as coroutines on s3fs's own event loop
  (no thread per file), at most ``max_concurrency`` requests in flight in total,
  small-file PUTs and multipart parts alike.
* A file up to ``part_size`` is one ``PutObject``; a larger one is a multipart
  upload whose parts are read and hashed in order on a worker thread while
  earlier parts are still being sent, so sha256 and size come from the single
  read of the file.
* Exclusive create: ``If-None-Match: *`` on ``PutObject`` and on
  ``CompleteMultipartUpload`` (S3 conditional writes), so a committed object is
  never replaced. A store that answers ``501 NotImplemented`` to conditional
  writes gets a documented fallback: a ``HEAD`` check before the write, which
  leaves a window between two writers of the same path (artifact paths hold a
  fresh uuid4, so only a deliberate collision can hit it); turn on S3 Object Lock
  for a hard guarantee.
* Server-side checksums: a single PUT carries ``ChecksumSHA256`` (the digest is
  known before sending, so S3 verifies the whole file for free); multipart parts
  carry CRC32, as boto3's TransferManager does, computed on the reading thread
  beside the sha256. Per-part SHA256 would be a second hash of every byte (S3's
  multipart SHA256 is a checksum of part checksums, not the file's sha256), a
  cost the benchmark can measure, so it is not used.
* Part size 8 MiB and ``max_concurrency`` 16 parts in flight: the fastest of
  8/16/32 MiB x 4/8/16 measured on one 200 MB file (`benchmarks/transfer.py`).
* Downloads stream one GET, hashing and writing each chunk on a worker thread
  while the next chunk arrives.

Faults: botocore retries a failed request (5xx, throttling, a reset or timed-out
connection; ``retries`` of ``with_s3_defaults``) and s3fs retries again on
connection errors. Two gaps are closed here. A streamed GET cut off mid-body is
resumed with a ranged GET from the first missing byte (``If-Match`` the ETag),
with bounded attempts, exponential backoff and jitter (`Backoff`). And a
conditional write whose answer was lost (its connection reset or timed out after
S3 stored the object) is refused on retry with ``412 PreconditionFailed`` (or
``NoSuchUpload`` for a completed multipart upload). So every write carries a
fresh token in its user metadata (``x-amz-meta-elliptio-write``); on a conflict
an object with this write's own token is this write and counts as success, while
any other object, even one with the same bytes, stays a conflict.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import hashlib
import logging
import os
import random
import sys
import uuid
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from fsspec.callbacks import DEFAULT_CALLBACK

from ._backends import Backend
from ._transfer import CHUNK, HashResult, Writer, gather_all
from ._workers import to_thread

__all__ = ["S3Backend", "is_s3"]

T = TypeVar("T")
# Below this, reading a local file on the event loop is cheaper than a thread hop.
INLINE_READ = 256 * 1024
# The longest key S3 stores, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
# How long the abort of a failed or interrupted multipart upload may take.
ABORT_SECONDS = 10.0


# Fail fast when the endpoint is down (offline detection, no retry storm): a short
# connect timeout and botocore's standard retries (client config ``max_attempts``
# counts retries: 3 retries, 4 attempts, with backoff) take about 3 s to give up
# instead of about 10 s. Options the user gives win.
FAIL_FAST_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "retries": {"max_attempts": 3, "mode": "standard"},
}


# User metadata key of the token that tells a write's own object from another's.
WRITE_ID_KEY = "elliptio-write"
# A cut-off download is tried at most this many times in a row without progress,
# and resumed at most STREAM_RESUMES times in all.
log = logging.getLogger(__name__)

STREAM_ATTEMPTS = 5
STREAM_RESUMES = 50


class Backoff:
    """Bounded retries with exponential backoff and jitter.

    Args:
        attempts: tries in a row (the first one included) before giving up.
        limit: retries in all, progress or not.
        base: seconds of the first wait; each next one doubles, up to ``cap``.
        cap: the longest wait.
    """

    def __init__(
        self,
        attempts: int = STREAM_ATTEMPTS,
        limit: int = STREAM_RESUMES,
        base: float = 0.1,
        cap: float = 5.0,
    ) -> None:
        self.attempts = attempts
        self.limit = limit
        self.base = base
        self.cap = cap
        self.failures = 0
        self.retries = 0

    def reset(self) -> None:
        """Forget the failures in a row so far (the last try made progress)."""
        self.failures = 0

    async def retry(self) -> bool:
        """Count a failure; wait and return True if another try is allowed."""
        self.failures += 1
        if self.failures >= self.attempts or self.retries >= self.limit:
            return False
        self.retries += 1
        delay = min(self.cap, self.base * 2 ** (self.failures - 1))
        log.debug(
            "retry %d (failure %d in a row), after up to %.2f s", self.retries, self.failures, delay
        )
        # "Equal jitter": at least half the delay, so clients that failed together
        # spread out without retrying at once.
        await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))
        return True


def _stream_broken(err: BaseException) -> bool:
    """Whether ``err`` from reading a response body means the connection broke."""
    import aiohttp
    from botocore.exceptions import (  # type: ignore[import-untyped]
        HTTPClientError,
        IncompleteReadError,
    )

    broken = (HTTPClientError, IncompleteReadError, aiohttp.ClientError, ConnectionError)
    return isinstance(err, (*broken, TimeoutError))


def with_s3_defaults(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` plus elliptio's fail-fast client config for ``s3://`` URLs."""
    if not url.startswith(("s3://", "s3a://")):
        return options
    config = {**FAIL_FAST_CONFIG, **options.get("config_kwargs", {})}
    if isinstance(config.get("retries"), dict):
        # botocore rewrites this dict in place (max_attempts -> total_max_attempts):
        # keep it away from the defaults above and from the caller's options.
        config["retries"] = dict(config["retries"])
    # No listings kept: s3fs answered exists() and info() from a listing made
    # before, so a process never saw another writer's change to a folder it had
    # listed (a removed key still there, an added one missing, old bytes).
    return {"use_listings_cache": False, **options, "config_kwargs": config}


def is_s3(fs: Any) -> bool:
    """Whether ``fs`` is an s3fs filesystem this fast path can drive."""
    # An s3fs filesystem exists only once s3fs is imported: a local or memory store
    # does not pay for importing it (about 0.3 s with botocore).
    s3fs = sys.modules.get("s3fs")
    return s3fs is not None and isinstance(fs, s3fs.S3FileSystem) and not fs.asynchronous


def _read_small(local: Path) -> bytes:
    # A read of a few KiB from the page cache: cheaper on the loop than a thread hop.
    return local.read_bytes()


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _not_implemented(err: BaseException) -> bool:
    return (isinstance(err, OSError) and err.errno == errno.ENOSYS) or "NotImplemented" in str(err)


class S3Backend(Backend):
    """Transfers on one s3fs filesystem, run as coroutines on its event loop.

    Every public coroutine may be awaited from any event loop: it hops to the
    filesystem's loop and back.

    Args:
        fs: the ``s3fs.S3FileSystem`` (not ``asynchronous``).
        part_size: bytes per multipart part; files up to this size are one PUT.
        max_workers: requests in flight at once for one call.
        redact: masks URLs and known secrets in a message.
    """

    def __init__(
        self, fs: Any, *, part_size: int, max_workers: int, redact: Callable[[str], str]
    ) -> None:
        super().__init__(fs, max_workers=max_workers, redact=redact)
        self.part_size = part_size
        # False once the store has answered 501 to If-None-Match (see module doc).
        self.conditional_writes = True

    def plain(self, path: str) -> bool:
        # s3fs cuts "?versionId=..." off a key: such a path names another object.
        return super().plain(path) and self.fs.split_path(path)[2] is None and "?" not in path

    def key_limit(self, path: str) -> int | None:
        # S3 refuses a key longer than 1024 bytes (KeyTooLongError) only when the
        # write reaches it, after the files before it went up.
        return MAX_KEY_BYTES if len(self._split(path)[1].encode()) > MAX_KEY_BYTES else None

    # -- plumbing -------------------------------------------------------------
    async def _on_fs_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.fs.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always called from a coroutine
            running = None
        if running is loop or running is None:
            return await coro
        finished = running.create_future()

        async def run() -> T:
            try:
                return await coro
            finally:
                with contextlib.suppress(RuntimeError):  # the caller's loop is closed
                    running.call_soon_threadsafe(_set_done, finished)

        try:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))
        except asyncio.CancelledError:
            # Cancelled here, the call goes on until its own clean-up is done (a
            # multipart upload aborted): wait for that, or the caller's clean-up
            # and the process's exit would overtake it.
            await asyncio.shield(finished)
            raise

    async def _guard(self, action: str, path: str, coro: Awaitable[T]) -> T:
        try:
            return await coro
        except Exception as err:
            raise self.error(err, action, path) from err

    def _split(self, path: str) -> tuple[str, str]:
        bucket, key, _ = self.fs.split_path(path)
        return bucket, key

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await self.fs._call_s3(method, **kwargs)

    async def _exclusive(self, path: str, method: str, token: str, **kwargs: Any) -> None:
        """Call a writing ``method`` so that it fails if ``path`` exists.

        ``token`` is the id this write stores under `WRITE_ID_KEY`: a conflict with
        an object that carries it is this write's own success whose answer was lost
        (see the module doc).
        """
        try:
            await self._create(path, method, **kwargs)
        except (FileExistsError, FileNotFoundError):
            if not await self._written_by(path, token):
                raise

    async def _create(self, path: str, method: str, **kwargs: Any) -> Any:
        if self.conditional_writes:
            try:
                return await self._call(method, IfNoneMatch="*", **kwargs)
            except OSError as err:
                if not _not_implemented(err):
                    raise
                self.conditional_writes = False
        if await self.fs._exists(path):
            raise FileExistsError(path)
        return await self._call(method, **kwargs)

    async def _written_by(self, path: str, token: str) -> bool:
        """Whether the object at ``path`` was stored by the write carrying ``token``."""
        bucket, key = self._split(path)
        try:
            head = await self._call("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return False
        return bool(head.get("Metadata", {}).get(WRITE_ID_KEY) == token)

    # -- writing ----------------------------------------------------------------
    async def put_files(self, items: Sequence[tuple[Path, str]], progress: Any) -> list[HashResult]:
        """Upload local files to new storage paths; their sizes and sha256s, in order."""
        return await self._on_fs_loop(self._put_files(list(items), progress))

    async def _put_files(self, items: list[tuple[Path, str]], progress: Any) -> list[HashResult]:
        slots = asyncio.Semaphore(self.max_workers)

        async def one(local: Path, path: str) -> HashResult:
            result = await self._guard(
                "write", path, self._upload_file(local, path, slots, progress)
            )
            progress.relative_update(1)
            return result

        return await gather_all(one(local, path) for local, path in items)

    async def _upload_file(
        self, local: Path, path: str, slots: asyncio.Semaphore, progress: Any
    ) -> HashResult:
        child = progress.branched(str(local), self.fs.unstrip_protocol(path))
        size = os.stat(local).st_size
        if size <= self.part_size:
            async with slots:
                if size <= INLINE_READ:
                    data = _read_small(local)
                else:
                    data = await to_thread(local.read_bytes)
                result = await self._put_small(path, data)
            child.relative_update(result[0])
            return result
        src = await to_thread(open, local, "rb")
        with src:
            return await self._put_multipart(path, src.read, slots, child)

    async def _put_small(self, path: str, data: bytes | bytearray) -> HashResult:
        if len(data) > INLINE_READ:
            digest = await to_thread(lambda: hashlib.sha256(data).digest())
        else:
            digest = hashlib.sha256(data).digest()
        bucket, key = self._split(path)
        token = uuid.uuid4().hex
        await self._exclusive(
            path,
            "put_object",
            token,
            Bucket=bucket,
            Key=key,
            Body=data,
            # Named as well as given: a bucket with an Object Lock default retention
            # refuses a PUT without Content-MD5 or x-amz-sdk-checksum-algorithm.
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=_b64(digest),
            Metadata={WRITE_ID_KEY: token},
        )
        self.fs.invalidate_cache(path)
        return len(data), digest.hex()

    async def _put_multipart(
        self,
        path: str,
        read: Callable[[int], bytes | bytearray],
        slots: asyncio.Semaphore,
        child: Any,
    ) -> HashResult:
        bucket, key = self._split(path)
        digest = hashlib.sha256()
        size = 0

        def next_part() -> tuple[bytes | bytearray, str]:
            part = read(self.part_size)
            digest.update(part)
            # The part's CRC32 here, beside the sha256, keeps botocore from computing
            # it on the event loop, where it would hold up every other request.
            return part, _b64(zlib.crc32(part).to_bytes(4, "big"))

        token = uuid.uuid4().hex
        mpu = await self._call(
            "create_multipart_upload",
            Bucket=bucket,
            Key=key,
            ChecksumAlgorithm="CRC32",
            Metadata={WRITE_ID_KEY: token},
        )
        upload_id = mpu["UploadId"]

        failed = False

        async def send(number: int, part: bytes | bytearray, crc32: str) -> dict[str, Any]:
            nonlocal failed
            try:
                out = await self._call(
                    "upload_part",
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                    ChecksumAlgorithm="CRC32",
                    ChecksumCRC32=crc32,
                )
            except BaseException:
                failed = True
                raise
            finally:
                slots.release()
            child.relative_update(len(part))
            done = {"PartNumber": number, "ETag": out["ETag"]}
            if "ChecksumCRC32" in out:
                done["ChecksumCRC32"] = out["ChecksumCRC32"]
            return done

        sends: list[asyncio.Task[dict[str, Any]]] = []
        try:
            while True:
                await slots.acquire()
                try:
                    part, crc32 = await to_thread(next_part)
                except BaseException:
                    slots.release()
                    raise
                if not part:
                    slots.release()
                    break
                size += len(part)
                sends.append(asyncio.create_task(send(len(sends) + 1, part, crc32)))
                if failed:
                    break  # stop reading; gather_all raises the part's error
            parts = await gather_all(sends)
            await self._exclusive(
                path,
                "complete_multipart_upload",
                token,
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            for task in sends:
                task.cancel()
            await asyncio.shield(self._abort(bucket, key, upload_id))
            raise
        self.fs.invalidate_cache(path)
        return size, digest.hexdigest()

    async def _abort(self, bucket: str, key: str, upload_id: str) -> None:
        # Best effort, and brief: a store that stopped answering would hold a Ctrl-C
        # for its read timeouts and retries; `gc` ends an upload left open.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self._call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id),
                ABORT_SECONDS,
            )

    async def open_uploads(self, path: str) -> list[tuple[str, str, datetime | None]]:
        return await self._on_fs_loop(self._guard("list", path, self._open_uploads(path)))

    async def _open_uploads(self, path: str) -> list[tuple[str, str, datetime | None]]:
        bucket, key = self._split(path)
        query: dict[str, Any] = {"Bucket": bucket, "Prefix": f"{key.rstrip('/')}/" if key else ""}
        found = []
        while True:
            page = await self._call("list_multipart_uploads", **query)
            for upload in page.get("Uploads", []):
                begun = upload.get("Initiated")
                found.append(
                    (
                        f"{bucket}/{upload['Key']}",
                        upload["UploadId"],
                        begun if isinstance(begun, datetime) else None,
                    )
                )
            if not page.get("IsTruncated"):
                return found
            query["KeyMarker"] = page.get("NextKeyMarker", "")
            query["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    async def abort_upload(self, path: str, upload_id: str) -> None:
        bucket, key = self._split(path)
        call = self._call("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
        await self._on_fs_loop(self._guard("abort", path, call))

    async def replace_bytes(self, path: str, data: bytes) -> None:
        """Put ``data`` at ``path`` over what is there: one PUT, which S3 makes
        visible whole or not at all (a sidecar that changes)."""
        bucket, key = self._split(path)
        call = self._call("put_object", Bucket=bucket, Key=key, Body=data)
        await self._on_fs_loop(self._guard("write", path, call))

    async def put_bytes(
        self, path: str, data: bytes | bytearray | memoryview, seal: Sequence[str] | None = None
    ) -> HashResult:
        """Write ``data`` to a new storage path; its size and sha256 (nothing to seal)."""
        return await self._on_fs_loop(self._guard("write", path, self._put_bytes(path, data)))

    async def _put_bytes(self, path: str, data: bytes | bytearray | memoryview) -> HashResult:
        if len(data) <= self.part_size:
            # botocore takes bytes or bytearray bodies, not memoryviews.
            body = data if isinstance(data, bytes | bytearray) else bytes(data)
            return await self._put_small(path, body)
        view = memoryview(data).cast("B")
        offset = 0

        def read(n: int) -> bytes:
            nonlocal offset
            part = bytes(view[offset : offset + n])
            offset += len(part)
            return part

        slots = asyncio.Semaphore(self.max_workers)
        return await self._put_multipart(path, read, slots, DEFAULT_CALLBACK)

    # -- reading ----------------------------------------------------------------
    async def stream(
        self, path: str, write: Writer | None, progress: Any = None
    ) -> HashResult | None:
        """Pass every byte of the object at ``path`` to ``write``, hashing; ``None``
        if there is no object."""
        return await self._on_fs_loop(
            self._guard("read", path, self._hashed(path, write, progress))
        )

    async def _hashed(self, path: str, write: Writer | None, progress: Any) -> HashResult | None:
        digest = hashlib.sha256()

        def consume(chunk: bytes) -> None:
            digest.update(chunk)
            if write is not None:
                write(memoryview(chunk))

        try:
            size = await self._get_stream(path, consume, progress)
        except FileNotFoundError:
            return None
        return size, digest.hexdigest()

    async def _get_stream(
        self, path: str, consume: Callable[[bytes], object], progress: Any
    ) -> int:
        """Stream one GET of ``path`` through ``consume`` on a worker thread.

        Consuming chunk n overlaps receiving chunk n + 1. A body cut off midway is
        resumed from the first byte not yet received (see the module doc).
        """
        bucket, key, version = self.fs.split_path(path)
        if version is None and "?versionId=" in path:
            # s3fs drops a version it is not "version_aware" for: the current
            # object's bytes would pass for those of the version asked for.
            version = path.rpartition("?versionId=")[2] or None
        which = {"Bucket": bucket, "Key": key} | ({"VersionId": version} if version else {})
        response = await self._call("get_object", **which)
        total = response.get("ContentLength")
        if progress is not None:
            progress.set_size(total)
        backoff = Backoff()
        pending: asyncio.Future[object] | None = None
        size = 0
        try:
            while True:
                try:
                    chunk = await response["Body"].read(CHUNK)
                except Exception as err:
                    if not _stream_broken(err) or size == total or not await backoff.retry():
                        raise
                    response["Body"].close()
                    response = await self._call(
                        "get_object",
                        **which,
                        Range=f"bytes={size}-",
                        IfMatch=response["ETag"],
                    )
                    continue
                if not chunk:
                    break
                backoff.reset()
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(to_thread(consume, chunk))
                size += len(chunk)
                if progress is not None:
                    progress.relative_update(len(chunk))
            if pending is not None:
                await pending
        finally:
            response["Body"].close()
            if pending is not None and not pending.done():
                # The caller closes the file ``consume`` writes to once we return.
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending)
        return size
