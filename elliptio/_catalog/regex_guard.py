"""Keep ``$regex`` filters from running away: refuse the costly ones, time-limit the rest.

Python's `re` and MongoDB's PCRE both backtrack, so a pattern such as ``(a+)+$``
takes exponential time on a string like ``"a" * 30 + "b"``, and labels can hold a
mebibyte of text. A running match cannot be stopped: `re` only checks for
signals on the main thread, and holds the GIL throughout, while the SQLite
catalog runs queries on a worker thread; SQLite's progress handler only runs
between steps of its virtual machine, never inside a function call.

So `refusal` rejects, before anything runs or is sent to a server, the patterns
whose matching can take more than polynomial time (and the chains of repeats
that make it cubic or worse), for every backend alike; and on SQLite
`time_limit` stops a query that keeps evaluating regular expressions for longer
than `QUERY_SECONDS`, which bounds a scan of many documents.

What is refused, for a pattern as written (it is sent to MongoDB as written):

- more than `MAX_PATTERN_CHARS` characters;
- backreferences (``\\1``, ``(?P=name)``) and conditionals (``(?(1)a|b)``);
- a repeat that can match more than once around another repeat whose count
  varies: ``(a+)+``, ``(a*)*``, ``(\\w+\\s?)*``, ``(a{1,3}){2,}``;
- an alternation inside a repeat that can match more than once: ``(a|b)*``,
  ``(foo|bar)+`` (write ``[ab]*`` for single characters);
- two repeats whose count varies and which can match the same character, with
  nothing between them that the first cannot match: ``a*a*b``, ``\\w+\\d+``,
  ``.*foo.*bar``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from re import _compiler as sre_compile  # type: ignore[attr-defined]
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from elliptio._errors import QueryError

__all__ = [
    "MAX_PATTERN_CHARS",
    "QUERY_SECONDS",
    "install",
    "note",
    "refusal",
    "searcher",
    "time_limit",
]

MAX_PATTERN_CHARS = 1000
QUERY_SECONDS = 30.0
"""How long one SQLite catalog call may keep evaluating regular expressions."""

_PROGRESS_STEPS = 10_000  # SQLite VM steps between two looks at the clock
_FINITE_RANGE = 1024  # largest character range enumerated for overlap tests
_CHECK_BUDGET = 200_000  # character tests one pattern's check may make
_REWRITE = {
    "long": "match a shorter pattern, or filter on an exact field first",
    "complex": "it has too many repeats over large character sets to check; simplify it",
    "backref": "backreferences and conditionals are not supported; match the text itself",
    "nested": (
        "a repeat inside a repeated group can take exponential time; "
        "write '(a+)+' as 'a+', '(\\w+\\s?)*' as '[\\w\\s]*'"
    ),
    "alternation": (
        "an alternation inside a repeated group can take exponential time; "
        "use a character class such as '[ab]*' instead of '(a|b)*', or move the '|' "
        "out of the repeat"
    ),
    "chain": (
        "two repeats that can match the same characters follow each other, which "
        "takes polynomial time on long text; separate them by a character the first "
        "cannot match (as in '[a-z]+_\\d+'), or drop one (a leading '.*' is never needed)"
    ),
}


@functools.lru_cache(maxsize=512)
def refusal(text: str, flags: int) -> str | None:
    """Why the pattern ``text`` (compiled with ``flags``) is refused, or ``None``.

    The pattern must already compile with `re`.
    """
    if len(text) > MAX_PATTERN_CHARS:
        return f"it is longer than {MAX_PATTERN_CHARS} characters; {_REWRITE['long']}"
    parsed = sre_parse.parse(text, flags)
    all_flags = flags | parsed.state.flags
    if _bar_under_repeat(text, verbose=bool(all_flags & re.VERBOSE)):
        return _REWRITE["alternation"]
    _work.left = _CHECK_BUDGET
    try:
        _walk(list(parsed.data), all_flags)
    except _Refused as refused:
        return _REWRITE[refused.kind]
    return None


_work = threading.local()  # what is left of the budget of the check running here


class _Refused(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# -- the parse tree -----------------------------------------------------------

_LEAVES = frozenset({sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN})
_REPEATS = frozenset({sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT})
_ASSERTS = frozenset({sre.ASSERT, sre.ASSERT_NOT})


@dataclasses.dataclass(frozen=True)
class _CharSet:
    """One single-character item: what it matches, as a matcher and maybe a list."""

    matcher: re.Pattern[str]
    chars: frozenset[str] | None  # every character it matches (lower bound under i)
    category: Any  # the category of an item that is exactly one \d \w \s \D \W \S


@dataclasses.dataclass
class _Item:
    """One element of a sequence, for the chain rule."""

    variable: bool  # a backtracking point (its count, or its branch, varies)
    chars: list[_CharSet]  # every character it can consume
    pin: _CharSet | None  # a character it must consume first
    entry: _CharSet | None = None  # a character it consumes first, if it consumes any


def _walk(items: list[tuple[Any, Any]], flags: int) -> list[_Item]:
    """Check one sequence and its parts; return its elements for the enclosing one."""
    out: list[_Item] = []
    for op, av in items:
        if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
            raise _Refused("backref")
        if op in _LEAVES:
            leaf = _charset(op, av, flags)
            out.append(_Item(variable=False, chars=[leaf], pin=leaf, entry=leaf))
        elif op in _REPEATS:
            low, high, body = av
            inner = _walk(list(body.data), flags)
            if high >= 2 and any(item.variable for item in inner):
                raise _Refused("nested")
            chars = [c for item in inner for c in item.chars]
            entry = inner[0].pin if inner else None
            pin = entry if low >= 1 else None
            out.append(_Item(variable=high > low, chars=chars, pin=pin, entry=entry))
        elif op is sre.SUBPATTERN:
            _, add, remove, body = av
            out.extend(_walk(list(body.data), (flags | add) & ~remove))
        elif op is sre.ATOMIC_GROUP:
            out.extend(_walk(list(av.data), flags))
        elif op is sre.BRANCH:
            branches = [_walk(list(b.data), flags) for b in av[1]]
            chars = [c for branch in branches for item in branch for c in item.chars]
            out.append(_Item(variable=True, chars=chars, pin=None))
        elif op in _ASSERTS:
            inner = _walk(list(av[1].data), flags)
            if any(item.variable for item in inner):
                chars = [c for item in inner for c in item.chars]
                out.append(_Item(variable=True, chars=chars, pin=None))
        # AT (anchors) match no character.
    _check_chain(out)
    return out


def _check_chain(items: list[_Item]) -> None:
    for i, first in enumerate(items):
        if not first.variable:
            continue
        for later in items[i + 1 :]:
            if later.pin is not None and not _overlap([later.pin], first.chars):
                break  # the first repeat cannot run past this character
            if later.entry is not None and not _overlap([later.entry], first.chars):
                continue  # what the later one consumes comes after a character the first cannot
            if later.variable and _overlap(first.chars, later.chars):
                raise _Refused("chain")


# -- single characters ----------------------------------------------------------

_CATEGORIES_DISJOINT = {
    frozenset({sre.CATEGORY_DIGIT, sre.CATEGORY_SPACE}),
    frozenset({sre.CATEGORY_WORD, sre.CATEGORY_SPACE}),
    frozenset({sre.CATEGORY_DIGIT, sre.CATEGORY_NOT_DIGIT}),
    frozenset({sre.CATEGORY_WORD, sre.CATEGORY_NOT_WORD}),
    frozenset({sre.CATEGORY_SPACE, sre.CATEGORY_NOT_SPACE}),
    frozenset({sre.CATEGORY_DIGIT, sre.CATEGORY_NOT_WORD}),
}


def _charset(op: Any, av: Any, flags: int) -> _CharSet:
    state = sre_parse.State()
    state.flags = flags & ~re.VERBOSE
    matcher = sre_compile.compile(sre_parse.SubPattern(state, [(op, av)]), state.flags)
    chars: set[str] | None = set()
    category = None
    if op is sre.LITERAL:
        chars = {chr(av)}
    elif op is sre.IN:
        if len(av) == 1 and av[0][0] is sre.CATEGORY:
            category = av[0][1]
        for kind, value in av:
            if chars is None:
                break
            if kind is sre.LITERAL:
                chars.add(chr(value))
            elif kind is sre.RANGE and value[1] - value[0] < _FINITE_RANGE:
                chars.update(chr(c) for c in range(value[0], value[1] + 1))
            else:
                chars = None
    else:
        chars = None
    if chars is not None and flags & re.IGNORECASE:
        chars |= {c.lower() for c in chars} | {c.upper() for c in chars if len(c.upper()) == 1}
    return _CharSet(matcher, None if chars is None else frozenset(chars), category)


def _overlap(left: list[_CharSet], right: list[_CharSet]) -> bool:
    return any(_pair_overlaps(a, b) for a in left for b in right)


def _pair_overlaps(a: _CharSet, b: _CharSet) -> bool:
    _work.left -= len(a.chars or ()) + len(b.chars or ()) + 1
    if _work.left < 0:
        raise _Refused("complex")
    if a.chars is not None and any(b.matcher.fullmatch(c) for c in a.chars):
        return True
    if b.chars is not None and any(a.matcher.fullmatch(c) for c in b.chars):
        return True
    if a.chars is not None or b.chars is not None:
        return False
    return frozenset({a.category, b.category}) not in _CATEGORIES_DISJOINT


# -- alternations, from the text ---------------------------------------------------
# The parser turns '(a|b)' into '[ab]' and '(a|ab)' into 'a(?:|b)', which is
# not what MongoDB receives; so '|' under a repeat is found in the text itself.

_QUANTIFIER = re.compile(r"[*+?]|\{(\d*)(?:(,)(\d*))?\}")
_FLAG_GROUP = re.compile(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?:")


def _bar_under_repeat(text: str, *, verbose: bool) -> bool:
    stack: list[tuple[bool, bool]] = []  # (a '|' inside, verbose outside) per open group
    bar = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif verbose and c.isspace():
            i += 1
        elif verbose and c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "[":
            i = _after_class(text, i)
        elif text.startswith("(?#", i):
            i = _after_comment(text, i)
        elif c == "(":
            stack.append((bar, verbose))
            flag_group = _FLAG_GROUP.match(text, i)
            if flag_group and "x" in flag_group.group(1):
                verbose = True
            elif flag_group and "x" in (flag_group.group(2) or ""):
                verbose = False
            bar, i = False, i + 1
        elif c == ")" and stack:
            j = i + 1
            while verbose and j < n and text[j].isspace():
                j += 1
            if bar and _repeats_more_than_once(_QUANTIFIER.match(text, j)):
                return True
            outer_bar, verbose = stack.pop()
            bar, i = bar or outer_bar, i + 1
        else:
            if c == "|":
                bar = True
            i += 1
    return False


def _repeats_more_than_once(quantifier: re.Match[str] | None) -> bool:
    if quantifier is None or quantifier.group() == "?":
        return False
    if quantifier.group() in ("*", "+") or quantifier.group(2) is not None:
        high = quantifier.group(3) if quantifier.group(2) else quantifier.group(1)
        return not high or int(high) >= 2
    return int(quantifier.group(1) or 0) >= 2


def _after_class(text: str, i: int) -> int:
    j = i + 1
    if text.startswith("^", j):
        j += 1
    if text.startswith("]", j):
        j += 1
    while j < len(text) and text[j] != "]":
        j += 2 if text[j] == "\\" else 1
    return j + 1


def _after_comment(text: str, i: int) -> int:
    j = i + 3
    while j < len(text) and text[j] != ")":
        j += 2 if text[j] == "\\" else 1
    return j + 1


# -- the SQLite time limit -------------------------------------------------------


class _Budget(threading.local):
    def __init__(self) -> None:
        self.start: float | None = None  # when the current catalog call began
        self.pattern: str | None = None  # the last pattern evaluated in it
        self.stopped = False


_budget = _Budget()


def note(pattern: str) -> None:
    """Record that the current catalog call evaluates ``pattern`` (SQL function side)."""
    _budget.pattern = pattern


def _progress() -> int:
    start = _budget.start
    if start is None or _budget.pattern is None:
        return 0
    if time.monotonic() - start <= QUERY_SECONDS:
        return 0
    _budget.stopped = True
    return 1


def install(conn: sqlite3.Connection) -> None:
    """Let `time_limit` stop statements on ``conn``."""
    conn.set_progress_handler(_progress, _PROGRESS_STEPS)


@contextlib.contextmanager
def time_limit(conn: sqlite3.Connection) -> Iterator[None]:
    """Stop work on ``conn`` that evaluates regular expressions for over `QUERY_SECONDS`.

    Raises:
        QueryError: the limit was reached; the message names the pattern.
    """
    saved = (_budget.start, _budget.pattern, _budget.stopped)
    _budget.start, _budget.pattern, _budget.stopped = time.monotonic(), None, False
    try:
        yield
    except sqlite3.OperationalError as err:
        if not _budget.stopped:
            raise
        if conn.in_transaction:
            conn.rollback()
        raise QueryError(
            f"the query was stopped after {QUERY_SECONDS:g} s evaluating the regular "
            f"expression {_shown(_budget.pattern or '')}; narrow the filter with an exact "
            "condition (e.g. on 'name' or 'labels.datatype') or anchor the pattern with '^'"
        ) from err
    finally:
        _budget.start, _budget.pattern, _budget.stopped = saved


def _shown(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 60 else pattern[:57] + "...")


_ONE_CHARACTER = frozenset({sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY})


@functools.lru_cache(maxsize=256)
def searcher(pattern: str, flags: int) -> re.Pattern[str]:
    """A compiled pattern for ``search`` that answers like ``re.compile(pattern,
    flags)``, but in linear rather than quadratic time when the pattern starts with
    an unbounded repeat of one character class (``.*x``, ``[a-z]+_\\d+``).

    ``re.search`` tries every start position, and from each the leading repeat
    runs to the end of its run of matching characters and backtracks: quadratic
    in the run's length. A match that starts inside such a run implies one that
    starts at the run's first character (the repeat just takes the extra
    characters too), so searching from run starts only gives the same answer: the
    pattern gets a negative lookbehind for its own first character class.
    """
    compiled = re.compile(pattern, flags)
    try:
        parsed = sre_parse.parse(pattern, flags)
    except re.error:  # pragma: no cover - re.compile above would have failed
        return compiled
    if not parsed.data:
        return compiled
    op, av = parsed.data[0]
    if op not in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        return compiled
    _low, high, body = av
    if high != sre.MAXREPEAT or len(body.data) != 1 or body.data[0][0] not in _ONE_CHARACTER:
        return compiled
    behind = sre_parse.SubPattern(parsed.state, [body.data[0]])
    lead = (sre.ASSERT_NOT, (-1, behind))
    faster = sre_parse.SubPattern(parsed.state, [lead, *parsed.data])
    result: re.Pattern[str] = sre_compile.compile(faster, flags)
    return result
