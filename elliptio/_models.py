"""The metadata record and its parts: pydantic models, versioned, frozen values."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from ._errors import CorruptRecordError, InvalidLabelsError, SchemaVersionError
from ._layout import ARTIFACT_ID_RE, relpath_clash, validate_relpath
from ._names import VERSION_CEILING, format_ref, validate_name
from ._provenance import GitInfo
from ._scalars import plain

__all__ = [
    "MAX_LABELS_BYTES",
    "SCHEMA_VERSION",
    "FileRecord",
    "GitInfo",
    "Labels",
    "LabelsChange",
    "Metadata",
    "Tombstone",
    "check_storable",
    "malformed_field",
    "refuse_nul",
    "upgrade_record",
]

SCHEMA_VERSION = 2
_MAX_DEPTH = 32
MAX_LABELS_BYTES = 2**20
# The next step for a catalog record that cannot be read: `reindex` never
# replaces a record the catalog holds (it may be another store's), so whoever
# administers the catalog removes it first.
RESTORE_FROM_SIDECAR = (
    "once it is removed from the catalog, `elliptio reindex` restores it from its sidecar"
)
"""The largest labels a record may carry, as JSON: records stay far below MongoDB's
16 MiB document limit and every `find` stays cheap; keep big data in files."""


def _check_text(text: str, where: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidLabelsError(
            f"{where} = {text[:60]!r} is not valid Unicode text (it holds a lone surrogate); "
            "decode bytes with errors='replace' or store them as a file"
        ) from None
    return text


def refuse_nul(value: Any, where: str = "labels") -> None:
    """Raise `InvalidLabelsError` if a string in new labels holds NUL (``\\x00``).

    The embedded catalog's text functions stop at it, so queries would not see
    past it where MongoDB does. Records stored before are read as they are.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidLabelsError(
                f"{where} = {value[:60]!r} holds the NUL character (\\x00), which queries "
                "cannot search past; remove it, or store such text as a file"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            refuse_nul(item, f"{where}[{i}]")


def check_storable(value: Any, where: str, depth: int = 0) -> Any:
    """Return ``value`` as a catalog-storable value, or raise `InvalidLabelsError`.

    Storable means what both MongoDB and the embedded catalog keep and query
    unchanged: ``str``, ``int``, finite ``float``, ``bool``, ``None``, tz-aware
    ``datetime`` (converted to UTC, to the millisecond), lists/tuples of those and
    mappings with ``str`` keys that neither contain ``.`` nor start with ``$``.
    numpy and pandas scalars (``np.int64``, ``np.bool_``, ``pd.Timestamp``, ...)
    become their plain values.
    """
    if depth > _MAX_DEPTH:
        raise InvalidLabelsError(f"{where} is nested deeper than {_MAX_DEPTH} levels")
    value = plain(value)  # np.int64, np.bool_, pd.Timestamp, ...
    if isinstance(value, str):
        return _check_text(value, where)
    if value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise InvalidLabelsError(f"{where} = {value} does not fit in 64 bits; store it as str")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidLabelsError(f"{where} is {value}; store NaN/inf as None or str")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidLabelsError(
                f"{where} is a naive datetime; give it a timezone, e.g. datetime.now(tz=UTC)"
            )
        # To the millisecond, as every catalog keeps it (BSON dates): the record
        # returned, the sidecar and the catalog's copy are then the same.
        utc = value.astimezone(UTC)
        return utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    if isinstance(value, list | tuple):
        return [check_storable(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidLabelsError(f"{where} has the non-str key {key!r}; use str keys")
            _check_text(key, f"{where} key")
            if not key or "." in key or key.startswith("$") or "\x00" in key:
                raise InvalidLabelsError(
                    f"{where} has the key {key!r}, which cannot be queried: keys must be "
                    "non-empty, without '.', not starting with '$'; nest a dict instead"
                )
            result[key] = check_storable(item, f"{where}.{key}", depth + 1)
        return result
    raise InvalidLabelsError(
        f"{where} has a value of type {type(value).__name__}, which cannot be stored; "
        "use str, int, float, bool, None, tz-aware datetime, list or dict"
    )


def _json_dates(value: Any) -> Any:
    """``value`` with each datetime as ``{"$date": "<ISO 8601, UTC>"}``."""
    if isinstance(value, datetime):
        return {_DATE_KEY: value.isoformat(timespec="microseconds").replace("+00:00", "Z")}
    if isinstance(value, dict):
        return {k: _json_dates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_dates(v) for v in value]
    return value


def _dates_of_json(value: Any) -> Any:
    """``value`` with each ``{"$date": text}`` read as its datetime (`_json_dates`
    undone); one that does not parse is left for `check_storable` to refuse."""
    if isinstance(value, Mapping):
        text = value.get(_DATE_KEY)
        if len(value) == 1 and isinstance(text, str):
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                return value
        return {k: _dates_of_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dates_of_json(v) for v in value]
    return value


_DATE_KEY = "$date"


class Labels(BaseModel):
    """The user's own labels of an artifact; every field is optional.

    ``infos`` holds str (without the NUL character), 64-bit int, finite float,
    bool, None and timezone-aware datetime values, and lists and dicts of them
    (keys without ``.``, not starting with ``$``); all labels together take at
    most 1 MiB as JSON. Anything else raises `InvalidLabelsError`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ticket: str = ""
    project: str = ""
    datatype: str = ""
    dataset: str = ""
    description: str = ""
    infos: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'labels'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in err.errors(include_input=False, include_url=False)
            )
            raise InvalidLabelsError(f"invalid labels: {problems}") from None

    @field_validator("infos", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise InvalidLabelsError(f"labels.infos must be a dict, got {type(value).__name__}")
        try:
            return check_storable(_dates_of_json(value), "labels.infos")
        except RecursionError:
            raise InvalidLabelsError(
                "labels.infos is nested too deeply; keep it to a few levels"
            ) from None

    @field_serializer("infos", when_used="json")
    def _dates_as_json(self, infos: dict[str, Any]) -> Any:
        # JSON has no dates: a sidecar or a kept record holds {"$date": text}, read
        # back as the datetime (an infos key never starts with "$").
        return _json_dates(infos)

    @field_validator("ticket", "project", "datatype", "dataset", "description")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        return _check_text(value, f"labels.{info.field_name}")

    @model_validator(mode="after")
    def _bounded(self) -> Labels:
        # Characters here, so that every record an earlier release wrote reads;
        # new labels are held to the limit in bytes (`elliptio._handler._labels`).
        size = len(self.model_dump_json())
        if size > MAX_LABELS_BYTES:
            raise InvalidLabelsError(
                f"labels are {size} characters as JSON, more than the limit of "
                f"{MAX_LABELS_BYTES}; "
                "save large data as a file of the artifact and keep labels small"
            )
        return self


class FileRecord(BaseModel):
    """One committed file of an artifact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    relpath: str
    url: str
    size: int = Field(ge=0, lt=2**63)  # what a catalog stores
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("relpath")
    @classmethod
    def _contained(cls, value: str) -> str:
        # A record read from a shared catalog is input too: a relpath such as
        # "../../.bashrc" would let `download` write outside its target folder.
        if validate_relpath(value) != value:
            raise ValueError(f"relpath {value!r} is not normalised")
        return value


class LabelsChange(BaseModel):
    """Earlier labels of an artifact: what they were, who replaced them and when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: Labels
    replaced_by: str
    replaced_at: AwareDatetime

    @field_validator("replaced_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class Tombstone(BaseModel):
    """Who deleted an artifact, when and why (the record then keeps no files)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deleted_by: str
    deleted_at: AwareDatetime
    reason: str = Field(min_length=1)

    @field_validator("deleted_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


# Lifecycle fields left out of a stored record while they are empty, so that a
# record never relabeled nor deleted is exactly what earlier releases wrote and read.
_LIFECYCLE_DEFAULTS: dict[str, Any] = {"label_history": [], "deleted": None, "reference": None}


class Metadata(BaseModel):
    """The record of one artifact, as stored in the catalog and sidecar.

    Files never change; the labels may be replaced (`label_history` keeps every
    earlier version), and a deleted artifact's record becomes a tombstone
    (``deleted`` set, files, labels and command line dropped).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = SCHEMA_VERSION
    artifact_id: str = Field(pattern=f"^{ARTIFACT_ID_RE.pattern}$")
    run_id: str
    creation_time: AwareDatetime
    username: str
    hostname: str
    argv: list[str]
    python_version: str
    platform: str
    python_packages: dict[str, str]
    git: GitInfo | None
    labels: Labels
    files: list[FileRecord]
    file_relpaths: list[str]
    logs: list[FileRecord] = Field(default_factory=list)
    log_relpaths: list[str] = Field(default_factory=list)
    based_on: list[str] = Field(default_factory=list)
    remote_root: str
    local_root: str = ""
    name: str | None = None
    name_version: int | None = Field(default=None, ge=1, le=VERSION_CEILING)
    label_history: list[LabelsChange] = Field(default_factory=list)
    deleted: Tombstone | None = None
    reference: dict[str, str] | None = None
    """Set for a reference artifact (`AsyncHandler.add_reference`), whose files
    stay where they were: each file's version id or ETag when it was added, by
    relpath (``""`` where its store has none)."""

    @model_validator(mode="after")
    def _named(self) -> Metadata:
        if (self.name is None) != (self.name_version is None):
            raise ValueError("name and name_version are set together or not at all")
        if self.name is not None:
            validate_name(self.name)
        # Files land in one folder (a download): "a" and "a/b" cannot both. A
        # reference written before 0.11 could hold such files (only duplicates
        # were refused): it stays readable, file by file.
        for records in (self.files, self.logs):
            problem = relpath_clash((f.relpath for f in records), nesting=self.reference is None)
            if problem is not None:
                raise ValueError(problem)
        return self

    @property
    def ref(self) -> str | None:
        """``name:v<n>`` for a named artifact, else ``None``."""
        if self.name is None or self.name_version is None:
            return None
        return format_ref(self.name, self.name_version)

    @field_validator("creation_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def _unset_lifecycle(self) -> set[str]:
        return {k for k, v in _LIFECYCLE_DEFAULTS.items() if getattr(self, k) == v}

    def to_document(self) -> dict[str, Any]:
        """The record as a catalog document (plain Python data, datetimes in UTC)."""
        return self.model_dump(mode="python", exclude=self._unset_lifecycle())

    def to_json(self, indent: int | None = None) -> bytes:
        """The record as sidecar JSON."""
        return self.model_dump_json(indent=indent, exclude=self._unset_lifecycle()).encode()


_Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    # Version 2 added the optional name and name_version; version-1 records have none.
    return {**doc, "version": 2, "name": None, "name_version": None}


# version n -> function turning a version-n document into a version-(n+1) document.
UPGRADES: dict[int, _Upgrade] = {1: _v1_to_v2}


def upgrade_record(doc: Mapping[str, Any]) -> Metadata:
    """Load a stored document of any known schema version as a current `Metadata`.

    Raises:
        SchemaVersionError: the version is newer than this release, or unknown.
        CorruptRecordError: the document is not a valid record of its version.
    """
    data = dict(doc)
    data.pop("_id", None)
    version = data.get("version")
    artifact_id = data.get("artifact_id", "<unknown id>")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SchemaVersionError(f"record of {artifact_id} has no integer schema version")
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"record of {artifact_id} has schema version {version}, newer than this "
            f"elliptio reads ({SCHEMA_VERSION}); upgrade elliptio"
        )
    while version < SCHEMA_VERSION:
        upgrade = UPGRADES.get(version)
        if upgrade is None:
            raise SchemaVersionError(
                f"record of {artifact_id} has schema version {version}, which no "
                "upgrade function reads"
            )
        data = upgrade(data)
        version = data["version"]
    try:
        return Metadata.model_validate(data)
    except (ValidationError, InvalidLabelsError, RecursionError) as err:
        problems = "nested too deeply" if isinstance(err, RecursionError) else _problems(err)
        raise CorruptRecordError(
            f"record of {_shown_id(artifact_id)} is malformed ({problems}); "
            f"{RESTORE_FROM_SIDECAR}, or report how it was written"
        ) from None


def record_from_json(text: str | bytes) -> Metadata:
    """A record from the JSON text of a sidecar or a kept copy, as `upgrade_record`.

    Raises:
        SchemaVersionError: as `upgrade_record`.
        CorruptRecordError: the text is not JSON of an object (cut off, or nested
            too deeply to read), or not a valid record.
    """
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else "not JSON"
        raise CorruptRecordError(f"a record's text is {reason}; restore it from a backup") from None
    if not isinstance(doc, dict):
        raise CorruptRecordError("a record's text is no JSON object; restore it from a backup")
    return upgrade_record(doc)


def malformed_field(
    artifact_id: object, field: str, value: object, next_step: str = "Remove that record"
) -> CorruptRecordError:
    """The error for a catalog record whose ``field`` holds what no commit writes
    there (planted in a shared catalog), for reads that take fields one by one."""
    return CorruptRecordError(
        f"the record of '{_shown_id(artifact_id)}' in the catalog is malformed: field "
        f"{field!r} holds {str(value)[:80]!r}; someone with write access to the catalog "
        f"changed it. {next_step}"
    )


def _shown_id(artifact_id: object) -> str:
    text = str(artifact_id)
    return text if len(text) <= 80 else text[:77] + "..."


def _problems(err: Exception) -> str:
    if not isinstance(err, ValidationError):
        return str(err)[:300]
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
        for e in err.errors(include_input=False, include_url=False)[:3]
    ]
    more = err.error_count() - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
