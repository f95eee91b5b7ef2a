"""Storage: one root on one backend, and the one verified read routine.

`Storage` joins a `Backend` (`elliptio._backends`: local disk, generic fsspec,
or the S3 fast path) to the store's root, the local cache and the settings. It
adds what no backend should decide alone:

* where things may be: every file URL a record or sidecar names is checked
  against the root and the layout rules (`file_path`, `reference_owner`,
  `prefix_path`) before any byte is read, sealed or removed; a file of a
  reference artifact (`AsyncHandler.add_reference`) lies outside the store and
  is read only below a configured reference root (`source_path`);
* the one verified read: `read_bytes`, `download` and `verify` all stream the
  stored bytes through the backend's hashing copy and compare the sha256 with
  the record before anything is handed out or renamed into place.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.callbacks import DEFAULT_CALLBACK
from fsspec.implementations.local import LocalFileSystem

from ._backends import Backend, LocalBackend, canonical_path, is_remote, make_backend
from ._cache import Cache
from ._errors import (
    ConfigError,
    CorruptRecordError,
    ElliptioError,
    IntegrityError,
    InvalidPathError,
    StorageError,
)
from ._layout import LOGS_DIR, METADATA_RELPATH, RESERVED_DIR, split_stored_path
from ._progress import is_interactive, make_progress
from ._redact import has_credentials, known_secrets, redact_text, redact_url
from ._s3 import with_s3_defaults
from ._transfer import CheckedReader, HashResult, write_all

__all__ = [
    "DEFAULT_PART_SIZE",
    "HashingWriter",
    "Storage",
    "discard_temp",
    "open_filesystem",
    "temp_beside",
]

log = logging.getLogger(__name__)

# Multipart part size (and the largest single PUT). Measured with
# benchmarks/transfer.py against boto3's TransferManager on one 200 MB file.
DEFAULT_PART_SIZE = 8 * 2**20


# HTTP(S) timeouts in place of aiohttp's default (5 minutes for a whole request,
# which also cut off any download longer than that): connecting and each read get
# a bound of their own, a transfer as a whole none. Options the user gives win.
HTTP_CONNECT_SECONDS = 10.0
HTTP_READ_SECONDS = 60.0


def with_http_defaults(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` plus elliptio's timeouts for ``http(s)://`` URLs."""
    if not url.lower().startswith(("http://", "https://")):
        return options
    client = dict(options.get("client_kwargs", {}))
    if "timeout" not in client:
        import aiohttp

        client["timeout"] = aiohttp.ClientTimeout(
            total=None, sock_connect=HTTP_CONNECT_SECONDS, sock_read=HTTP_READ_SECONDS
        )
    return {**options, "client_kwargs": client}


def open_filesystem(
    url: str, options: Mapping[str, Any], redact: Callable[[str], str]
) -> tuple[Any, str]:
    """The fsspec filesystem and root path of a URL: the one place URLs are resolved.

    Raises:
        ConfigError: the URL cannot be opened (missing package, malformed, a chain
            of filesystems such as ``simplecache::s3://...``), or it
            carries a password that the filesystem would keep in its paths (and so
            in every file URL of every record).
    """
    safe = redact_url(url, whole=True)
    if "::" in url:
        # fsspec reads "a::b" as a chain of filesystems (simplecache::s3://...), even
        # inside a path or an IPv6 address: a wrapper would hide which filesystem
        # and path are meant, and so whether they lie in the store.
        raise ConfigError(
            f"cannot open {safe!r}: fsspec reads '::' as a chain of filesystems, which "
            "elliptio does not take; give the URL of the filesystem itself (elliptio "
            "caches what it reads on its own, see ELLIPTIO_CACHE_DIR), a host name "
            "instead of an IPv6 address, and no path holding '::'"
        )
    try:
        fs, root = fsspec.core.url_to_fs(
            url, **with_http_defaults(url, with_s3_defaults(url, dict(options)))
        )
    except (ImportError, ValueError, TypeError) as err:
        raise ConfigError(
            f"cannot open {safe!r}: {redact(str(err))}; install the filesystem's package "
            "(for s3://: pip install 'elliptio[s3]') or check the URL"
        ) from None
    if isinstance(getattr(fs, "fs", None), fsspec.AbstractFileSystem):
        # The same wrappers as a chain, named through options (simplecache:// with
        # target_protocol, dir:// with path): the files it writes have the wrapped
        # filesystem's URLs, which would not count as lying in the store.
        raise ConfigError(
            f"cannot open {safe!r}: it wraps another filesystem ({type(fs.fs).__name__}, "
            "named by its target_protocol, fs or path option), which elliptio does not "
            "take, as it takes no chain of filesystems ('::'); give the URL of that "
            "filesystem itself (elliptio caches what it reads on its own, see "
            "ELLIPTIO_CACHE_DIR)"
        )
    if any(f":{secret}@" in root for secret in known_secrets([url])):
        raise ConfigError(
            f"{safe!r} carries credentials that would be written into every record and "
            "log line; pass them in storage_options (ELLIPTIO_STORAGE_OPTIONS) instead"
        )
    if isinstance(fs, LocalFileSystem):
        root = os.path.abspath(os.path.expanduser(root))
    return fs, root


class _PastSize(ElliptioError):
    """A stored file is longer than its recorded size (raised by `_stop_past`; an
    `ElliptioError` so that the backends pass it through untranslated)."""


def _stop_past(size: int, error: Callable[[], Exception]) -> Callable[[Any], None]:
    """A writer for `copy_hashing` that keeps nothing and raises ``error()`` once
    more than ``size`` bytes went through it."""
    seen = 0

    def count(chunk: Any) -> None:
        nonlocal seen
        seen += len(chunk)
        if seen > size:
            raise error()

    return count


class HashingWriter(io.RawIOBase):
    """A binary writer that hashes and counts bytes as they pass to ``target``.

    ``on_close(size, sha256)`` is called once the target is closed cleanly.
    """

    def __init__(self, target: IO[bytes], on_close: Callable[[int, str], None]) -> None:
        import hashlib

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
    """The store's root on its backend; every method works on storage paths.

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
        reference_roots: Sequence[str] = (),
    ) -> None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigError("storage URL is empty; give a local path or an fsspec URL")
        options = dict(options or {})
        self.safe_url = redact_url(url)
        # Secrets of the URL and the options, masked in every message built from a
        # backend error (botocore, for one, quotes a bucket name with its userinfo).
        self._secrets = known_secrets([url], options)
        fs, root = open_filesystem(url, options, self._redact)
        if any(secret in root for secret in known_secrets([url])):  # '?token=x', ';sig=x'
            raise ConfigError(
                f"storage URL {redact_url(url, whole=True)!r} carries a secret that would "
                "be written into every file URL of every record; pass it in "
                "storage_options (ELLIPTIO_STORAGE_OPTIONS) instead"
            )
        self.options = options
        self.root: str = root.rstrip("/") or "/"
        self.backend: Backend = make_backend(
            fs, self.root, max_workers=max_workers, part_size=part_size, redact=self._redact
        )
        if not self.backend.plain(self.root):
            # Every file URL below it would be read as another object, so no upload
            # could land and no record written through the plain URL would read.
            canonical = canonical_path(fs, self.root)
            plain = self._redact(self.url(canonical)) if canonical.strip("/") else None
            raise ConfigError(
                f"storage URL {self.safe_url!r} names its folder in a spelling the "
                "filesystem reads as another path (a '.', '..' or empty segment, or on "
                "S3 a version): give "
                + (f"{plain!r}" if plain and canonical != self.root else "a folder's plain URL")
                + " as the storage URL (ELLIPTIO_STORAGE_URL)"
            )
        # Reads of remote stores go through the local cache; local and in-memory
        # stores are read in place (a local path of an in-memory file still needs it).
        self.is_local = isinstance(fs, LocalFileSystem)
        self.remote = is_remote(fs)
        self.cache = cache
        self.cache_reads = cache is not None and self.remote
        self.offline = offline
        self.progress = progress
        self.max_concurrency = max_workers
        self.reference_roots = [self._reference_root(r) for r in reference_roots]

    def _reference_root(self, url: object) -> str:
        """The storage path of a reference root, which must be on the store's filesystem."""
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"reference root {url!r} is not a URL (ELLIPTIO_REFERENCE_ROOTS)")
        if has_credentials(url):
            raise ConfigError(
                f"reference root {redact_url(url)!r} carries credentials; give them in "
                "storage_options (ELLIPTIO_REFERENCE_ROOTS)"
            )
        path = self._source(url.strip().rstrip("/"))
        if path is None:
            raise ConfigError(
                f"reference root {redact_url(url)!r} is not a folder URL on the store's "
                f"filesystem ({self.safe_url}): references are read with the store's "
                "filesystem and credentials (ELLIPTIO_REFERENCE_ROOTS)"
            )
        return path.rstrip("/") or "/"

    def _source(self, url: str) -> str | None:
        """The storage path of a URL on the store's filesystem, if it is a plain,
        canonical one (a local path is made absolute), else ``None``."""
        if self.is_local and "://" not in url:
            url = os.path.abspath(os.path.expanduser(url))
        path = self.path(url)
        if self.url(path) != url or not self.backend.plain(path):
            return None
        return path

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root.rstrip("/") + "/")

    def _check_root(self, path: str, what: str) -> str:
        """``path`` if it lies below a reference root of this handler.

        Raises:
            ConfigError: it lies below none.
        """
        if any(path.startswith(r.rstrip("/") + "/") for r in self.reference_roots):
            return path
        roots = [self._redact(self.url(r)) for r in self.reference_roots] or "none"
        raise ConfigError(
            f"{what} lies below none of the reference roots this handler may read "
            f"({roots}); add its folder to ELLIPTIO_REFERENCE_ROOTS (or reference_roots=)"
        )

    def new_source(self, url: str) -> str:
        """The storage path of a file or folder to reference (`AsyncHandler.add_reference`).

        Raises:
            InvalidPathError: it is no URL on the store's filesystem, lies inside
                the store, or is a folder that holds the store.
            ConfigError: it lies below no reference root of this handler.
        """
        shown = repr(self._redact(url))
        path = self._source(url.rstrip("/") or url)
        if path is None:
            raise InvalidPathError(
                f"{shown} is no plain URL on the store's filesystem ({self.safe_url}): "
                "references are read with the store's filesystem and credentials"
            )
        spellings = [(path, self.root)]
        if self.is_local:  # the store reached through a link is there by its real path too
            spellings.append((os.path.realpath(path), os.path.realpath(self.root)))
        if any(p == root or p.startswith(root.rstrip("/") + "/") for p, root in spellings):
            raise InvalidPathError(
                f"{shown} lies inside the store, where elliptio keeps what it commits; "
                "reference data outside the store, or upload it"
            )
        if any(root.startswith(p.rstrip("/") + "/") for p, root in spellings):
            # Walking it would take in the store's own files and sidecars.
            raise InvalidPathError(
                f"{shown} holds the store ({self.safe_url}); reference the folders "
                "beside the store instead, one by one"
            )
        if path in (r.rstrip("/") for r in self.reference_roots):
            return path  # a root itself: its files lie below it (`source_path` checks each)
        return self._check_root(path, shown)

    def source_path(self, url: str, what: str = "", *, allowed: bool = True) -> str:
        """The storage path of a file a reference artifact names, outside the store.

        Args:
            url: the file's URL, as recorded.
            what: the file and artifact, for messages.
            allowed: also require it to lie below a reference root of this
                handler (reads do; indexing a record does not read it).

        Raises:
            CorruptRecordError: it is no plain URL on the store's filesystem, or it
                lies inside the store.
            ConfigError: it lies below no reference root of this handler.
        """
        what = what or "a reference"
        path = self._source(url) if isinstance(url, str) else None
        if path is None:
            raise self._corrupt(what, url, "it is no plain URL on the store's filesystem")
        if self._inside(path):
            raise self._corrupt(what, url, "a reference never lies inside the store")
        if not allowed:
            return path
        return self._check_root(path, f"{what}, a reference to {self._redact(url)!r},")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The store's fsspec filesystem (its own in a forked child)."""
        return self.backend.fs

    # -- naming -------------------------------------------------------------
    def url(self, path: str) -> str:
        """The URL of a storage path: a plain absolute path on local disk."""
        return self.backend.url(path)

    def path(self, url: str) -> str:
        """The storage path of a URL of this store."""
        return self.backend.path(url)

    @property
    def root_url(self) -> str:
        """The URL of the store's root."""
        return self.url(self.root)

    def _redact(self, text: str) -> str:
        return redact_text(redact_url(text), self._secrets)

    def redact(self, text: str) -> str:
        """``text`` (a URL, a message) with the store's credentials masked."""
        return self._redact(text)

    # -- where things may be --------------------------------------------------
    def _stored(self, url: str) -> tuple[str, str, str, str]:
        """``(path, prefix path, artifact id, inner path)`` of a URL in this store.

        Raises:
            ValueError: the URL is not a canonical URL of a path under the root
                that follows the layout.
        """
        if not isinstance(url, str):
            raise ValueError("it is not a string")
        path = self.path(url)
        if self.url(path) != url or not self.backend.plain(path):
            raise ValueError("it is not a plain URL of this store")
        base = self.root.rstrip("/") + "/"
        if not path.startswith(base):
            raise ValueError(f"it lies outside the store's root {self._redact(self.root_url)!r}")
        prefix, artifact_id, inner = split_stored_path(path[len(base) :])
        return path, base + prefix, artifact_id, inner

    def _corrupt(self, what: str, url: object, reason: str) -> CorruptRecordError:
        shown = self._redact(url) if isinstance(url, str) else repr(url)
        return CorruptRecordError(
            f"{what} names {shown!r}, and {reason}; elliptio only reads, seals or removes "
            "paths that the layout gives that artifact under this store's root. Someone "
            "with write access to the catalog or the store changed it: check it with "
            "'elliptio verify' and restore the record from a backup or a sidecar"
        )

    def file_path(
        self,
        url: str,
        artifact_id: str,
        relpath: str,
        *,
        log: bool = False,
        reference: bool = False,
        allowed: bool = True,
    ) -> str:
        """The storage path of a file of ``artifact_id``, checked against the layout.

        The file must lie in that artifact's own folder at its relpath, or, for a
        deduplicated file, be a file (not the sidecar) of another artifact's
        folder under this root. A file of a reference artifact (``reference``)
        must lie outside the store, below a reference root unless ``allowed`` is
        false (see `source_path`).

        Raises:
            CorruptRecordError: anything else.
            ConfigError: a reference lies below no reference root.
        """
        what = f"{'log' if log else 'file'} {relpath!r} of {artifact_id}"
        if reference and not log:
            return self.source_path(url, what, allowed=allowed)
        try:
            path, _, owner, inner = self._stored(url)
        except ValueError as err:
            raise self._corrupt(what, url, str(err)) from None
        own = f"{LOGS_DIR}/{relpath}" if log else relpath
        if owner == artifact_id and inner != own:
            raise self._corrupt(what, url, f"it is not at {own!r} in that artifact's folder")
        if owner != artifact_id and not _is_file_of_artifact(inner):
            raise self._corrupt(what, url, "it is not a file of the artifact it names")
        return path

    def reference_owner(self, url: str) -> tuple[str | None, str | None]:
        """``(storage path, id of the artifact whose folder holds it)`` of a file
        another record names, if the layout allows it (used for deduplication);
        ``(None, None)`` otherwise."""
        try:
            path, _, owner, inner = self._stored(url)
        except ValueError:
            return None, None
        return (path, owner) if _is_file_of_artifact(inner) else (None, None)

    def sidecar_owner(self, url: str) -> str | None:
        """The id of the artifact whose sidecar ``url`` is, by the layout; ``None``
        for any other URL."""
        try:
            _, _, owner, inner = self._stored(url)
        except ValueError:
            return None
        return owner if inner == METADATA_RELPATH else None

    def prefix_path(self, prefix: str, artifact_id: str) -> str:
        """``prefix`` (a storage path) if it is the folder of ``artifact_id`` under the root.

        Raises:
            CorruptRecordError: it is anything else.
        """
        try:
            path, folder, owner, inner = self._stored(self.url(prefix))
        except ValueError as err:
            raise self._corrupt(f"the lease of {artifact_id}", prefix, str(err)) from None
        if owner != artifact_id or inner or path != folder:
            raise self._corrupt(
                f"the lease of {artifact_id}", prefix, "it is not that artifact's own folder"
            )
        return path

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
    def open_exclusive_sync(self, path: str) -> IO[bytes]:
        """Open a new file for writing; fail if it exists (where the fs can tell)."""
        return self.backend.open_exclusive(path)

    async def put_files(
        self, items: Sequence[tuple[Path, str]], progress: Any = DEFAULT_CALLBACK
    ) -> list[HashResult]:
        """Copy local files to new storage paths, concurrently; sizes and sha256s in order.

        Each file's bytes are hashed while they stream, in one pass; an existing
        storage path is never overwritten (`ArtifactExistsError`). On the first
        failure the other transfers stop before the error propagates.

        Args:
            items: ``(local file, storage path)`` pairs.
            progress: an fsspec callback for the whole transfer (see
                `progress_for`); each file gets ``progress.branched(...)`` for its
                bytes, and ``progress.relative_update(1)`` when it is done.
        """
        results = await self.backend.put_files(list(items), progress)
        if results and log.isEnabledFor(logging.INFO):
            log.info(
                "uploaded %d files, %d bytes, to %s",
                len(results),
                sum(size for size, _ in results),
                self._redact(self.url(items[0][1].rsplit("/", 1)[0])),
            )
        return results

    async def put_file(self, local: Path, path: str) -> HashResult:
        """Copy one local file to a new storage path; its size and sha256."""
        return (await self.put_files([(local, path)]))[0]

    async def write_bytes(
        self, path: str, data: bytes | bytearray | memoryview, seal: Sequence[str] | None = None
    ) -> HashResult:
        """Write ``data`` to a new storage path (no temporary file); its size and sha256.

        ``seal``: files to make read-only with it, in the same call (see `seal`).
        """
        return await self.backend.put_bytes(path, data, seal)

    async def replace_bytes(self, path: str, data: bytes) -> None:
        """Replace the bytes at ``path`` in one step (a sidecar whose record changed)."""
        await self.backend.replace_bytes(path, data)

    async def makedirs(self, path: str) -> None:
        """Create a folder on local disk (a no-op on object stores)."""
        await self.backend.makedirs(path)

    async def seal(self, paths: Sequence[str]) -> None:
        """Make committed files read-only where the filesystem has permissions (local disk).

        Object stores need no step: elliptio never writes an existing key, and S3
        Object Lock makes that a hard guarantee (see the README).
        """
        await self.backend.seal(paths)

    # -- reading: the one verified routine -------------------------------------
    def _mismatch(self, path: str, sha256: str, consequence: str) -> IntegrityError:
        if not path.startswith(self.root.rstrip("/") + "/"):
            return IntegrityError(
                f"{self._redact(self.url(path))}, a referenced file, no longer matches the "
                f"sha256 {sha256} recorded when it was added: its source changed. Restore "
                "it, or add a new reference to pin its new bytes"
            )
        return IntegrityError(
            f"{self._redact(self.url(path))} does not match its recorded sha256 {sha256}; "
            f"the stored file was changed or damaged; {consequence}"
        )

    def _missing(self, path: str) -> StorageError:
        if not path.startswith(self.root.rstrip("/") + "/"):
            return MissingFileError(
                f"{self._redact(self.url(path))}, a referenced file, is gone from its "
                "source; restore it there, or delete the reference artifact"
            )
        return MissingFileError(
            f"{self._redact(self.url(path))} is missing from the store: it was removed "
            "behind elliptio's back. Restore it from a backup; 'elliptio verify' lists "
            "the missing files of an artifact"
        )

    async def _read(
        self, path: str, write: Any, sha256: str | None, consequence: str, progress: Any = None
    ) -> HashResult:
        found = await self.backend.stream(path, write, progress)
        if found is None:
            raise self._missing(path)
        if sha256 is not None and found[1] != sha256:
            raise self._mismatch(path, sha256, consequence)
        return found

    async def hash_file(self, path: str, size: int | None = None) -> HashResult | None:
        """Size and sha256 of a stored file, or ``None`` if it does not exist.

        With ``size`` (the recorded one), a file longer than that is read no
        further: its sha256 comes back empty, which matches no record.
        """
        if size is None:
            return await self.backend.stream(path, None)
        try:
            return await self.backend.stream(path, _stop_past(size, _PastSize))
        except _PastSize:
            return size + 1, ""

    async def verify(self, path: str, sha256: str, size: int | None = None) -> None:
        """Re-hash a stored file in place against ``sha256``; with ``size`` (the
        recorded one), a longer file is refused once it has been read that far.

        Raises:
            IntegrityError: it does not match.
        """
        consequence = "restore it from a copy or re-create it"
        write = None
        if size is not None:
            write = _stop_past(size, lambda: self._mismatch(path, sha256, consequence))
        await self._read(path, write, sha256, consequence)

    def open_local(self, path: str, sha256: str, size: int | None = None) -> CheckedReader:
        """Open a file of a local store for reading, checked against ``sha256``
        (and ``size``, the recorded one, before any byte is hashed) through the
        very file object returned (blocking; local disk only): once when it is
        opened, and again as it is read (see `CheckedReader`), so a change made
        while it is open is caught too.

        Raises:
            IntegrityError: it does not match (at open, or by the read that
                reaches its end).
        """
        backend = self.backend
        assert isinstance(backend, LocalBackend)
        try:
            src, found, status = backend.open_hashed(path, size)
        except FileNotFoundError:
            raise self._missing(path) from None
        except Exception as err:
            raise backend.error(err, "read", path) from err
        if found[1] != sha256:
            src.close()
            raise self._mismatch(path, sha256, "restore it from a copy or re-create it")
        return CheckedReader(
            src,
            found[0],
            sha256,
            lambda: self._mismatch(
                path, sha256, "it changed while it was being read; restore it from a copy"
            ),
            name=path,
            status=status,
        )

    async def read_bytes(
        self, path: str, sha256: str | None = None, size: int | None = None
    ) -> bytes:
        """The bytes of a stored file, in memory, checked against ``sha256`` when
        given; with ``size``, a file that grew past it stops the read there (a
        planted gigabyte is not read into memory to find that it does not match)."""
        buffer = io.BytesIO()
        consequence = "restore it from a copy or re-create it"

        def write(chunk: Any) -> None:
            buffer.write(chunk)
            if size is not None and buffer.tell() > size:
                raise self._mismatch(path, sha256 or "", consequence)

        await self._read(path, write, sha256, consequence)
        return buffer.getvalue()

    async def download(
        self,
        path: str,
        local: Path,
        sha256: str | None = None,
        progress: Any = DEFAULT_CALLBACK,
        size: int | None = None,
        mode: int | None = None,
    ) -> None:
        """Copy a stored file to ``local`` atomically, verifying ``sha256``.

        The bytes go to a temporary file beside ``local``, hashed as they are
        written; only a verified copy is renamed into place, so a damaged
        download leaves nothing at ``local`` (and no temporary file). With
        ``size``, a file that grew past it stops the download there. ``mode``:
        the permissions of the file from its first byte (the cache's), else
        those a new file of this process gets.
        """
        # Made and renamed here, not on a thread: a cancelled download (another file
        # of the artifact failed) must not leave a temporary file or land its file.
        fd, tmp, made = temp_beside(local, mode)
        lock = threading.Lock()
        closed = False
        written = [0]
        consequence = f"nothing was written to {str(local)!r}"

        def write(view: memoryview) -> None:
            # The reading thread may outlive a cancelled await: it never writes to
            # the descriptor once it is closed (its number may be reused by then).
            with lock:
                if closed:
                    raise _Stopped(local)
                written[0] += len(view)
                if size is not None and written[0] > size:
                    raise self._mismatch(path, sha256 or "", consequence)
                write_all(fd, view)

        try:
            try:
                child = progress.branched(self.url(path), str(local))
                await self._read(path, write, sha256, consequence, child)
            finally:
                with lock:
                    closed = True
                    os.close(fd)
            os.replace(tmp, local)
            log.info("downloaded %s to %s", self._redact(self.url(path)), local)
            progress.relative_update(1)
        except BaseException:
            discard_temp(tmp, local, made)
            raise

    # -- housekeeping -------------------------------------------------------
    async def exists(self, path: str) -> bool:
        """Whether a storage path exists."""
        return await self.backend.exists(path)

    async def glob(self, pattern: str) -> list[str]:
        """Storage paths matching a glob pattern."""
        return await self.backend.glob(pattern)

    async def find(self, path: str) -> list[str]:
        """Storage paths of every file under a folder."""
        return await self.backend.find(path)

    async def remove_file(self, path: str) -> None:
        """Remove one file, if it exists."""
        await self.backend.remove_file(path)

    async def remove_tree(self, path: str) -> None:
        """Remove a folder and everything under it, if it exists."""
        await self.backend.remove_tree(path)

    def close(self) -> None:
        """Stop the worker threads."""
        self.backend.close()


class _Stopped(Exception):
    """A download's reader was told to stop: its download was cancelled."""


class MissingFileError(StorageError):
    """A recorded file is not in the store (raised as `StorageError`; readers of
    an artifact deleted meanwhile turn it into `ArtifactDeletedError`)."""


def _is_file_of_artifact(inner: str) -> bool:
    """Whether a path inside an artifact's folder is one of its files or logs."""
    return bool(inner) and (
        not inner.startswith(f"{RESERVED_DIR}/") or inner.startswith(f"{LOGS_DIR}/")
    )


def temp_beside(local: Path, mode: int | None = None) -> tuple[int, str, Path | None]:
    """A new temporary file beside ``local`` (its folder made if needed): fd, path,
    and the topmost folder made for it (``None`` if none was). The file has
    ``mode``, else the mode a new file of this process gets (0666 less the
    umask), not 0600.

    Raises:
        InvalidPathError: that folder cannot be made or written.
    """
    made = None
    folder = local.parent
    while not folder.exists() and folder != folder.parent:
        made, folder = folder, folder.parent
    try:
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".part")
    except OSError as err:
        discard_temp(None, local, made)
        raise InvalidPathError(
            f"cannot download to {str(local)!r}: {err.strerror or err}; give a path in a "
            "folder you can write (a missing folder is created)"
        ) from err
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666 & ~_umask() if mode is None else mode)
    return fd, tmp, made


def discard_temp(tmp: str | None, local: Path, made: Path | None) -> None:
    """Remove a temporary file of `temp_beside`, and the folders made for it if
    they are empty now (another download may be using them)."""
    if tmp is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if made is None:
        return
    folder = local.parent
    while True:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == made:
            return
        folder = folder.parent


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it, for
    every thread); 0o022 where the system does not tell."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022
