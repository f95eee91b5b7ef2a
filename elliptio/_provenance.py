"""Provenance capture: who runs this process, where, how, and from which code.

Three pieces feed every metadata record:

- `current_username` -- the OS user, or the name set with `mock_username`; always
  safe to use as a path segment of the storage layout.
- `process_info` -- host, redacted command line, Python and platform, and the
  version of every installed distribution. Computed once per process.
- `git_info` -- commit, branch, dirty flag, remote (credentials removed) and the
  diff against ``HEAD`` of the repository the code runs in. Computed once per
  repository per process, by calling the ``git`` executable; `None` when there is
  no repository or no git.

Both caches are cleared in a child process after ``os.fork``.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import functools
import getpass
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator

from pydantic import BaseModel, ConfigDict

from elliptio._errors import ConfigError
from elliptio._redact import redact_argv, redact_url

__all__ = [
    "DIFF_LIMIT_BYTES",
    "MAX_USERNAME_LENGTH",
    "GitInfo",
    "ProcessInfo",
    "cached_git_info",
    "current_username",
    "git_info",
    "mock_username",
    "process_info",
]

MAX_USERNAME_LENGTH = 64
"""Longest accepted user name, in characters."""

DIFF_LIMIT_BYTES = 1_000_000
"""Largest git diff kept in a record, in bytes of UTF-8."""

GIT_TIMEOUT_SECONDS = 10.0
"""How long one ``git`` call may take before it is given up."""

# Characters that would break a path segment on some filesystem or an fsspec URL.
_UNSAFE_USERNAME_CHARS = frozenset('/\\:*?"<>|#%')

_mocked_username: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "elliptio_mocked_username", default=None
)


# --------------------------------------------------------------------------- username


def _is_unsafe_char(char: str) -> bool:
    return char in _UNSAFE_USERNAME_CHARS or unicodedata.category(char) in {"Cc", "Cf", "Cs"}


def _username_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"must be a str, not {type(name).__name__}"
    if not name:
        return "must not be empty"
    if len(name) > MAX_USERNAME_LENGTH:
        return f"must be at most {MAX_USERNAME_LENGTH} characters"
    if name in {".", ".."}:
        return "must not be '.' or '..'"
    if name != name.strip():
        return "must not start or end with whitespace"
    bad = sorted({c for c in name if _is_unsafe_char(c)})
    if bad:
        return f"must not contain {', '.join(repr(c) for c in bad)}"
    return None


@contextlib.contextmanager
def mock_username(name: str) -> Iterator[str]:
    """Record artifacts under another user name inside a ``with`` block.

    The name lives in a `contextvars.ContextVar`, so concurrent asyncio tasks and
    threads each see their own value; blocks nest, and leaving one restores the
    name that was in effect before it.

    Example:
        >>> with mock_username("andy"):
        ...     current_username()
        'andy'

    Args:
        name: A user name usable as one path segment: non-empty, at most 64
            characters, not ``.`` or ``..``, no leading or trailing whitespace, and
            none of ``/ \\ : * ? " < > | # %`` or control characters.

    Yields:
        The name now in effect.

    Raises:
        ConfigError: The name cannot be used.
    """
    problem = _username_problem(name)
    if problem is not None:
        raise ConfigError(
            f"Invalid user name {name!r} for mock_username(): it {problem}. "
            "Pass a plain name such as 'andy'."
        )
    token = _mocked_username.set(name)
    try:
        yield name
    finally:
        _mocked_username.reset(token)


@functools.lru_cache(maxsize=8)  # the same OS user on every commit of a process
def _sanitize_username(name: str) -> str:
    cleaned = "".join("_" if _is_unsafe_char(c) else c for c in name).strip()
    cleaned = cleaned[:MAX_USERNAME_LENGTH].strip()
    if cleaned in {".", ".."}:
        return "_" * len(cleaned)
    return cleaned or "unknown"


# The variables getpass.getuser() reads, in its order, before the password database.
_USER_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")


def _os_username() -> str:
    getuid = getattr(os, "getuid", None)
    uid = getuid() if getuid is not None else None
    return _username_of(getpass.getuser, tuple(os.environ.get(k) for k in _USER_VARIABLES), uid)


@functools.lru_cache(maxsize=8)
def _username_of(
    getuser: Callable[[], str], variables: tuple[str | None, ...], uid: int | None
) -> str:
    # Cached by what getuser() reads: a lookup in the password database opens and
    # reads /etc/passwd (or asks NSS) on every call, once per commit otherwise.
    try:
        return str(getuser())
    except Exception:  # KeyError, ImportError, OSError depending on platform and version
        return f"uid{uid}" if uid is not None else "unknown"


def current_username() -> str:
    """Return the user name recorded in artifacts and used in storage paths.

    Returns:
        The name set by the innermost active `mock_username` block, else the OS
        user (``getpass.getuser()``, falling back to ``uid<N>`` or ``unknown``)
        with unsafe characters replaced by ``_`` so it is one safe path segment.
    """
    mocked = _mocked_username.get()
    if mocked is not None:
        return mocked
    return _sanitize_username(_os_username())


# --------------------------------------------------------------------------- process


class ProcessInfo(BaseModel):
    """What the running process is: host, command line, Python and packages.

    Attributes:
        hostname: The machine's host name.
        argv: ``sys.orig_argv`` (the interpreter and its options included) with
            secrets masked by `elliptio._redact.redact_argv`, and bytes that are
            not UTF-8 shown as ``\\xNN`` (`readable`).
        python_version: ``platform.python_version()``, e.g. ``"3.12.4"``.
        platform: ``platform.platform()``, e.g. ``"Linux-6.8.0-x86_64-with-glibc2.39"``.
        python_packages: Every installed distribution name, spelled as in its
            metadata, mapped to its version, sorted case-insensitively by name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    hostname: str
    argv: list[str]
    python_version: str
    platform: str
    python_packages: dict[str, str]


def _metadata_header(text: str) -> tuple[str | None, str | None]:
    # Only the header block is needed; the email parser behind `dist.metadata`
    # also parses the long description, which costs ~1 ms per distribution.
    name = version = None
    for line in text.splitlines():
        if not line:
            break
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
        elif key == "Version":
            version = value.strip()
    return name, version


def _distribution_name_version(
    dist: importlib.metadata.Distribution,
) -> tuple[str | None, str | None]:
    try:
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
        if text:
            name, version = _metadata_header(text)
            if name and version:
                return name, version
        return dist.metadata["Name"], dist.version
    except Exception:  # a broken or half-installed distribution: skip it
        return None, None


def _installed_packages() -> dict[str, str]:
    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = _distribution_name_version(dist)
        # The first one found on sys.path is the one that imports; keep it.
        if name and version and name not in packages:
            packages[name] = version
    return dict(sorted(packages.items(), key=lambda item: (item[0].lower(), item[0])))


def readable(text: str) -> str:
    """``text`` as valid Unicode: bytes from the OS that are not UTF-8 (which Python
    holds as lone surrogates, as in a Latin-1 file name) become ``\\xNN``."""
    if text.isascii():
        return text
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate not from the OS's bytes
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def _compute_process_info() -> ProcessInfo:
    return ProcessInfo(
        hostname=readable(socket.gethostname()),
        argv=[readable(arg) for arg in redact_argv(sys.orig_argv)],
        python_version=platform.python_version(),
        platform=platform.platform(),
        python_packages=_installed_packages(),
    )


_lock = threading.Lock()
_process_info: ProcessInfo | None = None
_git_by_toplevel: dict[str, GitInfo | None] = {}
_toplevel_by_path: dict[str, str | None] = {}


def process_info() -> ProcessInfo:
    """Return the provenance of the running process, computed once and cached.

    A child created with ``os.fork`` computes its own on first use.

    Returns:
        The same `ProcessInfo` object on every call in this process.
    """
    global _process_info
    info = _process_info
    if info is not None:
        return info
    with _lock:
        if _process_info is None:
            _process_info = _compute_process_info()
        return _process_info


# --------------------------------------------------------------------------- git


class GitInfo(BaseModel):
    """The state of the git repository the code runs in.

    Attributes:
        commit: Full sha of ``HEAD``.
        branch: Short branch name, or None when ``HEAD`` is detached.
        dirty: Whether tracked files differ from ``HEAD`` (staged or not);
            untracked files do not count.
        remote: URL of the ``origin`` remote, else of the first remote configured,
            with credentials masked; None without remotes.
        diff: ``git diff HEAD`` (staged and unstaged changes to tracked files), at
            most `DIFF_LIMIT_BYTES` bytes of UTF-8, cut at a character boundary.
        diff_truncated: Whether ``diff`` was cut (or could not be read whole).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    commit: str
    branch: str | None
    dirty: bool
    remote: str | None
    diff: str
    diff_truncated: bool


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_OPTIONAL_LOCKS"] = "0"  # never take index.lock behind the user's back
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _git_command(*args: str) -> list[str]:
    return ["git", "-c", "core.quotepath=off", *args]


def _run_git(cwd: str, *args: str) -> str | None:
    """Run git, return its stdout, or None if git is missing, fails or hangs."""
    try:
        completed = subprocess.run(
            _git_command(*args),
            cwd=cwd,
            env=_git_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.decode("utf-8", "surrogateescape")


def _run_git_capped(cwd: str, limit: int, *args: str) -> tuple[bytes, bool] | None:
    """Run git and read at most ``limit + 1`` bytes of its stdout.

    A huge diff (a modified tracked data file) is never held in memory whole: git is
    stopped once the limit is exceeded.

    Returns:
        ``(data, exceeded)``, or None if git is missing, fails or hangs.
    """
    try:
        proc = subprocess.Popen(
            _git_command(*args),
            cwd=cwd,
            env=_git_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, ValueError):
        return None
    timer = threading.Timer(GIT_TIMEOUT_SECONDS, proc.kill)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        data = proc.stdout.read(limit + 1)
        exceeded = len(data) > limit
        if exceeded:
            proc.kill()
        returncode = proc.wait()
    except OSError:
        proc.kill()
        proc.wait()
        return None
    finally:
        timer.cancel()
        if proc.stdout is not None:
            proc.stdout.close()
    if not exceeded and returncode != 0:
        return None
    return data, exceeded


def _decode_capped(data: bytes, exceeded: bool, limit: int) -> tuple[str, bool]:
    truncated = exceeded
    if exceeded:
        data = data[:limit]
    # An incremental decoder drops a multi-byte sequence cut at the end instead of
    # turning it into U+FFFD; invalid bytes elsewhere (latin-1 files) are replaced.
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=not exceeded)
    encoded = text.encode("utf-8")
    if len(encoded) > limit:  # replacement characters can make the text longer
        text = encoded[:limit].decode("utf-8", "ignore")
        truncated = True
    return text, truncated


def _pick_remote(config_output: str | None) -> str | None:
    if not config_output:
        return None
    remotes: dict[str, str] = {}
    for entry in config_output.split("\0"):
        key, _, url = entry.partition("\n")
        if key.startswith("remote.") and key.endswith(".url") and url:
            remotes.setdefault(key[len("remote.") : -len(".url")], url)
    if not remotes:
        return None
    url = remotes.get("origin", next(iter(remotes.values())))
    return redact_url(url, whole=True)


def _compute_git_info(toplevel: str, commit: str, symbolic_head: str) -> GitInfo:
    branch = symbolic_head.removeprefix("refs/heads/") if symbolic_head != "HEAD" else None
    remote = _pick_remote(_run_git(toplevel, "config", "-z", "--get-regexp", r"^remote\..*\.url$"))
    captured = _run_git_capped(
        toplevel,
        DIFF_LIMIT_BYTES,
        "diff",
        "HEAD",
        "--no-color",
        "--no-ext-diff",
        "--",
    )
    if captured is None:
        # The diff could not be read: keep the commit, and say nothing is certain.
        diff, truncated, dirty = "", True, True
    else:
        data, exceeded = captured
        diff, truncated = _decode_capped(data, exceeded, DIFF_LIMIT_BYTES)
        dirty = bool(data)
    return GitInfo(
        commit=commit,
        branch=readable(branch) if branch is not None else None,
        dirty=dirty,
        remote=readable(remote) if remote is not None else None,
        diff=diff,
        diff_truncated=truncated,
    )


def _start_directory(path: str | os.PathLike[str] | None) -> str | None:
    start = os.path.abspath(os.fspath(path) if path is not None else os.getcwd())
    if os.path.isdir(start):
        return start
    parent = os.path.dirname(start)
    return parent if os.path.isfile(start) and os.path.isdir(parent) else None


def git_info(path: str | os.PathLike[str] | None = None) -> GitInfo | None:
    """Return the state of the git repository that contains ``path``.

    Git state is computed once per repository per process (and again in a child
    after ``os.fork``): later commits or edits in the same process are not seen.
    This function never raises; it calls the ``git`` executable and blocks for as
    long as git takes (each call is limited to 10 seconds).

    Args:
        path: A directory or file inside the repository; default: the current
            working directory.

    Returns:
        The repository's `GitInfo`, or None when ``path`` is not inside a
        repository with at least one commit, or git is not installed or fails.
    """
    try:
        start = _start_directory(path)
    except (OSError, ValueError, TypeError):
        return None
    if start is None:
        return None
    with _lock:
        if start in _toplevel_by_path:
            toplevel = _toplevel_by_path[start]
            return _git_by_toplevel.get(toplevel) if toplevel is not None else None
        lines = (
            _run_git(start, "rev-parse", "--show-toplevel", "HEAD", "--symbolic-full-name", "HEAD")
            or ""
        ).splitlines()
        if len(lines) < 3:
            _toplevel_by_path[start] = None
            return None
        toplevel = os.path.normpath(lines[0])
        _toplevel_by_path[start] = toplevel
        if toplevel not in _git_by_toplevel:
            _git_by_toplevel[toplevel] = _compute_git_info(toplevel, lines[1], lines[2])
        return _git_by_toplevel[toplevel]


def cached_git_info(path: str | os.PathLike[str] | None = None) -> tuple[bool, GitInfo | None]:
    """``(True, git_info(path))`` if `git_info` answers from its cache (without
    running git), else ``(False, None)``."""
    try:
        start = _start_directory(path)
    except (OSError, ValueError, TypeError):
        return True, None
    toplevel = _toplevel_by_path.get(start, "") if start is not None else None
    if toplevel is None:
        return True, None
    if toplevel in _git_by_toplevel:  # set once computed, after _toplevel_by_path
        return True, _git_by_toplevel[toplevel]
    return False, None


# --------------------------------------------------------------------------- fork


def _clear_caches() -> None:
    """Forget cached process and git state (after fork, and in tests)."""
    global _lock, _process_info
    _lock = threading.Lock()  # another thread may have held it at fork time
    _process_info = None
    _git_by_toplevel.clear()
    _toplevel_by_path.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_clear_caches)
