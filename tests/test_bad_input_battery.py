# ruff: noqa: E501  (the case tables read best one case per line)
"""A battery of bad inputs through the public API and the CLI, plus fuzzing.

Every case must end in a typed `eio.ElliptioError` subclass whose message names
the bad input, and leave storage and catalog exactly as they were. This extends
tests/test_bad_input.py with cases it does not cover.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import elliptio as eio
from elliptio._cli import main
from elliptio._layout import validate_relpath
from tests.conftest import S3_BUCKET, snapshot

UNKNOWN_ID = "artifact_00000000-0000-4000-8000-000000000000"


@dataclass
class Ctx:
    h: eio.Handler
    tmp: Path
    aid: str
    file: Path
    catalog: str

    def make(self, name: str, text: str = "x") -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def _ctx(handler: eio.Handler, tmp_path: Path, catalog_url: str) -> Ctx:
    """A store that already holds one artifact, so 'unchanged' is not trivially empty."""
    work = tmp_path / "work"
    work.mkdir()
    seed = work / "seed.txt"
    seed.write_text("seed")
    art = handler.upload(seed, labels=eio.Labels(project="battery"))
    return Ctx(handler, work, art.artifact_id, seed, catalog_url)


@pytest.fixture(params=["file", "memory"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path, catalog_url: str) -> Iterator[Ctx]:
    """Every case runs on a local and an in-memory store (s3: see test_writes_on_s3)."""
    root = str(tmp_path / "store") if request.param == "file" else f"memory://b-{uuid.uuid4().hex}"
    with eio.Handler(storage=root, catalog=catalog_url) as h:
        yield _ctx(h, tmp_path, catalog_url)


def _fifo(c: Ctx) -> Path:
    path = c.tmp / "a_pipe"
    if not path.exists():
        os.mkfifo(path)
    return path


def _dangling(c: Ctx) -> Path:
    path = c.tmp / "dangling_link"
    if not path.is_symlink():
        path.symlink_to(c.tmp / "nowhere")
    return path


def _deep(c: Ctx) -> Path:
    top = c.tmp / "deep_top"
    path = top
    for i in range(6):
        path = path / (f"{i}" + "d" * 200)
    path.mkdir(parents=True, exist_ok=True)
    (path / "leaf.txt").write_text("x")
    return top


def _reserved_dir(c: Ctx) -> Path:
    c.make("holder/.elliptio/metadata.json", "{}")
    return c.tmp / "holder" / ".elliptio"


def _nested(depth: int) -> dict[str, Any]:
    return functools.reduce(lambda inner, _: {"k": inner}, range(depth), {})


def _new(c: Ctx, relpaths: Any, labels: Any = None) -> None:
    with c.h.new(relpaths, labels=labels) as new:
        for file in new.files.values():
            file.write_bytes(b"x")


def _handler_with_env(c: Ctx, name: str, value: str) -> Callable[[], Any]:
    def call() -> Any:
        os.environ[name] = value
        try:
            return eio.Handler(storage=c.h.storage.root_url, catalog="memory://")
        finally:
            del os.environ[name]

    return call


Case = tuple[str, Callable[[Ctx], Any], type[eio.ElliptioError], str]

API_CASES: list[Case] = [
    # -- local paths -------------------------------------------------------------
    ("upload None", lambda c: c.h.upload(None), eio.InvalidPathError, "None"),  # type: ignore[arg-type]
    ("upload int", lambda c: c.h.upload(123), eio.InvalidPathError, "123"),  # type: ignore[arg-type]
    ("upload bytes", lambda c: c.h.upload(b"seed.txt"), eio.InvalidPathError, "b'seed.txt'"),  # type: ignore[arg-type]
    ("upload [file, None]", lambda c: c.h.upload([c.file, None]), eio.InvalidPathError, "None"),  # type: ignore[list-item]
    ("upload fifo", lambda c: c.h.upload(_fifo(c)), eio.InvalidPathError, "a_pipe"),
    ("upload dangling link", lambda c: c.h.upload(_dangling(c)), eio.InputFileNotFoundError, "dangling_link"),
    ("upload backslash name", lambda c: c.h.upload(c.make("a\\b.txt")), eio.InvalidPathError, "backslash"),
    ("upload newline name", lambda c: c.h.upload(c.make("bad\nname.txt")), eio.InvalidPathError, "name.txt"),
    ("upload reserved folder", lambda c: c.h.upload(_reserved_dir(c)), eio.InvalidPathError, ".elliptio"),
    ("upload too long relpath", lambda c: c.h.upload(_deep(c)), eio.InvalidPathError, "longer than"),
    ("upload folder and its file", lambda c: c.h.upload([c.tmp / "pair", c.make("pair/both.txt")]), eio.InvalidPathError, "both.txt"),
    ("upload logs missing", lambda c: c.h.upload(c.file, logs=[c.tmp / "missing.log"]), eio.InputFileNotFoundError, "missing.log"),
    ("upload logs int", lambda c: c.h.upload(c.file, logs=5), eio.InvalidPathError, "5"),  # type: ignore[arg-type]
    # -- relpaths of new() -------------------------------------------------------
    ("new None", lambda c: _new(c, None), eio.InvalidPathError, "None"),
    ("new int", lambda c: _new(c, 5), eio.InvalidPathError, "5"),
    ("new bytes", lambda c: _new(c, b"a.txt"), eio.InvalidPathError, "b'a.txt'"),
    ("new [] ", lambda c: _new(c, []), eio.InvalidPathError, "relpath"),
    ("new ./.. in middle", lambda c: _new(c, "a/./../b"), eio.InvalidPathError, "a/./../b"),
    ("new DEL char", lambda c: _new(c, "a\x7fb"), eio.InvalidPathError, "control"),
    ("new tab", lambda c: _new(c, "a\tb"), eio.InvalidPathError, "control"),
    ("new only dots", lambda c: _new(c, "./."), eio.InvalidPathError, "./."),
    ("new drive", lambda c: _new(c, "D:data.csv"), eio.InvalidPathError, "D:data.csv"),
    ("new reserved logs", lambda c: _new(c, ".elliptio/logs/x"), eio.InvalidPathError, ".elliptio"),
    ("new long segment", lambda c: _new(c, "a/" + "y" * 256), eio.InvalidPathError, "segment"),
    ("new surrogate", lambda c: _new(c, "\ud800.txt"), eio.InvalidPathError, "\\ud800"),
    # -- labels ------------------------------------------------------------------
    ("labels surrogate", lambda c: c.h.upload(c.file, labels={"project": "\ud800"}), eio.InvalidLabelsError, "labels.project"),
    ("labels surrogate key", lambda c: c.h.upload(c.file, labels={"infos": {"\udc80": 1}}), eio.InvalidLabelsError, "\\udc80"),
    ("labels over 1 MiB", lambda c: c.h.upload(c.file, labels={"infos": {"blob": "x" * 2**20}}), eio.InvalidLabelsError, "limit"),
    ("labels too deep", lambda c: c.h.upload(c.file, labels={"infos": _nested(40)}), eio.InvalidLabelsError, "deeper"),
    ("labels infos list", lambda c: c.h.upload(c.file, labels={"infos": [1]}), eio.InvalidLabelsError, "infos"),
    ("labels project int", lambda c: c.h.upload(c.file, labels={"project": 5}), eio.InvalidLabelsError, "project"),
    ("labels naive datetime", lambda c: c.h.upload(c.file, labels={"infos": {"at": datetime(2020, 1, 1)}}), eio.InvalidLabelsError, "naive"),
    ("labels empty key", lambda c: c.h.upload(c.file, labels={"infos": {"": 1}}), eio.InvalidLabelsError, "''"),
    ("labels NUL key", lambda c: c.h.upload(c.file, labels={"infos": {"a\x00b": 1}}), eio.InvalidLabelsError, "a\\x00b"),
    ("labels $ key in list", lambda c: c.h.upload(c.file, labels={"infos": {"x": [{"$gt": 1}]}}), eio.InvalidLabelsError, "$gt"),
    ("labels inf", lambda c: c.h.upload(c.file, labels={"infos": {"x": float("-inf")}}), eio.InvalidLabelsError, "inf"),
    ("labels in new()", lambda c: _new(c, "a.txt", labels={"colour": 1}), eio.InvalidLabelsError, "colour"),
    # -- queries -----------------------------------------------------------------
    ("query bad regex", lambda c: c.h.find({"a": {"$regex": "("}}), eio.QueryError, "'('"),
    ("query $size -1", lambda c: c.h.find({"a": {"$size": -1}}), eio.QueryError, "-1"),
    ("query $size str", lambda c: c.h.find({"a": {"$size": "x"}}), eio.QueryError, "'x'"),
    ("query $elemMatch int", lambda c: c.h.find({"a": {"$elemMatch": 5}}), eio.QueryError, "$elemMatch"),
    ("query $all int", lambda c: c.h.find({"a": {"$all": 5}}), eio.QueryError, "$all"),
    ("query $nor int", lambda c: c.h.find({"$nor": 5}), eio.QueryError, "$nor"),
    ("query $not int", lambda c: c.h.find({"a": {"$not": 5}}), eio.QueryError, "$not"),
    ("query int key", lambda c: c.h.find({1: "x"}), eio.QueryError, "1"),
    ("query empty key", lambda c: c.h.find({"": 1}), eio.QueryError, "empty"),
    ("query a..b", lambda c: c.h.find({"a..b": 1}), eio.QueryError, "a..b"),
    ("query $options z", lambda c: c.h.find({"a": {"$regex": "x", "$options": "z"}}), eio.QueryError, "'z'"),
    ("query object value", lambda c: c.h.find({"a": object()}), eio.QueryError, "object"),
    ("query set value", lambda c: c.h.find({"a": {1, 2}}), eio.QueryError, "set"),
    ("query bytes value", lambda c: c.h.find({"a": b"x"}), eio.QueryError, "bytes"),
    ("query huge int", lambda c: c.h.find({"a": 2**80}), eio.QueryError, str(2**80)),
    ("query $in set", lambda c: c.h.find({"a": {"$in": {1, 2}}}), eio.QueryError, "$in"),
    ("query $where in $and", lambda c: c.h.find({"$and": [{"$where": "1"}]}), eio.QueryError, "$where"),
    ("query $where in $elemMatch", lambda c: c.h.find({"a": {"$elemMatch": {"$where": "1"}}}), eio.QueryError, "$where"),
    ("query $mod", lambda c: c.h.find({"a": {"$mod": [0, 1]}}), eio.QueryError, "$mod"),
    ("sort int", lambda c: c.h.find({}, sort=5), eio.QueryError, "5"),  # type: ignore[arg-type]
    ("sort direction 2", lambda c: c.h.find({}, sort=[("a", 2)]), eio.QueryError, "2"),
    ("sort 1-tuple", lambda c: c.h.find({}, sort=[("a",)]), eio.QueryError, "('a',)"),  # type: ignore[list-item]
    ("skip -1", lambda c: c.h.find({}, skip=-1), eio.QueryError, "skip"),
    ("skip float", lambda c: c.h.find({}, skip=1.5), eio.QueryError, "1.5"),  # type: ignore[arg-type]
    ("max_docs str", lambda c: c.h.find({}, max_docs="3"), eio.QueryError, "'3'"),  # type: ignore[arg-type]
    ("count str", lambda c: c.h.count("x"), eio.QueryError, "str"),  # type: ignore[arg-type]
    # -- artifact ids ------------------------------------------------------------
    ("get None", lambda c: c.h.get(None), eio.ArgumentTypeError, "NoneType"),  # type: ignore[arg-type]
    ("get int", lambda c: c.h.get(123), eio.ArgumentTypeError, "int"),  # type: ignore[arg-type]
    ("get upper-case id", lambda c: c.h.get(c.aid.upper()), eio.ArtifactNotFoundError, "ARTIFACT_"),
    ("get id + newline", lambda c: c.h.get(c.aid + "\n"), eio.ArtifactNotFoundError, "\\n"),
    ("get id with space", lambda c: c.h.get(" " + c.aid), eio.ArtifactNotFoundError, "' artifact_"),
    ("get path-like id", lambda c: c.h.get("artifact_x/../../etc/passwd"), eio.ArtifactNotFoundError, "etc/passwd"),
    ("lineage bad id", lambda c: c.h.lineage("nope"), eio.ArtifactNotFoundError, "nope"),
    ("lineage unknown id", lambda c: c.h.lineage(UNKNOWN_ID), eio.ArtifactNotFoundError, UNKNOWN_ID),
    ("verify bad id", lambda c: c.h.verify("nope"), eio.ArtifactNotFoundError, "nope"),
    ("verify unknown id", lambda c: c.h.verify(UNKNOWN_ID), eio.ArtifactNotFoundError, UNKNOWN_ID),
    # -- settings and arguments --------------------------------------------------
    ("max_concurrency 0", lambda c: eio.Handler(storage=c.tmp, catalog="memory://", max_concurrency=0), eio.ConfigError, "MAX_CONCURRENCY"),
    ("storage_options str", lambda c: eio.Handler(storage=c.tmp, catalog="memory://", storage_options="x"), eio.ConfigError, "storage_options"),  # type: ignore[arg-type]
    ("storage int", lambda c: eio.Handler(storage=5, catalog="memory://"), eio.ConfigError, "5"),  # type: ignore[arg-type]
    ("catalog int", lambda c: eio.Handler(storage=c.tmp, catalog=5), eio.ConfigError, "int"),
    ("catalog sqlite://rel", lambda c: eio.Handler(storage=c.tmp, catalog="sqlite://rel.db"), eio.ConfigError, "sqlite://rel.db"),
    ("storage unknown protocol", lambda c: eio.Handler(storage="nosuchfs://b", catalog="memory://"), eio.ConfigError, "nosuchfs"),
    ("env FILE_MODE 999", lambda c: _handler_with_env(c, "ELLIPTIO_FILE_MODE", "999")(), eio.ConfigError, "ELLIPTIO_FILE_MODE"),
    ("env PART_SIZE 1", lambda c: _handler_with_env(c, "ELLIPTIO_PART_SIZE", "1")(), eio.ConfigError, "ELLIPTIO_PART_SIZE"),
    ("env PROGRESS maybe", lambda c: _handler_with_env(c, "ELLIPTIO_PROGRESS", "maybe")(), eio.ConfigError, "ELLIPTIO_PROGRESS"),
    ("env REVALIDATE -1", lambda c: _handler_with_env(c, "ELLIPTIO_REVALIDATE_SECONDS", "-1")(), eio.ConfigError, "ELLIPTIO_REVALIDATE_SECONDS"),
    ("env CACHE_MAX_BYTES -5", lambda c: _handler_with_env(c, "ELLIPTIO_CACHE_MAX_BYTES", "-5")(), eio.ConfigError, "ELLIPTIO_CACHE_MAX_BYTES"),
    ("env MAX_CONCURRENCY abc", lambda c: _handler_with_env(c, "ELLIPTIO_MAX_CONCURRENCY", "abc")(), eio.ConfigError, "ELLIPTIO_MAX_CONCURRENCY"),
    ("env OFFLINE 2", lambda c: _handler_with_env(c, "ELLIPTIO_OFFLINE", "2")(), eio.ConfigError, "ELLIPTIO_OFFLINE"),
    ("env STORAGE_OPTIONS list", lambda c: _handler_with_env(c, "ELLIPTIO_STORAGE_OPTIONS", "[1]")(), eio.ConfigError, "STORAGE_OPTIONS"),
    ("gc negative grace", lambda c: c.h.gc(grace=timedelta(seconds=-1)), eio.ConfigError, "grace"),
    ("gc int grace", lambda c: c.h.gc(grace=5), eio.ConfigError, "5"),  # type: ignore[arg-type]
    # -- URL tools ---------------------------------------------------------------
    ("open empty URL", lambda c: eio.open(""), eio.StorageError, "''"),
    ("ls unknown protocol", lambda c: eio.ls("nosuchfs://x/y"), eio.StorageError, "nosuchfs://x/y"),
]  # fmt: skip


def _check_unchanged(
    h: eio.Handler, call: Callable[[], Any], error: type[Exception], names: str
) -> None:
    before = snapshot(h)
    based_on = list(h.based_on)
    with pytest.raises(eio.ElliptioError) as info:
        call()
    assert type(info.value) is not eio.ElliptioError, "use a specific subclass"
    assert isinstance(info.value, error), f"{type(info.value).__name__}: {info.value}"
    assert names in str(info.value), f"{names!r} not named in: {info.value}"
    assert snapshot(h) == before
    assert h.based_on == based_on


@pytest.mark.parametrize(
    ("call", "error", "names"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_api_bad_input(
    ctx: Ctx, call: Callable[[Ctx], Any], error: type[Exception], names: str
) -> None:
    _check_unchanged(ctx.h, lambda: call(ctx), error, names)


ERROR_NAMES = {
    cls.__name__
    for cls in vars(eio).values()
    if isinstance(cls, type) and issubclass(cls, eio.ElliptioError) and cls is not eio.ElliptioError
}

CliCase = tuple[str, Callable[[Ctx], list[str]], str, str]

CLI_CASES: list[CliCase] = [
    ("upload missing", lambda c: ["upload", str(c.tmp / "gone.csv")], "InputFileNotFoundError", "gone.csv"),
    ("upload fifo", lambda c: ["upload", str(_fifo(c))], "InvalidPathError", "a_pipe"),
    ("upload --label no =", lambda c: ["upload", str(c.file), "--label", "nokv"], "InvalidLabelsError", "nokv"),
    ("upload --label unknown", lambda c: ["upload", str(c.file), "--label", "colour=red"], "InvalidLabelsError", "colour"),
    ("upload --infos list", lambda c: ["upload", str(c.file), "--infos", "[1]"], "InvalidLabelsError", "[1]"),
    ("upload --infos dotted key", lambda c: ["upload", str(c.file), "--infos", '{"a.b": 1}'], "InvalidLabelsError", "a.b"),
    ("upload --infos huge", lambda c: ["upload", str(c.file), "--infos", '{"b": "' + "x" * 2**20 + '"}'], "InvalidLabelsError", "limit"),
    ("find not JSON", lambda c: ["find", "username == andy"], "QueryError", "username == andy"),
    ("find JSON list", lambda c: ["find", "[1, 2]"], "QueryError", "[1, 2]"),
    ("find $where", lambda c: ["find", '{"$where": "1"}'], "QueryError", "$where"),
    ("find --where no =", lambda c: ["find", "--where", "novalue"], "QueryError", "novalue"),
    ("find bad $date", lambda c: ["find", '{"creation_time": {"$gte": {"$date": "yesterday"}}}'], "QueryError", "yesterday"),
    ("find bad regex", lambda c: ["find", '{"a": {"$regex": "("}}'], "QueryError", "("),
    ("find --columns", lambda c: ["find", "--columns", "nope"], "QueryError", "nope"),
    ("show bad id", lambda c: ["show", "not-an-id"], "ArtifactNotFoundError", "not-an-id"),
    ("show unknown id", lambda c: ["show", UNKNOWN_ID], "ArtifactNotFoundError", UNKNOWN_ID),
    ("download unknown relpath", lambda c: ["download", c.aid, "nope.txt", "-o", str(c.tmp / "out")], "InvalidPathError", "nope.txt"),
    ("cat unknown relpath", lambda c: ["cat", c.aid, "nope.txt"], "FileNotInArtifactError", "nope.txt"),
    ("lineage bad id", lambda c: ["lineage", "nope"], "ArtifactNotFoundError", "nope"),
    ("verify bad id", lambda c: ["verify", "nope"], "ArtifactNotFoundError", "nope"),
    ("catalog gopher", lambda c: ["--catalog", "gopher://x", "find"], "ConfigError", "gopher"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "error", "names"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_cli_bad_input(
    ctx: Ctx,
    capsys: pytest.CaptureFixture[str],
    argv: Callable[[Ctx], list[str]],
    error: str,
    names: str,
) -> None:
    _check_cli(ctx, capsys, argv, error, names)


def _check_cli(
    ctx: Ctx,
    capsys: pytest.CaptureFixture[str],
    argv: Callable[[Ctx], list[str]],
    error: str,
    names: str,
) -> None:
    assert error in ERROR_NAMES
    before = snapshot(ctx.h)
    args = argv(ctx)
    if "--catalog" not in args:
        args = ["--catalog", ctx.catalog, *args]
    code = main(["--storage", ctx.h.storage.root_url, *args])
    err = capsys.readouterr().err
    assert code == 1
    first, *rest = err.splitlines()
    assert not rest, "one line, no traceback"
    assert first.startswith(f"elliptio: error: {error}: "), first
    assert names in first
    assert snapshot(ctx.h) == before


# Cases that reach storage (writes), run once more against the moto S3 server; one
# store for all of them keeps the (per-test) server reset out of the loop.
_WRITES = ("upload", "new", "labels")


def test_writes_on_s3(
    s3_options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    catalog_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(s3_options))
    tried = 0
    with eio.Handler(storage=f"s3://{S3_BUCKET}/battery", catalog=catalog_url) as h:
        c = _ctx(h, tmp_path, catalog_url)
        for name, call, error, names in API_CASES:
            if name.startswith(_WRITES):
                _check_unchanged(h, functools.partial(call, c), error, names)
                tried += 1
        for name, argv, cli_error, cli_names in CLI_CASES:
            if name.startswith(_WRITES):
                _check_cli(c, capsys, argv, cli_error, cli_names)
                tried += 1
    assert tried >= 40


def test_battery_size() -> None:
    assert len(API_CASES) + len(CLI_CASES) >= 40
    assert len({c[0] for c in API_CASES}) == len(API_CASES)
    assert len({c[0] for c in CLI_CASES}) == len(CLI_CASES)


# -- fuzzing -----------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(alphabet="./\\a\x00:", max_size=12)))
def test_validate_relpath_fuzz(relpath: str) -> None:
    try:
        result = validate_relpath(relpath)
    except eio.InvalidPathError as err:
        message = str(err)
    else:
        message = ""
    if message:
        assert message.startswith("relpath ")
        return
    # What passes is normalised, relative, inside the artifact and stable.
    parts = result.split("/")
    assert result
    assert not result.startswith("/")
    assert "" not in parts
    assert ".." not in parts
    assert "." not in parts
    assert parts[0] != ".elliptio"
    assert "\\" not in result
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in result)
    assert validate_relpath(result) == result
    assert os.path.normpath(result) == result
    assert os.path.normpath(os.path.join("/store/prefix", result)).startswith("/store/prefix/")


_FIELDS = st.sampled_from(
    [
        "username",
        "labels.project",
        "labels.infos.n",
        "file_relpaths",
        "based_on",
        "files.size",
        "a",
        "a.b",
        "$and",
        "$or",
        "$nor",
        "",
    ]
)
_OPS = st.sampled_from(
    [
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$nin",
        "$all",
        "$size",
        "$exists",
        "$regex",
        "$options",
        "$not",
        "$elemMatch",
        "$where",
        "$mod",
        "$type",
        "$expr",
        "$foo",
    ]
)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
    st.binary(max_size=4), st.datetimes(), st.just(object()),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(_FIELDS, _OPS), inner, max_size=3),
    ),
    max_leaves=8,
)
_QUERIES = st.dictionaries(st.one_of(_FIELDS, _OPS, st.integers()), _VALUES, max_size=3)


@pytest.fixture
def fuzz_handler(tmp_path: Path) -> Any:
    (tmp_path / "f.txt").write_text("x")
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}") as h:
        h.upload(tmp_path / "f.txt", labels={"project": "p", "infos": {"n": 3}})
        yield h


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=_QUERIES)
def test_find_fuzz_raises_only_query_errors(
    fuzz_handler: eio.Handler, query: dict[Any, Any]
) -> None:
    try:
        frame = fuzz_handler.find(query)
    except eio.ElliptioError:
        return  # typed: a QueryError, or another elliptio error naming the problem
    except (TypeError, KeyError, AttributeError, sqlite3.Error, RecursionError) as err:
        pytest.fail(f"{query!r} crashed the query layer: {type(err).__name__}: {err}")
    assert len(frame) <= 1


@pytest.mark.parametrize(
    "query",
    [{"a": "\ud800"}, {"\udfff": 1}, {"a": {"$in": ["ok", "\ud800"]}}, {"$or": [{"a": "\ud800"}]}],
)
def test_lone_surrogates_in_queries_are_query_errors(handler: eio.Handler, query: Any) -> None:
    before = snapshot(handler)
    with pytest.raises(eio.QueryError, match="surrogate"):
        handler.find(query)
    assert snapshot(handler) == before
