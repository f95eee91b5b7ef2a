"""The ``elliptio`` command line: a thin layer over the library.

Parsing, printing and exit codes only: 0 on success, 1 on an error (one line on
stderr, a traceback only with ``--debug``), 2 on a usage error. Whatever is printed
about an error, with or without ``--debug``, has the secrets of the command line,
the settings and the storage options masked.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import select
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn

from . import __version__
from ._errors import (
    ArtifactDeletedError,
    ArtifactExistsError,
    ArtifactNotFoundError,
    ConfigError,
    ElliptioError,
    FileNotInArtifactError,
    InvalidLabelsError,
    InvalidNameError,
    InvalidPathError,
    QueryError,
    UsageError,
)
from ._extjson import extended_json
from ._redact import known_secrets, redact_argv, redact_options, redact_text, redact_url
from ._sizes import human_size

__all__ = ["main"]

_EPILOG = "Settings come from ELLIPTIO_* variables and .env; see 'elliptio config'."


def _handler(args: argparse.Namespace) -> Any:
    from ._sync_handler import Handler

    handler = Handler(storage=args.storage, catalog=args.catalog)
    progress = getattr(args, "progress", None)
    if progress is not None:  # --progress / --no-progress win over ELLIPTIO_PROGRESS
        handler.storage.progress = progress
    return handler


def _tools(args: argparse.Namespace) -> Any:
    """The URL tools, on the store and catalog of --storage/--catalog when given (so
    that their store is protected and its files verified), else of the settings."""
    from ._urls import UrlTools, default_tools

    if getattr(args, "storage", None) is None and getattr(args, "catalog", None) is None:
        return default_tools()
    from ._config import load_settings

    given = {
        "storage_url": getattr(args, "storage", None),
        "catalog_url": getattr(args, "catalog", None),
    }
    return UrlTools(load_settings(**{k: v for k, v in given.items() if v is not None}))


def _parse_value(text: str, error: type[ElliptioError] = QueryError) -> Any:
    try:
        return json.loads(text, object_hook=extended_json)
    except ElliptioError:
        raise  # a bad date inside valid JSON: say so, not that it is no JSON
    except ValueError:
        return text
    except RecursionError:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise error(f"{shown!r} nests too deep to be read as JSON") from None


# Fields that hold only text: ``--label ticket=123`` and ``--where labels.ticket=123``
# mean the text "123", not a number (JSON strings, objects and arrays stay JSON).
_TEXT_LABELS = ("ticket", "project", "datatype", "dataset", "description")
_TEXT_FIELDS = frozenset(
    {
        *_TEXT_LABELS,
        *(f"labels.{key}" for key in _TEXT_LABELS),
        *("artifact_id", "run_id", "username", "hostname", "argv", "python_version"),
        *("platform", "file_relpaths", "log_relpaths", "based_on", "remote_root"),
        *("local_root", "name", "git.commit", "git.branch", "git.remote", "git.diff"),
        *(f"{kind}.{key}" for kind in ("files", "logs") for key in ("relpath", "url", "sha256")),
    }
)


def _is_text_field(key: str) -> bool:
    return key in _TEXT_FIELDS or key.startswith("python_packages.")


def _pair_list(
    items: Sequence[str] | None,
    what: str,
    error: type[ElliptioError],
    text: Callable[[str], bool] = _is_text_field,
) -> list[tuple[str, Any]]:
    result: list[tuple[str, Any]] = []
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise error(f"{what} {item!r} must look like key=value")
        parsed = _parse_value(value, error)
        # A number or true/false where only text can be: the text as given (null
        # stays null: a field that is missing or null).
        keep = text(key) and isinstance(parsed, int | float)
        result.append((key, value if keep else parsed))
    return result


def _all_of(query: dict[str, Any], pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``query`` and every ``--where`` condition: one document while their fields
    differ, else ``$and`` (a second condition on a field never replaces the first)."""
    merged = dict(query)
    for key, value in pairs:
        if key in merged or key.startswith("$"):
            return (
                {"$and": [query, *({k: v} for k, v in pairs)]}
                if query
                else {"$and": [{k: v} for k, v in pairs]}
            )
        merged[key] = value
    return merged


_LABEL_HELP = (
    "label as key=value (repeatable): ticket, project, datatype, dataset, description "
    "take the text as given (ticket=123); infos takes JSON (see --infos)"
)


def _format_help(what: str) -> str:
    return f"table (default), csv, or json: JSON Lines, one {what} per line as a JSON object"


def _json_value(value: Any) -> Any:
    """A frame's cell as plain JSON data: null where missing, times in ISO 8601."""
    import numpy as np
    import pandas as pd

    if isinstance(value, Mapping):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_value(item) for item in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, date):  # datetimes and pandas Timestamps too
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool) else str(value)


def _whole_numbers(frame: Any) -> Any:
    """A copy of ``frame`` whose float columns holding only whole numbers and gaps
    (a version only named artifacts have, a seed some records lack) are integers."""
    frame = frame.copy()
    for column in frame.columns:
        values = frame[column].dropna()
        if frame[column].dtype.kind == "f" and ((values % 1 == 0) & (values.abs() < 2**53)).all():
            frame[column] = frame[column].astype("Int64")
    return frame


def _csv(frame: Any) -> None:
    import pandas as pd

    frame = _whole_numbers(frame)
    for column in frame.columns:
        if frame[column].dtype == object:
            # Lists and mappings as JSON, as `--format json` writes them; the rest
            # as they are (map() would make ints with gaps floats again).
            frame[column] = pd.Series(
                [
                    json.dumps(_json_value(v), ensure_ascii=False)
                    if isinstance(v, list | tuple | Mapping)
                    else v
                    for v in frame[column]
                ],
                index=frame.index,
                dtype=object,
            )
    frame.to_csv(sys.stdout)


def _json_lines(frame: Any) -> None:
    key = frame.index.name or "artifact_id"
    frame = _whole_numbers(frame)
    for index, row in zip(frame.index, frame.to_dict(orient="records"), strict=True):
        record = _json_value({key: index, **row})
        print(json.dumps(record, ensure_ascii=False, allow_nan=False))


def _print_frame(frame: Any, fmt: str) -> None:
    if fmt == "json":
        _json_lines(frame)
    elif fmt == "csv":
        _csv(frame)
    elif frame.empty:
        print("no artifacts match")
    else:
        shown = _whole_numbers(frame)  # a seed some records lack: 1, <NA>; not 1.0, NaN
        for column in shown.columns:
            if shown[column].dtype.kind not in "biufcmM":  # text, whatever its dtype
                shown[column] = shown[column].map(_printable)
        print(shown.to_string(max_colwidth=60))


def _printable(value: Any) -> Any:
    """A text cell with its control characters escaped (``\x1b``), so that a label
    cannot move the cursor, retitle or clear the terminal it is shown in."""
    if isinstance(value, str) and not value.isprintable():
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    if type(value) is int:  # as it is: a column of ints and gaps would print 9.007199e+15
        return str(value)
    return value


def _size(nbytes: int, exact: bool) -> str:
    return str(nbytes) if exact else human_size(nbytes)


# The columns the table view is made of (see `_summary`).
_SUMMARY_COLUMNS = [
    "ref",
    "creation_time",
    "username",
    "labels.datatype",
    "file_relpaths",
    "files",
    "based_on",
]


def _is_int(value: Any) -> bool:
    """An int, as records hold sizes (``bson.Int64`` from MongoDB too), not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_cells(frame: Any, column: str, fine: Callable[[list[Any]], bool]) -> None:
    """Raise `CorruptRecordError` naming the first artifact whose ``column`` is not
    a list that ``fine`` accepts, or missing (a record planted in a shared catalog)."""
    from ._models import malformed_field  # pydantic: not on every CLI start

    for artifact_id, value in frame[column].items():
        if value is not None and (not isinstance(value, list) or not fine(value)):
            raise malformed_field(
                artifact_id, column, value, "Remove that record, or show all with --format json"
            )


def _summary(frame: Any, exact: bool) -> Any:
    """The table view: one short line per artifact, the id never cut."""

    def files(relpaths: list[str] | None) -> str:
        relpaths = relpaths or []
        return ", ".join(relpaths[:3]) + (f" (+{len(relpaths) - 3})" if len(relpaths) > 3 else "")

    def size(files: Sequence[Mapping[str, Any]] | None) -> str:
        return _size(sum(f["size"] for f in files or ()), exact)

    _check_cells(frame, "file_relpaths", lambda v: all(isinstance(r, str) for r in v))
    _check_cells(frame, "based_on", lambda v: all(isinstance(r, str) for r in v))
    _check_cells(
        frame, "files", lambda v: all(isinstance(f, dict) and _is_int(f.get("size")) for f in v)
    )

    def gone(stone: Mapping[str, Any] | None) -> str:
        if not isinstance(stone, Mapping):
            return ""
        when = stone.get("deleted_at")
        when = when.strftime("%Y-%m-%d %H:%M:%S") if isinstance(when, datetime) else ""
        return f"by {stone.get('deleted_by')} {when}: {stone.get('reason')}"

    named = frame["ref"].where(frame["ref"] != frame.index, "-")
    extra = {"deleted": frame["deleted"].map(gone)} if "deleted" in frame else {}
    return frame.assign(
        **extra,
        ref=named,
        created=frame["creation_time"].dt.strftime("%Y-%m-%d %H:%M:%S"),
        datatype=frame["labels.datatype"].fillna(""),
        files=frame["file_relpaths"].map(files),
        size=frame["files"].map(size),
        inputs=frame["based_on"].map(lambda parents: len(parents or ())),
    )[["ref", "created", "username", "datatype", "files", "size", "inputs", *extra]]


def _field_hints(h: Any, query: Mapping[str, Any]) -> list[str]:
    """One line per field of ``query`` that no record has, with known fields close to it."""
    from ._frame import RECORD_FIELDS
    from ._hints import close_fields, filter_fields

    missing = [f for f in filter_fields(query) if not h.count({f: {"$exists": True}})]
    if not missing or not h.count():
        return []
    # The label keys in use, from the newest records: enough to spell-check against.
    labels = h.find({}, max_docs=1000, columns=["labels"]).columns
    known = [*RECORD_FIELDS]
    for column in labels:
        parts = column.split(".")
        known += [".".join(parts[: i + 1]) for i in range(1, len(parts))]
    lines = []
    for field in missing:
        close = close_fields(field, known)
        also = f"; did you mean {' or '.join(close)}?" if close else ""
        lines.append(f"no artifact has a field {field!r}{also}")
    return lines


def _labels(args: argparse.Namespace) -> dict[str, Any]:
    """The labels of ``--label`` and ``--infos``; a label given twice is refused,
    since one of its values would be dropped without a word."""
    pairs = _pair_list(args.label, "--label", InvalidLabelsError)
    if args.infos:
        infos = _parse_value(args.infos, InvalidLabelsError)
        if not isinstance(infos, dict):
            raise InvalidLabelsError(
                f"--infos {args.infos!r} must be a JSON object such as '{{\"seed\": 1}}'"
            )
        pairs.append(("infos", infos))
    labels: dict[str, Any] = {}
    for key, value in pairs:
        if key in labels:
            raise InvalidLabelsError(
                f"the label {key!r} is given twice (--label {key}=..."
                + (" and --infos" if key == "infos" and args.infos else " twice")
                + "); give each label once"
            )
        labels[key] = value
    return labels


# -- commands ------------------------------------------------------------------------
def cmd_upload(args: argparse.Namespace) -> int:
    labels = _labels(args)
    if bool(args.paths) == bool(args.reference):
        problem = (
            "give local files or folders to upload, or --reference URL... to reference "
            "data where it lies, not both"
            if args.paths
            else "nothing to upload: give local files or folders, or --reference URL..."
        )
        _usage_error(args, problem)
    if args.reference and args.log:
        _usage_error(args, "--log keeps local log files; a reference takes none")
    with _handler(args) as h:
        if args.reference:
            art = h.add_reference(args.reference, labels=labels, name=args.name)
        else:
            art = h.upload(
                args.paths, labels=labels, logs=args.log or None, name=args.name, dedup=args.dedup
            )
    print(art.artifact_id)
    if art.ref:
        print(f"  committed as {art.ref}", file=sys.stderr)
    for relpath, file in sorted(art.files.items()):
        print(f"  {relpath}  {_size(file.size, args.bytes)}  {file.url}", file=sys.stderr)
    return 0


def _usage_error(args: argparse.Namespace, problem: str) -> NoReturn:
    """Stop on a command line that cannot work as written: one line, exit 2, as
    argparse reports its own usage errors."""
    print(f"elliptio {args.command}: error: {redact_url(problem)}", file=sys.stderr)
    raise SystemExit(2)


def cmd_find(args: argparse.Namespace) -> int:
    query: dict[str, Any] = _parse_value(args.filter) if args.filter else {}
    if not isinstance(query, dict):
        raise QueryError(
            f'the filter {args.filter!r} is not a JSON object; use e.g. \'{{"username": "andy"}}\''
        )
    query = _all_of(query, _pair_list(args.where, "--where", QueryError))
    columns = args.columns.split(",") if args.columns else None
    table = columns is None and args.format == "table"
    deleted = args.include_deleted
    shown = [*_SUMMARY_COLUMNS, *(["deleted"] if deleted else [])] if table else columns
    with _handler(args) as h:
        frame = h.find(query, max_docs=args.limit, columns=shown, include_deleted=deleted)
        hints = _field_hints(h, query) if frame.empty and query and args.limit != 0 else []
    for hint in hints:
        print(f"elliptio: {hint}", file=sys.stderr)
    _print_frame(_summary(frame, args.bytes) if table else frame, args.format)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _handler(args) as h:
        record = h.get(args.artifact_id).metadata
    data = record.model_dump(mode="json", exclude=None if args.packages else {"python_packages"})
    print(json.dumps(data, indent=2, ensure_ascii=False))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    with _handler(args) as h:
        art = h.get(args.artifact_id)
        wanted = args.relpaths or sorted(art.files)
        for relpath in wanted:
            if relpath not in art.files:
                raise InvalidPathError(
                    f"{relpath!r} is not a file of {art.artifact_id}; it has {sorted(art.files)}"
                )
            target = Path(args.output) / relpath
            if target.exists() and not args.overwrite:
                raise ArtifactExistsError(
                    f"{target} exists already; pass --overwrite to replace it, or choose "
                    "another folder with -o"
                )
        if not args.relpaths:
            paths = art.download(args.output, overwrite=args.overwrite)
        else:  # all of them, or nothing this command made when one fails
            from ._artifact import _check_folder, _new_paths, _remove_made

            _check_folder(Path(args.output), art.artifact_id)
            made = _new_paths(Path(args.output), [Path(args.output) / r for r in wanted])
            try:
                paths = [art.files[r].download(Path(args.output) / r) for r in wanted]
            except BaseException:
                _remove_made(made)
                raise
    for path in paths:
        print(path)
    return 0


def _could_be_ref(target: str) -> bool:
    """Whether ``target`` is written as an artifact id or a name reference."""
    from ._names import ID_PREFIX, parse_ref

    if target.startswith(ID_PREFIX):
        return True
    try:
        parse_ref(target)
    except InvalidNameError:
        return False
    return True


def _write_out(data: bytes | memoryview) -> None:
    """Write every byte to stdout: unbuffered (``python -u``, PYTHONUNBUFFERED) it
    is a raw file, whose ``write`` may take only part of what it is given."""
    out, view = sys.stdout.buffer, memoryview(data)
    while view:
        written = out.write(view)
        if written is None:  # a non-blocking stdout that is full: wait until it drains
            select.select([], [out], [])
            continue
        view = view[written:]


def _copy_out(src: IO[bytes]) -> None:
    while chunk := src.read(2**20):
        _write_out(chunk)
    sys.stdout.flush()


def _cat_url(args: argparse.Namespace, target: str) -> int:
    with _tools(args).open(target, "rb") as f:
        _copy_out(f)
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    from ._catalog.none import StorageOnlyCatalog

    # A URL, or a local path that no reference could be; a local file that could
    # be one (`train-set` in the working folder) is read only if no artifact is so named.
    target, local = args.target, args.relpath is None and Path(args.target).exists()
    if args.relpath is None and ("://" in target or (local and not _could_be_ref(target))):
        return _cat_url(args, target)
    with _handler(args) as h:
        try:
            art = h.get(target)
        except ArtifactDeletedError:
            raise
        except ElliptioError as err:
            if local:  # no such artifact, or no catalog to ask (none, offline, down)
                if not isinstance(err, ArtifactNotFoundError) and not isinstance(
                    h.catalog, StorageOnlyCatalog
                ):
                    # Not a quiet substitution: the artifact may well exist.
                    print(
                        f"elliptio cat: the catalog could not say whether an artifact is "
                        f"named {target!r} ({redact_url(str(err))}); this is the local file "
                        f"./{target}",
                        file=sys.stderr,
                    )
                return _cat_url(args, target)
            if args.relpath is not None or not isinstance(err, ArtifactNotFoundError):
                raise
            raise ArtifactNotFoundError(
                f"{err.args[0] if err.args else err}; nor is {target!r} a local file or URL"
            ) from err
        names = sorted(art.files)
        relpath = args.relpath
        if relpath is None:
            if len(names) != 1:
                raise UsageError(
                    f"{args.target} has {len(names)} files: {', '.join(names)}; "
                    f"name one, e.g. 'elliptio cat {args.target} {names[0] if names else 'FILE'}'"
                )
            relpath = names[0]
        if relpath not in art.files:
            raise FileNotInArtifactError(
                f"{relpath!r} is not a file of {args.target}; it has {', '.join(names)}"
            )
        with art.files[relpath].open() as f:  # verified before the first byte
            _copy_out(f)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete an artifact's files and leave a tombstone; asks first without --yes."""
    from ._lifecycle import check_reason

    reason = check_reason(args.reason)
    with _handler(args) as h:
        artifact_id = h.resolve(args.ref)
        if not args.yes:
            shown = artifact_id if args.ref == artifact_id else f"{args.ref} ({artifact_id})"
            # The question goes to stderr, so that stdout holds only the report.
            print(f"delete {shown} and its files for good? [y/N] ", end="", file=sys.stderr)
            sys.stderr.flush()
            answer = sys.stdin.readline() if sys.stdin is not None else ""
            if not answer.endswith("\n"):
                print(file=sys.stderr)  # end the question's line (no answer, or no newline)
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted (add --yes to skip this question)", file=sys.stderr)
                return 1
        print(h.delete(artifact_id, reason=reason))
    return 0


def cmd_set_labels(args: argparse.Namespace) -> int:
    """Replace an artifact's labels; the earlier ones stay in its label history."""
    if args.json is None and not args.label and not args.infos:
        _usage_error(
            args,
            f"set-labels replaces every label of {args.ref}: give the new ones with "
            "--label KEY=VALUE / --infos JSON, or --json '{}' to clear them",
        )
    if args.json is not None:
        if args.label or args.infos:
            raise InvalidLabelsError("give either --json or --label/--infos, not both")
        labels = _parse_value(args.json, InvalidLabelsError)
        if not isinstance(labels, dict):
            raise InvalidLabelsError(f"--json {args.json!r} must be a JSON object of labels")
    else:
        labels = _labels(args)
    with _handler(args) as h:
        art = h.set_labels(args.ref, labels)
    print(art.metadata.labels.model_dump_json(exclude_defaults=True))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """Compare two artifacts; exit 0 whether or not they differ."""
    with _handler(args) as h:
        result = h.diff(args.a, args.b)
    if args.format == "json":
        print(json.dumps(_json_value(result.to_dict()), sort_keys=True))
    else:
        print(result)
    return 0


_PICTURES = ("svg", "png")
# What -o's suffix says, when no --format is given ("": no -o, the text tree).
_SUFFIX_FORMATS = {
    "": "text",
    "txt": "text",
    "svg": "svg",
    "png": "png",
    "dot": "dot",
    "gv": "dot",
    "mmd": "mermaid",
}


def cmd_lineage(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None:  # from the output's suffix (lineage.svg), else the text tree
        suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
        fmt = _SUFFIX_FORMATS.get(suffix)
        if fmt is None:
            _usage_error(
                args,
                f"cannot tell a format from {args.output!r}: end it in "
                f"{', '.join('.' + s for s in _SUFFIX_FORMATS if s)}, or give --format",
            )
    if fmt == "png" and args.output is None and sys.stdout.isatty():
        _usage_error(args, "a png picture is binary: write it to a file with -o lineage.png")
    from ._urls import refuse_store_target

    with _handler(args) as h:
        if args.output is not None:
            refuse_store_target(args.output, "write")
        graph = h.lineage(args.artifact_id, args.direction, args.depth)
    if fmt in _PICTURES:
        data = graph.to_png() if fmt == "png" else graph.to_svg().encode("utf-8")
    else:
        render = {"text": graph.to_text, "mermaid": graph.to_mermaid, "dot": graph.to_dot}
        data = (render["text" if fmt == "tree" else fmt]() + "\n").encode("utf-8")
    if args.output is None:
        _write_out(data)
        sys.stdout.flush()
    else:
        Path(args.output).write_bytes(data)
        print(f"wrote {args.output} ({fmt})", file=sys.stderr)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    for name in _tools(args).ls(args.url):
        print(redact_url(name))  # an HTTP page's links may repeat a token
    return 0


def cmd_exists(args: argparse.Namespace) -> int:
    found = _tools(args).exists(args.url)
    print("true" if found else "false")
    return 0 if found else 1


def cmd_cp(args: argparse.Namespace) -> int:
    _tools(args).cp(args.src, args.dst, recursive=args.recursive)
    return 0


def cmd_mv(args: argparse.Namespace) -> int:
    _tools(args).mv(args.src, args.dst, recursive=args.recursive)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    _tools(args).rm(args.url, recursive=args.recursive)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    if args.days is not None and args.action != "prune":
        _usage_error(args, f"--days is for prune; 'cache {args.action}' takes none")
    tools = _tools(args)
    if args.action == "size":
        print(_size(tools.cache_size(), args.bytes))
    elif args.action == "prune":
        days = 30.0 if args.days is None else args.days
        print(f"freed {_size(tools.prune_cache(timedelta(days=days)), args.bytes)}")
    else:
        print(f"freed {_size(tools.clear_cache(), args.bytes)}")
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    if args.action != "list" and args.alias is None:
        example = "x:v3 prod" if args.action == "set" else "x prod"
        _usage_error(args, f"alias {args.action} needs a name and an alias, e.g. {example}")
    with _handler(args) as h:
        if args.action == "set":
            aliases = h.set_alias(args.target, args.alias)
        elif args.action == "remove":
            known = h.aliases(args.target)
            if args.alias not in known:  # most likely a typo: say so
                raise UsageError(
                    f"{args.target!r} has no alias {args.alias!r}; its aliases: "
                    f"{', '.join(known) or 'none'} ('elliptio alias list {args.target}')"
                )
            aliases = h.remove_alias(args.target, args.alias)
        else:
            aliases = h.aliases(args.target)
    print(json.dumps(aliases))
    return 0


def cmd_names(args: argparse.Namespace) -> int:
    with _handler(args) as h:
        frame = h.names()
    if args.format == "table" and not frame.empty:
        frame = frame.assign(aliases=frame["aliases"].map(json.dumps))
    if frame.empty and args.format == "table":
        print("no named artifacts; name one with 'elliptio upload --name NAME ...'")
    else:
        _print_frame(frame, args.format)
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    with _handler(args) as h:
        report = h.reindex(prefix=args.prefix, aliases=args.aliases)
    print(
        f"added {len(report.added)}, unchanged {len(report.unchanged)}, "
        f"updated {len(report.updated)}, "
        f"conflicting {len(report.conflicting)}, unreadable {len(report.unreadable)}, "
        f"uncommitted {len(report.uncommitted)}, aliases set again {len(report.aliases)}"
    )
    for artifact_id in report.conflicting + report.unreadable:
        print(f"  check {artifact_id}", file=sys.stderr)
    return 1 if report.conflicting or report.unreadable else 0


_MAX_GRACE_HOURS = 1_000_000


def cmd_gc(args: argparse.Namespace) -> int:
    hours = args.grace_hours
    if not 0 <= hours <= _MAX_GRACE_HOURS:  # also nan
        _usage_error(
            args,
            f"--grace-hours must be between 0 and {_MAX_GRACE_HOURS:,}, not {hours}; "
            "writers may be at work on prefixes younger than that, e.g. --grace-hours 24",
        )
    delete = args.delete and args.yes
    if args.delete and not args.yes:
        print("a dry run: add --yes to --delete to remove what is listed", file=sys.stderr)
    with _handler(args) as h:
        report = h.gc(grace=timedelta(hours=hours), delete=delete)
    for url in report.orphans:
        print(("removed " if url in report.removed else "orphan ") + url)
    for url in report.deleted_leftovers:
        removed = url in report.removed
        print(("removed " if removed else "files left by a delete in ") + url)
    for artifact_id in report.stale_leases:
        print(f"stale lease {artifact_id} (its writer left no file in the store)")
    for url in report.incomplete_uploads:
        aborted = url in report.aborted_uploads
        left = (
            " (not aborted: the store gave no start time, so it may be a writer's still, "
            "or refused the abort; a bucket lifecycle rule for incomplete multipart "
            "uploads ends it)"
            if delete and not aborted
            else ""
        )
        print(("aborted upload of " if aborted else "incomplete upload of ") + url + left)
    print(
        f"{len(report.orphans)} orphaned prefixes, {len(report.deleted_leftovers)} folders "
        f"of deleted artifacts holding files, {len(report.removed)} removed, "
        f"{len(report.stale_leases)} stale leases"
        + (" closed" if delete else "")
        + f", {len(report.incomplete_uploads)} incomplete uploads"
        + (f" ({len(report.aborted_uploads)} aborted)" if delete else "")
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    bad = 0
    with _handler(args) as h:
        for artifact_id in args.artifact_ids:
            report = h.verify(artifact_id)
            state = "ok" if report.ok else "DAMAGED"
            print(f"{artifact_id} {state} ({report.checked} files)")
            for relpath in report.damaged:
                print(f"  sha256 mismatch: {relpath}")
            for relpath in report.missing:
                print(f"  missing: {relpath}")
            bad += not report.ok
    return 1 if bad else 0


def cmd_config(args: argparse.Namespace) -> int:
    from ._config import load_settings

    settings = load_settings(storage_url=args.storage, catalog_url=args.catalog)
    effective = {
        "storage_url": settings.resolved_storage_url(),
        "storage_options": settings.storage_options,
        "catalog_url": settings.resolved_catalog_url(),
        "cache_dir": str(settings.resolved_cache_dir()),
        **settings.model_dump(
            exclude={"storage_url", "storage_options", "catalog_url", "cache_dir"}
        ),
    }
    effective["file_mode"] = oct(settings.file_mode)
    for key, value in effective.items():
        shown = redact_options(value, key)
        print(f"{key} = {json.dumps(shown) if not isinstance(shown, str) else shown}")
    return 0


# -- parser ----------------------------------------------------------------------------
_REF_HELP = "an artifact id, or name, name:latest, name:v3, name:<alias>"


def cmd_ui(args: argparse.Namespace) -> int:
    from ._ui import require

    require()
    from ._config import load_settings
    from ._ui.server import exposure_warning, serve

    catalog = args.catalog or load_settings().resolved_catalog_url()
    if isinstance(catalog, str) and catalog.startswith("sqlite:///"):
        path = Path(catalog[len("sqlite:///") :]).expanduser()
        if not path.exists():  # opening it would make an empty catalog there
            raise ConfigError(
                f"no catalog file at {str(path)!r}; the UI is read-only and opens only an "
                "existing catalog: check --catalog or ELLIPTIO_CATALOG_URL"
            )
    warning = exposure_warning(args.host)
    if warning is not None:
        print(f"elliptio: {warning}", file=sys.stderr)

    def ready(url: str) -> None:
        print(f"elliptio UI at {url} (read-only; Ctrl-C stops it)", flush=True)
        if args.browser:
            import webbrowser

            webbrowser.open(url)

    with _handler(args) as h:
        serve(h.aio, args.host, args.port, on_ready=ready)
    return 0


def _progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal, or ELLIPTIO_PROGRESS)",
    )


def _bytes_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bytes",
        action="store_true",
        help="print sizes as exact byte counts (for scripts) instead of 1.5 MB",
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # A usage error can quote an argument: a URL with a password in it, or the
        # value of a secret-looking option (--password S3CR3T); both are masked.
        masked = redact_argv(_ARGV)
        for arg, shown in sorted(zip(_ARGV, masked, strict=True), key=lambda p: -len(p[0])):
            if arg != shown:
                message = message.replace(arg, shown)
        super().error(redact_url(message))


# The command line being parsed, for `_Parser.error` (set by `main`).
_ARGV: list[str] = []


def _in_range(kind: type[float] | type[int], what: str, top: float) -> Callable[[str], Any]:
    """An argparse type: a number from 0 to ``top`` (nan and infinities refused),
    else a usage error naming the option."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None
        if not 0 <= value <= top:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{what} must be between 0 and {top:g}, not {text}")
        return value

    return parse


def _count(text: str) -> int:
    """An argparse type: a whole number, 0 or more (argparse names the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number is needed, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _common(suppress: bool) -> _Parser:
    # Sub-commands accept the options too; SUPPRESS keeps them from overwriting
    # a value given before the sub-command with their default.
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    common = _Parser(add_help=False)
    common.add_argument("--storage", help="storage URL (default: ELLIPTIO_STORAGE_URL)", **default)
    common.add_argument("--catalog", help="catalog URL (default: ELLIPTIO_CATALOG_URL)", **default)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors", **default)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="log to stderr: -v commits and transfers (INFO), -vv also cache hits, dedup, "
        "retries and query plans (DEBUG)",
        default=argparse.SUPPRESS if suppress else 0,
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common(suppress=True)
    parser = _Parser(
        prog="elliptio",
        description="Save, find and read artifacts in a data lake.",
        epilog=_EPILOG,
        parents=[_common(suppress=False)],
    )
    parser.add_argument("--version", action="version", version=f"elliptio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_: str, example: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=f"example:\n  {example}",
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p = add(
        "upload",
        cmd_upload,
        "save files and folders as a new artifact; prints its id",
        "elliptio upload docs/train.txt docs/test.txt --label datatype=annotation_file\n"
        "  elliptio upload --reference s3://raw/2026/ --name raw   # files stay where they are",
    )
    p.add_argument("paths", nargs="*", help="local files or folders")
    p.add_argument(
        "--reference",
        nargs="+",
        metavar="URL",
        default=[],
        help="reference these files or folders where they lie instead of uploading: "
        "hashed once, never copied; they must lie below a reference root "
        "(ELLIPTIO_REFERENCE_ROOTS)",
    )
    p.add_argument("--label", action="append", help=_LABEL_HELP)
    p.add_argument("--infos", help="labels.infos as a JSON object")
    p.add_argument("--log", action="append", help="a log file to keep (repeatable)")
    p.add_argument("--name", help="commit as the next version of this name, e.g. train-set")
    p.add_argument(
        "--no-dedup",
        dest="dedup",
        action="store_false",
        help="copy every file, even those whose content the store holds already",
    )
    _progress_flag(p)
    _bytes_flag(p)

    p = add(
        "find",
        cmd_find,
        "find artifacts with a MongoDB filter",
        'elliptio find \'{"labels.datatype": "annotation_file"}\' --where username=andy',
    )
    p.add_argument("filter", nargs="?", help="a MongoDB filter as JSON")
    p.add_argument(
        "--where",
        action="append",
        help="field=value equality (repeatable); the value is read as JSON (3, true, "
        'null, {"$gt": 3}) except that a field holding text takes a number as text '
        "(labels.ticket=123)",
    )
    p.add_argument("--limit", type=_count, default=None, help="at most this many (0: none)")
    p.add_argument(
        "--include-deleted",
        action="store_true",
        help="also list the tombstones of deleted artifacts, with who deleted each, when "
        "and why (a deleted column)",
    )
    p.add_argument(
        "--columns",
        help="comma-separated columns to show: record fields, dotted paths such as "
        "labels.infos.seed, or ref",
    )
    p.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help=_format_help("artifact")
        + "; the table is a summary for people (ref, created, username, datatype, files, "
        "size, inputs), csv and json hold the columns of the library's find() frame "
        "(or those of --columns)",
    )
    _bytes_flag(p)

    p = add("show", cmd_show, "print an artifact's record as JSON", "elliptio show train-set:v3")
    p.add_argument("artifact_id", metavar="REF", help=_REF_HELP)
    p.add_argument("--packages", action="store_true", help="include python_packages")

    p = add(
        "download",
        cmd_download,
        "download an artifact's files (verified against their sha256)",
        "elliptio download train-set:latest test.txt -o data/",
    )
    p.add_argument("artifact_id", metavar="REF", help=_REF_HELP)
    # A default, or argparse counts an empty "*" among the required arguments.
    p.add_argument("relpaths", nargs="*", default=[], help="files to download (default: all)")
    p.add_argument("-o", "--output", default=".", help="target folder (default: .)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace files that exist in the target folder"
    )
    _progress_flag(p)

    p = add(
        "cat",
        cmd_cat,
        "write a file of an artifact, or any URL, to stdout",
        "elliptio cat artifact_... test.txt",
    )
    p.add_argument(
        "target",
        help=f"{_REF_HELP}; or a URL or local path (an artifact of that name wins over a "
        "local file: cat ./NAME reads the file; if the catalog cannot answer, the local "
        "file is read and stderr says so)",
    )
    p.add_argument("relpath", nargs="?", help="the file of the artifact (needed if it has several)")

    p = add(
        "lineage",
        cmd_lineage,
        "show what an artifact was built from and what was built on it",
        "elliptio lineage train-set:latest -o lineage.svg   # or --format text|mermaid|dot|png",
    )
    p.add_argument("artifact_id", metavar="REF", help=_REF_HELP)
    p.add_argument(
        "--direction",
        choices=["up", "down", "both"],
        default="both",
        help="up: what it was built from; down: what was built on it; both (default)",
    )
    p.add_argument(
        "--depth",
        type=_count,
        default=None,
        help="at most this many steps (default: all)",
    )
    p.add_argument(
        "--format",
        choices=["text", "tree", "mermaid", "dot", "svg", "png"],
        default=None,
        help="text: the tree (default; tree is the same); mermaid or dot: a graph to render; "
        "svg or png: a picture (needs Graphviz 'dot'); default from the -o suffix",
    )
    p.add_argument("-o", "--output", help="write to this file instead of stdout")

    p = add(
        "delete",
        cmd_delete,
        "delete an artifact's files; its record becomes a tombstone (who, when, why)",
        "elliptio delete train-set:v2 --reason 'holds personal data' --yes",
    )
    p.add_argument("ref", metavar="REF", help=_REF_HELP)
    p.add_argument("--reason", required=True, help="why; kept in the tombstone")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = add(
        "set-labels",
        cmd_set_labels,
        "replace an artifact's labels; the earlier ones stay in its label history",
        "elliptio set-labels train-set:v2 --label datatype=annotation_file",
    )
    p.add_argument("ref", metavar="REF", help=_REF_HELP)
    p.add_argument("--label", action="append", help=_LABEL_HELP)
    p.add_argument("--infos", help="labels.infos as a JSON object")
    p.add_argument("--json", help="all labels as one JSON object instead")

    p = add(
        "diff",
        cmd_diff,
        "compare two artifacts: files added, removed, changed (by sha256), labels",
        "elliptio diff train-set:v2 train-set:v3",
    )
    p.add_argument("a", metavar="REF_A", help=_REF_HELP)
    p.add_argument("b", metavar="REF_B", help=_REF_HELP)
    p.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text: one line per change; json: one object",
    )

    p = add("ls", cmd_ls, "list a folder of any fsspec URL", "elliptio ls s3://bucket/lake/")
    p.add_argument("url", help="a folder: a URL or local path")
    p = add(
        "exists",
        cmd_exists,
        "exit 0 if a URL exists, 1 if it does not, 2 if that cannot be told (an error)",
        "elliptio exists s3://b/x.csv",
    )
    p.set_defaults(error_code=2)
    p.add_argument("url", help="a URL or local path")
    for name, func, text in (("cp", cmd_cp, "copy"), ("mv", cmd_mv, "move")):
        p = add(name, func, f"{text} between any fsspec URLs", f"elliptio {name} s3://b/x ./x")
        p.add_argument("src", help=f"what to {text}: a URL or local path")
        p.add_argument("dst", help="where to: a URL or local path")
        p.add_argument("-r", "--recursive", action="store_true", help=f"{text} a folder whole")
    p = add("rm", cmd_rm, "remove a URL", "elliptio rm s3://bucket/tmp/x.csv")
    p.add_argument("url", help="a URL or local path")
    p.add_argument("-r", "--recursive", action="store_true", help="remove a folder whole")

    p = add("cache", cmd_cache, "the local cache: size, prune or clear", "elliptio cache prune")
    p.add_argument(
        "action",
        choices=["size", "prune", "clear"],
        help="size: how much it holds; prune: drop what was not used for --days; clear: all",
    )
    p.add_argument(
        "--days",
        type=_in_range(float, "--days", 36_500),
        default=None,
        help="prune only: drop what was unused for this long (default: 30)",
    )
    _bytes_flag(p)

    p = add(
        "reindex",
        cmd_reindex,
        "restore catalog records from the sidecars in storage",
        "elliptio reindex --prefix 2026/12/04   # or the whole store",
    )
    p.add_argument(
        "--prefix",
        help="only artifact folders below this folder of the store's layout, relative to "
        "its root (2026/12, 2026/12/04/andy) or as a URL under it; for indexing what "
        "writers with storage credentials only (--catalog none) wrote",
    )
    p.add_argument(
        "--aliases",
        action="store_true",
        help="also set again the aliases the store keeps a copy of, for a catalog rebuilt "
        "from the store (a copy older than the last alias change would bring a removed "
        "alias back on a catalog in use)",
    )
    p = add(
        "gc",
        cmd_gc,
        "list (or remove) storage prefixes that never committed",
        "elliptio gc --delete --yes",
    )
    p.add_argument(
        "--grace-hours",
        type=float,
        default=24.0,
        help="leave prefixes younger than this alone: writers may still be at work (default: 24)",
    )
    p.add_argument("--delete", action="store_true", help="remove what is listed")
    p.add_argument("--yes", action="store_true", help="confirm --delete")
    p = add(
        "verify",
        cmd_verify,
        "re-hash artifacts' files against their records",
        "elliptio verify train-set:v3 artifact_...",
    )
    p.add_argument("artifact_ids", nargs="+", metavar="REF", help=_REF_HELP)
    p = add(
        "alias",
        cmd_alias,
        "set, remove or list the aliases of a name (only this moves an alias); prints the "
        'aliases after, e.g. {"production": "v3"}',
        "elliptio alias set train-set:v3 production",
    )
    p.add_argument(
        "action",
        choices=["set", "remove", "list"],
        help="set or remove an alias, or list a name's aliases",
    )
    p.add_argument("target", help="set: a reference such as train-set:v3; else the name")
    p.add_argument("alias", nargs="?", help="the alias, e.g. production")
    p = add("names", cmd_names, "list names with their versions and aliases", "elliptio names")
    p.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help=_format_help("name"),
    )
    p = add("ui", cmd_ui, "browse, search and follow lineage in a browser", "elliptio ui")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=_in_range(int, "--port", 65_535),
        default=8765,
        help="port (default 8765; 0: a free one)",
    )
    p.add_argument("--no-browser", dest="browser", action="store_false", help="do not open it")
    add("config", cmd_config, "print the effective settings, secrets masked", "elliptio config")
    return parser


def _secrets(argv: Sequence[str], args: argparse.Namespace) -> set[str]:
    """The secrets an error report must not show: argv's, the settings', the options'."""
    urls = [*argv]
    options: Any = {}
    try:
        from ._config import load_settings

        settings = load_settings(storage_url=args.storage, catalog_url=args.catalog)
        urls += [settings.storage_url, settings.catalog_url]
        options = settings.storage_options
    except Exception:  # the settings may be what failed: read the variables as they are
        urls += [os.environ.get(f"ELLIPTIO_{name}_URL", "") for name in ("STORAGE", "CATALOG")]
        raw = os.environ.get("ELLIPTIO_STORAGE_OPTIONS", "")
        try:
            options = json.loads(raw) if raw else {}
        except ValueError:
            options = {"secret": raw}  # unreadable: mask it whole
    # The command line's secrets as its record would mask them (redact_argv).
    return known_secrets(urls, options if isinstance(options, dict) else {"secret": options}) | (
        known_secrets(options={"argv": list(argv)})
    )


def _report(err: BaseException, secrets: set[str], debug: bool) -> None:
    def redact(text: str) -> str:
        return redact_text(redact_url(text), secrets)

    if debug:
        print(redact("".join(traceback.format_exception(err))), end="", file=sys.stderr)
        return
    try:
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    except Exception:
        text = ""
    message = " ".join(redact(text).split())  # one line, whatever the backend wrote
    if isinstance(err, FileNotFoundError) and not isinstance(err, ElliptioError):
        message += "; check the path or URL (elliptio ls URL lists what a folder holds)"
    known = isinstance(err, ElliptioError | OSError | ValueError | KeyError)
    hint = "" if known else " (rerun with --debug for the traceback)"
    print(
        f"elliptio: error: {type(err).__name__}{': ' if message else ''}{message}{hint}",
        file=sys.stderr,
    )


class _Redacting(logging.Formatter):
    def __init__(self, secrets: set[str]) -> None:
        super().__init__("elliptio: %(levelname)s %(name)s: %(message)s")
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(redact_url(super().format(record)), self._secrets)


@contextlib.contextmanager
def _logging(verbose: int, secrets: Callable[[], set[str]]) -> Iterator[None]:
    """``-v``: the ``elliptio`` loggers' INFO on stderr; ``-vv``: DEBUG; for one command."""
    if not verbose:
        yield
        return
    logger = logging.getLogger("elliptio")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting(secrets()))
    level = logger.level
    logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextlib.contextmanager
def _one_line_warnings(secrets: Callable[[], set[str]]) -> Iterator[None]:
    """Python warnings (elliptio's, a driver's) as one line each, secrets masked,
    for one command: not the two lines of file, line and source code."""

    def show(message: Any, category: type[Warning], *_: Any, **__: Any) -> None:
        text = redact_text(redact_url(f"{category.__name__}: {message}"), secrets())
        print(f"elliptio: warning: {' '.join(text.split())}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")  # shown once each, never raised
        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    _ARGV[:] = argv
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        with (
            _logging(args.verbose, lambda: _secrets(argv, args)),
            _one_line_warnings(lambda: _secrets(argv, args)),
        ):
            code: int = args.func(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # `elliptio ... | head`: the reader has all it wants
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # every error: one redacted line (a redacted traceback)
        _report(err, _secrets(argv, args), args.debug)
        return int(getattr(args, "error_code", 1))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the flush at exit cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
