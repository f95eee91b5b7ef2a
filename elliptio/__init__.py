"""elliptio: files in data lakes, with automatic layout, metadata, search and lineage.

Import it as ``import elliptio as eio``; everything public is listed in
``__all__``. Importing has no side effects: settings are read, folders created
and connections opened only when a handler needs them.

Logging: every module logs to a child of the ``elliptio`` logger, which has only a
`logging.NullHandler`, so nothing is printed unless the application configures
logging (``logging.basicConfig(level=logging.INFO)``, or ``elliptio -v`` / ``-vv``).
INFO tells commits and transfers; DEBUG also cache hits, dedup decisions, retries
and query plans. No level ever shows a password, token or storage option.
"""

from __future__ import annotations

import logging as _logging

from ._artifact import Artifact, File
from ._catalog.base import Catalog
from ._config import Settings
from ._diff import ArtifactDiff
from ._errors import (
    ArgumentTypeError,
    ArtifactDeletedError,
    ArtifactExistsError,
    ArtifactNotFoundError,
    ArtifactUrlNotFoundError,
    CatalogError,
    CatalogUnavailableError,
    CommitError,
    ConfigError,
    CorruptRecordError,
    DedupSourceDeletedError,
    ElliptioError,
    FileNotInArtifactError,
    GraphvizError,
    GraphvizNotFoundError,
    ImmutableError,
    InputFileNotFoundError,
    IntegrityError,
    InvalidLabelsError,
    InvalidNameError,
    InvalidPathError,
    OfflineError,
    QueryError,
    SchemaVersionError,
    StorageError,
    UrlNotFoundError,
    UsageError,
)
from ._handler import AsyncHandler
from ._indexer import IndexReport, index_event
from ._lifecycle import DeleteReport
from ._lineage import LineageGraph, LineageNode
from ._models import SCHEMA_VERSION, FileRecord, GitInfo, Labels, LabelsChange, Metadata, Tombstone
from ._new import NewArtifact, NewFile
from ._provenance import current_username, mock_username
from ._runs import Run, run_env
from ._sync_handler import Handler
from ._urls import (
    cache_size,
    clear_cache,
    cp,
    exists,
    local_copy,
    ls,
    mv,
    open,
    prune_cache,
    rm,
    write,
)

__version__ = "0.15.0"

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "SCHEMA_VERSION",
    "ArgumentTypeError",
    "Artifact",
    "ArtifactDeletedError",
    "ArtifactDiff",
    "ArtifactExistsError",
    "ArtifactNotFoundError",
    "ArtifactUrlNotFoundError",
    "AsyncHandler",
    "Catalog",
    "CatalogError",
    "CatalogUnavailableError",
    "CommitError",
    "ConfigError",
    "CorruptRecordError",
    "DedupSourceDeletedError",
    "DeleteReport",
    "ElliptioError",
    "File",
    "FileNotInArtifactError",
    "FileRecord",
    "GitInfo",
    "GraphvizError",
    "GraphvizNotFoundError",
    "Handler",
    "ImmutableError",
    "IndexReport",
    "InputFileNotFoundError",
    "IntegrityError",
    "InvalidLabelsError",
    "InvalidNameError",
    "InvalidPathError",
    "Labels",
    "LabelsChange",
    "LineageGraph",
    "LineageNode",
    "Metadata",
    "NewArtifact",
    "NewFile",
    "OfflineError",
    "QueryError",
    "Run",
    "SchemaVersionError",
    "Settings",
    "StorageError",
    "Tombstone",
    "UrlNotFoundError",
    "UsageError",
    "__version__",
    "cache_size",
    "clear_cache",
    "cp",
    "current_username",
    "exists",
    "index_event",
    "local_copy",
    "ls",
    "mock_username",
    "mv",
    "open",
    "prune_cache",
    "rm",
    "run_env",
    "write",
]
