"""Indexing from storage events: the sidecars an S3 event notification announces.

A team whose writers hold storage credentials only (``catalog="none"``) lets an
indexer add the records: an AWS Lambda function subscribed to the bucket's
``ObjectCreated`` events for keys ending in ``.elliptio/metadata.json`` calls
`index_event` with each event. Reading an event is pure (`sidecar_folders`); the
indexing is `reindex` of each announced artifact folder, with every check
reindex makes: the folder must be one of the store's layout under its root, the
sidecar's files must lie where the layout allows. Delivered twice, an event adds
nothing the second time.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import UsageError
from ._layout import METADATA_RELPATH
from ._maintenance import _PREFIX_RE, ReindexReport

if TYPE_CHECKING:
    from ._sync_handler import Handler

__all__ = ["IndexReport", "index_event", "sidecar_folders"]

_SUFFIX = "/" + METADATA_RELPATH


@dataclass
class IndexReport(ReindexReport):
    """What `index_event` did: `ReindexReport`'s lists, by artifact id, plus the
    event's objects it did not index."""

    ignored: list[str] = field(default_factory=list)
    """Objects that are no sidecar, or events other than ``ObjectCreated``."""
    refused: list[str] = field(default_factory=list)
    """Sidecar URLs outside the store's root or its layout: never indexed."""

    def as_dict(self) -> dict[str, list[str]]:
        """Plain lists by outcome: what a Lambda function returns as JSON."""
        return {name: list(getattr(self, name)) for name in self.__dataclass_fields__}


def sidecar_folders(event: Any, root_url: str) -> tuple[list[str], IndexReport]:
    """The artifact folders (relative to the root) whose sidecars ``event`` announces.

    Args:
        event: an S3 event notification (``{"Records": [{"eventName":
            "ObjectCreated:Put", "s3": {"bucket": {"name": ...}, "object":
            {"key": ...}}}]}``; keys URL-encoded, as S3 sends them).
        root_url: the store's root, ``s3://bucket/prefix``.

    Returns:
        The folders to index, in order, and a report holding what was ignored or
        refused.

    Raises:
        UsageError: ``event`` is not an S3 event notification.
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise UsageError(
            "index_event takes an S3 event notification: a mapping with a 'Records' "
            f"list, not {type(event).__name__}; subscribe the function to the bucket's "
            "ObjectCreated events for keys ending in .elliptio/metadata.json"
        )
    root = root_url.rstrip("/")
    report = IndexReport()
    folders: dict[str, None] = {}  # in order, each once
    for number, record in enumerate(records):
        s3 = record.get("s3") if isinstance(record, Mapping) else None
        bucket = s3.get("bucket") if isinstance(s3, Mapping) else None
        obj = s3.get("object") if isinstance(s3, Mapping) else None
        name = bucket.get("name") if isinstance(bucket, Mapping) else None
        key = obj.get("key") if isinstance(obj, Mapping) else None
        if not isinstance(name, str) or not isinstance(key, str):
            report.refused.append(f"Records[{number}]: no s3.bucket.name and s3.object.key")
            continue
        url = f"s3://{name}/{urllib.parse.unquote_plus(key)}"
        event_name = record.get("eventName")
        if not (isinstance(event_name, str) and event_name.startswith("ObjectCreated:")):
            report.ignored.append(url)
            continue
        if not url.endswith(_SUFFIX):
            report.ignored.append(url)
            continue
        folder = url[: -len(_SUFFIX)]
        relative = folder[len(root) + 1 :] if folder.startswith(root + "/") else None
        if (
            relative is None
            or not _PREFIX_RE.fullmatch(relative)
            or any(part in (".", "..") for part in relative.split("/"))
        ):
            report.refused.append(url)
            continue
        folders[relative] = None
    return list(folders), report


def index_event(event: Any, handler: Handler | None = None) -> dict[str, list[str]]:
    """Add to the catalog the sidecars an S3 event notification announces.

    The body of an AWS Lambda function subscribed to the store bucket's
    ``ObjectCreated`` events for keys ending in ``.elliptio/metadata.json``::

        import elliptio as eio

        H = eio.Handler()  # ELLIPTIO_STORAGE_URL and ELLIPTIO_CATALOG_URL of the function

        def handler(event, context):
            return eio.index_event(event, H)

    Each announced sidecar is indexed as `reindex` would (same checks: nothing
    outside the store's root or its layout is trusted); a sidecar indexed
    before is ``unchanged``, so an event delivered twice is harmless.

    Args:
        event: the S3 event notification.
        handler: the store and catalog; by default a handler from the
            ``ELLIPTIO_*`` settings, closed again afterwards.

    Returns:
        Artifact ids by outcome (``added``, ``unchanged``, ``updated``,
        ``conflicting``, ``unreadable``, ``uncommitted``), and the URLs
        ``ignored`` (no sidecar) and ``refused`` (outside the store).

    Raises:
        UsageError: ``event`` is not an S3 event notification.
    """
    if handler is not None:
        return handler.index_event(event).as_dict()
    from ._sync_handler import Handler

    with Handler() as own:
        return own.index_event(event).as_dict()
