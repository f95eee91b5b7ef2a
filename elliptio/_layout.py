"""Where things go: ids, the storage layout and relpath rules. Pure functions."""

from __future__ import annotations

import errno
import os
import re
import stat
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ._errors import ArtifactNotFoundError, InputFileNotFoundError, InvalidPathError

__all__ = [
    "ARTIFACT_ID_RE",
    "METADATA_RELPATH",
    "RESERVED_DIR",
    "artifact_prefix",
    "collect_local_files",
    "join",
    "new_artifact_id",
    "new_run_id",
    "split_stored_path",
    "validate_artifact_id",
    "validate_relpath",
    "validate_relpaths",
]

RESERVED_DIR = ".elliptio"
METADATA_RELPATH = f"{RESERVED_DIR}/metadata.json"
LOGS_DIR = f"{RESERVED_DIR}/logs"
# The store's copy of each name's aliases: ALIASES_DIR/NAME.json at the root.
ALIASES_DIR = f"{RESERVED_DIR}/aliases"
ARTIFACT_ID_RE = re.compile(
    r"artifact_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_RELPATH = 1024
_MAX_SEGMENT = 255


def new_artifact_id() -> str:
    """A fresh ``artifact_<uuid4>``."""
    return f"artifact_{uuid.uuid4()}"


def new_run_id() -> str:
    """A fresh ``run_<uuid4>``."""
    return f"run_{uuid.uuid4()}"


def validate_artifact_id(artifact_id: object) -> str:
    """Return ``artifact_id`` if it has the form ``artifact_<uuid4>``.

    Raises:
        ArtifactNotFoundError: it has another form, so no artifact can have it.
    """
    if not isinstance(artifact_id, str) or not ARTIFACT_ID_RE.fullmatch(artifact_id):
        raise ArtifactNotFoundError(
            f"{artifact_id!r} is not an artifact id; ids look like "
            "'artifact_<uuid4>', as in the index of find()'s DataFrame"
        )
    return artifact_id


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_relpath(relpath: object, *, allow_reserved: bool = False) -> str:
    """Return ``relpath`` normalised, or raise `InvalidPathError` naming it.

    A relpath is POSIX and relative. ``.`` segments are dropped; absolute paths,
    drive letters, ``..``, empty segments, backslashes, control characters and
    (unless ``allow_reserved``) the reserved ``.elliptio/`` folder are refused.
    """
    if isinstance(relpath, os.PathLike):
        relpath = os.fspath(relpath)
    if not isinstance(relpath, str):
        raise InvalidPathError(f"relpath {relpath!r} must be a str, not {type(relpath).__name__}")
    problem = None
    if not relpath:
        problem = "is empty"
    elif not _is_utf8(relpath):
        problem = "is not valid Unicode text (it holds a lone surrogate)"
    elif _CONTROL.search(relpath):
        problem = "contains a control character"
    elif "\\" in relpath:
        problem = "contains a backslash; use '/' as separator"
    elif relpath.startswith("/"):
        problem = "is absolute; give a path relative to the artifact"
    elif _DRIVE.match(relpath):
        problem = "starts with a drive letter; give a path relative to the artifact"
    elif len(relpath.encode()) > _MAX_RELPATH:
        problem = f"is longer than {_MAX_RELPATH} bytes"
    if problem is None:
        segments = [s for s in relpath.split("/") if s != "."]
        if not segments:
            problem = "names no file"
        elif "" in segments:
            problem = "has an empty segment ('//' or a trailing '/')"
        elif ".." in segments:
            problem = "contains '..'"
        elif any(len(s.encode()) > _MAX_SEGMENT for s in segments):
            problem = f"has a segment longer than {_MAX_SEGMENT} bytes"
        elif _DRIVE.match(segments[0]):  # "./C:x" normalises to "C:x"
            problem = "starts with a drive letter; give a path relative to the artifact"
        elif segments[0] == RESERVED_DIR and not allow_reserved:
            problem = f"is inside the reserved folder '{RESERVED_DIR}/'"
        else:
            return "/".join(segments)
    raise InvalidPathError(f"relpath {relpath!r} {problem}")


def validate_relpaths(relpaths: Iterable[object]) -> list[str]:
    """Validate several relpaths; refuse duplicates and file/folder clashes."""
    if isinstance(relpaths, str | bytes | os.PathLike) or not isinstance(relpaths, Iterable):
        raise InvalidPathError(
            f"relpaths {relpaths!r} must be a list of str, not {type(relpaths).__name__}"
        )
    result = [validate_relpath(r) for r in relpaths]
    if not result:
        raise InvalidPathError("an artifact needs at least one file; no relpath was given")
    problem = relpath_clash(result)
    if problem is not None:
        raise InvalidPathError(problem)
    return result


def relpath_clash(relpaths: Iterable[str], *, nesting: bool = True) -> str | None:
    """What keeps these relpaths from being files of one folder (one given twice,
    or, with ``nesting``, one inside another: ``a`` and ``a/b``), or ``None``."""
    seen: set[str] = set()
    for relpath in relpaths:
        if relpath in seen:
            return f"relpath {relpath!r} is given twice"
        seen.add(relpath)
    for relpath in seen if nesting else ():
        parts = relpath.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                return (
                    f"relpath {relpath!r} lies inside {'/'.join(parts[:i])!r}, "
                    "which is a file of the same artifact"
                )
    return None


def artifact_prefix(root: str, creation_time: datetime, username: str, artifact_id: str) -> str:
    """``{root}/{YYYY}/{MM}/{DD}/{username}/{HHMMSS}_{artifact_id}`` (UTC)."""
    t = creation_time.astimezone(UTC)
    return join(root, f"{t:%Y/%m/%d}/{username}/{t:%H%M%S}_{artifact_id}")


_STORED_RE = re.compile(
    r"(?P<prefix>[0-9]{4}/[0-9]{2}/[0-9]{2}/[^/]+/[0-9]{6}_(?P<id>" + ARTIFACT_ID_RE.pattern + r"))"
    r"(?:/(?P<inner>.+))?"
)


def split_stored_path(relative: str) -> tuple[str, str, str]:
    """Split a path relative to the store's root by the layout rules.

    ``2026/01/02/andy/030405_artifact_<uuid>/data/x.csv`` gives
    ``("2026/01/02/andy/030405_artifact_<uuid>", "artifact_<uuid>", "data/x.csv")``
    (the last part empty for the prefix itself).

    Raises:
        ValueError: the path is not normalised (``..``, ``.``, empty segments,
            backslashes, control characters) or does not follow the layout.
    """
    try:
        normal = validate_relpath(relative, allow_reserved=True)
    except InvalidPathError as err:
        raise ValueError(str(err)) from None
    match = _STORED_RE.fullmatch(normal)
    if normal != relative or match is None:
        raise ValueError(
            f"{relative!r} does not follow the layout YYYY/MM/DD/user/HHMMSS_artifact_<uuid>/..."
        )
    return match["prefix"], match["id"], match["inner"] or ""


def join(root: str, relpath: str) -> str:
    """Join a storage path and a relpath with exactly one '/'."""
    return f"{root.rstrip('/')}/{relpath}" if root.rstrip("/") else f"/{relpath}"


def collect_local_files(
    local_paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> tuple[Path, list[tuple[Path, str]]]:
    """Resolve local files and folders to ``(common_parent, [(file, relpath), ...])``.

    A folder contributes every file of its tree. Relpaths are relative to the
    common parent of the given paths, so ``["docs/train.txt", "docs/test.txt"]``
    gives ``train.txt`` and ``test.txt`` and ``["data"]`` gives ``data/...``.

    Symlinks: a path given is used as given (a symlink given is followed). Inside
    a given folder, a symlink to a file or folder inside that folder is followed
    (its content goes under the link's relpath); one that points outside the
    folder, or nowhere, or to a folder that holds it, is refused.

    Raises:
        InputFileNotFoundError: a path does not exist.
        InvalidPathError: nothing to upload, a folder without files or that
            cannot be read, a symlink in a folder that is refused (see above), the
            same relpath twice, or a name that is not a valid relpath.
    """
    if isinstance(local_paths, str | os.PathLike):
        local_paths = [local_paths]
    if not isinstance(local_paths, Sequence | set | frozenset) or isinstance(local_paths, bytes):
        raise InvalidPathError(
            f"local paths {local_paths!r} must be a path or a list of paths, "
            f"not {type(local_paths).__name__}"
        )
    for p in local_paths:
        if not isinstance(p, str | os.PathLike):
            raise InvalidPathError(
                f"local path {p!r} must be a str or a Path, not {type(p).__name__}"
            )
    given = [Path(os.path.abspath(os.fspath(p))) for p in local_paths]
    if not given:
        raise InvalidPathError("local_paths is empty; give at least one file or folder")
    kinds = [_kind(path) for path in given]
    if len(given) == 1 and stat.S_ISREG(kinds[0]):  # one file: its name is its relpath
        return given[0].parent, [(given[0], validate_relpath(given[0].name))]
    parent = Path(os.path.commonpath([str(p.parent) for p in given]))
    files: list[tuple[Path, str]] = []
    for path, kind in zip(given, kinds, strict=True):
        found = [(path, path)] if stat.S_ISREG(kind) else _folder_files(path)
        if not found:
            raise InvalidPathError(f"folder {str(path)!r} contains no files")
        files.extend((read, shown.relative_to(parent).as_posix()) for read, shown in found)
    relpaths = validate_relpaths(relpath for _, relpath in files)
    return parent, [(p, r) for (p, _), r in zip(files, relpaths, strict=True)]


def _kind(path: Path) -> int:
    """The file type bits of a given local path (symlinks followed): a file or a folder.

    Raises:
        InputFileNotFoundError: it does not exist.
        InvalidPathError: it is neither a file nor a folder.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise InputFileNotFoundError(
            f"local path {str(path)!r} does not exist; check its spelling, or give "
            "the path of an existing file or folder"
        ) from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InputFileNotFoundError(
                f"local path {str(path)!r} does not exist: it is a loop of symbolic links"
            ) from None
        raise InvalidPathError(f"local path {str(path)!r} cannot be read: {err.strerror}") from err
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvalidPathError(f"local path {str(path)!r} is neither a file nor a folder")
    return stat.S_IFMT(mode)


def _folder_files(folder: Path) -> list[tuple[Path, Path]]:
    """``(where to read, path under folder)`` of every file in ``folder``'s tree.

    Symlinks are followed only to files and folders inside ``folder``; see
    `collect_local_files`. Sorted by the path under ``folder``.
    """
    root = Path(os.path.realpath(folder))
    found: list[tuple[Path, Path]] = []
    # (path under folder, where to read it, real folders from root down to it)
    stack: list[tuple[Path, Path, tuple[Path, ...]]] = [(folder, folder, (root,))]
    while stack:
        shown_dir, read_dir, chain = stack.pop()
        try:
            with os.scandir(read_dir) as entries:
                kinds = [
                    (e.name, e.is_symlink(), e.is_dir(follow_symlinks=False), e.is_file())
                    for e in entries
                ]
        except OSError as err:
            raise InvalidPathError(
                f"folder {str(shown_dir)!r} cannot be read ({err.strerror or err}); make it "
                "readable or leave it out of the upload"
            ) from err
        for name, is_link, is_dir, is_file in sorted(kinds, reverse=True):
            shown, read = shown_dir / name, read_dir / name
            if is_link:
                target = Path(os.path.realpath(read))
                _check_link(read, target, folder, root, chain)
                if target.is_dir():
                    stack.append((shown, target, (*chain, target)))
                elif target.is_file():
                    found.append((target, shown))
            elif is_dir:
                stack.append((shown, read, (*chain, chain[-1] / name)))
            elif is_file:
                found.append((read, shown))
    return sorted(found, key=lambda pair: pair[1])


def _check_link(
    link: Path, target: Path, folder: Path, root: Path, chain: tuple[Path, ...]
) -> None:
    """Refuse a symlink in an uploaded folder that leads out of it, nowhere, or round."""
    where = f"{str(link)!r} is a symlink to {str(target)!r}"
    if not target.exists():
        raise InvalidPathError(
            f"{where}, which does not exist; remove the link, or point it at a file "
            f"inside {str(folder)!r}"
        )
    if not target.is_relative_to(root):
        raise InvalidPathError(
            f"{where}, outside the uploaded folder {str(folder)!r}; a folder upload follows "
            "only symlinks that stay inside the folder. Copy what it points to into the "
            "folder, or give that path explicitly (in local_paths, or on the command line)"
        )
    if any(real.is_relative_to(target) for real in chain):
        raise InvalidPathError(
            f"{where}, a folder that holds the link itself, so the folder would never end; "
            "remove the link"
        )
