"""A local, content-addressed cache of file bytes, keyed by sha256.

Artifacts are immutable, so an entry found here never needs a network round trip.
Layout under the cache root::

    sha256/ab/cd/<sha256>          the bytes (mode ``file_mode``)
    sha256/ab/cd/<sha256>.meta     size, mtime, ctime and inode when verified;
                                   its mtime = last use
    sha256/ab/cd/<sha256>.names/<file name>
                                   hard links to the entry under the names readers
                                   asked for (libraries pick a reader by extension)
    locks/<sha256>.lock            one writer per key, across processes
    tmp/                           partial downloads, renamed into place when whole
    sha256/ab/cd/.<sha256>.*.part  an artifact file's partial download (the same)

Entries are written to ``tmp/`` and renamed into place only once their sha256 is
verified, so readers never see a partial file. A hit checks the entry's size,
mtime, ctime and inode against those recorded when it was verified and re-hashes
it when they differ: a corrupted entry is dropped and fetched again. Any write,
``utime`` or ``chmod`` sets the ctime to the current time, and nothing but the
system clock sets it back, so a change that restores size and mtime is caught
too. Several processes may share one
cache: writers of the same key take a file lock, and eviction tolerates entries
that vanish under it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ._errors import IntegrityError
from ._transfer import hash_file

__all__ = ["Cache", "CacheEntry", "user_cache_dir"]

_CHUNK = 4 * 2**20
_HEX = frozenset("0123456789abcdef")


_Stamp = tuple[int, int, int, int]


def _stamp(stat: os.stat_result) -> _Stamp:
    """What tells a verified entry from a changed one without reading it: size,
    mtime, ctime (which a write, ``utime`` or ``chmod`` sets to now) and inode."""
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def user_cache_dir(appname: str = "elliptio") -> Path:
    """The platform's per-user cache directory for ``appname`` (not created)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / appname / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / appname
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base_path = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base_path / appname


def _check_key(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise ValueError(f"cache key {sha256!r} is not a lowercase sha256 hex digest")
    return sha256


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` shared by threads and processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.05)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class CacheEntry:
    """One cached file: its key, path, size and last use (epoch seconds)."""

    sha256: str
    path: Path
    size: int
    last_used: float


class Cache:
    """A content-addressed file cache in one local folder.

    Args:
        root: the cache folder (created on first write, not before).
        file_mode: permissions of cached files, ``0o600`` by default.
        max_bytes: evict least-recently-used entries beyond this total; ``None``
            or ``0`` keeps everything.
    """

    def __init__(self, root: Path, file_mode: int = 0o600, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.file_mode = file_mode
        self.max_bytes = max_bytes or None
        # Entries this process has checked: their stamp and when it last marked
        # them used, so a hit costs one stat instead of reading the meta file.
        self._seen: dict[str, _Stamp] = {}

    # -- paths ----------------------------------------------------------------
    def folder(self) -> Path:
        """The cache folder, made if missing with the file mode's permissions plus
        the right to enter (0700 for 0600): what was read, by its file names and
        contents' sha256, is no one else's to list. A folder that exists is left
        as it is."""
        if not self.root.is_dir():
            self.root.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                readable = self.file_mode & 0o044  # group, others: may enter where they read
                self.root.mkdir(mode=0o700 | (self.file_mode & 0o077) | readable >> 2)
        return self.root

    def path_for(self, sha256: str) -> Path:
        """Where the entry for ``sha256`` lives (whether or not it exists)."""
        key = _check_key(sha256)
        return self.root / "sha256" / key[:2] / key[2:4] / key

    def _meta(self, path: Path) -> Path:
        return path.with_name(path.name + ".meta")

    def _names(self, path: Path) -> Path:
        return path.with_name(path.name + ".names")

    def named(self, entry: Path, name: str) -> Path:
        """The entry `entry` (as `lookup` returned it) under the file name ``name``.

        A hard link ``<entry>.names/<name>``: the same bytes and inode, so a change
        through either path is seen by `lookup`'s check, and eviction removes both.
        A link that no longer is the entry (replaced by a writer) is made again.
        Where the filesystem has no hard links it is a symbolic link; where it has
        neither, the entry itself is returned (without the name).
        """
        name = Path(name).name
        if not name or name in (".", ".."):
            return entry
        target = self._names(entry) / name
        with contextlib.suppress(OSError):
            if os.path.samefile(target, entry):
                return target
        tmp = target.with_name(f".{os.getpid()}-{time.monotonic_ns()}.tmp")
        try:
            target.parent.mkdir(exist_ok=True)
            try:
                os.link(entry, tmp)
            except FileNotFoundError:
                return entry  # evicted meanwhile: the caller sees it gone either way
            except OSError:  # no hard links here
                os.symlink(os.path.join("..", entry.name), tmp)
            os.replace(tmp, target)  # atomic: a reader sees the old link or the new one
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return entry
        return target

    # -- reading --------------------------------------------------------------
    def lookup(self, sha256: str) -> Path | None:
        """The path of a valid entry for ``sha256``, or ``None`` on a miss.

        A hit is marked as used now. An entry whose size, mtime, ctime or inode
        changed since it was verified is re-hashed; if its bytes no longer match
        it is removed and this is a miss.
        """
        path = self.path_for(sha256)
        try:
            stat = os.stat(path)
        except OSError:
            self._seen.pop(sha256, None)
            return None
        found = _stamp(stat)
        if self._seen.get(sha256) != found:
            # First sight in this process, or changed since: check against the meta.
            try:
                recorded = json.loads(self._meta(path).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            if list(found) != recorded.get("stamp"):
                if hash_file(path)[1] != sha256:
                    self._remove(path)
                    return None
                with contextlib.suppress(OSError):
                    if _stamp(os.stat(path)) != found:
                        return None  # changed while it was hashed: not what was checked
                self._write_meta(path, found)
            self._seen[sha256] = found
        with contextlib.suppress(OSError):  # last use, for eviction (one utime)
            os.utime(self._meta(path))
        return path

    # -- writing --------------------------------------------------------------
    def fetch(self, sha256: str, write: Callable[[IO[bytes]], None], what: str = "") -> Path:
        """Return the entry for ``sha256``, calling ``write(f)`` to fill it on a miss.

        ``write`` receives a binary file to write the bytes into; they are hashed
        as they pass, and the entry only appears if they match ``sha256``. Only one
        process fetches a key at a time; the others then find it.

        Raises:
            IntegrityError: the written bytes do not match ``sha256``; nothing is
                cached. ``what`` names the source in the message.
        """
        found = self.lookup(sha256)
        if found is not None:
            return found
        with _locked(self.folder() / "locks" / f"{_check_key(sha256)}.lock"):
            found = self.lookup(sha256)
            if found is not None:
                return found
            path = self._store(sha256, write, what)[1]
        self._evict_if_needed(keep=path)
        return path

    def adopt(self, path: Path, name: str | None = None) -> Path:
        """Register a file that a verified download just renamed to `path_for`.

        The writer must have checked the bytes against the key already (as
        `Storage.download` does); this sets the mode, links it under ``name``
        (see `named`) before recording its stamp for later checks, so the link
        does not make its next use hash it again, and evicts if the cache is
        over its limit.
        """
        os.chmod(path, self.file_mode)
        if name is not None:
            self.named(path, name)
        self._write_meta(path)
        self._evict_if_needed(keep=path)
        return path

    def put(self, write: Callable[[IO[bytes]], None]) -> tuple[str, Path]:
        """Cache bytes whose sha256 is not known yet; return ``(sha256, path)``."""
        sha256, path = self._store(None, write, "")
        self._evict_if_needed(keep=path)
        return sha256, path

    def _store(
        self, expected: str | None, write: Callable[[IO[bytes]], None], what: str
    ) -> tuple[str, Path]:
        tmp_dir = self.folder() / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as raw:
                hashing = _HashingFile(raw)
                write(hashing)  # type: ignore[arg-type]
            sha256 = hashing.hexdigest()
            if expected is not None and sha256 != expected:
                raise IntegrityError(
                    f"{what or 'downloaded bytes'} do not match the recorded sha256 "
                    f"{expected}; the stored file was changed or damaged, nothing was cached"
                )
            os.chmod(tmp, self.file_mode)
            path = self.path_for(sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
            self._write_meta(path)
            return sha256, path
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def write_text(self, path: Path, text: str) -> None:
        """Write a small file of the cache (a record, a meta file) atomically, with
        the cache's file mode: it tells what was read, so it is kept as private as
        the bytes."""
        self.folder()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")  # threads of one process too
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode)
        try:
            with open(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, self.file_mode)  # whatever the umask
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def _write_meta(self, path: Path, stamp: _Stamp | None = None) -> _Stamp:
        stamp = _stamp(path.stat()) if stamp is None else stamp
        self.write_text(self._meta(path), json.dumps({"stamp": list(stamp)}))
        return stamp

    def _remove(self, path: Path) -> int:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            size = 0  # another process removed it first
        with contextlib.suppress(FileNotFoundError):
            self._meta(path).unlink()
        shutil.rmtree(self._names(path), ignore_errors=True)
        return size

    # -- housekeeping ---------------------------------------------------------
    def entries(self) -> list[CacheEntry]:
        """Every complete entry, least recently used first."""
        found: list[CacheEntry] = []
        base = self.root / "sha256"
        if not base.is_dir():
            return found
        for meta in base.glob("*/*/*.meta"):
            path = meta.with_name(meta.name[: -len(".meta")])
            try:
                found.append(CacheEntry(path.name, path, path.stat().st_size, meta.stat().st_mtime))
            except FileNotFoundError:
                continue  # removed by another process meanwhile
        found.sort(key=lambda e: e.last_used)
        return found

    def size(self) -> int:
        """Bytes held by complete entries."""
        return sum(e.size for e in self.entries())

    def prune(self, older_than: float) -> int:
        """Remove entries last used before ``older_than`` (epoch seconds), and
        partial downloads last written before it; bytes freed."""
        with _locked(self.folder() / "locks" / "evict.lock"):
            freed = sum(self._remove(e.path) for e in self.entries() if e.last_used < older_than)
            return freed + self._remove_partials(older_than)

    def discard(self, sha256s: Iterable[str]) -> int:
        """Remove the entries of these contents, if held; bytes freed."""
        with _locked(self.folder() / "locks" / "evict.lock"):
            return sum(self._remove(self.path_for(sha)) for sha in set(sha256s))

    def clear(self) -> int:
        """Remove every entry; bytes freed."""
        with _locked(self.folder() / "locks" / "evict.lock"):
            freed = sum(self._remove(e.path) for e in self.entries())
            freed += self._remove_partials(None)
            shutil.rmtree(self.root / "tmp", ignore_errors=True)
            return freed

    def _remove_partials(self, older_than: float | None) -> int:
        """Remove partial downloads (last written before ``older_than``, if given):
        those of a process that died downloading stay, beside their entry or in
        ``tmp/``, holding its bytes; bytes freed."""
        freed = 0
        for part in [*self.root.glob("sha256/*/*/.*.part"), *self.root.glob("tmp/*.part")]:
            with contextlib.suppress(OSError):
                st = part.stat()
                if older_than is None or st.st_mtime < older_than:
                    part.unlink()
                    freed += st.st_size
        return freed

    def _evict_if_needed(self, keep: Path) -> None:
        if self.max_bytes is None:
            return
        in_use = time.time() - IN_USE_SECONDS
        with _locked(self.folder() / "locks" / "evict.lock"):
            entries = self.entries()
            total = sum(e.size for e in entries)
            for entry in entries:  # least recently used first
                if total <= self.max_bytes or entry.last_used >= in_use:
                    break
                if entry.path != keep:
                    total -= self._remove(entry.path)


# An entry used this recently is never evicted, past the limit if need be: a path
# `local_path()` handed out (to a lazy reader, one of several files read in
# turn) stays there at least this long.
IN_USE_SECONDS = 600.0


class _HashingFile:
    """Write-through wrapper that hashes the bytes on their way to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        return self._target.write(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._target.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
