"""The async core: save, find, get and write artifacts. `Handler` is its sync face."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from ._artifact import Artifact
from ._cache import Cache
from ._catalog import Catalog, open_catalog
from ._catalog.base import CatalogLostError, lease_lost_error
from ._catalog.filters import conjoin
from ._catalog.none import StorageOnlyCatalog
from ._config import Settings, load_settings
from ._diff import ArtifactDiff, diff_records
from ._errors import (
    ArgumentTypeError,
    ArtifactNotFoundError,
    CatalogError,
    CatalogUnavailableError,
    CommitError,
    ConfigError,
    CorruptRecordError,
    DedupSourceDeletedError,
    ElliptioError,
    InputFileNotFoundError,
    InvalidLabelsError,
    InvalidNameError,
    InvalidPathError,
    OfflineError,
    QueryError,
    StorageError,
    UsageError,
)
from ._frame import build_frame, plan_frame
from ._indexer import IndexReport, sidecar_folders
from ._layout import (
    LOGS_DIR,
    METADATA_RELPATH,
    artifact_prefix,
    collect_local_files,
    new_artifact_id,
    relpath_clash,
    validate_artifact_id,
    validate_relpath,
    validate_relpaths,
)
from ._lifecycle import DeleteReport, check_reason, deleted_error, relabeled, revision, tombstone
from ._lineage import Direction, LineageGraph, build_lineage
from ._maintenance import (
    GcReport,
    ReindexReport,
    VerifyReport,
    drop_aliases,
    gc,
    reindex,
    reindex_folder,
    remove_deleted_files,
    save_aliases,
    verify,
)
from ._models import (
    MAX_LABELS_BYTES,
    FileRecord,
    Labels,
    Metadata,
    record_from_json,
    refuse_nul,
    upgrade_record,
)
from ._names import VERSION_CEILING, format_aliases, parse_ref, validate_alias, validate_name
from ._new import NewArtifact
from ._process import InProcess
from ._protocol import remember_handler
from ._provenance import cached_git_info, current_username, git_info, process_info, readable
from ._redact import has_credentials, is_secret_name, redact_url
from ._runs import Run, RunScope, current_run
from ._storage import Storage
from ._transfer import gather_all, hash_file
from ._urls import UrlTools
from ._workers import to_thread

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AsyncHandler", "LabelsLike", "LocalPaths"]

LocalPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
LabelsLike = Labels | Mapping[str, Any] | None
SortLike = str | Sequence[tuple[str, int]] | Mapping[str, int] | None
DEFAULT_SORT: list[tuple[str, int]] = [("creation_time", -1), ("artifact_id", -1)]

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")
_H = TypeVar("_H", bound="AsyncHandler")


def _write(
    method: Callable[Concatenate[_H, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[_H, _P], Coroutine[Any, Any, _R]]:
    """A write of the handler's, which `AsyncHandler.close` lets end first."""

    @functools.wraps(method)
    async def write(self: _H, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._writing():
            return await method(self, *args, **kwargs)

    return write


def _labels(labels: LabelsLike) -> Labels:
    """New labels, checked."""
    if labels is None:
        return Labels()
    if isinstance(labels, Mapping):
        labels = Labels(**labels)
    if not isinstance(labels, Labels):
        raise InvalidLabelsError(
            f"labels must be eio.Labels(...) or a dict, not {type(labels).__name__}"
        )
    refuse_nul(labels.model_dump())
    size = len(labels.model_dump_json().encode("utf-8"))
    if size > MAX_LABELS_BYTES:
        raise InvalidLabelsError(
            f"labels are {size} bytes as JSON (UTF-8), more than the limit of "
            f"{MAX_LABELS_BYTES}; save large data as a file of the artifact and keep "
            "labels small"
        )
    return labels


# Fields every record holds dates at: text compared with them matches nothing.
_DATE_FIELDS = frozenset({"creation_time", "deleted.deleted_at", "label_history.replaced_at"})
# Comparisons that then match nothing ($ne, $nin, $not and $nor match everything).
_MATCHING = frozenset({"$eq", "$gt", "$gte", "$lt", "$lte", "$in"})


def _refuse_text_dates(query: Any, prefix: str = "") -> None:
    """Raise `QueryError` where ``query`` compares a date field with text
    (``{"creation_time": {"$gte": "2026-01-01"}}``): MongoDB's rules match
    nothing then, which reads as "no such artifacts"."""
    if isinstance(query, list | tuple):
        for item in query:
            _refuse_text_dates(item, prefix)
        return
    if not isinstance(query, Mapping):
        return
    for key, value in query.items():
        if key in ("$and", "$or"):
            _refuse_text_dates(value, prefix)
        if not isinstance(key, str) or key.startswith("$"):
            continue  # (a key of another type is the filter check's to refuse)
        # label_history.0.replaced_at is a label_history.replaced_at.
        path = ".".join(p for p in f"{prefix}{key}".split(".") if not p.isdigit())
        operators = isinstance(value, Mapping) and all(str(k).startswith("$") for k in value)
        conditions = value if operators else {"$eq": value}
        if isinstance(conditions.get("$elemMatch"), Mapping):
            _refuse_text_dates(conditions["$elemMatch"], f"{path}.")
        if path not in _DATE_FIELDS:
            continue
        for op, operand in conditions.items():
            listed = op == "$in" and isinstance(operand, list)
            texts = [i for i in (operand if listed else [operand]) if isinstance(i, str)]
            if op in _MATCHING and texts:
                raise QueryError(
                    f"{path} holds dates, and {op} compares it with the text {texts[0]!r}, "
                    "which matches nothing; give a timezone-aware datetime, e.g. "
                    "datetime(2026, 1, 1, tzinfo=UTC), or in JSON "
                    '{"$date": "2026-01-01T00:00:00Z"}'
                )


def _live(query: Mapping[str, Any] | None, include_deleted: bool) -> Mapping[str, Any]:
    """``query``, limited to artifacts that are not deleted unless asked."""
    _refuse_text_dates(query)
    if include_deleted:
        return query or {}
    return conjoin([query, _NOT_DELETED]) if query else _NOT_DELETED


_NOT_DELETED: dict[str, Any] = {"deleted": None}


def _sort(sort: SortLike) -> list[tuple[str, int]]:
    if sort is None:
        return list(DEFAULT_SORT)
    if isinstance(sort, str):
        return [(sort, 1)]
    if not isinstance(sort, Mapping | Sequence):
        raise QueryError(f"sort {sort!r} must be a key, (key, 1 | -1) pairs or a dict")
    items: list[Any] = list(sort.items()) if isinstance(sort, Mapping) else list(sort)
    for item in items:
        if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)):
            raise QueryError(f"sort item {item!r} must be a (key, 1 | -1) pair")
    return [(str(k), d) for k, d in items]


def _record_path(cache_root: Path, catalog: Catalog, artifact_id: str) -> Path:
    # Kept per catalog: a record read through another catalog (one whose writers
    # planted a record under this id) never stands in for this catalog's.
    key = hashlib.sha256(catalog.identity.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return cache_root / "records" / key / f"{artifact_id}.json"


def _keep_record(cache: Cache, catalog: Catalog, artifact_id: str, doc: Mapping[str, Any]) -> None:
    # Rewritten only when the record changed (labels, tombstone).
    path = _record_path(cache.root, catalog, artifact_id)
    text = upgrade_record(doc).model_dump_json()
    with contextlib.suppress(OSError, UnicodeDecodeError):  # none, or unreadable: rewritten
        if path.read_text(encoding="utf-8") == text:
            return
    cache.write_text(path, text)


_INLINE_HASH = 64 * 1024


def _hash_or_none(path: Path) -> tuple[int, str] | None:
    """Size and sha256 of a local file, or None if it cannot be read now."""
    try:
        return hash_file(path)
    except OSError:
        return None


_CHANGE_ATTEMPTS = 5


def _now_ms() -> datetime:
    # Catalogs store milliseconds (BSON dates); keep records equal everywhere.
    now = datetime.now(tz=UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class _Draft:
    artifact_id: str
    creation_time: datetime
    username: str
    prefix: str
    run: Run
    labels: Labels
    local_root: str
    name: str | None
    dedup: bool
    # Holds True once the record is in the catalog: nothing of it is removed after.
    committed: list[bool] = dataclasses.field(default_factory=list)
    # Holds True once the record was sent to the catalog (it may have landed).
    sent: list[bool] = dataclasses.field(default_factory=list)
    # Holds True once its lease is open.
    leased: list[bool] = dataclasses.field(default_factory=list)


class AsyncHandler(InProcess):
    """Save, find and read artifacts; every method is a coroutine.

    Args:
        storage: fsspec URL or local path of the store's root
            (default ``ELLIPTIO_STORAGE_URL``, else a folder in the user data dir).
        catalog: ``sqlite:////abs/path.db``, ``memory://[name]``, or a `Catalog`
            instance (default ``ELLIPTIO_CATALOG_URL``, else SQLite in the user
            data dir).
        storage_options: fsspec options for the storage (default
            ``ELLIPTIO_STORAGE_OPTIONS``); never written to records.
        max_concurrency: files of one artifact in flight at once.

    Example:
        >>> async with eio.AsyncHandler() as h:  # doctest: +SKIP
        ...     art = await h.upload(["train.csv"], labels=eio.Labels(project="x"))
    """

    def __init__(
        self,
        storage: str | os.PathLike[str] | None = None,
        catalog: str | Catalog | Any = None,
        storage_options: Mapping[str, Any] | None = None,
        *,
        max_concurrency: int | None = None,
        reference_roots: Sequence[str] | None = None,
    ) -> None:
        if storage is not None and not isinstance(storage, str | os.PathLike):
            raise ConfigError(
                f"storage {storage!r} must be a URL or a path, not {type(storage).__name__}"
            )
        if storage_options is not None and not isinstance(storage_options, Mapping):
            raise ConfigError(
                "storage_options must be a dict of fsspec options, "
                f"not {type(storage_options).__name__}"
            )
        self.settings: Settings = load_settings(
            storage_url=os.fspath(storage) if storage is not None else None,
            catalog_url=catalog if isinstance(catalog, str) else None,
            storage_options=dict(storage_options) if storage_options is not None else None,
            max_concurrency=max_concurrency,
            reference_roots=list(reference_roots) if reference_roots is not None else None,
        )
        s = self.settings
        self.storage = Storage(
            s.resolved_storage_url(),
            s.storage_options,
            max_workers=s.max_concurrency,
            part_size=s.part_size,
            progress=s.progress,
            cache=Cache(s.resolved_cache_dir(), s.file_mode, s.cache_max_bytes or None),
            offline=s.offline,
            reference_roots=s.reference_roots,
        )
        # A URL goes through the settings; any object (a Catalog, or a driver's
        # client, database or collection) goes to open_catalog as it is.
        self.catalog: Catalog = open_catalog(
            s.resolved_catalog_url() if catalog is None or isinstance(catalog, str) else catalog
        )
        self.urls = UrlTools(s, self)
        """URL tools (open, local_copy, write, ls, exists, cp, mv, rm, cache) on these settings."""
        self._closed = False
        # The tasks writing through the handler now (with how many nested writes).
        self._writes: dict[asyncio.Task[Any], int] = {}
        # Built from arguments, not only the settings: name URLs of the names it
        # made or read resolve through it (those of one built from the settings
        # follow the settings, as they change).
        self._explicit = storage is not None or catalog is not None
        # The catalog URL, when it was given as one (a client object cannot travel).
        self._catalog_url = (
            s.resolved_catalog_url() if catalog is None or isinstance(catalog, str) else None
        )
        # A catalog no URL can name again: an object, or memory:// (one per handler).
        self._private_catalog = self._catalog_url is None or self._catalog_url.startswith("memory:")

    # -- runs and lineage ---------------------------------------------------
    def run(self, name: str | None = None) -> RunScope:
        """Open a new run for a ``with`` / ``async with`` block.

        Artifacts read inside the block become the ``based_on`` of artifacts
        committed inside it; concurrent tasks with their own run stay apart. A
        subprocess joins the run when started with ``env=eio.run_env()``.
        """
        return RunScope(name, handler=self._reachable_settings(), maker=self)

    def _reachable_settings(self) -> dict[str, str]:
        """Store and catalog URLs another process of this machine may open.

        Never a password (the catalog URL is left out when it holds one) or
        storage options (only that there are some, so a child without
        ``ELLIPTIO_STORAGE_OPTIONS`` can say what it lacks); nothing in memory of
        this process (only its URL, for the same reason).
        """
        out: dict[str, str] = {}
        storage = self._travel_storage_url()
        if storage.startswith("memory:"):
            out["memory_storage"] = storage  # a child says why it cannot read it
        elif has_credentials(storage):
            pass  # never in the environment: children use their own settings
        else:
            out["storage"] = storage
            if self.settings.storage_options and self.storage.remote:
                out["storage_options"] = "not carried"  # a flag, never the values
        catalog = self._travel_catalog_url()
        if catalog and not catalog.startswith("memory:") and not _has_password(catalog):
            out["catalog"] = catalog
        return out

    def _travel_storage_url(self) -> str:
        """The storage URL as another process (another working directory) reads it."""
        url = self.settings.resolved_storage_url()
        if "://" not in url:
            return os.path.abspath(os.path.expanduser(url))
        return url

    def _travel_catalog_url(self) -> str | None:
        """The catalog URL as another process reads it; ``None`` for a client object."""
        url = self._catalog_url
        if url is not None and url.startswith("sqlite:///"):
            return "sqlite:///" + os.path.abspath(os.path.expanduser(url[len("sqlite:///") :]))
        return url

    async def _publish_read(self, run: Run, artifact_id: str) -> None:
        """Tell the catalog that ``run`` read ``artifact_id`` (a joined run's reads).

        Raises:
            CatalogError: the catalog could not take it; the bytes are not handed
                out, so no read goes unrecorded.
        """
        if self._catalog_offline:
            return  # nothing reaches a remote catalog offline; commits cannot either
        # With it, whatever this process read in the run before it was shared.
        ids = run.unpublished()
        try:
            await self.catalog.add_run_inputs(run.run_id, ids)
        except ElliptioError as err:
            raise CatalogError(
                f"could not record in the catalog that run {run.run_id} read {artifact_id}, "
                f"so its bytes were not handed out: {err}"
            ) from err
        run.published(ids)

    async def _note_read(self, artifact_id: str) -> None:
        run = current_run()
        if run.record_input(artifact_id, self._publish_read):
            await self._publish_read(run, artifact_id)

    async def _run_inputs(self, run: Run) -> list[str]:
        """What ``run`` read in this process and, if it is shared, in any other."""
        inputs = run.inputs
        if run.shared:  # the catalog has every process's reads in the order they came
            listed = await self.catalog.run_inputs(run.run_id)
            # A row whose id is no text was not written by elliptio (a catalog
            # writer's): it is no input, and never stops the commit.
            shared = [a for a in listed if isinstance(a, str)]
            if len(shared) < len(listed):
                log.warning("run %s: rows of its inputs that are no ids ignored", run.run_id)
            seen = set(shared)
            inputs = shared + [a for a in inputs if a not in seen]
        return inputs

    @property
    def based_on(self) -> list[str]:
        """The artifact ids read so far in the current run, in this process.

        A commit lists more when other processes joined the run: what every
        process of it read (see docs/lineage.md).
        """
        return current_run().inputs

    @property
    def run_id(self) -> str:
        """The id of the current run."""
        return current_run().run_id

    @property
    def _catalog_offline(self) -> bool:
        """Offline with a catalog a network away: records come from the cache.
        A local catalog (a SQLite file) keeps answering offline."""
        return self.settings.offline and self.catalog.remote

    # -- writing ------------------------------------------------------------
    def _online(self, what: str, *, storage: bool = True, catalog: bool = True) -> None:
        """Raise `OfflineError` if ``what`` needs a store or catalog a network away
        while ``ELLIPTIO_OFFLINE`` is set: offline, nothing is sent anywhere."""
        if not self.settings.offline:
            return
        far = [
            name
            for name, needed, remote in (
                (f"store {self.storage.safe_url}", storage, self.storage.remote),
                ("catalog", catalog, self.catalog.remote),
            )
            if needed and remote
        ]
        if far:
            raise OfflineError(
                f"cannot {what} offline: it needs the {' and the '.join(far)}, and "
                "ELLIPTIO_OFFLINE is set, so nothing is sent; files and records read "
                "before stay readable. Unset ELLIPTIO_OFFLINE once the network is back"
            )

    def _draft(
        self,
        labels: LabelsLike,
        local_root: str = "",
        name: str | None = None,
        dedup: bool = True,
        relpaths: Sequence[str] = (),
    ) -> _Draft:
        """A new artifact's id, time, place and labels, checked; nothing written.

        ``relpaths``: the store paths (below the artifact's folder) it will write.
        """
        self._online("commit an artifact")
        labels_ = _labels(labels)
        name_ = validate_name(name) if name is not None else None
        if name_ is not None and isinstance(self.catalog, StorageOnlyCatalog):
            raise UsageError(
                f"cannot commit under the name {name_!r}: this handler writes to storage "
                "only (catalog='none') and versions are handed out by a catalog; commit "
                "without a name, or with a handler that has a catalog"
            )
        if not isinstance(dedup, bool):
            raise ConfigError(f"dedup must be True or False, not {dedup!r}")
        artifact_id = new_artifact_id()
        created = _now_ms()
        username = current_username()
        prefix = artifact_prefix(self.storage.root, created, username, artifact_id)
        limit = self.storage.backend.key_limit(f"{prefix}/{METADATA_RELPATH}")
        if limit is not None:  # the artifact's sidecar would not fit
            raise ConfigError(
                f"storage URL {self.storage.redact(self.storage.root_url)!r} is too long: "
                f"an artifact's keys under it would pass the {limit} bytes the store "
                "takes; use a shorter prefix"
            )
        for relpath in relpaths:
            if not self.storage.backend.plain(f"{prefix}/{relpath}"):
                raise InvalidPathError(
                    f"relpath {relpath!r} cannot be stored in "
                    f"{self.storage.redact(self.storage.root_url)}: the store would read "
                    "it as another object (on S3 a '?' starts a version: '?versionId=' in "
                    "a key names a version of another key); rename the file"
                )
            limit = self.storage.backend.key_limit(f"{prefix}/{relpath}")
            if limit is not None:
                raise InvalidPathError(
                    f"relpath {relpath!r} is too long for "
                    f"{self.storage.redact(self.storage.root_url)}: its key there (the "
                    f"artifact's folder, then this path) would pass the {limit} bytes "
                    "the store takes; shorten the file's path"
                )
        return _Draft(
            artifact_id, created, username, prefix, current_run(), labels_, local_root, name_, dedup
        )

    async def _begin(
        self, draft: _Draft, keys: Sequence[tuple[str, int]] = ()
    ) -> dict[tuple[str, int], str]:
        """Open the draft's lease; with ``keys``, in the same trip to the catalog, the
        URLs of committed files with these contents (see `Catalog.find_objects`)."""
        # The lease is open before the first byte is written, so gc never takes
        # the files of a commit in flight (see `Lease`).
        if keys:
            found = await self.catalog.open_lease_finding(
                draft.artifact_id, draft.prefix, draft.creation_time, keys, self._objects_root
            )
        else:
            await self.catalog.open_lease(draft.artifact_id, draft.prefix, draft.creation_time)
            found = {}
        draft.leased.append(True)
        return found

    @property
    def _objects_root(self) -> str:
        return self.storage.root_url.rstrip("/") + "/"

    async def _commit(
        self,
        draft: _Draft,
        files: list[FileRecord],
        logs: list[FileRecord],
        reference: dict[str, str] | None = None,
    ) -> Artifact:
        info = process_info()
        # git runs once per process; later commits read its cache without a thread hop.
        known, git = cached_git_info()
        if not known:
            git = await to_thread(git_info)
        version = await self.catalog.reserve_version(draft.name) if draft.name else None
        if version is not None and version > VERSION_CEILING:
            raise InvalidNameError(
                f"name {draft.name!r} has no version left: the catalog holds a record of "
                f"version {VERSION_CEILING:,}, the highest elliptio counts (one planted in "
                "the catalog?). Save under another name, or ask whoever administers the "
                "catalog to remove that record."
            )
        record = Metadata(
            artifact_id=draft.artifact_id,
            run_id=draft.run.run_id,
            creation_time=draft.creation_time,
            username=draft.username,
            hostname=info.hostname,
            argv=list(info.argv),
            python_version=info.python_version,
            platform=info.platform,
            python_packages=dict(info.python_packages),
            git=git,
            labels=draft.labels,
            files=files,
            file_relpaths=[f.relpath for f in files],
            logs=logs,
            log_relpaths=[f.relpath for f in logs],
            based_on=[a for a in await self._run_inputs(draft.run) if a != draft.artifact_id],
            remote_root=self.storage.url(draft.prefix),
            local_root=draft.local_root,
            name=draft.name,
            name_version=version,
            reference=reference,
        )
        sidecar = record.to_json(indent=2)
        prefix = draft.prefix
        own = [f"{prefix}/{f.relpath}" for f in files] + [
            f"{prefix}/{LOGS_DIR}/{f.relpath}" for f in logs
        ]
        # Deduplicated files live (sealed already) in the artifact that wrote them.
        recorded = {f.url for f in files + logs}
        await self.storage.write_bytes(
            f"{prefix}/{METADATA_RELPATH}",
            sidecar,
            seal=[path for path in own if self.storage.url(path) in recorded],
        )
        draft.sent.append(True)
        await self.catalog.commit(record.to_document())
        draft.committed.append(True)
        await self._confirm_owners(record)
        if log.isEnabledFor(logging.INFO):  # masking the URL is not free
            log.info(
                "committed %s%s: %d files, %d bytes, at %s",
                record.artifact_id,
                f" as {record.ref}" if record.ref else "",
                len(files),
                sum(f.size for f in files),
                self.storage.redact(record.remote_root),
            )
        return self._bind(record)

    async def _confirm_owners(self, record: Metadata) -> None:
        """After a commit: the artifacts whose files it references (deduplication)
        are still there; if one was deleted meanwhile, the record goes again.

        A delete tombstones its record before it asks the catalog who uses the
        files it is about to remove, and keeps those: so a commit that lands
        before that question keeps its bytes, and one that lands after sees the
        tombstone here.

        Raises:
            DedupSourceDeletedError: an owner was deleted; nothing stays committed.
        """
        own = record.remote_root.rstrip("/") + "/"  # its own files have no owner to ask about
        owners = {
            owner
            for f in [*record.files, *record.logs]
            if not f.url.startswith(own)
            and (owner := self.storage.reference_owner(f.url)[1]) not in (None, record.artifact_id)
        }
        live_owners = {"artifact_id": {"$in": sorted(owners)}, "deleted": None}
        try:
            if not owners or await self.catalog.count(live_owners) == len(owners):
                return
            found = await self.catalog.find(live_owners, fields=["artifact_id"])
        except ElliptioError as err:  # the commit stands, as it did before the check
            log.warning(
                "%s is committed, but whether the artifacts it references are still there "
                "could not be checked (%s); 'elliptio verify %s' tells",
                record.artifact_id,
                err,
                record.artifact_id,
            )
            return
        gone = sorted(owners - {d["artifact_id"] for d in found})
        if gone:
            await self.catalog.delete(record.artifact_id)
            raise DedupSourceDeletedError(
                f"{record.artifact_id} was not committed: {', '.join(gone)}, whose stored "
                "copy of one of its files it referenced (deduplication), was deleted while "
                "it was being written; commit it again (upload() does so once by itself)"
            )

    async def _fail(self, draft: _Draft, err: BaseException) -> None:
        """Clean up after a failed write; raise the clear error if gc took it away.

        A write whose catalog file was lost after its sidecar was written keeps its
        files: they are a whole artifact that `reindex` restores (and that gc, seeing
        a sidecar without record or lease, leaves alone).
        A record that is in the catalog keeps everything, whatever failed after it
        (a cancellation, say), unless the commit took it back itself.
        """
        if draft.sent and not isinstance(err, DedupSourceDeletedError):
            if draft.committed:
                return
            # A record sent may have landed though the call failed (the lease's
            # close, or the answer, lost): then its files stay, and so they do
            # when the catalog cannot tell.
            try:
                landed = await self.catalog.count({"artifact_id": draft.artifact_id}) > 0
            except ElliptioError:
                log.warning(
                    "%s: the catalog cannot tell whether its record landed (%s); its files "
                    "stay at %s: 'elliptio reindex' restores the artifact from them, "
                    "delete it if it should not be",
                    draft.artifact_id,
                    err,
                    self.storage.redact(self.storage.url(draft.prefix)),
                )
                return
            if landed:
                return
        if isinstance(err, CatalogLostError):
            kept = False
            with contextlib.suppress(ElliptioError):
                kept = await self.storage.exists(f"{draft.prefix}/{METADATA_RELPATH}")
            if kept:
                raise CatalogLostError(
                    f"{err} {draft.artifact_id} was not committed; its files and sidecar "
                    f"stay in storage at {self.storage.url(draft.prefix)}, so reindex "
                    "restores it."
                ) from err
        lost = False
        if isinstance(err, ElliptioError) and not isinstance(err, CommitError | UsageError):
            # Only gc condemns or closes a lease this writer has not closed yet.
            with contextlib.suppress(ElliptioError):
                lease = await self.catalog.get_lease(draft.artifact_id)
                lost = lease is None or lease.state == "condemned"
        await self._discard(draft)
        if lost:
            raise lease_lost_error(draft.artifact_id) from err

    async def _discard(self, draft: _Draft) -> None:
        # Best effort: what stays behind has no catalog record, so gc finds it.
        with contextlib.suppress(ElliptioError):
            await self.storage.remove_tree(draft.prefix)
        with contextlib.suppress(ElliptioError):
            await self.catalog.close_lease(draft.artifact_id)

    # -- deduplication ------------------------------------------------------
    async def _existing(
        self, keys: Sequence[tuple[str, int]], draft: _Draft | None = None
    ) -> dict[tuple[str, int], str]:
        """URLs of committed files in this store with these contents, confirmed;
        with ``draft``, its lease is opened in the catalog's first trip (`_begin`).

        A candidate from the catalog is referenced only if its URL is a file of
        an artifact under this store's root by the layout, that artifact has a
        record (so gc never takes the folder), and its stored bytes hash to the
        recorded sha256 right now (one streamed read, nothing written); anything
        else is copied instead.
        """
        keys = [k for k in dict.fromkeys(keys) if k[1] > 0]
        if draft is not None:
            found = await self._begin(draft, keys)
        elif keys:
            found = await self.catalog.find_objects(keys, self._objects_root)
        else:
            return {}
        located = {key: self.storage.reference_owner(url) for key, url in found.items()}
        # Only bytes in the folder of a committed artifact: gc never removes those.
        owners = sorted({owner for _, owner in located.values() if owner})
        committed = (
            {
                doc["artifact_id"]
                for doc in await self.catalog.find(
                    {"artifact_id": {"$in": owners}, "deleted": None}, fields=["artifact_id"]
                )
            }
            if owners
            else set()
        )
        slots = asyncio.Semaphore(self.storage.max_concurrency)

        async def confirmed(key: tuple[str, int]) -> bool:
            path, owner = located[key]
            if path is None or owner not in committed:
                return False
            async with slots:
                try:
                    return await self.storage.hash_file(path, key[1]) == (key[1], key[0])
                except ElliptioError:
                    return False

        checks = await asyncio.gather(*(confirmed(k) for k in found))
        for (sha256, size), ok in zip(found, checks, strict=True):
            if not ok:
                log.debug(
                    "dedup: %s (%d bytes) is copied: its stored match is unconfirmed", sha256, size
                )
        return {key: url for (key, url), ok in zip(found.items(), checks, strict=True) if ok}

    async def _deduplicated(
        self, draft: _Draft, items: list[tuple[Path, str]], progress: Any, dedup: bool
    ) -> dict[int, FileRecord]:
        """Open the lease of ``draft``; with ``dedup``, the files of ``items`` whose
        exact content is committed in this store already, by index, as references
        to it (asked in the same trip to the catalog). Nothing is written."""
        if not dedup or not items:
            await self._begin(draft)
            return {}
        sizes = [local.stat().st_size for local, _ in items]
        # A small file hashes faster than a question to the catalog; a large one
        # is hashed only if a committed file has its size.
        big = sorted({size for size in sizes if size > _INLINE_HASH})
        known = set(await self.catalog.known_sizes(big)) if big else set()
        candidates = [
            i for i, size in enumerate(sizes) if 0 < size <= _INLINE_HASH or size in known
        ]
        large = [i for i in candidates if sizes[i] > _INLINE_HASH]
        hashed = dict(
            zip(
                large,
                await asyncio.gather(*(to_thread(_hash_or_none, items[i][0]) for i in large)),
                strict=True,
            )
        )
        results = [hashed[i] if i in hashed else _hash_or_none(items[i][0]) for i in candidates]
        # A file that cannot be read here is copied, and the copy reports the error.
        expected = {
            i: (result[1], result[0])
            for i, result in zip(candidates, results, strict=True)
            if result is not None
        }
        existing = await self._existing(list(expected.values()), draft)
        records: dict[int, FileRecord] = {}
        for i, key in expected.items():
            if key in existing:
                records[i] = FileRecord(
                    relpath=items[i][1], url=existing[key], size=key[1], sha256=key[0]
                )
                log.debug(
                    "dedup: %s references %s", items[i][1], self.storage.redact(existing[key])
                )
                progress.relative_update(1)
        return records

    async def _put_rest(
        self,
        prefix: str,
        items: list[tuple[Path, str]],
        found: dict[int, FileRecord],
        progress: Any,
    ) -> list[FileRecord]:
        """Upload the files of ``items`` that ``found`` does not reference already."""
        rest = [i for i in range(len(items)) if i not in found]
        # A file that changed since it was hashed is recorded as copied: the copy
        # hashes exactly the bytes it stores.
        uploaded = await self._put_all(prefix, [items[i] for i in rest], progress)
        records = {**found, **dict(zip(rest, uploaded, strict=True))}
        return [records[i] for i in range(len(items))]

    async def _put_all(
        self, prefix: str, items: list[tuple[Path, str]], progress: Any
    ) -> list[FileRecord]:
        paths = [f"{prefix}/{relpath}" for _, relpath in items]
        results = await self.storage.put_files(
            [(local, path) for (local, _), path in zip(items, paths, strict=True)], progress
        )
        return [
            FileRecord(relpath=relpath, url=self.storage.url(path), size=size, sha256=sha256)
            for (_, relpath), path, (size, sha256) in zip(items, paths, results, strict=True)
        ]

    @_write
    async def upload(
        self,
        local_paths: LocalPaths,
        labels: LabelsLike = None,
        logs: LocalPaths | None = None,
        *,
        name: str | None = None,
        dedup: bool = True,
    ) -> Artifact:
        """Save local files and folders as a new artifact.

        Relpaths are relative to the common parent of ``local_paths``; a folder
        contributes its whole tree. Nothing is written before every path and
        label has been checked; on any failure nothing becomes visible.

        Symlinks: a path in ``local_paths`` is used as given, so a symlink given
        there is followed. Inside a folder, a symlink to a file or folder inside
        that same folder is followed (its content is saved under the link's
        relpath); a symlink that points outside the folder, or nowhere, or to a
        folder holding the link, raises `InvalidPathError` naming the link and its
        target: copy the file into the folder, or give it in ``local_paths``.

        Args:
            local_paths: files and folders to save.
            labels: `Labels` or a dict of their fields.
            logs: log files to keep with the artifact (under ``artifact.logs``).
            name: commit it as the next version of this name (``train-set`` ->
                ``train-set:v1``, ``:v2``, ...); `get` then finds it by name.
            dedup: a file whose exact content (sha256 and size) is committed in
                this store already is not copied again: the record points at the
                existing object. ``False`` copies every file.

        Returns:
            The committed `Artifact`.
        """
        try:
            return await self._upload(local_paths, labels, logs, name, dedup)
        except DedupSourceDeletedError as err:
            log.info("%s; uploading again", err)
            return await self._upload(local_paths, labels, logs, name, dedup)

    async def _upload(
        self,
        local_paths: LocalPaths,
        labels: LabelsLike,
        logs: LocalPaths | None,
        name: str | None,
        dedup: bool,
    ) -> Artifact:
        parent, items = collect_local_files(local_paths)
        log_items = collect_local_files(logs)[1] if logs is not None else []
        stored = [r for _, r in items] + [f"{LOGS_DIR}/{r}" for _, r in log_items]
        draft = self._draft(
            labels, local_root=readable(str(parent)), name=name, dedup=dedup, relpaths=stored
        )
        progress = self.storage.progress_for(
            f"upload {draft.artifact_id}",
            files=len(items) + len(log_items),
            nbytes=lambda: sum(local.stat().st_size for local, _ in items + log_items),
        )
        try:
            try:
                # The lease opens in the same trip to the catalog as the question for
                # stored copies of the files; nothing is written before it is open.
                found = await self._deduplicated(draft, items + log_items, progress, dedup)
                n = len(items)
                file_found = {i: record for i, record in found.items() if i < n}
                log_found = {i - n: record for i, record in found.items() if i >= n}
                files = await self._put_rest(draft.prefix, items, file_found, progress)
                log_files = await self._put_rest(
                    f"{draft.prefix}/{LOGS_DIR}", log_items, log_found, progress
                )
                return await self._commit(draft, files, log_files)
            except BaseException as err:
                # Cancelled, maybe once the lease was in the catalog; else, without a
                # lease, there is nothing to clean up.
                if draft.leased or not isinstance(err, Exception):
                    await self._fail(draft, err)
                raise
        finally:
            progress.close()

    @_write
    async def add_reference(
        self,
        urls: str | Sequence[str],
        labels: LabelsLike = None,
        *,
        name: str | None = None,
    ) -> Artifact:
        """Commit an artifact whose files stay where they are: a reference.

        Each file is read once, streaming, for its size and sha256, and its
        version id or ETag is kept where the store has one; nothing is copied.
        The artifact has its sidecar in the store like any other, and names,
        search, lineage and the cache treat it like any other. Reads are verified
        against the recorded sha256: a source that changed raises
        `IntegrityError` naming its URL. Deleting a reference artifact never
        touches its sources.

        References lie on the store's filesystem (read with its credentials),
        outside the store, below one of the handler's reference roots
        (``reference_roots=`` or ``ELLIPTIO_REFERENCE_ROOTS``), which readers
        need too.

        Args:
            urls: files or folders (a folder is walked; its files keep the
                folder's name as the first part of their relpaths).
            labels: `Labels` or a dict of their fields.
            name: commit it as the next version of this name.

        Raises:
            ConfigError: a URL lies below no reference root, or carries credentials.
            InvalidPathError: a URL lies inside the store (or is a folder that
                holds it), is not on the store's filesystem, or two files would get
                the same relpath.
            InputFileNotFoundError: a URL names nothing.
        """
        self._online("commit an artifact")
        items = await self._reference_items(urls)
        draft = self._draft(labels, local_root="", name=name, dedup=False)
        try:
            await self._begin(draft)
        except BaseException:  # cancelled, maybe once the lease was in the catalog
            await self._discard(draft)
            raise
        progress = self.storage.progress_for(f"hash {draft.artifact_id}", files=len(items))
        try:
            slots = asyncio.Semaphore(self.storage.max_concurrency)

            async def pin(path: str, relpath: str) -> tuple[FileRecord, str]:
                async with slots:
                    found = await self.storage.hash_file(path)
                    info = await self.storage.backend.run("read", path, self.storage.fs.info, path)
                if found is None:
                    raise InputFileNotFoundError(
                        f"{self.storage.redact(self.storage.url(path))} vanished while "
                        "it was being referenced; nothing was committed"
                    )
                size, sha256 = found
                version = info.get("VersionId") or info.get("ETag") or ""
                url = self.storage.url(path)
                return FileRecord(relpath=relpath, url=url, size=size, sha256=sha256), str(
                    version
                ).strip('"')

            pinned = await gather_all(pin(path, relpath) for path, relpath in items)
            files = [record for record, _ in pinned]
            versions = {record.relpath: version for record, version in pinned}
            return await self._commit(draft, files, [], reference=versions)
        except BaseException as err:
            await self._fail(draft, err)
            raise
        finally:
            progress.close()

    async def _reference_items(self, urls: str | Sequence[str]) -> list[tuple[str, str]]:
        """``(storage path, relpath)`` of every file the URLs name, checked."""
        given = [urls] if isinstance(urls, str | os.PathLike) else urls
        if not isinstance(given, Sequence) or not given:
            raise ArgumentTypeError(
                "add_reference takes a URL or a list of URLs of files or folders"
            )
        storage = self.storage
        items: list[tuple[str, str]] = []
        for url in given:
            if not isinstance(url, str | os.PathLike):
                raise ArgumentTypeError(f"{url!r} is not a URL; give URLs as strings")
            text = os.fspath(url)
            if has_credentials(text):
                raise ConfigError(
                    f"{redact_url(text, whole=True)!r} carries credentials; give them in "
                    "storage_options"
                )
            path = storage.new_source(text)
            if not await storage.exists(path):
                raise InputFileNotFoundError(
                    f"{storage.redact(text)} does not exist; nothing was committed"
                )
            isdir = await storage.backend.run("read", path, storage.fs.isdir, path)
            if not isdir:
                # Checked as reads check it: a root that is a file has nothing below it.
                storage.source_path(storage.url(path), "the file")
                items.append((path, validate_relpath(path.rstrip("/").rpartition("/")[2])))
                continue
            # A key ending in "/" is a folder marker (the S3 console's "Create folder").
            found = [p for p in await storage.find(path) if not p.endswith("/")]
            if not found:
                raise InvalidPathError(f"{storage.redact(text)} is a folder without files")
            base = path.rstrip("/").rpartition("/")[0]
            for inner in sorted(found):
                items.append((inner, validate_relpath(inner[len(base) :].lstrip("/"))))
        problem = relpath_clash(relpath for _, relpath in items)
        if problem is not None:
            raise InvalidPathError(
                f"the references cannot be files of one artifact: {problem}; reference "
                "their folders, or add them as separate artifacts"
            )
        return items

    def new(
        self,
        relpaths: str | Sequence[str],
        labels: LabelsLike = None,
        *,
        name: str | None = None,
        dedup: bool = True,
    ) -> NewArtifact:
        """Open a new artifact to write files into; it commits when the block ends.

        Use ``async with h.new([...]) as new:`` here (``with`` on `Handler`).
        Write each file at ``new.files[relpath].url`` (``new.file.url`` for a
        single file), through ``.open("wb")`` or at ``.local_path``. ``name``
        and ``dedup`` are those of `upload`; a written file whose content is
        committed already is removed again at commit and referenced instead.
        """
        single = isinstance(relpaths, str | os.PathLike)
        relpaths_ = validate_relpaths([relpaths] if single else relpaths)
        draft = self._draft(labels, name=name, dedup=dedup, relpaths=relpaths_)

        async def commit(new: NewArtifact, written: dict[str, tuple[int, str]]) -> Artifact:
            with self._writing():
                return await committed(new, written)

        async def committed(new: NewArtifact, written: dict[str, tuple[int, str]]) -> Artifact:
            keys = {r: (sha256, size) for r, (size, sha256) in written.items()}
            existing = await self._existing(list(keys.values())) if dedup else {}
            files = []
            copies = []  # written, and referenced elsewhere instead: removed once committed
            for r, f in new.files.items():
                url = existing.get(keys[r])
                if url is not None:
                    log.debug("dedup: %s references %s", r, self.storage.redact(url))
                    copies.append(f._path)
                files.append(
                    FileRecord(relpath=r, url=url or f.url, size=keys[r][1], sha256=keys[r][0])
                )
            artifact = await self._commit(draft, files, [])
            for path in copies:
                with contextlib.suppress(ElliptioError):  # gc takes what stays behind
                    await self.storage.remove_file(path)
            return artifact

        async def begin(new: NewArtifact) -> None:
            with self._writing():
                await self._begin(draft)

        async def discard(new: NewArtifact, err: BaseException | None) -> None:
            with self._writing():
                if err is None:
                    await self._discard(draft)
                else:
                    await self._fail(draft, err)

        return NewArtifact(
            self.storage, draft.artifact_id, draft.prefix, relpaths_, commit, discard, begin
        )

    # -- reading ------------------------------------------------------------
    async def resolve(self, ref: str | Artifact) -> str:
        """The artifact id a reference names.

        Args:
            ref: an artifact id; or ``name`` / ``name:latest`` (the highest
                version), ``name:v3`` (version 3), ``name:<alias>``; or an `Artifact`.

        Raises:
            ArtifactNotFoundError: nothing has that id, name, version or alias, or
                ``ref`` is neither an id nor a well-formed reference.
            ArgumentTypeError: ``ref`` is neither a str nor an `Artifact`.
            OfflineError: a name needs the catalog, which is a network away
                while ``ELLIPTIO_OFFLINE`` is set.
        """
        if isinstance(ref, Artifact):
            return ref.artifact_id
        if not isinstance(ref, str):
            raise ArgumentTypeError(_not_a_ref(ref))
        if ref.startswith("artifact_"):
            return validate_artifact_id(ref)
        try:
            parsed = parse_ref(ref)
        except InvalidNameError as err:
            # Nothing can have it: for get() that is "not found", like a bad id.
            raise ArtifactNotFoundError(str(err)) from None
        if self._catalog_offline:
            raise OfflineError(
                f"{ref!r} is a name, which only the catalog can resolve, and "
                "ELLIPTIO_OFFLINE is set; use the artifact id of an artifact read before"
            )
        version = parsed.version
        if parsed.alias is not None:
            aliases = await self.catalog.aliases(parsed.name)
            version = aliases.get(parsed.alias)
            if version is None:
                known = ", ".join(sorted(aliases)) or "none"
                try:
                    validate_alias(parsed.alias)
                    hint = f"set one with set_alias('{parsed.name}:v<n>', '{parsed.alias}')"
                except InvalidNameError:  # v0, latest-like: no alias can be called so
                    hint = "versions count from v1; list them with names() or `elliptio names`"
                raise ArtifactNotFoundError(
                    f"{parsed.name!r} has no alias {parsed.alias!r} (its aliases: {known}); " + hint
                )
        artifact_id = await self.catalog.version_id(parsed.name, version)
        if artifact_id is None:
            what = f"version v{version} of" if version is not None else "artifact named"
            raise ArtifactNotFoundError(
                f"no {what} {parsed.name!r} in catalog {self.catalog!r}; list names and "
                "versions with names() or `elliptio names`"
            )
        return artifact_id

    async def get(self, artifact_id: str | Artifact) -> Artifact:
        """Return a committed artifact and record it as an input of the current run.

        ``artifact_id`` may also be a name reference: ``train-set`` or
        ``train-set:latest`` (its highest version), ``train-set:v3``, or
        ``train-set:<alias>``. Records read once are kept in the local cache
        (they never change), so offline with a catalog a network away, or when
        the catalog cannot be reached, `get` still returns artifacts read before
        by id. A local catalog (a SQLite file) keeps answering offline.

        Raises:
            ArtifactNotFoundError: no artifact has this id, name or version.
            ArtifactDeletedError: it was deleted (the message says who, when, why).
            OfflineError: offline or catalog unreachable, and not read before.
        """
        artifact_id = await self.resolve(artifact_id)
        artifact = await self._lookup(artifact_id)
        await self._note_read(artifact_id)
        return artifact

    async def _lookup(self, artifact_id: str | Artifact) -> Artifact:
        """`get` without noting the read: for the ``elliptio://`` protocol, whose
        reads are noted by the file once its bytes are verified."""
        artifact_id = await self.resolve(artifact_id)
        cache = self.storage.cache
        if self._catalog_offline:
            doc = self._cached_record(artifact_id)
        else:
            try:
                doc = await self.catalog.get(artifact_id)
            except CatalogUnavailableError as err:
                doc = self._cached_record(artifact_id, err)
            else:
                if cache is not None:
                    await to_thread(_keep_record, cache, self.catalog, artifact_id, doc)
        record = upgrade_record(doc)
        if record.deleted is not None:
            raise deleted_error(record)
        return self._bind(record)

    def _bind(self, record: Metadata) -> Artifact:
        """An `Artifact` on this handler's store; its ``eio_url`` resolves through it."""
        remember_handler(record.artifact_id, self)
        if record.name is not None and self._explicit:  # elliptio://train-set:v3/...
            remember_handler(record.name, self)
        return Artifact.from_metadata(record, self.storage, self._publish_read, self._deleted)

    async def _deleted(self, artifact_id: str) -> BaseException | None:
        """`ArtifactDeletedError` if the catalog holds ``artifact_id``'s tombstone."""
        if self._catalog_offline:
            return None
        record = await self._record(artifact_id)
        return deleted_error(record) if record.deleted is not None else None

    def _kept_record(self, artifact_id: str) -> dict[str, Any] | None:
        """The record kept in the cache when ``artifact_id`` was read before."""
        cache = self.storage.cache
        if cache is None:
            return None
        try:
            text = _record_path(cache.root, self.catalog, artifact_id).read_text(encoding="utf-8")
            return record_from_json(text).to_document()
        except (OSError, UnicodeDecodeError, CorruptRecordError):
            return None

    def _cached_record(self, artifact_id: str, err: BaseException | None = None) -> dict[str, Any]:
        doc = self._kept_record(artifact_id)
        if doc is None:
            reason = f"the catalog is unreachable ({err})" if err else "ELLIPTIO_OFFLINE is set"
            raise OfflineError(
                f"{artifact_id} was not read before on this machine and {reason}; "
                "get it once while online"
            ) from err
        return doc

    async def find(
        self,
        query: Mapping[str, Any] | None = None,
        max_docs: int | None = None,
        *,
        sort: SortLike = None,
        skip: int = 0,
        columns: Sequence[str] | None = None,
        include_packages: bool = False,
        flatten: bool = True,
        include_deleted: bool = False,
    ) -> pd.DataFrame:
        """Find artifacts with a MongoDB filter; a DataFrame indexed by ``artifact_id``.

        The default columns are ``ref`` (``name:vN``, or the id of an artifact
        without a name), ``name``, ``name_version``, ``creation_time``,
        ``username``, ``file_relpaths``, ``based_on``, ``run_id`` and the labels
        as dotted columns (``labels.datatype``, ``labels.infos.seed``; those empty
        in every row are left out). A field that no record has is no error: the
        query matches nothing.

        Args:
            query: a MongoDB filter document, e.g. ``{"username": "andy",
                "labels.datatype": "annotation_file"}``; ``None`` finds all.
            max_docs: at most this many rows (``None``: all; ``0``: none, with
                the query still checked).
            sort: a key, ``(key, 1 | -1)`` pairs or a dict; default newest first.
            skip: rows to leave out first.
            columns: record fields, dotted paths into them such as
                ``"labels.infos.seed"``, or ``"ref"``; each becomes a column of
                that name. Default: the columns above.
            include_packages: also return ``python_packages``.
            flatten: nested ``labels`` become dotted columns (default); ``False``
                keeps ``labels`` as one column of dicts.
            include_deleted: also return tombstones of deleted artifacts, with
                a ``deleted`` column (who, when, why; ``None`` for the others).

        Raises:
            QueryError: the query, sort, limits or columns are malformed or unsupported.
        """
        self._online("search the catalog", storage=False)
        if query is not None and not isinstance(query, Mapping):
            raise QueryError(f"query must be a dict (a MongoDB filter), not {type(query).__name__}")
        for name, value in (("max_docs", max_docs), ("skip", skip)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise QueryError(f"{name} must be a non-negative int or None, not {value!r}")
        plan = plan_frame(columns, include_packages, flatten)
        if include_deleted and columns is None:
            plan = dataclasses.replace(
                plan, columns=(*plan.columns, "deleted"), fields=(*plan.fields, "deleted")
            )
        # max_docs=0 asks for no rows; the catalog's limit 0 means "no limit", so
        # fetch at most one (the query is still checked) and keep none.
        limit = 1 if max_docs == 0 else max_docs or 0
        table = await self.catalog.find_columns(
            _live(query, include_deleted),
            sort=_sort(sort),
            skip=skip,
            limit=limit,
            fields=plan.fields,
        )
        if max_docs == 0:
            table = {key: [] for key in table}
        return build_frame(table, plan)

    async def count(
        self, query: Mapping[str, Any] | None = None, *, include_deleted: bool = False
    ) -> int:
        """How many artifacts match ``query`` (tombstones only with ``include_deleted``)."""
        self._online("search the catalog", storage=False)
        if query is not None and not isinstance(query, Mapping):
            raise QueryError(f"query must be a dict (a MongoDB filter), not {type(query).__name__}")
        return await self.catalog.count(_live(query, include_deleted))

    # -- names and aliases --------------------------------------------------
    async def set_alias(self, ref: str | Artifact, alias: str) -> dict[str, str]:
        """Point ``name:<alias>`` at the named artifact ``ref``; it moves only so.

        Example: ``await h.set_alias("train-set:v3", "production")``; then
        ``get("train-set:production")`` returns v3 until the alias is moved again.

        Returns:
            The name's aliases after the change, as `aliases` gives them
            (``{"production": "v3"}``).

        Raises:
            InvalidNameError: ``alias`` is malformed or reserved (``latest``, ``v<n>``).
            ArtifactNotFoundError: ``ref`` names no artifact.
            ArtifactDeletedError: ``ref`` names a deleted version.
            ConfigError: ``ref`` is an artifact without a name.
        """
        self._online("move an alias")
        validate_alias(alias)
        record = await self._record(await self.resolve(ref))
        if record.deleted is not None:  # delete took its aliases away; none comes back
            raise deleted_error(record)
        if record.name is None or record.name_version is None:
            raise ConfigError(
                f"{record.artifact_id} has no name, so it cannot have aliases; commit it "
                "with upload(..., name=...) or new(..., name=...)"
            )
        await self.catalog.set_alias(record.name, alias, record.name_version)
        latest = await self._record(record.artifact_id)
        if latest.deleted is not None:  # a delete took its aliases meanwhile
            if (await self.catalog.aliases(record.name)).get(alias) == record.name_version:
                await self.catalog.remove_alias(record.name, alias)
            await save_aliases(self.storage, self.catalog, record.name)
            raise deleted_error(latest)
        await save_aliases(self.storage, self.catalog, record.name)
        return await self.aliases(record.name)

    async def remove_alias(self, name: str, alias: str) -> dict[str, str]:
        """Remove ``name:<alias>`` (nothing to do if it is not set).

        Returns:
            The name's aliases after the change, as `aliases` gives them.
        """
        self._online("move an alias")
        name = validate_name(name)
        if await self.catalog.remove_alias(name, validate_alias(alias)) is not None:
            await save_aliases(self.storage, self.catalog, name)
        return format_aliases(await self.catalog.aliases(name))

    async def aliases(self, name: str) -> dict[str, str]:
        """The aliases of ``name``, each with the version it points at:
        ``{"production": "v2"}``.

        Raises:
            ArtifactNotFoundError: ``name`` has no aliases and no version that is
                not deleted (never committed, or every version deleted), as `get`
                finds it.
        """
        self._online("list aliases", storage=False)
        name = validate_name(name)
        aliases = await self.catalog.aliases(name)
        if not aliases and await self.catalog.version_id(name) is None:
            raise ArtifactNotFoundError(
                f"no artifact named {name!r} in the catalog (none was committed under "
                "this name, or every version is deleted); list names and versions with "
                "names() or `elliptio names`"
            )
        return format_aliases(aliases)

    async def names(self) -> pd.DataFrame:
        """Every name with its number of versions, latest version and aliases."""
        self._online("list names", storage=False)
        import pandas as pd

        rows = await self.catalog.names()
        every = await self.catalog.all_aliases()
        aliases = [every.get(name, {}) for name, _, _ in rows]
        return pd.DataFrame(
            {
                "versions": [count for _, count, _ in rows],
                "latest": [f"v{latest}" for _, _, latest in rows],
                "aliases": [format_aliases(a) for a in aliases],
            },
            index=pd.Index([name for name, _, _ in rows], name="name", dtype=object),
        )

    async def _record(self, artifact_id: str) -> Metadata:
        self._online("read a record from the catalog", storage=False)
        return upgrade_record(await self.catalog.get(artifact_id))

    # -- labels and deletion --------------------------------------------------
    def _sidecar(self, record: Metadata) -> str:
        """The storage path of a record's sidecar, checked against the layout."""
        folder = self.storage.prefix_path(self.storage.path(record.remote_root), record.artifact_id)
        return f"{folder}/{METADATA_RELPATH}"

    async def _change(self, record: Metadata, new: Metadata) -> bool:
        """Write ``new`` in place of ``record``: sidecar first, then the catalog.

        ``False`` if the catalog record changed since ``record`` was read. Either
        way the sidecar then holds the catalog's record, written after this
        change's catalog write and checked against the catalog once more, so
        that it never keeps a change that did not land (a relabel that lost to a
        delete left a live record over the tombstone, which `reindex` brought
        back) and every change that lands after this one rewrites it in turn.
        """
        sidecar = self._sidecar(record)
        try:
            await self.storage.replace_bytes(sidecar, new.to_json(indent=2))
            landed = await self.catalog.replace(new.to_document(), revision(record))
        except BaseException:
            # Refused, unanswered or cancelled: the sidecar goes back to the catalog's
            # record, or `reindex` would take a change that raised (a delete the
            # catalog refused deleted the artifact). If the catalog cannot be read,
            # the change may have landed with its answer lost: the sidecar keeps it,
            # as after a crash between the two writes (a tombstone it did not confirm
            # would stop every later delete as tampering), and a rerun or `reindex`
            # settles it.
            with contextlib.suppress(ElliptioError):
                await self._sidecar_as_catalog(record.artifact_id, sidecar)
            raise
        await self._sidecar_as_catalog(record.artifact_id, sidecar)
        return landed

    async def _sidecar_as_catalog(self, artifact_id: str, sidecar: str) -> None:
        """Write the catalog's record to ``sidecar``, and again while it changes."""
        # A change racing this one may have written its sidecar over this one's,
        # or the other way.
        for _ in range(_CHANGE_ATTEMPTS):
            current = await self._record(artifact_id)
            await self.storage.replace_bytes(sidecar, current.to_json(indent=2))
            # A change that landed meanwhile wrote its sidecar before its record.
            if revision(await self._record(artifact_id)) == revision(current):
                break

    @_write
    async def set_labels(self, ref: str | Artifact, labels: LabelsLike) -> Artifact:
        """Replace the labels of a committed artifact; its files never change.

        The record keeps every earlier version of its labels, with who replaced
        it and when, in ``metadata.label_history``; the sidecar follows. Queries
        see the new labels. Labels are checked as for `upload`.

        Raises:
            InvalidLabelsError: the labels cannot be stored.
            ArtifactDeletedError: the artifact was deleted.
        """
        self._online("change labels")
        new_labels = _labels(labels)
        artifact_id = await self.resolve(ref)
        new: Metadata | None = None
        for _ in range(_CHANGE_ATTEMPTS):
            record = await self._record(artifact_id)
            if record == new:  # a reindex meanwhile took this edit from the sidecar
                return self._bind(record)
            if record.deleted is not None:
                raise deleted_error(record)
            new = relabeled(record, new_labels, current_username(), _now_ms())
            if await self._change(record, new):
                return self._bind(new)
        raise CatalogError(f"the labels of {artifact_id} kept changing under this edit; try again")

    @_write
    async def delete(self, ref: str | Artifact, *, reason: str) -> DeleteReport:
        """Delete an artifact: remove its files from storage, keep a tombstone.

        The tombstone keeps its id, name and version, run, creator and
        ``based_on`` (lineage graphs show it as a deleted node), and who deleted
        it, when and why; files, labels and command line are dropped. It goes
        to the sidecar first (so `reindex` never brings the artifact back), then
        to the catalog; then the files go. After a crash, running the delete
        again (or ``gc(delete=True)``) finishes it. Then `get` raises
        `ArtifactDeletedError`, `find` leaves it out, ``name:latest`` names the
        highest remaining version, aliases pointing at it are removed, and its
        version number is never given again.

        Args:
            ref: an artifact id or reference (``train-set:v3``).
            reason: why; kept in the tombstone (required).

        Raises:
            UsageError: ``reason`` is empty or longer than 2,000 characters; or
                other artifacts reference its files (deduplicated copies): the
                message names them. Delete those first.
            StorageError: the storage refused to remove its files (Object Lock
                retention, a policy); the message names them. If none could be
                removed, the record is left as it was.
        """
        self._online("delete an artifact")
        why = check_reason(reason)
        artifact_id = await self.resolve(ref)
        record = await self._record(artifact_id)
        folder = self._sidecar(record).rsplit(f"/{METADATA_RELPATH}", 1)[0]
        if record.deleted is not None:
            # A delete that stopped before its aliases went, or lost to another.
            aliases = await self._drop_aliases(record)
            removed, _ = await remove_deleted_files(self.storage, self.catalog, folder, artifact_id)
            # The record read here before, if any, still names the files (and labels).
            kept = self._kept_record(artifact_id)
            earlier = upgrade_record(kept) if kept is not None else None
            if earlier is not None and earlier.artifact_id == artifact_id:
                await self._forget_copies(earlier, record)
            return DeleteReport(artifact_id, record.ref, removed, aliases, already_deleted=True)
        for _ in range(_CHANGE_ATTEMPTS):
            await self._refuse_if_referenced(record)
            stone = tombstone(record, current_username(), _now_ms(), why)
            if await self._change(record, stone):
                break
            current = await self._record(artifact_id)
            if current == stone:  # a reindex meanwhile took this delete from the sidecar
                break
            record = current
            if record.deleted is not None:  # someone else deleted it meanwhile
                return await self.delete(artifact_id, reason=why)
        else:
            raise CatalogError(f"{artifact_id} kept changing under this delete; try again")
        # This machine's copies go once the tombstone landed (not before: a delete
        # refused until then leaves the artifact as it was), so that a delete that
        # stops midway leaves none (SECURITY.md), and again at the end (a read
        # meanwhile may add one).
        await self._forget_copies(record)
        aliases = await self._drop_aliases(record)
        try:
            removed, _ = await remove_deleted_files(self.storage, self.catalog, folder, artifact_id)
        except StorageError:
            if await self._nothing_removed(record):
                await self._change(stone, record)  # all refused: the record stays as it was
                for alias in aliases:
                    await self.catalog.set_alias(record.name or "", alias, record.name_version or 0)
                if aliases:
                    await save_aliases(self.storage, self.catalog, record.name or "")
            raise
        own = set(self._own_urls(record))
        await self._forget_copies(record, stone)
        kept = {
            f.url: self.storage.reference_owner(f.url)[1]
            for f in [*record.files, *record.logs]
            if f.url not in own
        }
        return DeleteReport(artifact_id, record.ref, removed, aliases, kept=kept)

    async def _forget_copies(self, record: Metadata, stone: Metadata | None = None) -> None:
        """Remove this machine's cached copies of the bytes a delete of ``record``
        removes (other machines' stay: SECURITY.md); with its ``stone``, keep that
        in place of the record read before."""
        cache = self.storage.cache
        if cache is None:
            return
        own = set(self._own_urls(record))
        gone = [f.sha256 for f in [*record.files, *record.logs] if f.url in own]
        await to_thread(cache.discard, gone)
        if stone is not None:
            doc = stone.to_document()
            await to_thread(_keep_record, cache, self.catalog, record.artifact_id, doc)

    def _own_urls(self, record: Metadata) -> list[str]:
        """URLs of the files in the artifact's own folder (not deduplicated ones)."""
        folder = self._sidecar(record).rsplit(f"/{METADATA_RELPATH}", 1)[0] + "/"
        urls = [f.url for f in [*record.files, *record.logs]]
        return [u for u in urls if self.storage.path(u).startswith(folder)]

    async def _refuse_if_referenced(self, record: Metadata) -> None:
        own = self._own_urls(record)
        users = await self.catalog.object_users(own)
        others = sorted(set().union(*users.values()) - {record.artifact_id}) if users else []
        if others:
            shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
            raise UsageError(
                f"{record.artifact_id} cannot be deleted: {len(others)} other artifact(s) "
                f"reference its files (deduplicated copies): {shown}. Delete those first, "
                "or keep this one"
            )

    async def _drop_aliases(self, record: Metadata) -> list[str]:
        if record.name is None or record.name_version is None:
            return []
        return await drop_aliases(self.storage, self.catalog, record.name, record.name_version)

    async def _nothing_removed(self, record: Metadata) -> bool:
        paths = [self.storage.path(u) for u in self._own_urls(record)]
        found = await asyncio.gather(*(self.storage.exists(p) for p in paths))
        return all(found)

    # -- lineage and maintenance --------------------------------------------
    async def lineage(
        self, artifact_id: str | Artifact, direction: Direction = "both", depth: int | None = None
    ) -> LineageGraph:
        """What ``artifact_id`` was built from (``"up"``), what was built on it
        (``"down"``), or both, as a graph that renders as text, Mermaid or DOT.

        Reading lineage does not count as reading the artifact.
        """
        artifact_id = await self.resolve(artifact_id)
        self._online("follow lineage", storage=False)
        return await build_lineage(self.catalog, artifact_id, direction, depth)

    async def reindex(self, prefix: str | None = None, *, aliases: bool = False) -> ReindexReport:
        """Restore catalog records from the sidecars in storage; safe to repeat.

        Args:
            prefix: only artifact folders below this folder of the store's layout,
                relative to its root (``"2026/12"``, ``"2026/12/04/andy"``, one
                artifact's folder) or as a URL under the root: incremental
                indexing of what storage-only writers wrote.
            aliases: also set again each alias the store keeps a copy of
                (``.elliptio/aliases/NAME.json``, written after every alias
                change) that the catalog does not hold, if its version is there
                and not deleted: for a catalog rebuilt from the store. Off by
                default, since on a catalog in use a copy older than the last
                alias change would bring a removed alias back.

        Raises:
            InvalidPathError: ``prefix`` is no layout folder under the root.
        """
        self._online("reindex")
        return await reindex(self.storage, self.catalog, prefix=prefix, aliases=aliases)

    async def index_event(self, event: Any) -> IndexReport:
        """Index the sidecars an S3 event notification announces (see
        `elliptio.index_event`)."""
        self._online("index an event")
        folders, report = sidecar_folders(event, self.storage.root_url)
        root = self.storage.root.rstrip("/")
        for folder in folders:
            await reindex_folder(self.storage, self.catalog, f"{root}/{folder}", report)
        return report

    async def gc(self, grace: timedelta = timedelta(hours=24), delete: bool = False) -> GcReport:
        """List (``delete=True``: remove) storage prefixes that never committed."""
        self._online("collect garbage")
        return await gc(self.storage, self.catalog, grace=grace, delete=delete)

    async def diff(self, a: str | Artifact, b: str | Artifact) -> ArtifactDiff:
        """Compare two artifacts (ids or references such as ``train-set:v2``).

        Files added, removed and changed (by sha256), labels changed, and size
        totals, from the records alone: no file is read, and neither artifact
        counts as an input of the current run.

        Raises:
            ArtifactDeletedError: one was deleted: its tombstone keeps no files or
                labels to compare.

        Example:
            >>> print(await h.diff("train-set:v2", "train-set:v3"))  # doctest: +SKIP
        """
        records = [await self._record(await self.resolve(ref)) for ref in (a, b)]
        for record in records:
            if record.deleted is not None:
                raise deleted_error(record)
        return diff_records(*records)

    async def verify(self, artifact_id: str | Artifact) -> VerifyReport:
        """Re-hash an artifact's stored files against its record.

        Raises:
            ArtifactDeletedError: the artifact was deleted: it has no files to check.
        """
        self._online("verify an artifact")
        record = await self._record(await self.resolve(artifact_id))
        if record.deleted is not None:
            raise deleted_error(record)
        return await verify(self.storage, record)

    # -- lifecycle ----------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Count the current task as writing until the block ends."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._writes[task] = self._writes.get(task, 0) + 1
        try:
            yield
        finally:
            if self._writes[task] > 1:
                self._writes[task] -= 1
            else:
                del self._writes[task]

    async def close(self) -> None:
        """Close the catalog and storage workers; idempotent.

        Writes in flight on this event loop (uploads, a ``new()`` block's commit,
        deletes, label edits) end first, committed or cleaned up: closing under
        them left their files and leases to gc.
        """
        if not self._closed:
            self._closed = True
            loop = asyncio.get_running_loop()
            me = asyncio.current_task()
            try:
                while pending := [
                    task
                    for task in list(self._writes)
                    if task is not me and task.get_loop() is loop and not task.done()
                ]:
                    await asyncio.wait(pending)
            except BaseException:
                # Interrupted while it waited (Ctrl-C): nothing is closed, so a
                # later close still closes.
                self._closed = False
                raise
            await self.catalog.close()
            self.storage.close()

    async def __aenter__(self) -> AsyncHandler:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(storage={self.storage.safe_url!r}, "
            f"catalog={type(self.catalog).__name__})"
        )

    def _travel_hint(self) -> tuple[str, str]:
        return (
            "an AsyncHandler",
            "its arguments and make one there with them, or send fsspec.filesystem("
            "'elliptio') or a file's eio_url, which carry its store, catalog and run",
        )


def _not_a_ref(ref: object) -> str:
    """A short message for a reference of the wrong type (never its whole repr)."""
    kind = type(ref).__name__
    hint = ""
    if isinstance(ref, list | tuple) or type(ref).__module__.startswith(("pandas", "numpy")):
        hint = "; pass one id, e.g. df.index[0] of a find() result"
    return f"an artifact reference is an id or name (str) or an Artifact, not {kind}{hint}"


def _has_password(url: str) -> bool:
    """Whether ``url`` holds a secret: a password in its user part, or in its query
    a password or a token (``tlsCertificateKeyFilePassword=...``,
    ``authMechanismProperties=AWS_SESSION_TOKEN:...``). A key file's path or a
    Kerberos service name is no secret: such a URL still reaches child processes."""
    from urllib.parse import parse_qsl, urlsplit

    scheme, sep, rest = url.partition("://")
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            return True
    except ValueError:
        return True
    query = parts.query
    if sep and scheme.lower() in ("mongodb", "mongodb+srv"):
        # The hosts and userinfo as pymongo reads them (hosts to the first "/",
        # userinfo to their last "@": a password may hold "#"); hosts or a userinfo
        # pymongo cannot read (a password holding "/" or "?") are never handed on
        # either. The options run to the end: pymongo knows no fragment.
        from pymongo.uri_parser import parse_userinfo, split_hosts

        userinfo, at, hosts = rest.partition("/")[0].rpartition("@")
        try:
            split_hosts(hosts, default_port=None)
            if at and parse_userinfo(userinfo)[1]:
                return True
        except Exception:
            return True
        query = rest.partition("?")[2]
    # pymongo separates options by "&" or ";". The names are judged by the rule every
    # redaction uses, but a name of a file (tlsCertificateKeyFile) holds a path, and
    # authMechanismProperties is judged by the names of its properties.
    for key, value in parse_qsl(query.replace(";", "&"), keep_blank_values=True):
        if key.lower() == "authmechanismproperties":
            if any(is_secret_name(prop.partition(":")[0]) for prop in value.split(",")):
                return True
        elif is_secret_name(key) and not key.lower().endswith(("file", "path")):
            return True
    return False
