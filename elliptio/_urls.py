"""URL tools on any fsspec URL, with a local cache and an offline mode.

The s3stasher feature set on every filesystem fsspec knows: open, local copies,
write-then-upload, ls, exists, cp, mv, rm, and cache housekeeping. Reads of plain
URLs go through the content-addressed `Cache`; the URL's version (ETag, version
id, or size and mtime) is checked at most once per ``revalidate_seconds``, so a
warm read sends no request at all. Offline (forced by ``ELLIPTIO_OFFLINE=1``, or
when the storage cannot be reached) cached copies stay readable and anything that
needs the network raises `OfflineError` naming what is missing.

Built on the storage backends (`elliptio._backends`): URLs resolve through
`elliptio._storage.open_filesystem` (a URL with a password in it is refused),
every byte moves through the backend's hashing copy, and every backend error is
translated by the backend's one `error` (URLs and secrets masked).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import hashlib
import io
import json
import logging
import numbers
import os
import posixpath
import shutil
import stat
import sys
import tempfile
import time
import urllib.parse
import uuid
import weakref
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractBufferedFile

from ._backends import Backend, canonical_path, is_remote, make_backend, protocols, rm_path
from ._cache import Cache
from ._catalog.none import StorageOnlyCatalog
from ._config import Settings, load_settings
from ._errors import (
    ArgumentTypeError,
    ArtifactNotFoundError,
    ConfigError,
    ElliptioError,
    FileNotInArtifactError,
    InvalidPathError,
    OfflineError,
    StorageError,
    UrlNotFoundError,
    UsageError,
)
from ._layout import ALIASES_DIR
from ._process import ProcessLocal
from ._redact import has_credentials, is_secret_name, known_secrets, redact_text, redact_url
from ._runs import inherited_handler
from ._storage import DEFAULT_PART_SIZE, discard_temp, open_filesystem, temp_beside
from ._sync import sync
from ._transfer import copy_hashing, write_all

if TYPE_CHECKING:
    from ._artifact import Artifact, File
    from ._handler import AsyncHandler
    from ._storage import Storage

T = TypeVar("T")
log = logging.getLogger(__name__)

__all__ = [
    "UrlTools",
    "cache_size",
    "clear_cache",
    "cp",
    "default_tools",
    "exists",
    "is_unreachable",
    "local_copy",
    "ls",
    "mv",
    "open",
    "prune_cache",
    "rm",
    "write",
]

_VERSION_KEYS = (
    "VersionId",
    "version_id",
    "generation",
    "ETag",
    "etag",
    "md5Hash",
    "Content-MD5",
    "Digest",
)
_STAMP_KEYS = ("mtime", "LastModified", "Last-Modified", "created")
_UNREACHABLE_NAMES = ("ConnectError", "ConnectionError", "ConnectTimeout", "EndpointConnection")


def is_unreachable(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from) means "cannot reach it"."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        if any(part in t.__name__ for t in type(current).__mro__ for part in _UNREACHABLE_NAMES):
            return True
        # An HTTP gateway's answer for a server behind it that is down or overloaded.
        if _http_status(current) in (502, 503, 504):
            return True
        current = current.__cause__ or current.__context__
    return False


class UrlTools:
    """The URL tools bound to one set of settings (cache folder, offline, options)."""

    def __init__(self, settings: Settings, handler: AsyncHandler | None = None) -> None:
        self.settings = settings
        # A handler's own tools (``h.urls``) look records up in its catalog, which
        # may be an object the settings cannot name (a Catalog, a client, memory://).
        self._handler = weakref.ref(handler) if handler is not None else None
        if handler is not None:
            _handlers.add(handler)
        self.cache = Cache(
            settings.resolved_cache_dir(), settings.file_mode, settings.cache_max_bytes or None
        )
        self._store_protocol = fsspec.core.split_protocol(settings.resolved_storage_url())[0]
        self._secrets = known_secrets([settings.storage_url], settings.storage_options)
        self._backends: dict[tuple[type, int | str], Backend] = {}
        self._store: tuple[type, str] | None = None

    def _redact(self, text: str) -> str:
        return redact_text(redact_url(text), self._secrets)

    # -- plumbing ---------------------------------------------------------------
    def _backend(self, url: str) -> tuple[Backend, str]:
        """The backend of a URL's filesystem and the URL's storage path."""
        if not isinstance(url, str | os.PathLike) or not os.fspath(url):
            raise StorageError(f"{url!r} is not a URL or path")
        url = os.fspath(url)
        if has_credentials(url):
            # They would be echoed by backend errors and kept in the cache's records.
            raise ConfigError(
                f"{redact_url(url, whole=True)!r} carries credentials in the URL; pass them in "
                "storage_options (ELLIPTIO_STORAGE_OPTIONS) instead"
            )
        options = self._options_for(url)
        try:
            fs, path = open_filesystem(url, options, self._redact)
        except ElliptioError as err:
            raise StorageError(str(err)) from None
        # fsspec hands out one instance per set of arguments, but makes a new one on
        # every call for a filesystem that is not cachable (elliptio://): those are
        # told apart by their arguments' token, or each call would keep one more.
        cachable = getattr(type(fs), "cachable", True)
        key = (type(fs), id(fs) if cachable else str(getattr(fs, "_fs_token", id(fs))))
        backend = self._backends.get(key)
        if backend is None:
            backend = self._backends[key] = make_backend(
                fs,
                "/",
                max_workers=self.settings.max_concurrency,
                part_size=DEFAULT_PART_SIZE,
                redact=self._redact,
            )
        return backend, path

    def _options_for(self, url: str) -> dict[str, Any]:
        """The storage options for ``url``: those of the store of another open
        handler of this process when it lies there (outside this store), else this
        store's for URLs of its protocol (endpoint, credentials), else none."""
        protocol = fsspec.core.split_protocol(url)[0]
        mine = protocol == self._store_protocol
        if not (mine and _under(url, self.settings.resolved_storage_url())):
            for other in list(_handlers):
                if not other._closed and _under(url, other.storage.root_url):
                    return dict(other.storage.options)
        return self.settings.storage_options if mine else {}

    # -- files of the configured store ---------------------------------------------------
    def _store_path(
        self,
        backend: Backend,
        path: str,
        store: tuple[type, str] | None = None,
        real: Callable[[str], str] = os.path.realpath,
    ) -> str | None:
        """``path`` as a path of the store of these settings (its artifacts' files) if
        it lies in it: as given, or on local disk reached through a symbolic link
        outside the store (``/home/me/lake`` for a store at ``/data/me/lake``).
        ``store``: another store's ``(filesystem type, root)`` instead; ``real``:
        ``os.path.realpath``, or a memo of it for checks of one path against many."""
        kind, root = store or self._store_root()
        if type(backend.fs) is not kind:
            return None
        if path == root or path.startswith(root + "/"):
            return path
        if not isinstance(backend.fs, LocalFileSystem):
            # Spellings the filesystem reads as the same object: 's3:///bucket/key',
            # 'lake//x', 'lake/./x', 'lake/a/../x'.
            canonical = canonical_path(backend.fs, path)
            if canonical == root or canonical.startswith(root + "/"):
                return canonical
            return None
        real_root = real(root)
        spots = [real(path)]
        if os.path.islink(path):
            # A link is where it lies, not only where it points: one in the store,
            # reached through a link to the store, is the store's (rm takes the link).
            spots.append(os.path.join(real(os.path.dirname(path)), os.path.basename(path)))
        for resolved in spots:
            if resolved == real_root or resolved.startswith(real_root.rstrip("/") + "/"):
                return root + resolved[len(real_root) :]
        return None

    def _store_root(self) -> tuple[type, str]:
        """The filesystem type and root path of the store of these settings."""
        if self._store is None:
            url = self.settings.resolved_storage_url()
            self._store = _store_key(
                *open_filesystem(url, self.settings.storage_options, self._redact)
            )
        return self._store

    def _inherited_store(self) -> tuple[tuple[type, str], str, str | None] | None:
        """The store of the run this process was started in (``(filesystem type,
        root)``, its storage URL, its catalog URL), if that names one: a child
        started inside ``h.run()`` reads and guards it as ``h``'s own process does."""
        inherited = inherited_handler()
        storage = inherited.get("storage")
        if storage is None:
            return None
        try:
            key = _store_key(*open_filesystem(storage, {}, self._redact))
        except ElliptioError:
            return None
        return key, storage, inherited.get("catalog")

    def _stores(self) -> list[tuple[type, str]]:
        """The store of these settings, that of the run this process was started
        in, then that of every handler of this process: the URL tools write, move
        or remove nothing in any of them."""
        stores = [self._store_root()]
        if (inherited := self._inherited_store()) is not None:
            stores.append(inherited[0])
        stores += [_store_key(h.storage.fs, h.storage.root) for h in list(_handlers)]
        return list(dict.fromkeys(stores))

    def _holding(self, backend: Backend, path: str) -> str | None:
        """The root of a store (see `_stores`) that the folder ``path`` holds, if any."""
        real = functools.cache(os.path.realpath)
        for store in self._stores():
            if self._holds_store(backend, path, store, real):
                return store[1]
        return None

    @staticmethod
    def _holds_store(
        backend: Backend, path: str, store: tuple[type, str], real: Callable[[str], str]
    ) -> bool:
        """Whether ``store`` (``(filesystem type, root)``) lies inside the folder
        ``path`` (on local disk also as reached through symbolic links), so removing
        or moving it takes the store; ``real``: a memo of ``os.path.realpath``."""
        kind, root = store
        if type(backend.fs) is not kind:
            return False
        top = path.rstrip("/")
        if not isinstance(backend.fs, LocalFileSystem):
            top = canonical_path(backend.fs, top).rstrip("/")
        if not top or root == top or root.startswith(top + "/"):
            return True
        if isinstance(backend.fs, LocalFileSystem):
            resolved, real_root = real(path).rstrip("/"), real(root)
            return not resolved or real_root == resolved or real_root.startswith(resolved + "/")
        return False

    def _refuse_holding(
        self, url: str, backend: Backend, path: str, what: str, next_step: str
    ) -> None:
        """Refuse to ``what`` the folder ``path`` when a store (see `_stores`) lies in it."""
        held = self._holding(backend, path)
        if held is not None:
            raise InvalidPathError(
                f"cannot {what} {redact_url(url)!r}: the elliptio store lies in it "
                f"({redact_url(backend.url(held))}); {next_step}, or give a folder that "
                "does not hold the store"
            )

    def _refuse_store_or_root(self, url: str, backend: Backend, path: str, what: str) -> None:
        """Refuse to remove or move the store, anything in it, a folder holding it,
        or the root of a local filesystem."""
        self._refuse_in_store(url, backend, path, what)
        self._refuse_holding(
            url,
            backend,
            path,
            what,
            "its committed artifacts never change; delete "
            "artifacts with Handler.delete() (elliptio delete)",
        )
        if isinstance(backend.fs, LocalFileSystem) and os.path.realpath(path) == "/":
            raise InvalidPathError(f"cannot {what} {redact_url(url)!r}: it is the root folder")

    def _readers(
        self, backend: Backend, path: str
    ) -> list[tuple[str, Storage, Callable[[str], Artifact]]]:
        """``(path in the store, its storage, get an artifact by id)`` for each store
        ``path`` lies in: the store of these settings (through the handler of these
        tools, when its catalog is one no URL names), then that of the run this
        process was started in, then that of every open handler of this process,
        also one given its store in code."""
        found: list[tuple[str, Storage, Callable[[str], Artifact]]] = []
        own = self._handler() if self._handler is not None else None
        stored = self._store_path(backend, path)
        if stored is not None:
            if own is not None and own._private_catalog and not own._closed:
                found.append((stored, own.storage, _getter(own)))
            else:
                from ._protocol import ElliptioFileSystem

                s = self.settings
                handler = ElliptioFileSystem(
                    s.resolved_storage_url(), s.resolved_catalog_url(), s.storage_options
                ).handler
                found.append((stored, handler.storage, _getter(handler.aio)))
        real = functools.cache(os.path.realpath)
        inherited = self._inherited_store()
        if inherited is not None and inherited[0] != self._store_root():
            in_run = self._store_path(backend, path, inherited[0], real)
            if in_run is not None:
                from ._protocol import ElliptioFileSystem

                handler = ElliptioFileSystem(inherited[1], inherited[2]).handler
                found.append((in_run, handler.storage, _getter(handler.aio)))
        # A handler that writes to storage only cannot vouch for anything: asked
        # last, its store still counts (its refusal, never an unchecked read).
        others = sorted(
            (h for h in list(_handlers) if not h._closed),
            key=lambda h: isinstance(h.catalog, StorageOnlyCatalog),
        )
        for other in others:
            if found and other is own:
                continue
            store = _store_key(other.storage.fs, other.storage.root)
            in_other = self._store_path(backend, path, store, real)
            if in_other is not None:
                found.append((in_other, other.storage, _getter(other)))
        return found

    def _store_file(self, backend: Backend, path: str) -> File | None:
        """The committed artifact file at ``path`` of a store, if it is one.

        Its bytes then leave the store only through the verified read path, and
        the read counts as reading the artifact (lineage), as for any `File`.
        Stores are tried in the order of `_readers`; the first whose catalog holds
        the artifact answers. An ``elliptio://`` URL names its artifact's file.
        """
        from ._protocol import ElliptioFileSystem

        if isinstance(backend.fs, ElliptioFileSystem):
            # Read through the artifact, as pd.read_csv(eio_url) reads it: its own
            # cache and offline rules, and the read counted as an input.
            return backend.fs._artifact_file(path)
        readers = self._readers(backend, path)
        if not readers:
            return None
        errors: list[ElliptioError] = []
        for stored, storage, get in readers:
            try:
                return self._file_of(backend, stored, storage, get)
            except FileNotInArtifactError:
                raise  # what the path is, whichever catalog is asked
            except ElliptioError as err:  # this catalog holds no record, or cannot answer
                errors.append(err)
        # A catalog that could not answer says more than one that has no record,
        # which says more than a handler that keeps no records (catalog='none').
        raise min(errors, key=_telling)

    def _file_of(
        self, backend: Backend, stored: str, storage: Storage, get: Callable[[str], Artifact]
    ) -> File | None:
        """`_store_file` in one store: ``None`` for a sidecar or the copy of a name's
        aliases (read as they are)."""
        url = storage.url(stored)
        if not storage.backend.plain(stored):
            # Another object than the path names (an S3 version of it): not what
            # any record vouches for, so never read past the check.
            raise FileNotInArtifactError(
                f"{redact_url(url)} names a version or another form of a path in the "
                "elliptio store, which no record vouches for, so it is not read; read "
                "the artifact's file by its URL (file.url) or its eio_url"
            )
        _, owner = storage.reference_owner(url)
        if owner is None:
            metadata = storage.sidecar_owner(url) is not None or _aliases_copy(storage.root, stored)
            if metadata and not _linked(backend, storage.root, stored):
                return None  # a sidecar or the copy of a name's aliases, read as it is
            raise FileNotInArtifactError(
                f"{redact_url(url)} lies in the elliptio store but is no file of a "
                "committed artifact, so nothing vouches for its bytes and it is not read; "
                "read artifact files through a handler (h.get(...).files)"
            )
        try:
            artifact = get(owner)
        except ArtifactNotFoundError as err:
            # No record vouches for the bytes: a commit that never finished, what a
            # delete left behind, or an artifact of a catalog these settings do not name.
            raise ArtifactNotFoundError(
                f"{redact_url(url)} lies in the folder of {owner} in the elliptio store, "
                f"but no record vouches for its bytes ({err}), so it is not read. Read "
                "it through a handler on the catalog that holds the artifact; `elliptio "
                "reindex` restores a whole artifact's record from its sidecar"
            ) from err
        found = [f for f in [*artifact.files.values(), *artifact.logs.values()] if f.url == url]
        if found:
            return found[0]
        raise FileNotInArtifactError(
            f"{redact_url(url)} lies in the folder of {owner} in the elliptio store, but is "
            "no file of its record, so nothing vouches for its bytes and it is not read; "
            f"its files: {', '.join(sorted(artifact.files)) or 'none'}"
        )

    def _refuse_in_store(
        self,
        url: str,
        backend: Backend,
        path: str,
        what: str,
        real: Callable[[str], str] | None = None,
    ) -> None:
        """Refuse a write into a store (see `_stores`); ``real``: a memo of
        ``os.path.realpath`` shared by the checks of one operation."""
        from ._protocol import ElliptioFileSystem

        if isinstance(backend.fs, ElliptioFileSystem):
            backend.fs._refuse(path)  # ImmutableError now, before anything is written
        real = real or functools.cache(os.path.realpath)
        if any(self._store_path(backend, path, store, real) for store in self._stores()):
            raise InvalidPathError(
                f"cannot {what} {redact_url(url)!r}: it lies in the elliptio store, whose "
                "committed artifacts never change; write new files with Handler.new() or "
                "Handler.upload()"
            )

    def _call(self, backend: Backend, action: str, path: str, func: Callable[..., T], *a: Any) -> T:
        """A blocking call of the backend's filesystem, its errors translated."""
        try:
            return func(*a)
        except UrlNotFoundError:
            raise
        except FileNotFoundError as err:
            if _not_found(err):
                raise _missing(backend, path) from err
            raise backend.error(err.__cause__ or err, action, path) from err
        except OfflineError:
            raise
        except (FileExistsError, NotADirectoryError) as err:  # a path of the user's
            raise InvalidPathError(
                f"cannot {action} {redact_url(backend.url(path))!r}: something exists there "
                "already (a file where a folder is needed); remove it or choose another target"
            ) from err
        except Exception as err:
            raise backend.error(err, action, path) from err

    # What the cache knows of a URL it fetched is kept under the URL as its
    # filesystem spells it (however it was written) and where that filesystem
    # talks to: the same bucket and key on another endpoint is another file. The
    # file is named by the sha256 of both, the URL whole (two URLs told apart by a
    # query parameter that redaction masks are two files); the record holds them
    # with secrets masked (a presigned URL's signature, a token in the query): no
    # secret is written to the cache, in a file or in a file name.
    def _record_place(self, backend: Backend, path: str) -> tuple[Path, dict[str, str]]:
        """The record's file, and what it holds of the URL."""
        url, where = backend.url(path), _endpoint(backend)
        key = hashlib.sha256(json.dumps([url, where]).encode("utf-8", "surrogatepass")).hexdigest()
        return self.cache.root / "urls" / key[:2] / f"{key}.json", {
            "url": redact_url(url),
            "where": where,
        }

    def _record(self, backend: Backend, path: str) -> dict[str, Any] | None:
        file, wanted = self._record_place(backend, path)
        try:
            record: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if all(record.get(k) == v for k, v in wanted.items()) else None

    def _save_record(self, backend: Backend, path: str, sha256: str, version: str) -> None:
        file, known = self._record_place(backend, path)
        record = {**known, "sha256": sha256, "version": version, "checked": time.time()}
        self.cache.write_text(file, json.dumps(record))

    def invalidate(self, url: str, recursive: bool = False) -> None:
        """Forget the cached version of ``url`` (and of URLs under it if recursive)."""
        self._forget(*self._backend(os.fspath(url)), recursive=recursive)

    def _forget(self, backend: Backend, path: str, *, recursive: bool = False) -> None:
        file, wanted = self._record_place(backend, path)
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
        if recursive:
            prefix = wanted["url"].rstrip("/") + "/"
            for record_file in (self.cache.root / "urls").glob("*/*.json"):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    record = json.loads(record_file.read_text(encoding="utf-8"))
                    if record.get("where") == wanted["where"] and record.get("url", "").startswith(
                        prefix
                    ):
                        record_file.unlink()

    @staticmethod
    def _version(fs: fsspec.AbstractFileSystem, path: str) -> str:
        """What tells one version of ``path`` from another; "" when the filesystem
        says nothing that does (an HTTP server without ETag or Last-Modified):
        then a cached copy is never taken for the current bytes."""
        info = fs.info(path)
        if info.get("type") == "directory":
            # Object stores' buffered files read a folder as an empty file.
            raise FileNotFoundError(errno.ENOENT, "a folder, not a file", path)
        for key in _VERSION_KEYS:
            if info.get(key):
                return f"{key}:{info[key]}"
        stamp = next((info[key] for key in _STAMP_KEYS if info.get(key)), None)
        return f"size:{info.get('size')}:{stamp}" if stamp else ""

    def _offline(self, *backends: Backend) -> bool:
        """Whether ``ELLIPTIO_OFFLINE`` keeps these backends' filesystems out of
        reach: those a network away; local disk and memory stay usable, and
        ``elliptio://`` answers by the offline rules of the artifacts it names
        (cached files and kept records stay readable, a local store too)."""
        from ._protocol import ElliptioFileSystem

        return self.settings.offline and any(
            is_remote(b.fs) and not isinstance(b.fs, ElliptioFileSystem) for b in backends
        )

    def _offline_error(self, url: str, what: str) -> OfflineError:
        reason = "ELLIPTIO_OFFLINE is set" if self.settings.offline else "storage is unreachable"
        if not self.settings.offline:
            return OfflineError(
                f"cannot {what} {redact_url(url)!r}: {reason} and it is not in the cache; "
                "check the network and the storage endpoint, then try again"
            )
        if what in ("read", "check"):  # the cache could have answered
            return OfflineError(
                f"cannot {what} {redact_url(url)!r}: {reason} and it is not in the cache; "
                "read it once while online, or unset ELLIPTIO_OFFLINE"
            )
        return OfflineError(
            f"cannot {what} {redact_url(url)!r}: {reason} and it is a network away; "
            "unset ELLIPTIO_OFFLINE once the network is back"
        )

    # -- reading ------------------------------------------------------------------
    def cached_path(self, url: str) -> Path:
        """A local path holding the bytes of ``url`` (a local path is returned as is).

        It ends in the URL's file name, so readers that go by extension work.

        Raises:
            OfflineError: offline and ``url`` is not cached.
            UrlNotFoundError: ``url`` does not exist (a `FileNotFoundError` too).
        """
        url = os.fspath(url)
        backend, path = self._backend(url)
        file = self._store_file(backend, path)
        if file is not None:
            return file.local_path()
        return self._cached_path(url, backend, path)

    def _cached_path(self, url: str, backend: Backend, path: str) -> Path:
        """`cached_path` of a URL that is no artifact file of a store."""
        if isinstance(backend.fs, LocalFileSystem):
            if not os.path.isfile(path):
                raise _missing(backend, path)
            return Path(path)
        record = self._record(backend, path)
        cached = self.cache.lookup(record["sha256"]) if record else None
        if cached is not None and record is not None:
            # A copy of a URL whose server tells no version is never fresh.
            fresh = bool(record.get("version")) and (
                time.time() - float(record.get("checked", 0)) < self.settings.revalidate_seconds
            )
            if fresh or self._offline(backend):
                log.debug("cache hit: %s", self._redact(url))
                return self._named(cached, path)
        if self._offline(backend):
            raise self._offline_error(url, "read")
        try:
            version = self._version(backend.fs, path)
        except UrlNotFoundError:
            raise  # elliptio:// names it already (an unknown artifact: both errors)
        except Exception as err:
            if isinstance(err, FileNotFoundError) and _not_found(err):
                raise _missing(backend, path) from err
            if not is_unreachable(err):
                # fsspec's HTTP filesystem wraps the status in a FileNotFoundError.
                shown = err.__cause__ if isinstance(err, FileNotFoundError) else None
                raise backend.error(shown or err, "read", path) from err
            if cached is not None:
                # offline detected: the cached copy is the best we have
                return self._named(cached, path)
            raise self._offline_error(url, "read") from None
        known = bool(version) and record is not None and record.get("version") == version
        if cached is not None and record is not None and known:
            log.debug("cache hit: %s (revalidated)", self._redact(url))
            self._save_record(backend, path, record["sha256"], version)
            return self._named(cached, path)
        sha256, fetched = self._fetch(backend, path)
        log.info("downloaded %s to the cache", self._redact(url))
        self._save_record(backend, path, sha256, version)
        return self._named(fetched, path)

    def _named(self, entry: Path, path: str) -> Path:
        """The cache entry under the URL's file name, for readers that go by extension."""
        return self.cache.named(entry, _file_name(path))

    def _fetch(self, backend: Backend, path: str) -> tuple[str, Path]:
        """Stream a file into the cache through the backend's hashing copy."""
        tmp_dir = self.cache.folder() / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
        try:
            try:
                found = sync(backend.stream(path, functools.partial(write_all, fd)))
            finally:
                os.close(fd)
            if found is None:
                raise _missing(backend, path)
            target = self.cache.path_for(found[1])
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return found[1], self.cache.adopt(target, _file_name(path))

    @contextlib.contextmanager
    def local_copy(self, url: str) -> Iterator[Path]:
        """A context manager yielding a local path with the bytes of ``url``."""
        yield self.cached_path(url)

    def open(self, url: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """Open ``url``: reads come from the cache, writes go to the URL (a ``with``
        block that raises leaves nothing there; errors are `StorageError`)."""
        if mode in ("r", "rb", "rt"):
            url = os.fspath(url)
            backend, path = self._backend(url)
            file = self._store_file(backend, path)
            if file is not None:
                # The artifact file's own open: on local disk the very file object
                # that was hashed, checked again as it is read (a change made while
                # it is open is caught, and a path swapped after the check is not read).
                return file.open("rb" if "b" in mode else "r", **kwargs)
            return builtins.open(self._cached_path(url, backend, path), mode, **kwargs)
        backend, path = self._backend(url)
        if self._offline(backend):
            raise self._offline_error(url, "write")
        self._refuse_in_store(url, backend, path, "write")
        self._forget(backend, path)
        # A local or memory:// file added to ('a') is cut back to what it held, not
        # removed; one that did not exist is new, removed as a file written afresh.
        held: int | None = None
        fresh = "w" in mode or "x" in mode
        if "a" in mode and isinstance(backend.fs, LocalFileSystem | MemoryFileSystem):
            with contextlib.suppress(OSError):
                held = int(backend.fs.size(path))
            fresh = held is None
        handle: IO[Any] = self._call(backend, "open", path, backend.fs.open, path, mode, **kwargs)
        call = functools.partial(self._call, backend, "write", path)
        return cast("IO[Any]", _Writing(handle, call, backend.fs, path, fresh, held))

    # -- writing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self, url: str) -> Iterator[Path]:
        """Yield a local path to write; on a clean exit it is uploaded to ``url``.

        The written bytes also enter the cache, so reading them back is free.
        """
        url = os.fspath(url)
        backend, path = self._backend(url)
        if self._offline(backend):
            raise self._offline_error(url, "write")
        self._refuse_in_store(url, backend, path, "write")
        fs = backend.fs
        with tempfile.TemporaryDirectory(prefix="elliptio-write-") as tmp:
            local = Path(tmp) / (Path(path).name or "file")
            yield local
            if not local.exists():
                raise StorageError(f"nothing was written to {str(local)!r} for {redact_url(url)!r}")
            self._call(backend, "write", path, fs.put_file, str(local), path)
            log.info("uploaded %s", self._redact(url))
            self._forget(backend, path)
            if not isinstance(fs, LocalFileSystem):
                with builtins.open(local, "rb") as f:
                    sha256, _ = self.cache.put(lambda dst: shutil.copyfileobj(f, dst))
                version = self._call(backend, "check", path, self._version, fs, path)
                self._save_record(backend, path, sha256, version)

    # -- listing and moving -----------------------------------------------------------
    def ls(self, url: str, detail: bool = False) -> list[Any]:
        """List a folder (or prefix); URLs keep their protocol."""
        backend, path = self._backend(url)
        if self._offline(backend):
            raise self._offline_error(url, "list")
        fs = backend.fs
        entries = self._call(backend, "list", path, fs.ls, path, True)
        local = isinstance(fs, LocalFileSystem)
        named = [
            {**e, "name": e["name"] if local else fs.unstrip_protocol(e["name"])} for e in entries
        ]
        return named if detail else [e["name"] for e in named]

    def exists(self, url: str) -> bool:
        """Whether ``url`` exists; offline, True for cached URLs."""
        url = os.fspath(url)
        backend, path = self._backend(url)
        if self._offline(backend):
            if self._cached(backend, path):
                return True
            raise self._offline_error(url, "check")  # online it could tell
        try:
            return self._call(backend, "check", path, _exists, backend.fs, path)
        except StorageError as err:
            # Unreachable: what open() would serve from the cache exists; of
            # anything else it cannot tell (StorageError, as docs/cache.md says).
            cause = err.__cause__
            if cause is not None and is_unreachable(cause) and self._cached(backend, path):
                return True
            raise

    def _cached(self, backend: Backend, path: str) -> bool:
        """Whether the cache holds the bytes of ``path``, as `cached_path` reads them."""
        record = self._record(backend, path)
        if record and self.cache.lookup(record["sha256"]):
            return True
        # A file of an artifact read before: open() serves it from the cache.
        with contextlib.suppress(FileNotInArtifactError, ArtifactNotFoundError):
            file = self._store_file(backend, path)
            if file is not None and self.cache.lookup(file.sha256):
                return True
        return False

    def cp(self, src: str, dst: str, recursive: bool = False) -> None:
        """Copy ``src`` to ``dst``, within or across filesystems.

        As fsspec copies: into a folder that exists (or a ``dst`` ending in
        ``/``) the source keeps its name, unless a folder is given with a
        trailing ``/``, whose contents go there. Each file goes on its own, its
        target checked before anything is written.
        """
        self._cp(_text(src), _text(dst), recursive, moving=False)

    def _cp(self, src: str, dst: str, recursive: bool, *, moving: bool) -> None:
        """`cp`; ``moving``: the copy of a move, refused if a target is the source
        or lies in it (the removal would take the copy too)."""
        src_backend, src_path = self._backend(src)
        dst_backend, dst_path = self._backend(dst)
        if self._offline(src_backend, dst_backend):
            verb = "move" if moving else "copy"
            if self._offline(dst_backend):
                raise self._offline_error(dst, f"{verb} to")
            if moving or recursive:
                raise self._offline_error(src, verb if moving else "copy from")
            self._copy_cached(src, dst, dst_backend, dst_path)
            return
        if moving:
            self._refuse_store_or_root(src, src_backend, src_path, "move")
        self._refuse_in_store(dst, dst_backend, dst_path, "copy to")
        src_fs, dst_fs = src_backend.fs, dst_backend.fs
        try:
            src_dir = not recursive and self._call(
                src_backend, "check", src_path, src_fs.isdir, src_path
            )
        except StorageError as err:
            if moving or recursive or err.__cause__ is None or not is_unreachable(err.__cause__):
                raise
            # The store cannot be reached: one file is copied as cat serves it, from
            # the cache, or is the OfflineError naming it.
            self._copy_cached(src, dst, dst_backend, dst_path)
            return
        if src_dir:
            raise InvalidPathError(
                f"cannot copy {redact_url(src)!r} without recursive=True (elliptio cp -r): "
                "it is a folder"
            )
        if recursive:
            # Files copied into or out of a folder that holds the store would pass
            # through it unchecked: written over committed files, read unverified.
            for url, backend, path, what in (
                (src, src_backend, src_path, "copy"),
                (dst, dst_backend, dst_path, "copy into"),
            ):
                self._refuse_holding(
                    url,
                    backend,
                    path,
                    f"{what} recursively",
                    "copy artifacts out with Artifact.download() (elliptio download)",
                )
        top = src_path.rstrip("/")
        into = os.fspath(dst).endswith("/") or self._call(
            dst_backend, "check", dst_path, dst_fs.isdir, dst_path
        )
        base = dst_path.rstrip("/")
        if into and not (recursive and os.fspath(src).endswith("/")):
            base = f"{base}/{_copy_name(src, top)}"
        pairs = [(src_path, base)]
        folders: list[str] = []  # made at the target: empty ones too (mv is cp + rm)
        if recursive:
            if not self._call(src_backend, "check", src_path, _exists, src_fs, src_path):
                raise _missing(src_backend, src_path)
            # An object store may hold an object named as the folder too (keys d
            # and d/x): it goes along, as the removal of a move takes it. (Asked
            # before find(), whose listing would answer for it.)
            named_too = not isinstance(src_fs, LocalFileSystem) and self._call(
                src_backend, "check", src_path, src_fs.isfile, src_path
            )
            found = self._call(
                src_backend, "list", src_path, src_fs.find, src_path, None, True, True
            )
            rel = {
                n: f"{base}/{n[len(top) + 1 :]}".rstrip("/") if n != top else base for n in found
            }
            # A key ending in "/" (``d/empty/``, as S3 consoles make folders) is a
            # folder's marker: a folder here, not a file. One that holds bytes is
            # neither, and nothing is copied (a move would lose them).
            for n, info in found.items():
                if n.endswith("/") and info.get("type") != "directory" and info.get("size"):
                    raise InvalidPathError(
                        f"cannot copy {redact_url(src_backend.url(n))!r}: a name ending in "
                        "'/' that holds bytes is no file and no folder here; rename or remove "
                        "it with your storage's own tools, then copy the folder"
                    )
            is_folder = {
                n: info.get("type") == "directory" or n.endswith("/") for n, info in found.items()
            }
            pairs = [(n, rel[n]) for n in found if not is_folder[n]]
            if named_too and top not in dict(pairs):
                pairs.append((top, base))
            # (find() lists the source folder itself among its folders.)
            folders = list(dict.fromkeys(rel[n] for n in found if is_folder[n]))
        if not isinstance(dst_fs, LocalFileSystem | MemoryFileSystem):
            folders = []  # an object store: folders are only their files' prefixes
        if moving and type(src_fs) is type(dst_fs):
            # mv d d, d into d/sub, a file into its own folder, d/ into d's parent
            # when d holds a d: each puts a target in the source.
            here = self._spot(src_backend, src_path).rstrip("/")
            for target in [*(t for _, t in pairs), *folders]:
                spot = self._spot(dst_backend, target)
                if spot == here or spot.startswith(here + "/"):
                    raise InvalidPathError(
                        f"cannot move {redact_url(src)!r} to {redact_url(dst)!r}: it would "
                        "land where it is, or in itself; give a target outside it"
                    )
        real = functools.cache(os.path.realpath)  # each store's root resolved once here
        for target in [*(t for _, t in pairs), *folders]:  # a link may lead into the store
            self._refuse_in_store(dst, dst_backend, target, "copy to", real)
        # Bytes of committed artifacts leave the store verified; a sidecar or the
        # copy of a name's aliases as it is. Every file is vouched for and read
        # (into the cache) before the first is written: a refused one leaves
        # nothing at the target.
        files = {name: self._store_file(src_backend, name) for name, _ in pairs}
        verified = {name: (f, str(f.local_path())) for name, f in files.items() if f is not None}
        within: list[tuple[str, str]] = []  # on one filesystem: copied there
        for name, target in pairs:
            if name in verified:
                # Read through the file's own open, as eio.open reads it: on local
                # disk the very file object that is hashed, checked as it is read
                # (its path reopened after the check could hold other bytes).
                file, path = verified[name]
                local, local_path = self._backend(path)
                opener = functools.partial(file.open, "rb", buffering=0)
                self._stream(local, local_path, dst_backend, target, opener)
            elif src_fs is dst_fs:
                within.append((name, target))
            else:
                self._stream(src_backend, name, dst_backend, target)
        if within:
            self._call(src_backend, "copy", src_path, self._copy_within, src_fs, within)
        for folder in folders:  # empty ones too: mv is cp + rm
            self._call(dst_backend, "create", folder, dst_fs.makedirs, folder, True)
        log.info("copied %s to %s", self._redact(os.fspath(src)), self._redact(os.fspath(dst)))
        for _, target in pairs:  # each file written, also one copied into a folder
            self._forget(dst_backend, target)
        self._forget(dst_backend, dst_path, recursive=recursive)

    def _copy_cached(self, src: str, dst: str, dst_backend: Backend, dst_path: str) -> None:
        """Offline, copy one file of a store a network away from the cache, as
        `cached_path` serves it (an artifact file verified, a plain URL as last
        read), or raise `OfflineError` naming it; nothing is sent anywhere."""
        cached = self.cached_path(src)
        into = os.fspath(dst).endswith("/") or self._call(
            dst_backend, "check", dst_path, dst_backend.fs.isdir, dst_path
        )
        target = dst_path.rstrip("/")
        if into:
            target = f"{target}/{_copy_name(src, src)}"
        self._refuse_in_store(dst, dst_backend, target, "copy to")
        local, local_path = self._backend(str(cached))
        self._stream(local, local_path, dst_backend, target)
        log.info("copied %s from the cache to %s", self._redact(src), self._redact(dst))
        self._forget(dst_backend, target)

    @staticmethod
    def _copy_within(fs: fsspec.AbstractFileSystem, pairs: list[tuple[str, str]]) -> None:
        """Copy files to paths on one filesystem: lists of names, which fsspec takes
        as they are (no glob read), in one call (concurrent server-side copies on
        S3); on local disk one by one, each folder made first."""
        if not isinstance(fs, LocalFileSystem):
            fs.copy([s for s, _ in pairs], [t for _, t in pairs])
            return
        for source, target in pairs:
            _copy_local(fs._strip_protocol(source), fs._strip_protocol(target))

    def _stream(
        self,
        src: Backend,
        src_path: str,
        dst: Backend,
        dst_path: str,
        opener: Callable[[], IO[bytes]] | None = None,
    ) -> None:
        """Copy one file across filesystems through the one copy loop; ``opener``
        opens the source (an artifact file's own open) instead of its path."""

        def copy() -> None:
            with opener() if opener is not None else src.fs.open(src_path, "rb") as f_in:
                readinto = getattr(f_in, "readinto", None)
                if readinto is None:
                    raise StorageError(f"{src.redact(src.url(src_path))!r} cannot be streamed")
                if isinstance(dst.fs, LocalFileSystem):  # what was there stays on a failure

                    def fill(tmp: str) -> None:
                        with open(tmp, "wb") as f_out:
                            copy_hashing(readinto, f_out.write)

                    _write_local(dst.fs._strip_protocol(dst_path), fill)
                    return
                f_out = dst.fs.open(dst_path, "wb")
                try:
                    copy_hashing(readinto, f_out.write)
                    f_out.close()  # an object store's last part goes up here
                except BaseException:  # an error or Ctrl-C halfway: no cut file at the target
                    _abandon(dst.fs, f_out, dst_path)
                    raise

        self._call(src, "copy", src_path, copy)

    def mv(self, src: str, dst: str, recursive: bool = False) -> None:
        """Move ``src`` to ``dst``: a copy, then the source removed. Never onto
        itself or into itself, where the removal would take the copy too."""
        src, dst = _text(src), _text(dst)
        self._cp(src, dst, recursive, moving=True)
        self.rm(src, recursive=recursive)

    @staticmethod
    def _spot(backend: Backend, path: str) -> str:
        """Where ``path`` is: resolved on local disk, canonical elsewhere (on S3
        without a ``?versionId=``, which names the same key)."""
        if isinstance(backend.fs, LocalFileSystem):
            return os.path.realpath(path)
        canonical = canonical_path(backend.fs, path)
        split = getattr(backend.fs, "split_path", None)
        if split is None:
            return canonical
        bucket, key, _ = split(canonical)
        return f"{bucket}/{key}".rstrip("/")

    def rm(self, url: str, recursive: bool = False) -> None:
        """Remove ``url`` (a folder only with ``recursive=True``)."""
        url = _text(url)
        backend, path = self._backend(url)
        if self._offline(backend):
            raise self._offline_error(url, "remove")
        self._refuse_store_or_root(url, backend, path, "remove")
        # One question answers both: a URL that names nothing is UrlNotFoundError on
        # every store (S3 deletes a missing key without a word), and a folder needs
        # recursive=True (S3 removed nothing and said nothing; local disk raised).
        info = self._call(backend, "check", path, _removable, backend.fs, path)
        if not recursive and info.get("type") == "directory":
            raise InvalidPathError(
                f"cannot remove {redact_url(url)!r} without recursive=True (elliptio rm -r): "
                "it is a folder"
            )
        self._call(backend, "remove", path, backend.fs.rm, rm_path(backend.fs, path), recursive)
        self.invalidate(os.fspath(url), recursive=recursive)

    # -- cache housekeeping -----------------------------------------------------------
    def cache_size(self) -> int:
        """Bytes held in the cache."""
        return self.cache.size()

    def prune_cache(self, older_than: datetime | timedelta | float) -> int:
        """Remove entries last used before ``older_than``; returns bytes freed.

        ``older_than`` is a datetime, an age (``timedelta``), or epoch seconds.
        """
        if isinstance(older_than, timedelta):
            cutoff = time.time() - older_than.total_seconds()
        elif isinstance(older_than, datetime):
            cutoff = older_than.timestamp()
        elif isinstance(older_than, numbers.Real) and not isinstance(older_than, bool):
            try:
                cutoff = float(older_than)
            except TypeError:  # numpy's timedelta64 registers as a number
                raise ArgumentTypeError(
                    f"older_than must be an age (timedelta), a datetime or epoch seconds, "
                    f"not {type(older_than).__name__} {older_than!r}; e.g. timedelta(days=30)"
                ) from None
            if not _EPOCH_FLOOR <= cutoff <= _EPOCH_CEILING:  # nan is neither
                raise UsageError(
                    f"older_than={older_than!r} is no time to prune by: a number is epoch "
                    "seconds (after 2001); give an age, e.g. timedelta(days=30), or a datetime"
                )
        else:
            raise ArgumentTypeError(
                f"older_than must be an age (timedelta), a datetime or epoch seconds, not "
                f"{type(older_than).__name__} {older_than!r}; e.g. timedelta(days=30)"
            )
        return self.cache.prune(cutoff)

    def clear_cache(self) -> int:
        """Empty the cache, with the records kept for offline reads (a deleted
        artifact's labels among them); returns the bytes of the files freed."""
        freed = self.cache.clear()
        for folder in ("urls", "records"):
            shutil.rmtree(self.cache.root / folder, ignore_errors=True)
        return freed


# Epoch seconds before 2001-09-09 are a mistaken age (30 days given as 30); after
# 2096, a mistaken unit (milliseconds).
_EPOCH_FLOOR = 1e9
_EPOCH_CEILING = 4e9


def _aliases_copy(root: str, path: str) -> bool:
    """Whether ``path`` of a store is the copy of a name's aliases
    (``.elliptio/aliases/NAME.json`` at its root)."""
    aliases = f"{root.rstrip('/')}/{ALIASES_DIR}/"
    name = path[len(aliases) :]
    return path.startswith(aliases) and "/" not in name and name.endswith(".json")


def _linked(backend: Backend, root: str, path: str) -> bool:
    """Whether, on local disk, ``path`` of the store at ``root`` is reached through
    a symbolic link below the root (planted by someone who can write the store)."""
    if not isinstance(backend.fs, LocalFileSystem):
        return False
    here = root.rstrip("/")
    for part in path[len(here) :].strip("/").split("/"):
        here = f"{here}/{part}"
        if os.path.islink(here):
            return True
    return False


def _telling(err: ElliptioError) -> int:
    """How little an error of a store's reader says (lowest first): a catalog that
    could not answer, one without the record, a handler that keeps no records."""
    if isinstance(err, UsageError):
        return 2
    return 1 if isinstance(err, ArtifactNotFoundError) else 0


def _under(url: str, root: str) -> bool:
    """Whether ``url`` is ``root`` or lies below it, as spelled."""
    top = root.rstrip("/")
    return url == top or url.startswith(top + "/")


def _getter(handler: AsyncHandler) -> Callable[[str], Artifact]:
    """A handler's ``get`` for the (blocking) URL tools, without noting the read:
    the file notes it once its bytes are verified (nothing for a damaged file, or
    for `exists` asking the cache)."""

    def get(artifact_id: str) -> Artifact:
        return sync(handler._lookup(artifact_id))

    return get


def _store_key(fs: fsspec.AbstractFileSystem, root: str) -> tuple[type, str]:
    """A store as the URL tools compare paths with it: its filesystem type and its
    root (canonical where the filesystem reads several spellings alike)."""
    if not isinstance(fs, LocalFileSystem):
        root = canonical_path(fs, root)
    return (type(fs), root.rstrip("/"))


# The handlers of this process: their stores are written by nothing but them.
_handlers: weakref.WeakSet[AsyncHandler] = weakref.WeakSet()


def refuse_store_target(target: str | os.PathLike[str], what: str = "download to") -> None:
    """Refuse a local path a download (or the CLI's ``-o``) would write or
    replace when it lies in the local store of a handler of this process, also
    reached through a link: committed files never change, and the store holds
    nothing else.

    Raises:
        InvalidPathError: naming ``target``.
    """
    path = os.path.abspath(os.fspath(target))
    # The file itself is replaced, not what a link there points at.
    where = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    for handler in list(_handlers):
        if not isinstance(handler.storage.fs, LocalFileSystem):
            continue
        root = os.path.realpath(handler.storage.root).rstrip("/") + "/"
        if where.startswith(root) or where + "/" == root:
            raise InvalidPathError(
                f"cannot {what} {path!r}: it lies in the elliptio store, whose "
                "committed artifacts never change; write it somewhere else"
            )


# This process among those sharing the cache (a fork is another process).
_process_token: ProcessLocal[str] = ProcessLocal(lambda: uuid.uuid4().hex)

# The URL tools of this process, by the ELLIPTIO_* variables they were built from.
_default: ProcessLocal[dict[tuple[tuple[str, str], ...], UrlTools]] = ProcessLocal(dict)


def default_tools() -> UrlTools:
    """The process's URL tools, built from the settings on first use and again
    whenever an ``ELLIPTIO_*`` variable changed since (``ELLIPTIO_OFFLINE=1`` set
    in a running notebook takes effect at the next call)."""
    key = tuple((k, v) for k, v in os.environ.items() if k.startswith("ELLIPTIO_"))
    built = _default.get()
    tools = built.get(key)
    if tools is None:
        tools = UrlTools(load_settings())
        built.clear()  # the tools of an earlier configuration are not used again
        built[key] = tools
    return tools


def open(url: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """Open any fsspec URL; reads are served from the local cache."""
    return default_tools().open(url, mode, **kwargs)


def local_copy(url: str) -> contextlib.AbstractContextManager[Path]:
    """``with eio.local_copy(url) as path:`` a cached local path of ``url``."""
    return default_tools().local_copy(url)


def write(url: str) -> contextlib.AbstractContextManager[Path]:
    """``with eio.write(url) as path:`` write ``path``; it is uploaded on exit."""
    return default_tools().write(url)


def ls(url: str, detail: bool = False) -> list[Any]:
    """List a folder or prefix of any fsspec URL."""
    return default_tools().ls(url, detail)


def _endpoint(backend: Backend) -> str:
    """Where a backend's filesystem talks to, as its options (or, for S3, the
    AWS environment and profile) name it: no secret, only endpoints, hosts,
    accounts and profiles; for memory://, this process."""
    options = getattr(backend.fs, "storage_options", None) or {}
    client = options.get("client_kwargs")
    found: dict[str, str] = {}
    for source in (options, client if isinstance(client, dict) else {}):
        for key, value in source.items():
            if not isinstance(value, str):
                continue
            if _names_endpoint(key):
                found[key] = value
            # A connection string (Azure's "AccountName=a;AccountKey=k;..."): a
            # secret as a whole, whose account and endpoints are not.
            for part in value.split(";") if ";" in value else ():
                name, equals, field = part.partition("=")
                name = name.strip()
                if equals and name.isidentifier() and _names_endpoint(name):
                    found[f"{key}.{name}"] = field.strip()
    if "memory" in protocols(backend.fs):
        # memory:// lives in one process while the cache is shared: what another
        # process's memory held never answers here.
        found["process"] = _process_token.get()
    if "s3" in protocols(backend.fs):
        # A profile (in ~/.aws/config) may name the endpoint too.
        if isinstance(options.get("profile"), str):
            found["profile"] = options["profile"]
        for name in (
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL",
            "AWS_DEFAULT_PROFILE",  # botocore reads it before AWS_PROFILE
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",  # what a profile means
        ):
            if os.environ.get(name):
                found.setdefault(name, os.environ[name])
    return redact_url(json.dumps(found, sort_keys=True))


def _names_endpoint(key: str) -> bool:
    """Whether an option named ``key`` names where a filesystem talks to (not a
    secret such as ``account_key``)."""
    lowered = key.lower()
    return any(w in lowered for w in ("endpoint", "host", "account")) and not is_secret_name(key)


def _missing(backend: Backend, path: str) -> UrlNotFoundError:
    """The error for a URL that names nothing: an `ElliptioError` and a
    `FileNotFoundError`, as readers expect, naming the URL with its scheme."""
    if isinstance(backend.fs, LocalFileSystem):
        special = _special_local(path)
        if special:
            return UrlNotFoundError(f"{path!r} {special}")
    shown = path if isinstance(backend.fs, LocalFileSystem) else backend.redact(backend.url(path))
    return UrlNotFoundError(
        f"{shown!r} does not exist; check the path or URL (ls lists what a folder holds)"
    )


def _removable(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any]:
    """``fs.info(path)`` as `UrlTools.rm` asks it: a local symbolic link to
    nothing, which info() follows and finds missing, is a link there to remove."""
    try:
        return fs.info(path)  # type: ignore[no-any-return]
    except FileNotFoundError:
        if isinstance(fs, LocalFileSystem) and os.path.islink(path):
            return {"name": path, "type": "link"}
        raise


def _special_local(path: str) -> str | None:
    """What a local path that the URL tools take for missing is, when it is there:
    a symbolic link to nothing, or no regular file or folder (a FIFO, a socket, a
    device), which they never read."""
    try:
        mode = os.lstat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            return None
        return f"is a symbolic link to {target!r}, which does not exist; fix or remove the link"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "is no regular file or folder (a FIFO, a socket or a device): only those are read"
    return None


def _text(url: Any) -> Any:
    """A path-like URL as text (messages quote it); anything else as it is, for
    `UrlTools._backend` to refuse."""
    return os.fspath(url) if isinstance(url, os.PathLike) else url


def _exists(fs: Any, path: str) -> bool:
    """Whether ``path`` exists. Not fsspec's ``exists``, which answers False to
    every error: a store that cannot be reached raises (see `_not_found`)."""
    try:
        fs.info(path)
    except FileNotFoundError as err:
        if _not_found(err):
            return False
        raise
    return True


def _not_found(err: FileNotFoundError) -> bool:
    """Whether a FileNotFoundError means "not there" rather than "could not ask":
    fsspec's HTTP filesystem raises it for a refused connection, a timeout and an
    error status too."""
    if is_unreachable(err):
        return False
    status = _http_status(err.__cause__)
    return status is None or status in (404, 410)


def _http_status(err: BaseException | None) -> int | None:
    """The status of an HTTP error response (aiohttp's), else None."""
    aiohttp = sys.modules.get("aiohttp")  # no HTTP response without it
    if aiohttp is not None and isinstance(err, aiohttp.ClientResponseError):
        return int(err.status)
    return None


def exists(url: str) -> bool:
    """Whether a URL exists (offline: whether it is cached)."""
    return default_tools().exists(url)


def _copy_local(source: str, target: str) -> None:
    """Copy a local file to ``target`` as `_write_local` writes (removing the
    target on any failure took the file itself in ``cp a.txt a.txt``)."""
    if not os.path.isfile(source):  # a dangling link, a FIFO: as fsspec's cp_file says
        raise FileNotFoundError(source)

    def fill(path: str) -> None:
        if os.path.isfile(path):
            shutil.copyfile(source, path)  # in the kernel where it can
        else:  # a pipe, a device: which copyfile refuses or may not copy into
            with open(source, "rb") as f_in, open(path, "wb") as f_out:
                shutil.copyfileobj(f_in, f_out)

    _write_local(target, fill, source)


def _write_local(target: str, fill: Callable[[str], object], source: str | None = None) -> None:
    """Write ``target`` on local disk: ``fill`` writes a temporary file beside it,
    renamed over it once whole. A copy cut halfway (a full disk, Ctrl-C, a lost
    connection) leaves no cut file, and one that fails leaves what ``target``
    held. As ``cp``, through a link at the target to the file it names (the link
    stays), and the file overwritten keeps its owner and mode (group bits
    dropped if its group cannot be kept). What is not a plain file (/dev/null,
    /dev/stdout, a pipe), and a file in a folder this user may not write, are
    written into, as ``cp`` does."""
    try:
        plain = stat.S_ISREG(os.stat(target).st_mode)
    except OSError:
        plain = True  # none yet (or a dangling link): made as a plain file
    if not plain:
        fill(target)
        return
    target = os.path.realpath(target)
    held = None
    if os.path.exists(target):
        if source is not None and os.path.samefile(source, target):
            raise InvalidPathError(
                f"cannot copy {source!r} to {target!r}: they are the same file; give another target"
            )
        if not os.access(target, os.W_OK):  # refused as writing into it is, not replaced
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), target)
        held = os.stat(target)
    try:
        fd, tmp, made = temp_beside(Path(target))
    except InvalidPathError:
        if held is None:
            raise
        fill(target)  # a file it may write in a folder it may not: written into, as cp
        return
    try:
        if held is not None:  # none but this user reads it until it takes the old one's mode
            os.fchmod(fd, 0o600)
        os.close(fd)
        fill(tmp)
        if held is not None:
            mode = stat.S_IMODE(held.st_mode)
            with contextlib.suppress(OSError):
                os.chown(tmp, held.st_uid, held.st_gid)
            if os.stat(tmp).st_gid != held.st_gid:
                mode &= ~0o070  # another group now: not readable by it
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        discard_temp(tmp, Path(target), made)
        raise


class _Writing:
    """A file `UrlTools.open` writes to a URL: its errors translated (``call``:
    `UrlTools._call` for it), and a ``with`` block that raises leaves nothing
    there (closing would commit what was written, as ``cp`` never does). A
    file that existed before (``fresh`` false: opened to add to, ``"a"``, or to
    change in place, ``"r+"``) is never removed: a local one added to is cut back
    to the ``held`` bytes it had."""

    def __init__(
        self,
        f: IO[Any],
        call: Callable[..., Any],
        fs: fsspec.AbstractFileSystem,
        path: str,
        fresh: bool = True,
        held: int | None = None,
    ) -> None:
        self._f = f
        self._call = call
        self._fs = fs
        self._path = path
        self._fresh = fresh
        self._held = held

    def write(self, data: Any) -> Any:
        return self._call(self._f.write, data)

    def flush(self) -> None:
        self._call(self._f.flush)

    def close(self) -> None:
        self._call(self._f.close)

    def __enter__(self) -> _Writing:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.close()
            return
        raw = self._f.buffer if isinstance(self._f, io.TextIOWrapper) else self._f
        if self._fresh or isinstance(raw, AbstractBufferedFile):
            _abandon(self._fs, raw, self._path)  # an object store keeps what it held
            return
        with contextlib.suppress(Exception):
            if self._held is not None:
                self._f.flush()
                if isinstance(self._fs, LocalFileSystem):
                    os.truncate(self._path, self._held)
                else:  # memory://: the file is the stored bytes, added to in place
                    raw.truncate(self._held)
            self._f.close()

    def __iter__(self) -> Any:
        return iter(self._f)

    def __getattr__(self, name: str) -> Any:
        if name == "_f":  # not set yet: never recurse
            raise AttributeError(name)
        return getattr(self._f, name)


def _abandon(fs: fsspec.AbstractFileSystem, f: IO[bytes], path: str) -> None:
    """Drop a write that stopped halfway: an object store's upload is aborted
    (closing the file would commit the part written), a file elsewhere removed."""
    with contextlib.suppress(Exception):
        if isinstance(f, AbstractBufferedFile):
            f.discard()  # s3fs: abort the multipart upload
            f.closed = True  # close() would commit what was written
            return
        f.close()
        fs.rm_file(path)


def cp(src: str, dst: str, recursive: bool = False) -> None:
    """Copy between any two fsspec URLs."""
    default_tools().cp(src, dst, recursive)


def mv(src: str, dst: str, recursive: bool = False) -> None:
    """Move between any two fsspec URLs."""
    default_tools().mv(src, dst, recursive)


def rm(url: str, recursive: bool = False) -> None:
    """Remove a URL (folders with ``recursive=True``)."""
    default_tools().rm(url, recursive)


def cache_size() -> int:
    """Bytes held in the local cache."""
    return default_tools().cache_size()


def prune_cache(older_than: datetime | timedelta | float) -> int:
    """Remove cache entries last used before ``older_than``; bytes freed."""
    return default_tools().prune_cache(older_than)


def clear_cache() -> int:
    """Empty the local cache; bytes freed."""
    return default_tools().clear_cache()


def _copy_name(url: str, path: str) -> str:
    """The name a copy of ``url`` (``path`` on its filesystem) takes in a folder.

    Raises:
        InvalidPathError: the URL's path names no file ('https://host/?id=3'):
            the folder itself would be the target.
    """
    # An HTTP filesystem's path is the whole URL: its query (a presigned URL's
    # signature) is no part of the name.
    name = _file_name(path) if "://" in path else posixpath.basename(path.rstrip("/"))
    if not name:
        raise InvalidPathError(
            f"cannot copy {redact_url(url)!r} into a folder: its URL names no file to "
            "name the copy after; give the copy's file name in the target "
            "(folder/name.ext)"
        )
    return name


def _file_name(path: str) -> str:
    """The file name of a path or URL (an HTTP URL's query, which may hold a
    token, is no part of it)."""
    if "://" in path:  # HTTP filesystems keep the whole URL as the path
        path = urllib.parse.urlsplit(path).path
    return redact_url(path.rstrip("/").rpartition("/")[2])
