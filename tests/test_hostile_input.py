"""Hostile input: paths and ids built to escape the store or the cache, hostile
records in a shared catalog, oversized labels, regular expressions built to
backtrack. Each is refused or bounded."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import elliptio as eio
from elliptio._catalog import Catalog, filters, open_catalog, query, regex_guard
from elliptio._catalog.sqlite import SQLiteCatalog
from elliptio._cli import main
from elliptio._layout import validate_relpath
from elliptio._models import MAX_LABELS_BYTES
from elliptio._sync import sync
from tests.conftest import snapshot

ESCAPES = [
    "../x.txt",
    "a/../../x.txt",
    "a/./../../x.txt",
    "/etc/passwd",
    "//server/share/x",
    "..\\..\\x.txt",
    "\\\\server\\share\\x",
    "C:/Windows/x",
    "c:x",
    "./C:x",
    "a/\x00/b",
    "..",
    "./..",
    "x/..",
    ".elliptio/metadata.json",
    "./.elliptio/metadata.json",
    "./.elliptio/logs/x",
    "a/\n../x",
]
# Names that only look like escapes: stored as literal names inside the artifact.
LITERALS = ["%2e%2e/x.txt", "\u2025/x.txt", "...", "a/...b", "~/x.txt", "$HOME/x.txt"]


def _tree(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")} if root.exists() else set()


def test_escaping_relpaths_are_refused_before_any_write(
    handler: eio.Handler, tmp_path: Path
) -> None:
    for relpath in ESCAPES:
        before = snapshot(handler)
        outside = _tree(tmp_path)
        with pytest.raises(eio.InvalidPathError):
            validate_relpath(relpath)
        with pytest.raises(eio.InvalidPathError), handler.new(["ok.txt", relpath]) as new:
            new.files["ok.txt"].write_bytes(b"x")
        assert snapshot(handler) == before, relpath
        assert _tree(tmp_path) == outside, relpath


def test_literal_names_stay_inside_the_artifact(handler: eio.Handler) -> None:
    with handler.new(LITERALS) as new:
        for relpath, file in new.files.items():
            file.write_text(relpath)
    art = new.artifact
    root = art.metadata.remote_root
    for relpath in LITERALS:
        url = art.files[relpath].url
        assert url.startswith(root + "/")
        assert ".." not in url.removeprefix(root).split("/")
        assert art.files[relpath].read_text() == relpath


@pytest.mark.parametrize(
    "artifact_id",
    [
        "artifact_../../../etc/passwd",
        "artifact_00000000-0000-4000-8000-000000000000/../../x",
        "../artifact_00000000-0000-4000-8000-000000000000",
        "artifact_00000000-0000-4000-8000-000000000000\x00",
        "ARTIFACT_00000000-0000-4000-8000-000000000000",
        "artifact_00000000-0000-4000-8000-00000000000",
    ],
)
def test_crafted_artifact_ids_touch_nothing(
    handler: eio.Handler, tmp_path: Path, artifact_id: str
) -> None:
    cache_root = handler.storage.cache.root if handler.storage.cache else tmp_path
    before, cache_before = snapshot(handler), _tree(cache_root)
    for call in (handler.get, handler.verify, handler.lineage):
        with pytest.raises(eio.ArtifactNotFoundError):
            call(artifact_id)
    assert snapshot(handler) == before
    assert _tree(cache_root) == cache_before


def _hostile(doc: dict[str, Any], artifact_id: str, **file: Any) -> dict[str, Any]:
    hostile = {**doc, "artifact_id": artifact_id}
    hostile["files"] = [{**doc["files"][0], **file}]
    hostile["file_relpaths"] = [hostile["files"][0]["relpath"]]
    return hostile


@pytest.mark.parametrize(
    "file",
    [
        {"relpath": "../../escaped.txt"},
        {"relpath": "/tmp/escaped.txt"},
        {"sha256": "../../../escaped"},
        {"size": -1},
    ],
)
def test_hostile_catalog_records_are_refused(
    handler: eio.Handler,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    catalog_url: str,
    file: dict[str, Any],
) -> None:
    """Someone with insert rights on a shared catalog cannot make readers write elsewhere."""
    (tmp_path / "in.txt").write_text("payload")
    art = handler.upload(tmp_path / "in.txt")
    doc = art.metadata.to_document()
    hostile_id = "artifact_11111111-1111-4111-8111-111111111111"
    sync(handler.catalog.insert(_hostile(doc, hostile_id, **file)))
    out = tmp_path / "out" / "deeper"
    with pytest.raises(eio.CorruptRecordError, match=next(iter(file))):
        handler.get(hostile_id)
    common = ["--storage", handler.storage.root_url, "--catalog", catalog_url]
    code = main([*common, "download", hostile_id, "-o", str(out)])
    assert code == 1
    assert "escaped" not in "".join(os.listdir(tmp_path))
    assert not (tmp_path / "escaped.txt").exists()
    assert not out.exists()
    capsys.readouterr()


def test_labels_are_bounded(handler: eio.Handler, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    big = {"blob": "x" * (MAX_LABELS_BYTES - 1000)}
    art = handler.upload(tmp_path / "f.txt", labels={"infos": big})
    assert handler.get(art.artifact_id).metadata.labels.infos == big
    before = snapshot(handler)
    with pytest.raises(eio.InvalidLabelsError, match=str(MAX_LABELS_BYTES)):
        handler.upload(tmp_path / "f.txt", labels={"infos": {"blob": "x" * MAX_LABELS_BYTES}})
    many = {f"k{i}": i for i in range(MAX_LABELS_BYTES // 8)}
    with pytest.raises(eio.InvalidLabelsError, match="limit"):
        handler.upload(tmp_path / "f.txt", labels={"infos": many})
    with pytest.raises(eio.InvalidLabelsError, match="limit"):
        eio.Labels(description="d" * (MAX_LABELS_BYTES + 1))
    # New labels are held to the limit in bytes of UTF-8 JSON, not in characters
    # (helper-64) ...
    wide = {"description": "\U0001f600" * (MAX_LABELS_BYTES // 3)}
    with pytest.raises(eio.InvalidLabelsError, match="UTF-8"):
        handler.upload(tmp_path / "f.txt", labels=wide)
    with pytest.raises(eio.InvalidLabelsError, match="UTF-8"):
        handler.set_labels(art.artifact_id, wide)
    assert snapshot(handler) == before
    # ... while a record an earlier release wrote with them still reads (helper-65).
    assert eio.Labels(**wide).description == wide["description"]


# -- regular expressions built to backtrack -------------------------------------

CATASTROPHIC = [
    r"(a+)+$",
    r"(a*)*b",
    r"(\w+\s?)*$",
    r"(a|a)*$",
    r"(a|ab)*c",
    r"(\w|\d)+$",
    r"(?:foo|bar)+!",
    r"(a{1,3}){2,}$",
    r"(a)\1",
    r"(?P<x>a)(?P=x)",
    r"(a)?(?(1)b|c)",
    r"a*a*a*a*b",
    r"\w+\d+!",
    r".*foo.*bar",
    "x" * (regex_guard.MAX_PATTERN_CHARS + 1),
]
LEGITIMATE: list[tuple[Any, set[str]]] = [
    ("^train", {"train"}),
    (r"\.csv$", {"csv"}),
    ("(?i)annotation", {"annotation"}),
    (r"^data/.*\.parquet$", {"parquet"}),
    ("foo|bar", {"foobar"}),
    (r"[a-z]+_\d+", {"train", "csv"}),
    (".*", {"train", "csv", "annotation", "parquet", "foobar", "hostile"}),
    (re.compile("ANNOTATION", re.IGNORECASE), {"annotation"}),
    ({"$regex": "^TRAIN", "$options": "i"}, {"train"}),
    ({"$regex": "lines$", "$options": "m"}, {"annotation"}),
    ({"$regex": "two.lines", "$options": "s"}, {"annotation"}),
    ({"$regex": "^ d a t a /  # a comment", "$options": "x"}, {"parquet"}),
    (r"\d+(\.\d+)?x", set()),
]
DESCRIPTIONS = {
    "train": "train_01 split",
    "csv": "notes_2 in a .csv",
    "annotation": "Annotation of two\nlines",
    "parquet": "data/2024/part-0.parquet",
    "foobar": "a foo",
    "hostile": "a" * 24 + "b",
}


async def _regex_catalogs() -> list[Catalog]:
    from mongomock_motor import AsyncMongoMockClient

    collection = AsyncMongoMockClient()["elliptio"]["artifacts"]

    async def no_server(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a refused filter reached the server")

    catalogs: list[Catalog] = [SQLiteCatalog(None), open_catalog(collection)]
    for catalog in catalogs:
        await catalog.insert_many(
            [{"artifact_id": k, "labels": {"description": v}} for k, v in DESCRIPTIONS.items()]
        )
    for name in ("find", "count_documents", "aggregate", "find_one"):
        setattr(collection, name, no_server)
    return catalogs


async def test_catastrophic_regexes_are_refused_by_every_backend() -> None:
    sqlite, mongo = await _regex_catalogs()
    for pattern in CATASTROPHIC:
        messages = []
        for catalog in (sqlite, mongo):
            for call in (catalog.find, catalog.count):
                with pytest.raises(eio.QueryError, match="is refused") as info:
                    await call({"labels.description": {"$regex": pattern}})
                messages.append(str(info.value))
            with pytest.raises(eio.QueryError, match="is refused"):
                await catalog.find({"labels.description": {"$not": re.compile(pattern)}})
            with pytest.raises(eio.QueryError, match="is refused"):
                await catalog.find(
                    {"$or": [{"labels.description": {"$in": [re.compile(pattern)]}}]}
                )
        assert len(set(messages)) == 1, pattern
        assert repr(pattern[:20])[1:-1] in messages[0] or len(pattern) > 60
    await sqlite.close()
    await mongo.close()


async def test_legitimate_regexes_still_work() -> None:
    sqlite = SQLiteCatalog(None)
    await sqlite.insert_many(
        [{"artifact_id": k, "labels": {"description": v}} for k, v in DESCRIPTIONS.items()]
    )
    for condition, expected in LEGITIMATE:
        flt = {
            "labels.description": {"$regex": condition} if isinstance(condition, str) else condition
        }
        assert {d["artifact_id"] for d in await sqlite.find(flt)} == expected, condition
    await sqlite.close()


def test_handler_find_refuses_catastrophic_regexes(handler: eio.Handler, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    handler.upload(tmp_path / "f.txt", labels={"description": "a" * 24 + "b"})
    before = snapshot(handler)
    for pattern in CATASTROPHIC:
        with pytest.raises(eio.QueryError, match="is refused"):
            handler.find({"labels.description": {"$regex": pattern}})
    assert len(handler.find({"labels.description": {"$regex": "^a+b$"}})) == 1
    assert snapshot(handler) == before


async def test_a_long_regex_scan_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # The clock is read every 100 SQLite steps instead of 10,000 (set before the
    # connection opens), so a scan of 3,000 documents reads it many times.
    monkeypatch.setattr(regex_guard, "_PROGRESS_STEPS", 100)
    catalog = SQLiteCatalog(None)
    docs = [{"artifact_id": f"a{i}", "labels": {"description": f"d{i}"}} for i in range(3000)]
    await catalog.insert_many(docs)
    monkeypatch.setattr(regex_guard, "QUERY_SECONDS", 0.0)
    # A pattern with no literal start or text to narrow by: every value is tested.
    with pytest.raises(eio.QueryError, match=r"stopped after 0 s .*'n\.thing'"):
        await catalog.find({"labels.description": {"$regex": "n.thing"}})
    # Calls that evaluate no regular expression are not limited, nor later calls.
    assert await catalog.count({"labels.description": "d7"}) == 1
    monkeypatch.setattr(regex_guard, "QUERY_SECONDS", 30.0)
    assert await catalog.count({"labels.description": {"$regex": "^d1"}}) == 1111
    await catalog.close()


_ATOMS = ["a", "b", ".", r"\w", r"\d", r"\s", "[ab]", "x", r"\W", "[^b]"]
_QUANTIFIERS = ["", "*", "+", "?", "{2}", "{1,3}", "{2,}", "*?", "++"]
_PIECES = st.builds(lambda a, q: a + q, st.sampled_from(_ATOMS), st.sampled_from(_QUANTIFIERS))
_PATTERNS = st.recursive(
    st.lists(_PIECES, min_size=1, max_size=4).map("".join),
    lambda inner: st.one_of(
        st.builds(lambda a, q: f"({a}){q}", inner, st.sampled_from(_QUANTIFIERS)),
        st.builds(lambda a, b: f"(?:{a}|{b})", inner, inner),
        st.lists(inner, min_size=2, max_size=3).map("".join),
    ),
    max_leaves=6,
)
_HOSTILE_LENGTH = 3000


class _Hung(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX interval timers")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=_PATTERNS, anchored=st.booleans())
def test_accepted_regexes_finish_on_hostile_text(pattern: str, anchored: bool) -> None:
    """Either the pattern is refused, or it searches hostile text in polynomial time.

    A refused shape such as '(a+)+$' takes minutes on these 3,000 characters and
    '(a|b)*c' or 'a*a*b' seconds to hours; what is accepted takes milliseconds (at
    most quadratic), so the generous alarm only fires for a pattern that got through.
    """
    pattern = pattern + "$" if anchored else pattern
    try:
        filters.check_filter({"d": {"$regex": pattern}})
    except eio.QueryError as err:
        refused = str(err)
    else:
        refused = ""
    if refused:
        assert "is refused" in refused
        return
    n = _HOSTILE_LENGTH
    texts = ["a" * n + "!", "ab" * (n // 2) + "!", "1" * n + "!", " " * n + "!", "a1 " * (n // 3)]

    def hang(*args: Any) -> None:
        raise _Hung

    previous = signal.signal(signal.SIGALRM, hang)
    try:
        for text in texts:
            signal.setitimer(signal.ITIMER_REAL, 10.0)
            try:
                query.regexp_sql(pattern, "", text)
            except _Hung:
                pytest.fail(f"accepted pattern {pattern!r} backtracks on {text[:8]!r}...")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)


_LEADS = ["a", "[ab]", "[^b]", ".", r"\w", r"\d", "[a-c_]"]
_QUANTIFIERS = ["*", "+", "*?", "+?", "{2,}", "{0,}", "*+"]
_RESTS = ["", "a", "b", "_", r"\d", "c", "$", r"\b", "b?", "(a|b)", "[^a]", "^", r"\n", "a{2}"]


@settings(max_examples=400, deadline=None, derandomize=bool(os.environ.get("CI")))
@given(
    lead=st.sampled_from(_LEADS),
    quantifier=st.sampled_from(_QUANTIFIERS),
    rest=st.lists(st.sampled_from(_RESTS), max_size=3).map("".join),
    flags=st.sets(st.sampled_from([re.IGNORECASE, re.MULTILINE, re.DOTALL])).map(
        lambda bits: sum(bits)
    ),
    text=st.text(alphabet="abAB_c1 \n", max_size=30),
)
def test_the_linear_searcher_answers_like_re(
    lead: str, quantifier: str, rest: str, flags: int, text: str
) -> None:
    """Searching from the starts of runs only gives re.search's answer, always."""
    pattern = lead + quantifier + rest
    expected = re.compile(pattern, flags).search(text) is not None
    assert (regex_guard.searcher(pattern, flags).search(text) is not None) == expected


def _too_slow(signum: int, frame: Any) -> None:
    raise TimeoutError("the regex search did not finish in linear time")


def test_leading_repeats_search_a_long_label_in_linear_time(tmp_path: Path) -> None:
    """``[a-z]+_\\d+`` over a 1 MiB run of letters: seconds per 100 kB with plain re."""
    catalog = SQLiteCatalog(tmp_path / "catalog.db")
    big = "a" * (MAX_LABELS_BYTES - 1000)
    docs = [
        {"artifact_id": "artifact_big", "labels": {"description": big}},
        {"artifact_id": "artifact_hit", "labels": {"description": big[:1000] + "_12"}},
    ]
    sync(catalog.insert_many(docs))
    previous = signal.signal(signal.SIGALRM, _too_slow)
    signal.alarm(20)  # plain re would take hours here
    try:
        for pattern in [r"[a-z]+_\d+", ".*_", r"\w+\d"]:
            found = sync(catalog.find({"labels.description": {"$regex": pattern}}, fields=[]))
            assert [d["artifact_id"] for d in found] == ["artifact_hit"], pattern
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        sync(catalog.close())
