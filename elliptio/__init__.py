"""elliptio: files in data lakes, with automatic layout, metadata, search and lineage.

Import it as ``import elliptio as eio``; everything public is listed in
``__all__``. Importing has no side effects: settings are read, folders created
and connections opened only when a handler needs them.
"""

from __future__ import annotations

from ._artifact import Artifact, File
from ._catalog.base import Catalog
from ._config import Settings
from ._diff import ArtifactDiff
from ._errors import (
    ArgumentTypeError,
    ArtifactDeletedError,
    ArtifactExistsError,
    ArtifactNotFoundError,
    CatalogError,
    CatalogUnavailableError,
    CommitError,
    ConfigError,
    CorruptRecordError,
    ElliptioError,
    FileNotInArtifactError,
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
    UsageError,
)
from ._handler import AsyncHandler
from ._lifecycle import DeleteReport
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

__version__ = "0.4.0"

__all__ = [
    "SCHEMA_VERSION",
    "ArgumentTypeError",
    "Artifact",
    "ArtifactDeletedError",
    "ArtifactDiff",
    "ArtifactExistsError",
    "ArtifactNotFoundError",
    "AsyncHandler",
    "Catalog",
    "CatalogError",
    "CatalogUnavailableError",
    "CommitError",
    "ConfigError",
    "CorruptRecordError",
    "DeleteReport",
    "ElliptioError",
    "File",
    "FileNotInArtifactError",
    "FileRecord",
    "GitInfo",
    "Handler",
    "ImmutableError",
    "InputFileNotFoundError",
    "IntegrityError",
    "InvalidLabelsError",
    "InvalidNameError",
    "InvalidPathError",
    "Labels",
    "LabelsChange",
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
    "UsageError",
    "__version__",
    "cache_size",
    "clear_cache",
    "cp",
    "current_username",
    "exists",
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
