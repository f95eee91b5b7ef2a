"""Tests for `elliptio._provenance`: user name, process and git provenance."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from elliptio import _provenance
from elliptio._errors import ConfigError
from elliptio._provenance import (
    DIFF_LIMIT_BYTES,
    GitInfo,
    ProcessInfo,
    current_username,
    git_info,
    mock_username,
    process_info,
)
from elliptio._redact import redact_argv

requires_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    _provenance._clear_caches()
    yield
    _provenance._clear_caches()


# --------------------------------------------------------------------------- username


def test_mock_username_nests_and_restores() -> None:
    outer = current_username()
    with mock_username("andy") as name:
        assert name == "andy"
        assert current_username() == "andy"
        with mock_username("bea"):
            assert current_username() == "bea"
        assert current_username() == "andy"
    assert current_username() == outer


def test_mock_username_restores_after_exception() -> None:
    outer = current_username()
    with pytest.raises(RuntimeError), mock_username("andy"):
        raise RuntimeError("boom")
    assert current_username() == outer


async def test_mock_username_is_isolated_between_tasks() -> None:
    both_inside = asyncio.Barrier(2)

    async def work(name: str) -> list[str]:
        seen = []
        with mock_username(name):
            await both_inside.wait()
            for _ in range(3):
                seen.append(current_username())
                await asyncio.sleep(0)
        return seen

    andy, bea = await asyncio.gather(work("andy"), work("bea"))
    assert andy == ["andy"] * 3
    assert bea == ["bea"] * 3


def test_mock_username_is_isolated_between_threads() -> None:
    seen: dict[str, str] = {}
    inside = threading.Barrier(2)

    def work(name: str) -> None:
        with mock_username(name):
            inside.wait(timeout=5)
            seen[name] = current_username()

    threads = [threading.Thread(target=work, args=(n,)) for n in ("andy", "bea")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"andy": "andy", "bea": "bea"}


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a/b",
        "a\\b",
        "a\nb",
        "a\x00b",
        "a\x7fb",
        "a\u200bb",
        "x" * 65,
        " andy",
        "a:b",
        "a?b",
        "a#b",
    ],
)
def test_mock_username_rejects_unusable_names(name: str) -> None:
    with pytest.raises(ConfigError, match="mock_username"), mock_username(name):
        pass


def test_mock_username_rejects_non_str() -> None:
    with pytest.raises(ConfigError, match="must be a str"), mock_username(42):  # type: ignore[arg-type]
        pass


@pytest.mark.parametrize("name", ["andy", "a.b", "first last", "x" * 64, "Ängström", "user-1_2"])
def test_mock_username_accepts_plain_names(name: str) -> None:
    with mock_username(name):
        assert current_username() == name


@pytest.mark.parametrize(
    ("os_user", "expected"),
    [
        ("andy", "andy"),
        ("DOMAIN\\andy", "DOMAIN_andy"),
        ("a/b\tc", "a_b_c"),
        ("..", "__"),
        ("", "unknown"),
        ("  ", "unknown"),
        ("y" * 100, "y" * 64),
    ],
)
def test_current_username_sanitizes_os_user(
    monkeypatch: pytest.MonkeyPatch, os_user: str, expected: str
) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: os_user)
    assert current_username() == expected


def test_current_username_falls_back_when_getuser_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> str:
        raise OSError("no user")

    monkeypatch.setattr("getpass.getuser", fail)
    expected = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    assert current_username() == expected
    monkeypatch.delattr(os, "getuid", raising=False)
    assert current_username() == "unknown"


# --------------------------------------------------------------------------- process


def test_process_info_fields() -> None:
    info = process_info()
    assert isinstance(info, ProcessInfo)
    assert info.hostname
    assert info.argv
    assert info.python_version.count(".") == 2
    assert info.platform
    assert info.python_packages["pydantic"] == importlib.metadata.version("pydantic")
    names = list(info.python_packages)
    assert names == sorted(names, key=lambda n: (n.lower(), n))


def test_process_info_is_cached() -> None:
    assert process_info() is process_info()


def test_process_info_is_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        process_info().hostname = "other"


def test_process_info_redacts_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "orig_argv", ["python", "train.py", "--token", "abc", "--epochs", "3"])
    assert process_info().argv == ["python", "train.py", "--token", "***", "--epochs", "3"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_caches_are_cleared_in_forked_child() -> None:
    process_info()
    assert _provenance._process_info is not None
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            cleared = _provenance._process_info is None and not _provenance._toplevel_by_path
            recomputed = process_info().python_packages.get("pydantic") is not None
            os.write(write_end, b"ok" if cleared and recomputed else b"no")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 2) == b"ok"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert _provenance._process_info is not None


# --------------------------------------------------------------------------- git


def _git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, timeout=30
    )
    return completed.stdout.strip()


@pytest.fixture
def git_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def repo(tmp_path: Path, git_env: None) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.name", "Test User")
    _git(path, "config", "user.email", "test@example.com")
    (path / "train.py").write_text("print('hello')\n", encoding="utf-8")
    _git(path, "add", "train.py")
    _git(path, "commit", "-q", "-m", "first")
    return path


@requires_git
def test_git_info_clean_repo(repo: Path) -> None:
    info = git_info(repo)
    assert isinstance(info, GitInfo)
    assert info.commit == _git(repo, "rev-parse", "HEAD")
    assert len(info.commit) == 40
    assert info.branch == "main"
    assert info.dirty is False
    assert info.remote is None
    assert info.diff == ""
    assert info.diff_truncated is False


@requires_git
def test_git_info_dirty_repo_has_staged_and_unstaged_diff(repo: Path) -> None:
    (repo / "train.py").write_text("print('changed')\n", encoding="utf-8")
    (repo / "new.py").write_text("x = 'ünïcode'\n", encoding="utf-8")
    _git(repo, "add", "new.py")
    (repo / "untracked.txt").write_text("ignored\n", encoding="utf-8")
    info = git_info(repo / "train.py")  # a file inside the repository works too
    assert info is not None
    assert info.dirty is True
    assert "+print('changed')" in info.diff
    assert "+x = 'ünïcode'" in info.diff
    assert "new.py" in info.diff
    assert "untracked.txt" not in info.diff
    assert info.diff_truncated is False


@requires_git
def test_git_info_untracked_files_are_not_dirty(repo: Path) -> None:
    (repo / "output.csv").write_text("a,b\n", encoding="utf-8")
    info = git_info(repo)
    assert info is not None
    assert info.dirty is False


@requires_git
def test_git_info_from_subdirectory_and_cwd(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    from_sub = git_info(sub)
    monkeypatch.chdir(sub)
    assert git_info() is from_sub  # one cached state per repository
    assert git_info(repo) is from_sub


@requires_git
def test_git_info_detached_head(repo: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")
    info = git_info(repo)
    assert info is not None
    assert info.branch is None
    assert info.commit == _git(repo, "rev-parse", "HEAD")


@requires_git
def test_git_info_caps_large_diff(repo: Path) -> None:
    # Two-byte characters, so a cut can fall in the middle of one.
    line = "é" * 99 + "\n"
    (repo / "big.txt").write_text("", encoding="utf-8")
    _git(repo, "add", "big.txt")
    _git(repo, "commit", "-q", "-m", "big")
    (repo / "big.txt").write_text(line * 8_000, encoding="utf-8")  # ~1.6 MB
    info = git_info(repo)
    assert info is not None
    assert info.dirty is True
    assert info.diff_truncated is True
    encoded = info.diff.encode("utf-8")
    assert DIFF_LIMIT_BYTES - 4 < len(encoded) <= DIFF_LIMIT_BYTES
    assert "\ufffd" not in info.diff
    assert info.diff.startswith("diff --git a/big.txt b/big.txt")


def test_decode_capped_cuts_at_character_boundary() -> None:
    data = ("a" + "€" * 10).encode("utf-8")  # "€" is 3 bytes
    text, truncated = _provenance._decode_capped(data[:9], True, 8)
    assert (text, truncated) == ("a€€", True)
    text, truncated = _provenance._decode_capped(b"abc\xff", False, 8)
    assert (text, truncated) == ("abc\ufffd", False)
    # Replacement characters (3 bytes each) may push a short input over the cap.
    text, truncated = _provenance._decode_capped(b"\xff" * 4, False, 8)
    assert (text, truncated) == ("\ufffd\ufffd", True)


@requires_git
def test_git_info_remote_credentials_are_stripped(repo: Path) -> None:
    _git(repo, "remote", "add", "upstream", "https://someone:secret@example.com/o/u.git")
    _git(repo, "remote", "add", "origin", "https://x-access-token:ghs_abc@github.com/o/r.git")
    info = git_info(repo)
    assert info is not None
    assert info.remote == "https://x-access-token:***@github.com/o/r.git"
    assert "ghs_abc" not in info.model_dump_json()


@requires_git
@pytest.mark.parametrize("password", ["", "x-oauth-basic"])
def test_git_info_masks_a_token_given_as_the_user_name(repo: Path, password: str) -> None:
    """GitHub's OAuth form `https://TOKEN:x-oauth-basic@github.com/o/r` (or an empty
    password) carries the token as the user name: it is masked as a bare user is,
    in the record's git remote and in its command line (helper-99)."""
    token = "ghp_0123456789abcdefTOKEN"
    url = f"https://{token}:{password}@github.com/o/r.git"
    _git(repo, "remote", "add", "origin", url)
    info = git_info(repo)
    assert info is not None
    assert info.remote == "https://***@github.com/o/r.git"
    assert token not in info.model_dump_json()
    assert token not in " ".join(redact_argv(["git", "clone", url, f"--mirror={url}"]))


@requires_git
def test_git_info_uses_first_remote_without_origin(repo: Path) -> None:
    _git(repo, "remote", "add", "my.fork", "https://ghp_token@github.com/me/r.git")
    _git(repo, "remote", "add", "zzz", "ssh://git@example.com/z.git")
    info = git_info(repo)
    assert info is not None
    assert info.remote == "https://***@github.com/me/r.git"


@requires_git
def test_git_info_is_computed_once_per_process(repo: Path) -> None:
    first = git_info(repo)
    (repo / "train.py").write_text("print('later')\n", encoding="utf-8")
    assert git_info(repo) is first
    _provenance._clear_caches()
    later = git_info(repo)
    assert later is not None
    assert later.dirty is True


@requires_git
def test_git_info_outside_repository(tmp_path: Path, git_env: None) -> None:
    assert git_info(tmp_path) is None
    assert git_info(tmp_path / "missing" / "dir") is None


@requires_git
def test_git_info_repository_without_commits(tmp_path: Path, git_env: None) -> None:
    _git(tmp_path, "init", "-q")
    assert git_info(tmp_path) is None


def test_git_info_without_git_executable(
    repo_or_tmp: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    assert git_info(repo_or_tmp) is None


@pytest.fixture
def repo_or_tmp(tmp_path: Path, git_env: None) -> Path:
    if shutil.which("git") is None:
        return tmp_path
    path = tmp_path / "r"
    path.mkdir()
    _git(path, "init", "-q")
    _git(
        path,
        "-c",
        "user.name=a",
        "-c",
        "user.email=a@b",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    return path


def test_git_info_model_is_frozen_and_strict() -> None:
    info = GitInfo(
        commit="a" * 40, branch=None, dirty=False, remote=None, diff="", diff_truncated=False
    )
    with pytest.raises(ValueError, match="frozen"):
        info.dirty = True
    with pytest.raises(ValueError, match="extra"):
        GitInfo(
            commit="a", branch=None, dirty=False, remote=None, diff="", diff_truncated=False, x=1
        )  # type: ignore[call-arg]


def test_a_script_given_bytes_that_are_not_utf8_still_uploads(tmp_path: Path) -> None:
    """A Latin-1 file name on the command line, and a folder holding the files, are
    recorded with the stray bytes shown as \\xNN instead of failing the upload."""
    folder = tmp_path / os.fsdecode(b"r\xe9sultats")
    folder.mkdir()
    (folder / "d.csv").write_text("a\n1\n")
    script = tmp_path / "up.py"
    script.write_text(
        "import sys, elliptio as eio\n"
        f"h = eio.Handler(storage={str(tmp_path / 'store')!r},"
        f" catalog='sqlite:///{tmp_path / 'c.db'}')\n"
        "a = h.upload(sys.argv[1] + '/d.csv')\n"
        "got = h.get(a.artifact_id).metadata\n"
        "print(got.argv[-1], got.local_root, sep='\\n')\n"
    )
    done = subprocess.run(
        [sys.executable, str(script), os.fsencode(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    argv, local_root = done.stdout.splitlines()
    assert argv == str(tmp_path) + "/r\\xe9sultats"
    assert local_root == argv


def test_readable_keeps_unicode_and_escapes_stray_bytes() -> None:
    from elliptio._provenance import readable

    assert readable("caf\u00e9 \u2603") == "caf\u00e9 \u2603"
    assert readable(os.fsdecode(b"caf\xe9")) == "caf\\xe9"
    assert readable("a\ud800b") == "a\\xed\\xa0\\x80b"  # a surrogate not from bytes
    for text in ["plain", os.fsdecode(b"\xff\xfe"), "x\udcff"]:
        readable(text).encode("utf-8")  # always valid UTF-8


@requires_git
def test_git_names_that_are_not_utf8_are_recorded_readably(repo: Path) -> None:
    """A branch and a remote named with Latin-1 bytes: the git state shows them as
    \\xNN, so the record (and its JSON sidecar) can be written."""
    branch = os.fsdecode(b"caf\xe9")
    subprocess.run(["git", "checkout", "-q", "-b", branch], cwd=repo, check=True, timeout=30)
    subprocess.run(
        ["git", "remote", "add", "origin", os.fsdecode(b"/srv/r\xe9po.git")],
        cwd=repo,
        check=True,
        timeout=30,
    )
    info = git_info(repo)
    assert info is not None
    assert info.branch == "caf\\xe9"
    assert info.remote == "/srv/r\\xe9po.git"
    info.model_dump_json()  # valid UTF-8 throughout
