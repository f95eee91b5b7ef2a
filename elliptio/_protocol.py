"""The ``elliptio://`` fsspec protocol: artifact files by id, read through the cache.

``elliptio://<artifact_id>/<relpath>`` works wherever fsspec does, for instance
``pd.read_csv("elliptio://artifact_.../test.txt")``, in any process where elliptio
is installed (it is registered through the ``fsspec.specs`` entry point). Opening
a file resolves the artifact in the configured catalog, records it as an input of
the current run (lineage by wrapping open), and serves the bytes from the local
cache, fetching and verifying them on a miss. Artifacts are immutable, so writes
are refused.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import threading
from typing import IO, TYPE_CHECKING, Any

from fsspec import AbstractFileSystem

from ._errors import ElliptioError

if TYPE_CHECKING:
    from ._artifact import Artifact
    from ._sync_handler import Handler

__all__ = ["ElliptioFileSystem", "artifact_url"]

PROTOCOL = "elliptio"


_handlers: dict[str, Handler] = {}
_handlers_lock = threading.Lock()


def _forget_handlers() -> None:
    global _handlers_lock
    _handlers.clear()
    _handlers_lock = threading.Lock()  # another thread may have held it at fork time


os.register_at_fork(after_in_child=_forget_handlers)


def artifact_url(artifact_id: str, relpath: str) -> str:
    """The ``elliptio://`` URL of one artifact file."""
    return f"{PROTOCOL}://{artifact_id}/{relpath}"


class ElliptioFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Read-only filesystem over committed artifacts: ``elliptio://<id>/<relpath>``.

    Args:
        storage, catalog, storage_options: as for `Handler`; by default the
            ``ELLIPTIO_*`` settings of this process.
    """

    protocol = PROTOCOL
    root_marker = ""
    # Settings may change between opens (env, .env): handlers are cached per
    # effective settings below instead of fsspec caching one instance forever.
    cachable = False

    def __init__(
        self,
        storage: str | None = None,
        catalog: str | None = None,
        storage_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._handler_args = (storage, catalog, storage_options)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = str(path)
        if text.startswith(f"{PROTOCOL}://"):
            text = text[len(PROTOCOL) + 3 :]
        return text.strip("/")

    @property
    def handler(self) -> Handler:
        """The handler resolving artifacts, shared by every open with the same settings."""
        from ._config import load_settings

        storage, catalog, options = self._handler_args
        settings = load_settings(storage_url=storage, catalog_url=catalog, storage_options=options)
        key = json.dumps(
            [
                settings.resolved_storage_url(),
                settings.storage_options,
                settings.resolved_catalog_url(),
                str(settings.resolved_cache_dir()),
                settings.offline,
            ],
            sort_keys=True,
            default=str,
        )
        with _handlers_lock:
            handler = _handlers.get(key)
            if handler is None:
                from ._sync_handler import Handler

                handler = _handlers[key] = Handler(storage, catalog, options)
        return handler

    def _split(self, path: str) -> tuple[str, str]:
        artifact_id, _, relpath = self._strip_protocol(path).partition("/")
        return artifact_id, relpath

    def _artifact(self, artifact_id: str) -> Artifact:
        return self.handler.get(artifact_id)  # records the read in the current run

    # -- listing ------------------------------------------------------------------
    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        artifact_id, relpath = self._split(path)
        artifact = self._artifact(artifact_id)
        if not relpath:
            return {"name": artifact_id, "type": "directory", "size": 0}
        file = artifact.files.get(relpath)
        if file is not None:
            return {
                "name": f"{artifact_id}/{relpath}",
                "type": "file",
                "size": file.size,
                "sha256": file.sha256,
                "url": file.url,
            }
        if any(r.startswith(relpath + "/") for r in artifact.files):
            return {"name": f"{artifact_id}/{relpath}", "type": "directory", "size": 0}
        raise FileNotFoundError(
            f"{artifact_url(artifact_id, relpath)} is not a file of the artifact"
        )

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        artifact_id, relpath = self._split(path)
        if not artifact_id:
            raise ElliptioError(
                "elliptio:// lists the files of one artifact: elliptio://<artifact_id>/; "
                "find artifacts with Handler.find()"
            )
        artifact = self._artifact(artifact_id)
        prefix = f"{relpath}/" if relpath else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, file in artifact.files.items():
            if not name.startswith(prefix):
                continue
            head, sep, _ = name[len(prefix) :].partition("/")
            full = f"{artifact_id}/{prefix}{head}"
            if sep:
                entries.setdefault(full, {"name": full, "type": "directory", "size": 0})
            else:
                entries[full] = {"name": full, "type": "file", "size": file.size}
        if not entries and relpath:
            return [self.info(path)] if detail else [self.info(path)["name"]]
        listing = sorted(entries.values(), key=lambda e: e["name"])
        return listing if detail else [e["name"] for e in listing]

    # -- reading ------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> IO[bytes]:
        if mode != "rb":
            raise ElliptioError(
                f"{artifact_url(*self._split(path))} is part of an immutable artifact; "
                "open it with mode 'rb' (write new files with Handler.new())"
            )
        artifact_id, relpath = self._split(path)
        file = self._artifact(artifact_id).files.get(relpath)
        if file is None:
            raise FileNotFoundError(f"{artifact_url(artifact_id, relpath)} is not a file")
        return builtins.open(file.local_path(), "rb")

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        with self._open(path, "rb") as f:
            if start:
                f.seek(start if start >= 0 else max(0, f.seek(0, 2) + start))
            data = f.read() if end is None else f.read(max(0, end - (start or 0)))
        return data

    def get_file(self, rpath: str, lpath: str, **kwargs: Any) -> None:
        with self._open(rpath, "rb") as src, builtins.open(lpath, "wb") as dst:
            shutil.copyfileobj(src, dst)

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise ElliptioError(
            "elliptio:// is read-only: committed artifacts never change; "
            "write new files with Handler.new()"
        )

    rm = rm_file = mkdir = makedirs = put_file = pipe_file = mv = cp_file = touch = _refuse
