"""URL tools on any fsspec URL, with a local cache and an offline mode.

The s3stasher feature set on every filesystem fsspec knows: open, local copies,
write-then-upload, ls, exists, cp, mv, rm, and cache housekeeping. Reads of plain
URLs go through the content-addressed `Cache`; the URL's version (ETag, version
id, or size and mtime) is checked at most once per ``revalidate_seconds``, so a
warm read sends no request at all. Offline (forced by ``ELLIPTIO_OFFLINE=1``, or
when the storage cannot be reached) cached copies stay readable and anything that
needs the network raises `OfflineError` naming what is missing.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ._cache import Cache
from ._config import Settings, load_settings
from ._errors import OfflineError, StorageError
from ._redact import known_secrets, redact_text, redact_url

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

_VERSION_KEYS = ("VersionId", "version_id", "generation", "ETag", "etag", "md5Hash")
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
        current = current.__cause__ or current.__context__
    return False


class UrlTools:
    """The URL tools bound to one set of settings (cache folder, offline, options)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = Cache(
            settings.resolved_cache_dir(), settings.file_mode, settings.cache_max_bytes or None
        )
        self._store_protocol = fsspec.core.split_protocol(settings.resolved_storage_url())[0]
        self._secrets = known_secrets([settings.storage_url], settings.storage_options)

    def _redact(self, text: str) -> str:
        return redact_text(redact_url(text), self._secrets)

    # -- plumbing ---------------------------------------------------------------
    def _fs(self, url: str) -> tuple[fsspec.AbstractFileSystem, str]:
        if not isinstance(url, str | os.PathLike) or not os.fspath(url):
            raise StorageError(f"{url!r} is not a URL or path")
        url = os.fspath(url)
        protocol = fsspec.core.split_protocol(url)[0]
        # The store's options (endpoint, credentials) apply to URLs of its protocol.
        options = self.settings.storage_options if protocol == self._store_protocol else {}
        try:
            fs, path = fsspec.core.url_to_fs(url, **options)
        except (ImportError, ValueError) as err:
            reason = self._redact(str(err))
            raise StorageError(f"cannot open {redact_url(url)!r}: {reason}") from None
        return fs, path

    def _record_file(self, url: str) -> Path:
        key = hashlib.sha256(url.encode()).hexdigest()
        return self.cache.root / "urls" / key[:2] / f"{key}.json"

    def _record(self, url: str) -> dict[str, Any] | None:
        try:
            record: dict[str, Any] = json.loads(self._record_file(url).read_text())
        except (OSError, ValueError):
            return None
        return record if record.get("url") == url else None

    def _save_record(self, url: str, sha256: str, version: str) -> None:
        target = self._record_file(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(
            json.dumps({"url": url, "sha256": sha256, "version": version, "checked": time.time()})
        )
        os.replace(tmp, target)

    def invalidate(self, url: str, recursive: bool = False) -> None:
        """Forget the cached version of ``url`` (and of URLs under it if recursive)."""
        with contextlib.suppress(FileNotFoundError):
            self._record_file(url).unlink()
        if recursive:
            prefix = url.rstrip("/") + "/"
            for record_file in (self.cache.root / "urls").glob("*/*.json"):
                with contextlib.suppress(OSError, ValueError):
                    if json.loads(record_file.read_text()).get("url", "").startswith(prefix):
                        record_file.unlink()

    @staticmethod
    def _version(fs: fsspec.AbstractFileSystem, path: str) -> str:
        info = fs.info(path)
        for key in _VERSION_KEYS:
            if info.get(key):
                return f"{key}:{info[key]}"
        stamp = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
        return f"size:{info.get('size')}:{stamp}"

    def _offline_error(self, url: str, what: str) -> OfflineError:
        reason = "ELLIPTIO_OFFLINE is set" if self.settings.offline else "storage is unreachable"
        return OfflineError(
            f"cannot {what} {redact_url(url)!r}: {reason} and it is not in the cache; "
            "read it once while online, or unset ELLIPTIO_OFFLINE"
        )

    # -- reading ------------------------------------------------------------------
    def cached_path(self, url: str) -> Path:
        """A local path holding the bytes of ``url`` (a local path is returned as is).

        Raises:
            OfflineError: offline and ``url`` is not cached.
            FileNotFoundError: ``url`` does not exist.
        """
        url = os.fspath(url)
        fs, path = self._fs(url)
        if isinstance(fs, LocalFileSystem):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path!r} does not exist")
            return Path(path)
        record = self._record(url)
        cached = self.cache.lookup(record["sha256"]) if record else None
        if cached is not None and record is not None:
            fresh = time.time() - float(record.get("checked", 0)) < self.settings.revalidate_seconds
            if fresh or self.settings.offline:
                return cached
        if self.settings.offline:
            raise self._offline_error(url, "read")
        try:
            version = self._version(fs, path)
        except FileNotFoundError:
            raise
        except Exception as err:
            if not is_unreachable(err):
                raise StorageError(
                    f"cannot read {redact_url(url)!r}: {self._redact(str(err))}"
                ) from err
            if cached is not None:
                return cached  # offline detected: the cached copy is the best we have
            raise self._offline_error(url, "read") from None
        if cached is not None and record is not None and record.get("version") == version:
            self._save_record(url, record["sha256"], version)
            return cached

        def download(dst: IO[bytes]) -> None:
            with fs.open(path, "rb") as src:
                shutil.copyfileobj(src, dst, 4 * 2**20)

        sha256, fetched = self.cache.put(download)
        self._save_record(url, sha256, version)
        return fetched

    @contextlib.contextmanager
    def local_copy(self, url: str) -> Iterator[Path]:
        """A context manager yielding a local path with the bytes of ``url``."""
        yield self.cached_path(url)

    def open(self, url: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        """Open ``url``: reads come from the cache, writes go to the URL."""
        if mode in ("r", "rb", "rt"):
            return builtins.open(self.cached_path(url), mode, **kwargs)
        if self.settings.offline:
            raise self._offline_error(url, "write")
        fs, path = self._fs(url)
        self.invalidate(url)
        return fs.open(path, mode, **kwargs)  # type: ignore[no-any-return]

    # -- writing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self, url: str) -> Iterator[Path]:
        """Yield a local path to write; on a clean exit it is uploaded to ``url``.

        The written bytes also enter the cache, so reading them back is free.
        """
        url = os.fspath(url)
        if self.settings.offline:
            raise self._offline_error(url, "write")
        fs, path = self._fs(url)
        with tempfile.TemporaryDirectory(prefix="elliptio-write-") as tmp:
            local = Path(tmp) / (Path(path).name or "file")
            yield local
            if not local.exists():
                raise StorageError(f"nothing was written to {str(local)!r} for {redact_url(url)!r}")
            fs.put_file(str(local), path)
            self.invalidate(url)
            if not isinstance(fs, LocalFileSystem):
                with builtins.open(local, "rb") as f:
                    sha256, _ = self.cache.put(lambda dst: shutil.copyfileobj(f, dst))
                self._save_record(url, sha256, self._version(fs, path))

    # -- listing and moving -----------------------------------------------------------
    def ls(self, url: str, detail: bool = False) -> list[Any]:
        """List a folder (or prefix); URLs keep their protocol."""
        if self.settings.offline:
            raise self._offline_error(url, "list")
        fs, path = self._fs(url)
        entries = fs.ls(path, detail=True)
        if isinstance(fs, LocalFileSystem):
            return entries if detail else [e["name"] for e in entries]
        if detail:
            return [{**e, "name": fs.unstrip_protocol(e["name"])} for e in entries]
        return [fs.unstrip_protocol(e["name"]) for e in entries]

    def exists(self, url: str) -> bool:
        """Whether ``url`` exists; offline, True for cached URLs."""
        url = os.fspath(url)
        if self.settings.offline:
            record = self._record(url)
            if record and self.cache.lookup(record["sha256"]):
                return True
            raise self._offline_error(url, "check")
        fs, path = self._fs(url)
        return bool(fs.exists(path))

    def cp(self, src: str, dst: str, recursive: bool = False) -> None:
        """Copy ``src`` to ``dst``, within or across filesystems."""
        if self.settings.offline:
            raise self._offline_error(dst, "copy to")
        src_fs, src_path = self._fs(src)
        dst_fs, dst_path = self._fs(dst)
        if type(src_fs) is type(dst_fs) and src_fs.storage_options == dst_fs.storage_options:
            src_fs.copy(src_path, dst_path, recursive=recursive)
        elif recursive:
            for name in src_fs.find(src_path):
                rel = name[len(src_path.rstrip("/")) + 1 :]
                self._stream(src_fs, name, dst_fs, f"{dst_path.rstrip('/')}/{rel}")
        else:
            self._stream(src_fs, src_path, dst_fs, dst_path)
        self.invalidate(os.fspath(dst), recursive=recursive)

    @staticmethod
    def _stream(
        src_fs: fsspec.AbstractFileSystem, src: str, dst_fs: fsspec.AbstractFileSystem, dst: str
    ) -> None:
        if isinstance(dst_fs, LocalFileSystem):
            dst_fs.makedirs(dst_fs._parent(dst), exist_ok=True)
        with src_fs.open(src, "rb") as f_in, dst_fs.open(dst, "wb") as f_out:
            shutil.copyfileobj(f_in, f_out, 4 * 2**20)

    def mv(self, src: str, dst: str, recursive: bool = False) -> None:
        """Move ``src`` to ``dst``."""
        self.cp(src, dst, recursive=recursive)
        self.rm(src, recursive=recursive)

    def rm(self, url: str, recursive: bool = False) -> None:
        """Remove ``url`` (a folder only with ``recursive=True``)."""
        if self.settings.offline:
            raise self._offline_error(url, "remove")
        fs, path = self._fs(url)
        fs.rm(path, recursive=recursive)
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
        else:
            cutoff = float(older_than)
        return self.cache.prune(cutoff)

    def clear_cache(self) -> int:
        """Empty the cache; returns bytes freed."""
        freed = self.cache.clear()
        shutil.rmtree(self.cache.root / "urls", ignore_errors=True)
        return freed


_default: UrlTools | None = None
_default_lock = threading.Lock()


def default_tools() -> UrlTools:
    """The process's URL tools, built from the settings on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = UrlTools(load_settings())
    return _default


def _reset_default() -> None:
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()  # another thread may have held it at fork time


os.register_at_fork(after_in_child=_reset_default)


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


def exists(url: str) -> bool:
    """Whether a URL exists (offline: whether it is cached)."""
    return default_tools().exists(url)


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
