"""The exceptions elliptio raises.

Every exception derives from `ElliptioError`; where a built-in exception fits, the
subclass inherits it too, so existing ``except KeyError`` / ``except ValueError``
code keeps working::

    ElliptioError
    ├── ConfigError(ValueError)            a setting or constructor argument is invalid
    ├── UsageError                         a call that cannot work as made
    │   ├── ArgumentTypeError(TypeError)   an argument of the wrong type
    │   ├── ImmutableError(PermissionError)
    │   │                                  a write to something committed or read-only
    │   └── FileNotInArtifactError(KeyError)
    │                                      the artifact has no file with that name
    ├── InvalidPathError(ValueError)       a relpath or local path cannot be used
    ├── InputFileNotFoundError(FileNotFoundError)
    │                                      a local file to upload does not exist
    ├── GraphvizError                      Graphviz 'dot' failed to draw a picture
    │   └── GraphvizNotFoundError(FileNotFoundError)
    │                                      a picture needs Graphviz 'dot', not installed
    ├── InvalidLabelsError(ValueError)     labels cannot be stored or queried
    ├── InvalidNameError(ValueError)       a name, version or alias is malformed
    ├── QueryError(ValueError)             a filter document is malformed or unsupported
    ├── UrlNotFoundError(FileNotFoundError)
    │                                      a URL (elliptio:// or any other) names nothing
    ├── ArtifactNotFoundError(KeyError)    no committed artifact has that id
    │   ├── ArtifactUrlNotFoundError(UrlNotFoundError)
    │   │                                  ... named by an elliptio:// URL
    │   └── ArtifactDeletedError           it was deleted (its tombstone says who, when, why)
    ├── ArtifactExistsError(FileExistsError)
    │                                      an id or a file of an artifact exists already
    ├── CommitError                        a `new()` artifact cannot be committed
    │   └── DedupSourceDeletedError        the artifact a file was deduplicated to went
    ├── IntegrityError                     bytes do not match their recorded sha256
    │   └── CorruptRecordError             a stored record is malformed
    ├── SchemaVersionError                 a record has a schema version this release cannot read
    ├── StorageError(OSError)              the storage backend failed
    ├── CatalogError                       the catalog backend failed
    │   └── CatalogUnavailableError(ConnectionError)
    └── OfflineError(ConnectionError)      the operation needs a network that is not there

Messages name the artifact, path or URL involved and the next step; they never
contain a password or token (see `elliptio._redact`).
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "ArtifactDeletedError",
    "ArtifactExistsError",
    "ArtifactNotFoundError",
    "ArtifactUrlNotFoundError",
    "CatalogError",
    "CatalogUnavailableError",
    "CommitError",
    "ConfigError",
    "CorruptRecordError",
    "DedupSourceDeletedError",
    "ElliptioError",
    "FileNotInArtifactError",
    "GraphvizError",
    "GraphvizNotFoundError",
    "ImmutableError",
    "InputFileNotFoundError",
    "IntegrityError",
    "InvalidLabelsError",
    "InvalidNameError",
    "InvalidPathError",
    "OfflineError",
    "QueryError",
    "SchemaVersionError",
    "StorageError",
    "UrlNotFoundError",
    "UsageError",
]


class ElliptioError(Exception):
    """Root of every error elliptio raises."""

    def __str__(self) -> str:
        # KeyError quotes its argument; keep every message readable as written.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ConfigError(ElliptioError, ValueError):
    """A setting or constructor argument is invalid."""


class UsageError(ElliptioError):
    """A call that cannot work as made (wrong state, wrong combination of arguments)."""


class ArgumentTypeError(UsageError, TypeError):
    """An argument has a type elliptio cannot use."""


class ImmutableError(UsageError, PermissionError):
    """A write to a committed artifact or to the read-only ``elliptio://`` filesystem."""


class FileNotInArtifactError(UsageError, KeyError):
    """The artifact has no file with the requested name."""


class InvalidPathError(ElliptioError, ValueError):
    """A relpath or a local path cannot be used for an artifact file."""


class InputFileNotFoundError(ElliptioError, FileNotFoundError):
    """A local file or directory given for upload does not exist."""


class InvalidLabelsError(ElliptioError, ValueError):
    """Labels hold a value or key that cannot be stored or queried."""


class InvalidNameError(ElliptioError, ValueError):
    """An artifact name, version or alias is malformed."""


class QueryError(ElliptioError, ValueError):
    """A filter document is malformed or uses an unsupported operator."""


class ArtifactNotFoundError(ElliptioError, KeyError):
    """No committed artifact has the requested id."""


class UrlNotFoundError(ElliptioError, FileNotFoundError):
    """A URL names nothing: an ``elliptio://`` URL no file or folder of its
    artifact, or a URL given to the URL tools (``eio.open``, ``cp``, ...) nothing
    in its filesystem."""


class ArtifactUrlNotFoundError(ArtifactNotFoundError, UrlNotFoundError):
    """An ``elliptio://`` URL names no committed artifact.

    Both an `ArtifactNotFoundError` (``except KeyError`` code keeps working) and a
    `FileNotFoundError`, which fsspec and every reader expect of a missing path.
    """


class ArtifactDeletedError(ArtifactNotFoundError):
    """The artifact was deleted; its record is a tombstone naming who, when and why."""


class ArtifactExistsError(ElliptioError, FileExistsError):
    """An artifact id, or a file at an artifact's path, exists already."""


class CommitError(ElliptioError):
    """An artifact opened with `new()` cannot be committed."""


class DedupSourceDeletedError(CommitError):
    """The artifact whose stored copy of a file a commit referenced (deduplication)
    was deleted while the commit was being written; nothing was committed."""


class IntegrityError(ElliptioError):
    """Bytes read back do not match the sha256 recorded for them."""


class CorruptRecordError(IntegrityError):
    """A stored record (catalog document or sidecar) is malformed."""


class SchemaVersionError(ElliptioError):
    """A stored record has a schema version this release cannot read."""


class StorageError(ElliptioError, OSError):
    """The storage backend failed."""


class CatalogError(ElliptioError):
    """The catalog backend failed."""


class CatalogUnavailableError(CatalogError, ConnectionError):
    """The catalog cannot be reached."""


class GraphvizError(ElliptioError):
    """Graphviz ``dot`` failed, or took too long, to draw a picture."""


class GraphvizNotFoundError(GraphvizError, FileNotFoundError):
    """A picture (svg, png) needs the Graphviz ``dot`` program, which is not installed."""


class OfflineError(ElliptioError, ConnectionError):
    """The operation needs storage or a catalog that cannot be reached."""
