"""Catalog maintenance: rebuild it from the sidecars, collect garbage, verify files.

The store is self-describing: every committed artifact has a sidecar
``.elliptio/metadata.json`` with its full record, written before its catalog
record. So:

* `reindex` restores catalog records from sidecars (idempotent; reports records
  added, unchanged and conflicting);
* `gc` finds prefixes that never committed (no catalog record) and are older
  than a grace period; it deletes them only when asked, dry run by default;
* `verify` re-hashes an artifact's files against its record.

Writers hold a lease in the catalog from before their first byte until their
record is in (see `elliptio._catalog.base.Lease`). gc takes a prefix with an
open lease only by condemning the lease first, atomically, and a commit only
lands by claiming it, so gc and a commit racing for one prefix cannot both win.
A prefix with no lease and no record is aged by the time in its path
(``YYYY/MM/DD/user/HHMMSS_<id>``), so a scan needs no per-object stat call.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ._backends import PlantedFileError, glob_literal
from ._catalog.base import Catalog, Lease
from ._errors import (
    ArgumentTypeError,
    ArtifactExistsError,
    ArtifactNotFoundError,
    ConfigError,
    CorruptRecordError,
    ElliptioError,
    InvalidLabelsError,
    InvalidPathError,
    SchemaVersionError,
    StorageError,
)
from ._layout import ALIASES_DIR, ARTIFACT_ID_RE, METADATA_RELPATH, split_stored_path
from ._lifecycle import revision, tombstone
from ._models import RESTORE_FROM_SIDECAR, Metadata, record_from_json, upgrade_record
from ._names import VERSION_CEILING
from ._storage import Storage

__all__ = [
    "GcReport",
    "ReindexReport",
    "VerifyReport",
    "gc",
    "reindex",
    "reindex_folder",
    "remove_deleted_files",
    "save_aliases",
    "verify",
]
log = logging.getLogger(__name__)

_PREFIX_RE = re.compile(
    r"(?P<y>[0-9]{4})/(?P<m>[0-9]{2})/(?P<d>[0-9]{2})/[^/]+/(?P<t>[0-9]{6})_(?P<id>"
    + ARTIFACT_ID_RE.pattern
    + ")$"
)


@dataclass
class ReindexReport:
    """What `reindex` did, by artifact id."""

    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    """Records replaced by their newer sidecar: a delete or label change that
    stopped after writing it."""
    unreadable: list[str] = field(default_factory=list)
    uncommitted: list[str] = field(default_factory=list)
    """Whole sidecars whose writer is still writing or died before its commit
    point (its lease is open or condemned): never committed, so left to gc."""
    aliases: list[str] = field(default_factory=list)
    """Aliases (``name:alias``) set again from the store's copy of them."""


@dataclass
class GcReport:
    """Prefixes without a catalog record, older than the grace period."""

    orphans: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """Folders removed with ``delete``: orphans and deleted artifacts' leftovers."""
    dry_run: bool = True
    stale_leases: list[str] = field(default_factory=list)
    """Artifact ids whose writer opened a lease longer than the grace period ago
    but never wrote a byte to this store (it died first); closed with ``delete``."""
    deleted_leftovers: list[str] = field(default_factory=list)
    """Folders of deleted artifacts (tombstones) that still hold files, left by a
    delete that was interrupted; removed with ``delete``."""
    incomplete_uploads: list[str] = field(default_factory=list)
    """URLs of files in artifact folders whose multipart upload (S3) was begun
    longer than the grace period ago and never completed nor aborted: a writer
    killed mid-upload, or whose abort could not reach the store. Their parts are
    billed, yet no listing shows them. Also those whose store does not say when
    they began, which ``delete`` leaves alone (maybe a writer's still)."""
    aborted_uploads: list[str] = field(default_factory=list)
    """Those of ``incomplete_uploads`` aborted with ``delete`` (their parts dropped)."""


@dataclass
class VerifyReport:
    """Files of one artifact whose bytes no longer match their record."""

    artifact_id: str
    checked: int = 0
    damaged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every file is present and matches its sha256."""
        return not self.damaged and not self.missing


def _relative(storage: Storage, path: str) -> str:
    root = storage.root.rstrip("/")
    return path[len(root) + 1 :] if path.startswith(root + "/") else path


def _prefix_time(relative: str) -> datetime | None:
    match = _PREFIX_RE.search(relative)
    if match is None:
        return None
    t = match["t"]
    try:
        return datetime(
            int(match["y"]), int(match["m"]), int(match["d"]),
            int(t[:2]), int(t[2:4]), int(t[4:]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None


# The layout's five levels below the root: YYYY/MM/DD/user/HHMMSS_<id>.
_LEVELS = ("*", "*", "*", "*", "*_artifact_*")
# What each level of a prefix may be: year, month, day, user, an artifact's folder.
_LEVEL_RES = tuple(
    re.compile(p)
    for p in (
        r"[0-9]{4}",
        r"0[1-9]|1[0-2]",
        r"0[1-9]|[12][0-9]|3[01]",
        r"[^/]+",
        r"[0-9]{6}_" + ARTIFACT_ID_RE.pattern.strip("^$"),
    )
)


def _pattern(storage: Storage, under: str | None) -> str:
    """The glob of artifact folders, all of them or those below ``under``.

    ``under`` is a folder of the layout relative to the store's root
    (``2026``, ``2026/12/04``, ``2026/12/04/andy``, or one artifact's folder), or
    the same as a URL or path under the root.

    Raises:
        InvalidPathError: ``under`` lies outside the root or is no layout folder.
    """
    root = storage.root.rstrip("/")
    pattern = glob_literal(root)  # the root's own '*', '?' and '[' are no patterns
    if under is None:
        return "/".join([pattern, *_LEVELS])
    if not isinstance(under, str):
        raise ArgumentTypeError(
            f"prefix must be a str such as '2026/12/04', not {type(under).__name__}"
        )
    text = under.strip()
    for base in (storage.root_url.rstrip("/"), root):
        if text == base:
            return "/".join([pattern, *_LEVELS])
        if text.startswith(base + "/"):
            text = text[len(base) + 1 :]
            break
    parts = text.strip("/").split("/")
    bad = (
        "://" in text
        or text.startswith("/")
        or len(parts) > len(_LEVELS)
        or any(p in ("", ".", "..") or any(c in p for c in "*?[]\\") for p in parts)
        or not all(level.fullmatch(p) for level, p in zip(_LEVEL_RES, parts, strict=False))
    )
    if bad:
        raise InvalidPathError(
            f"prefix {storage.redact(under)!r} is no folder of the store's layout under "
            f"{storage.redact(storage.root_url)!r}; give one relative to the root, such as "
            "'2026', '2026/12/04' (two digits for month and day), '2026/12/04/andy' or "
            "an artifact's folder"
        )
    return "/".join([pattern, *parts, *_LEVELS[len(parts) :]])


async def _prefixes(storage: Storage, under: str | None = None) -> list[str]:
    found = await storage.glob(_pattern(storage, under))
    return sorted(p for p in found if _PREFIX_RE.fullmatch(_relative(storage, p)))


# Far above any record elliptio writes (labels <= 1 MiB, git diff <= 1 MB, packages).
SIDECAR_LIMIT = 64 * 2**20


async def _read_sidecar(storage: Storage, path: str) -> bytes | None:
    """The bytes of a sidecar, or ``None`` if there is none.

    Raises:
        CorruptRecordError: it is larger than `SIDECAR_LIMIT`, or no regular file
            (a link, a FIFO, a folder): not one elliptio wrote.
    """
    buffer = io.BytesIO()

    def write(chunk: memoryview) -> None:
        if buffer.tell() + len(chunk) > SIDECAR_LIMIT:
            raise CorruptRecordError(
                f"{storage.url(path)} is larger than {SIDECAR_LIMIT} bytes, so it is no "
                "sidecar elliptio wrote; remove it"
            )
        buffer.write(chunk)

    try:
        found = await storage.backend.stream(path, write)
    except PlantedFileError as err:
        raise CorruptRecordError(str(err)) from None
    return None if found is None else buffer.getvalue()


async def _has_sidecar(storage: Storage, prefix: str, artifact_id: str) -> bool:
    """Whether ``prefix`` holds a whole sidecar of ``artifact_id``.

    A writer killed while writing the sidecar leaves a cut-off file: that prefix
    never committed, so it is an orphan, not something `reindex` can restore. A
    sidecar of a newer schema version counts as whole (a newer release wrote it).
    """
    try:
        raw = await _read_sidecar(storage, f"{prefix}/{METADATA_RELPATH}")
    except CorruptRecordError:
        return False
    if raw is None:
        return False
    try:
        record = record_from_json(raw)
    except SchemaVersionError:
        return True
    except (ValueError, CorruptRecordError):  # cut-off JSON, or JSON that is not a record
        return False
    return record.artifact_id == artifact_id


async def reindex(
    storage: Storage, catalog: Catalog, *, prefix: str | None = None, aliases: bool = False
) -> ReindexReport:
    """Restore catalog records from the sidecars in storage; safe to repeat.

    Args:
        prefix: only the artifact folders below this folder of the layout
            (see `_pattern`), e.g. the day a storage-only writer wrote.
        aliases: also set again the aliases the store keeps a copy of, into a
            catalog rebuilt from the store (see `_restore_aliases`).
    """
    report = ReindexReport()
    for folder in await _prefixes(storage, prefix):
        await reindex_folder(storage, catalog, folder, report)
    if aliases:
        await _restore_aliases(storage, catalog, report)
    return report


# -- aliases: the catalog holds them, the store keeps a copy for reindex --------------


_COPY_ATTEMPTS = 5


def _aliases_path(storage: Storage, name: str) -> str:
    return f"{storage.root.rstrip('/')}/{ALIASES_DIR}/{name}.json"


async def save_aliases(storage: Storage, catalog: Catalog, name: str) -> None:
    """Copy the aliases of ``name`` from the catalog to the store (after each
    change), so that ``reindex(aliases=True)`` on a catalog rebuilt from the store
    sets them again. The catalog holds aliases: a copy that cannot be written is
    logged, and the change stands."""
    try:
        aliases = await catalog.aliases(name)
        for _ in range(_COPY_ATTEMPTS):
            data = json.dumps({"name": name, "aliases": aliases}, sort_keys=True).encode()
            await storage.replace_bytes(_aliases_path(storage, name), data)
            # Another client's change may have landed, and its copy been written,
            # while this one was being written: the copy ends as the catalog holds them.
            now = await catalog.aliases(name)
            if now == aliases:
                break
            aliases = now
    except ElliptioError as err:
        log.warning(
            "the aliases of %r changed in the catalog, but their copy in the store could "
            "not be written (%s); a catalog rebuilt from the store would miss the change",
            name,
            err,
        )


async def _restore_aliases(storage: Storage, catalog: Catalog, report: ReindexReport) -> None:
    """Set each alias the store keeps whose name has no alias of that name in the
    catalog, if the version it points at is there and not deleted. The catalog
    wins: an alias it holds is never moved."""
    from ._names import validate_alias, validate_name

    root = glob_literal(storage.root.rstrip("/"))
    for path in await storage.glob(f"{root}/{ALIASES_DIR}/*.json"):
        try:
            raw = await _read_sidecar(storage, path)  # bounded: never read whole
            if raw is None:
                continue
            doc = json.loads(raw)
            name = validate_name(doc["name"])
            if path != _aliases_path(storage, name):
                raise ValueError("named after another name")
            wanted = {
                validate_alias(alias): version
                for alias, version in doc["aliases"].items()
                if type(version) is int and 1 <= version <= VERSION_CEILING
            }
        except (ElliptioError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            log.warning("reindex: %s is not a copy of aliases elliptio wrote; skipped", path)
            continue
        held = await catalog.aliases(name)
        for alias, version in sorted(wanted.items()):
            artifact_id = await catalog.version_id(name, version)
            if alias in held or artifact_id is None:
                continue
            if (await catalog.get(artifact_id)).get("deleted") is not None:
                continue  # a delete takes the aliases of its version away
            await catalog.set_alias(name, alias, version)
            report.aliases.append(f"{name}:{alias}")


async def reindex_folder(
    storage: Storage, catalog: Catalog, prefix: str, report: ReindexReport
) -> None:
    """Restore, or check, the record of the artifact folder ``prefix`` from its sidecar."""
    sidecar = f"{prefix}/{METADATA_RELPATH}"
    artifact_id = _PREFIX_RE.search(_relative(storage, prefix))["id"]  # type: ignore[index]
    try:
        raw = await _read_sidecar(storage, sidecar)
    except CorruptRecordError:
        report.unreadable.append(artifact_id)
        return
    if raw is None:
        return  # never committed: a matter for gc
    try:
        record = record_from_json(raw)
    except (ValueError, SchemaVersionError, CorruptRecordError):
        report.unreadable.append(artifact_id)
        return
    if record.artifact_id != artifact_id:
        report.conflicting.append(artifact_id)
        return
    try:
        # Every path the sidecar names must be one the layout allows: its own
        # files in this folder, or files of other artifacts under the root.
        paths = _record_paths(storage, record, reading=False)
    except CorruptRecordError:
        report.unreadable.append(artifact_id)
        return
    try:
        stored = upgrade_record(await catalog.get(artifact_id))
    except CorruptRecordError:
        # A record that cannot be read (damaged, or planted): reported, and the
        # other folders go on. Not replaced from this sidecar: the record may be
        # of another store sharing the catalog, whose writers this store's trust
        # does not cover.
        report.unreadable.append(artifact_id)
        return
    except ArtifactNotFoundError:
        lease = await catalog.get_lease(artifact_id)
        if lease is not None and lease.state != "committing":
            report.uncommitted.append(artifact_id)
            return
        try:
            await catalog.insert(record.to_document())
            report.added.append(artifact_id)
        except ArtifactExistsError:  # another reindex won the race
            report.unchanged.append(artifact_id)
        except InvalidLabelsError:  # a value the catalog cannot store: no sidecar of ours
            report.unreadable.append(artifact_id)
            return
        # Its writer died after its commit point, before closing the lease.
        await catalog.close_lease(artifact_id)
        # Its writer died between sidecar and record, maybe before sealing.
        # Only its own files: deduplicated ones were sealed by their writer.
        with contextlib.suppress(ElliptioError):
            await storage.seal([p for p in paths if p.startswith(f"{prefix}/")] + [sidecar])
        return
    if stored == record:
        report.unchanged.append(artifact_id)
    elif _newer(record, stored) and await catalog.replace(record.to_document(), revision(stored)):
        # A delete or a label change that stopped after its sidecar.
        report.updated.append(artifact_id)
    elif _newer(stored, record):
        report.unchanged.append(artifact_id)  # the sidecar is behind: its writer retries
    else:
        report.conflicting.append(artifact_id)


def _unconfirmed_tombstone(storage: Storage, sidecar: str, artifact_id: str) -> CorruptRecordError:
    # A delete writes its sidecar first: a tombstone only in the catalog was not
    # written by one, so nothing is removed on the catalog's word alone.
    return CorruptRecordError(
        f"the catalog holds a tombstone of {artifact_id}, but its sidecar "
        f"{storage.url(sidecar)} does not; nothing was removed. Someone with write "
        f"access to the catalog changed the record: {RESTORE_FROM_SIDECAR}"
    )


async def _sidecar_is_tombstone(storage: Storage, sidecar: str, artifact_id: str) -> bool:
    try:
        raw = await _read_sidecar(storage, sidecar)
        record = record_from_json(raw) if raw is not None else None
    except (ValueError, SchemaVersionError, CorruptRecordError):
        return False
    return record is not None and record.artifact_id == artifact_id and record.deleted is not None


def _newer(a: Metadata, b: Metadata) -> bool:
    """Whether ``a`` is a later version of the same record as ``b``: ``b`` with
    more label changes, or its tombstone, and nothing else changed (a sidecar is
    what anyone who can write the store can write)."""
    if a.artifact_id != b.artifact_id or revision(a) <= revision(b):
        return False
    if a.deleted is not None:
        if b.deleted is not None:
            return False
        gone = a.deleted
        return a == tombstone(b, gone.deleted_by, gone.deleted_at, gone.reason)
    # One relabel of b: its labels go to the end of the history, nothing else moves
    # (a relabel writes its sidecar from the record, so a sidecar is one ahead).
    history = a.label_history
    if len(history) != len(b.label_history) + 1 or history[:-1] != b.label_history:
        return False
    change = history[-1]
    earlier = [b.creation_time, *(c.replaced_at for c in b.label_history)]
    return (
        change.labels == b.labels
        and change.replaced_at >= max(earlier)
        and b == a.model_copy(update={"labels": b.labels, "label_history": b.label_history})
    )


async def remove_deleted_files(
    storage: Storage,
    catalog: Catalog,
    prefix: str,
    artifact_id: str,
    *,
    copies_before: datetime | None = None,
) -> tuple[list[str], list[str]]:
    """Remove the files of a deleted artifact's folder, all but its sidecar and
    (unless ``copies_before``: gc, for copies last written before it) the
    temporary sidecar copies that a writer
    may be moving into place right now, or that a stopped writer left.

    Files that a record in the catalog still names (a deduplicated copy of
    them committed meanwhile) stay.

    Returns:
        URLs removed, and URLs kept for other records.

    Raises:
        StorageError: the storage refused to remove some (Object Lock retention,
            a policy); the message names them. The rest were removed.
    """
    folder = storage.prefix_path(prefix, artifact_id)
    sidecar = f"{folder}/{METADATA_RELPATH}"
    if not await _sidecar_is_tombstone(storage, sidecar, artifact_id):
        raise _unconfirmed_tombstone(storage, sidecar, artifact_id)
    paths = await _removable(storage, folder, copies_before)
    urls = [storage.url(p) for p in paths]
    users = await catalog.object_users(urls)
    kept = [u for u, ids in users.items() if ids - {artifact_id}]
    removed: list[str] = []
    refused: list[tuple[str, ElliptioError]] = []
    for path, url in zip(paths, urls, strict=True):
        if url in kept:
            continue
        try:
            await storage.remove_file(path)
        except ElliptioError as err:
            refused.append((url, err))
            continue
        removed.append(url)
    if refused:
        names = ", ".join(url for url, _ in refused[:5]) + (" ..." if len(refused) > 5 else "")
        planted: list[ElliptioError] = [e for _, e in refused if isinstance(e, PlantedFileError)]
        advice = (
            "Remove what was planted in the folder, then rerun the delete"
            if planted
            else "Object Lock retention or a bucket policy keeps them; remove them once "
            "it allows it, or rerun the delete"
        )
        raise (PlantedFileError if planted else StorageError)(
            f"the storage refused to remove {len(refused)} file(s) of deleted artifact "
            f"{artifact_id}: {names} ({(planted or [refused[0][1]])[0]}). {advice}"
        )
    return removed, kept


def _record_paths(storage: Storage, record: Metadata, *, reading: bool = True) -> list[str]:
    """The storage paths of a record's files and logs, each checked against the layout
    (a reference's files: outside the store, and, when ``reading``, below a
    reference root)."""
    aid = record.artifact_id
    ref = record.reference is not None
    return [
        storage.file_path(f.url, aid, f.relpath, reference=ref, allowed=reading)
        for f in record.files
    ] + [storage.file_path(f.url, aid, f.relpath, log=True) for f in record.logs]


async def gc(
    storage: Storage,
    catalog: Catalog,
    *,
    grace: timedelta = timedelta(hours=24),
    delete: bool = False,
    now: datetime | None = None,
) -> GcReport:
    """Find (and with ``delete=True`` remove) prefixes that never committed.

    A prefix is an orphan when the catalog has no record of its artifact and its
    writer started longer than ``grace`` ago: its lease is open (the writer died,
    or is slower than ``grace``) or gone. An open lease is condemned, atomically,
    before anything is removed; a writer that then tries to commit fails and
    commits nothing. A prefix whose writer is committing is never touched. An
    artifact whose whole sidecar exists but whose record and lease are missing
    is left alone: `reindex` restores it. Multipart uploads left open in artifact
    folders (S3) are listed too, and aborted with ``delete``.
    """
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise ConfigError(f"grace must be a timedelta of zero or more, got {grace!r}")
    now = now or datetime.now(tz=UTC)
    # Lease times are stored to the millisecond: a lease started in the current
    # millisecond is as old as grace=0 asks for too.
    cutoff = now - grace + timedelta(milliseconds=1)
    report = GcReport(dry_run=not delete)
    prefixes = await _prefixes(storage)
    tombstones = {
        doc["artifact_id"]: doc
        for doc in await catalog.find(
            {"deleted": {"$ne": None}}, fields=["artifact_id", "name", "name_version"]
        )
    }
    seen: set[str] = set()
    for prefix in prefixes:
        relative = _relative(storage, prefix)
        created = _prefix_time(relative)
        if created is None:
            continue
        artifact_id = _PREFIX_RE.search(relative)["id"]  # type: ignore[index]
        seen.add(artifact_id)
        if artifact_id in tombstones:
            stone = tombstones[artifact_id]
            await _finish_delete(storage, catalog, prefix, stone, delete, report, cutoff)
            continue
        lease = await catalog.get_lease(artifact_id)
        if lease is not None:
            if _in_flight(lease, now, grace):
                continue
            if await catalog.count({"artifact_id": artifact_id}):
                continue  # a lease beside a record: never take a committed artifact
            report.orphans.append(storage.url(prefix))
            # A condemned writer may still be writing; it fails at its commit.
            # Whatever it adds meanwhile goes on the next run (the lease stays
            # condemned until the prefix is gone).
            if (
                delete
                and (
                    lease.state == "condemned"
                    or await catalog.claim_lease(artifact_id, "condemned", started_before=cutoff)
                )
                and await _remove(storage, prefix)
            ):
                await catalog.close_lease(artifact_id)
                report.removed.append(storage.url(prefix))
            continue
        # No lease: committed (a lease closes only after its record is in), or
        # written without one; either way the record check below is decisive.
        if now - created < grace:
            continue
        if await catalog.count({"artifact_id": artifact_id}):
            continue
        if await _has_sidecar(storage, prefix, artifact_id):
            continue  # complete on storage: reindex restores its record
        report.orphans.append(storage.url(prefix))
        if delete:
            # Re-check right before removing: a commit may have landed meanwhile.
            if await catalog.count({"artifact_id": artifact_id}):
                continue
            if await _remove(storage, prefix):
                report.removed.append(storage.url(prefix))
    corrupt = await _sweep_leases(storage, catalog, seen, cutoff, delete, report)
    await _sweep_uploads(storage, catalog, now, grace, delete, report)
    if corrupt:
        raise CorruptRecordError(
            f"{len(corrupt)} lease(s) in the catalog name folders that are not their "
            f"artifact's own folder in this store, so gc left them alone: {corrupt[0]} "
            "Someone with write access to the catalog wrote them; remove those lease rows "
            "(the catalog's 'leases' table or collection). Everything else was collected."
        )
    return report


async def _finish_delete(
    storage: Storage,
    catalog: Catalog,
    prefix: str,
    stone: Mapping[str, Any],
    delete: bool,
    report: GcReport,
    copies_before: datetime,
) -> None:
    """Note (and with ``delete`` finish) what a stopped delete left: files in its
    folder, and aliases pointing at its version (a delete drops them before the
    files, so a folder emptied has none left).

    Raises:
        CorruptRecordError: the catalog's tombstone is not in the sidecar (forged
            in the catalog alone); nothing is removed.
    """
    artifact_id = stone["artifact_id"]
    sidecar = f"{prefix}/{METADATA_RELPATH}"
    if not await _removable(storage, prefix, copies_before):
        return
    if not await _sidecar_is_tombstone(storage, sidecar, artifact_id):
        raise _unconfirmed_tombstone(storage, sidecar, artifact_id)
    report.deleted_leftovers.append(storage.url(prefix))
    if delete:
        name, version = stone.get("name"), stone.get("name_version")
        if isinstance(name, str) and type(version) is int:
            await drop_aliases(storage, catalog, name, version)
        with contextlib.suppress(StorageError):  # named again on the next run
            await remove_deleted_files(
                storage, catalog, prefix, artifact_id, copies_before=copies_before
            )
            report.removed.append(storage.url(prefix))


async def drop_aliases(storage: Storage, catalog: Catalog, name: str, version: int) -> list[str]:
    """Remove the aliases of ``name`` pointing at ``version`` (a deleted one), in
    the catalog and its copy in the store; the aliases removed."""
    pointing = [a for a, v in (await catalog.aliases(name)).items() if v == version]
    for alias in pointing:
        await catalog.remove_alias(name, alias)
    if pointing:
        await save_aliases(storage, catalog, name)
    return pointing


async def _removable(storage: Storage, folder: str, copies_before: datetime | None) -> list[str]:
    """What a delete removes in the artifact folder ``folder``: not its sidecar,
    and a temporary copy that a writer replacing the sidecar moves over it (see
    `Backend.replace_bytes`) only if it was last written before ``copies_before``
    (gc finishing a delete, past its grace: a stopped writer's copy holds the
    whole record, labels and all; a live one is a moment old)."""
    sidecar = f"{folder}/{METADATA_RELPATH}"
    found = []
    for path in await storage.find(folder):
        if path == sidecar:
            continue
        copy = _SIDECAR_COPY.fullmatch(path.removeprefix(sidecar)) is not None
        if copy and (
            copies_before is None or not await _written_before(storage, path, copies_before)
        ):
            continue
        found.append(path)
    return found


async def _written_before(storage: Storage, path: str, when: datetime) -> bool:
    """Whether ``path`` was last written before ``when`` (``False`` if unknown)."""
    try:
        info = await storage.backend.run("check", path, storage.fs.info, path)
    except ElliptioError:
        return False
    for key in ("LastModified", "mtime", "last_modified", "created"):
        stamp = info.get(key)
        if isinstance(stamp, str):
            with contextlib.suppress(ValueError):
                stamp = datetime.fromisoformat(stamp)
        if isinstance(stamp, int | float):
            stamp = datetime.fromtimestamp(stamp, tz=UTC)
        if isinstance(stamp, datetime):
            # fsspec's memory filesystem gives naive UTC times.
            return (stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)) < when
    return False


_SIDECAR_COPY = re.compile(r"\.[0-9a-f]{32}\.tmp")


async def _sweep_leases(
    storage: Storage,
    catalog: Catalog,
    seen: set[str],
    cutoff: datetime,
    delete: bool,
    report: GcReport,
) -> list[str]:
    """Close old leases of this store whose writer never wrote a byte.

    Leases of other stores sharing the catalog are left to their own gc. The
    folder a lease names is removed only if it is that artifact's own folder by
    the layout and no record has that id; the messages of leases that name
    anything else are returned.
    """
    root = storage.root.rstrip("/") + "/"
    corrupt: list[str] = []
    for lease in await catalog.old_leases(cutoff):
        if lease.artifact_id in seen or not lease.prefix.startswith(root):
            continue
        if lease.state == "committing":
            continue  # its files are whole: reindex finishes it
        try:
            prefix = storage.prefix_path(lease.prefix, lease.artifact_id)
        except CorruptRecordError as err:
            corrupt.append(str(err))
            continue
        if await catalog.count({"artifact_id": lease.artifact_id}):
            continue  # a lease beside a record: never take a committed artifact
        report.stale_leases.append(lease.artifact_id)
        if not delete:
            continue
        if lease.state == "open" and not await catalog.claim_lease(
            lease.artifact_id, "condemned", started_before=cutoff
        ):
            continue  # claimed for a commit meanwhile
        # The writer may have written its first byte since the listing: it can no
        # longer commit, so what it wrote goes now.
        if await _remove(storage, prefix):
            await catalog.close_lease(lease.artifact_id)
    return corrupt


async def _sweep_uploads(
    storage: Storage,
    catalog: Catalog,
    now: datetime,
    grace: timedelta,
    delete: bool,
    report: GcReport,
) -> None:
    """Note (and with ``delete`` abort) the multipart uploads left open in artifact
    folders, begun longer than ``grace`` ago by a writer that is not committing.

    An upload's parts are never part of a committed file (a completed upload is no
    longer open), so aborting one takes nothing committed.
    """
    root = storage.root.rstrip("/") + "/"
    try:
        uploads = await storage.backend.open_uploads(storage.root)
    except StorageError as err:  # a policy without s3:ListBucketMultipartUploads
        log.warning("gc could not list the multipart uploads left open: %s", err)
        return
    for path, upload_id, begun in uploads:
        try:
            _, artifact_id, inner = split_stored_path(path.removeprefix(root))
        except ValueError:
            continue  # not in an artifact's folder: not elliptio's to end
        if not path.startswith(root) or not inner:
            continue
        if begun is not None and now - _as_utc(begun) < grace:
            continue
        lease = await catalog.get_lease(artifact_id)
        if lease is not None and _in_flight(lease, now, grace):
            continue
        report.incomplete_uploads.append(storage.url(path))
        # One of unknown age (a store that does not say) may be a live writer's
        # (one without a lease: catalog='none'): listed, never aborted.
        if delete and begun is not None:
            with contextlib.suppress(StorageError):  # named again on the next run
                await storage.backend.abort_upload(path, upload_id)
                report.aborted_uploads.append(storage.url(path))


def _in_flight(lease: Lease, now: datetime, grace: timedelta) -> bool:
    """Whether the lease's writer is committing, or began within ``grace``: a
    commit in flight, whose folder and uploads gc leaves alone."""
    return lease.state == "committing" or (lease.state == "open" and now - lease.started < grace)


def _as_utc(stamp: datetime) -> datetime:
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


async def _remove(storage: Storage, prefix: str, attempts: int = 3) -> bool:
    """Remove a prefix that others may be removing or writing into at the same time."""
    for attempt in range(attempts):
        with contextlib.suppress(ElliptioError):
            await storage.remove_tree(prefix)
        if not await storage.exists(prefix):
            return True
        log.debug("retry %d removing %s", attempt + 1, storage.redact(storage.url(prefix)))
        await asyncio.sleep(0.05 * 2**attempt)
    return False


async def verify(storage: Storage, record: Metadata) -> VerifyReport:
    """Re-hash every file (and log) of an artifact against its record."""
    report = VerifyReport(record.artifact_id)
    paths = _record_paths(storage, record)
    for file, path in zip([*record.files, *record.logs], paths, strict=True):
        try:
            found = await storage.hash_file(path, file.size)
        except PlantedFileError:  # a link, FIFO or folder where the file was
            found = (-1, "")
        report.checked += 1
        if found is None:
            report.missing.append(file.relpath)
        elif found != (file.size, file.sha256):
            report.damaged.append(file.relpath)
    return report
