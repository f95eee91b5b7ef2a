"""Deleting an artifact and replacing its labels: the records they leave. Pure.

A record changes in two ways only, both through `Catalog.replace` after the
sidecar was rewritten: `relabeled` appends the labels it replaces to
``label_history``; `tombstone` drops the files, labels and command line and
notes who deleted the artifact, when and why. `revision` orders the versions of
one record, so a change lands only on the version it was made from, and
`reindex` can tell which of a sidecar and a catalog record is newer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._catalog.base import record_revision
from ._errors import ArtifactDeletedError, UsageError
from ._models import Labels, LabelsChange, Metadata, Tombstone

__all__ = [
    "DeleteReport",
    "check_reason",
    "deleted_error",
    "relabeled",
    "revision",
    "tombstone",
]

MAX_REASON = 2000


@dataclass(frozen=True)
class DeleteReport:
    """What `AsyncHandler.delete` did.

    Attributes:
        artifact_id: the artifact deleted.
        ref: its ``name:v<n>``, if it had a name.
        removed: URLs of the files and logs removed from storage.
        aliases: aliases of its name that pointed at it and were removed.
        already_deleted: it was a tombstone before this call (a rerun, which
            removes whatever files an interrupted delete left).
        kept: URLs of its files whose bytes it did not hold itself, and so are
            not removed: to the id of the artifact that stored them (it
            deduplicated them), or to ``None`` for a file it referenced where it
            lies (`add_reference`). Such bytes go only when their own artifact
            is deleted.
    """

    artifact_id: str
    ref: str | None = None
    removed: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    already_deleted: bool = False
    kept: dict[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        what = self.artifact_id + (f" ({self.ref})" if self.ref else "")
        lines = [
            f"{what} was deleted before; finished removing its files"
            if self.already_deleted
            else f"deleted {what}: its record is now a tombstone",
            f"removed {len(self.removed)} file(s) from storage",
        ]
        owners = sorted({owner for owner in self.kept.values() if owner is not None})
        if owners:
            n = sum(owner is not None for owner in self.kept.values())
            lines.append(
                f"kept {n} file(s) whose bytes {', '.join(owners)} stored (deduplicated): "
                "they stay in storage until that artifact is deleted too"
            )
        if None in self.kept.values():
            n = sum(owner is None for owner in self.kept.values())
            lines.append(f"kept {n} referenced file(s) where they lie, outside the store")
        if self.aliases:
            name = self.ref.rsplit(":", 1)[0] if self.ref else ""
            lines.append("removed alias(es): " + ", ".join(f"{name}:{a}" for a in self.aliases))
        return "\n".join(lines)


def check_reason(reason: object) -> str:
    """The reason for a delete, stripped; refuses an empty or huge one."""
    if not isinstance(reason, str) or not reason.strip():
        raise UsageError(
            "a delete needs a reason (e.g. reason='holds personal data'); it is kept in "
            "the tombstone so that others know why the artifact is gone"
        )
    text = reason.strip()
    if len(text) > MAX_REASON:
        raise UsageError(f"the reason is {len(text)} characters long; keep it under {MAX_REASON}")
    return text


def revision(doc: Mapping[str, Any] | Metadata) -> tuple[bool, int]:
    """How far a record has changed: deleted, then the number of label replacements."""
    if isinstance(doc, Metadata):
        return doc.deleted is not None, len(doc.label_history)
    return record_revision(doc)


def tombstone(record: Metadata, by: str, at: datetime, reason: str) -> Metadata:
    """The tombstone of ``record``: its id, name and version, run, creator and
    ``based_on`` (so lineage keeps the node), and who deleted it, when and why.

    Files (also the relpaths a reference pins), logs, labels (and their
    history), the command line, git state and packages are dropped: any of them
    may hold what the delete is for.
    """
    return Metadata.model_validate(
        {
            **record.model_dump(mode="python"),
            "argv": [],
            "python_packages": {},
            "git": None,
            "labels": Labels(),
            "files": [],
            "file_relpaths": [],
            "logs": [],
            "log_relpaths": [],
            "local_root": "",
            "label_history": [],
            # Still marks a reference; its keys are the relpaths of the files dropped.
            "reference": {} if record.reference is not None else None,
            "deleted": Tombstone(deleted_by=by, deleted_at=at, reason=reason),
        }
    )


def relabeled(record: Metadata, labels: Labels, by: str, at: datetime) -> Metadata:
    """``record`` with ``labels``; the labels it had go to the end of its history."""
    change = LabelsChange(labels=record.labels, replaced_by=by, replaced_at=at)
    return record.model_copy(
        update={"labels": labels, "label_history": [*record.label_history, change]}
    )


def deleted_error(record: Metadata) -> ArtifactDeletedError:
    """The error of a read of a tombstone: who deleted it, when and why."""
    stone = record.deleted
    assert stone is not None
    what = record.artifact_id + (f" ({record.ref})" if record.ref else "")
    return ArtifactDeletedError(
        f"{what} was deleted by {stone.deleted_by} on "
        f"{stone.deleted_at:%Y-%m-%d %H:%M:%S} UTC: {stone.reason!r}; it can no longer "
        "be read (bytes another artifact shares are kept for that one)"
        + (f"; use another version of {record.name!r}" if record.name else "")
    )
