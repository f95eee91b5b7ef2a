"""The command line's manners: --version, help everywhere, pipes, sizes, a fast start."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
import s3fs

import elliptio
from elliptio._cli import _parser, main
from tests.conftest import S3_BUCKET, S3_CREDENTIALS
from tests.fault_proxy import FaultProxy


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    return cli_env


@pytest.fixture
def two_files(tmp_path: Path) -> list[Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "train.txt").write_text("path,class\na.png,0\n")
    (docs / "big.bin").write_bytes(b"\0" * 1_500_000)
    return [docs / "train.txt", docs / "big.bin"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _parsers(sub)
    return found


def test_every_option_and_argument_has_help() -> None:
    missing = []
    parsers = _parsers(_parser())
    assert len(parsers) >= 20  # the walk reached every sub-command
    for prog, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"elliptio {elliptio.__version__}\n"


def test_cli_and_help_do_not_import_pandas() -> None:
    heavy = ("pandas", "numpy", "pyarrow")
    probe = (
        "import sys, elliptio._cli\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
        "try:\n"
        "    elliptio._cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "[]"
    assert "Save, find and read artifacts" in result.stdout
    assert lines[-1] == "[]"


def test_a_local_store_does_not_import_the_s3_stack(tmp_path: Path) -> None:
    """s3fs and botocore cost about 0.3 s to import: a command on a local store
    (the default) does not pay for them."""
    heavy = ("s3fs", "botocore", "aiobotocore")
    probe = (
        "import sys, elliptio._cli\n"
        f"elliptio._cli.main(['ls', {str(tmp_path)!r}])\n"
        "h = __import__('elliptio').Handler(\n"
        f"    storage={str(tmp_path / 'store')!r}, catalog={f'sqlite:///{tmp_path}/c.db'!r}\n"
        ")\n"
        f"h.upload({__file__!r})\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]", result.stderr


def test_a_closed_pipe_ends_quietly(env: dict[str, str]) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte, as `| head` after its line
    try:
        result = subprocess.run(
            [sys.executable, "-m", "elliptio", "config"],
            env={**os.environ, **env},
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert result.returncode == 141
    assert result.stderr == ""


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_cat_writes_every_byte_and_a_closed_pipe_still_ends_it(
    env: dict[str, str], tmp_path: Path, unbuffered: str
) -> None:
    """With PYTHONUNBUFFERED (Docker, CI) stdout takes part of a large write at a
    time: cat wrote the first 64 KiB of an artifact and exited 0."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3_000_000))
    assert main(["upload", str(big), "--name", "big"]) == 0
    run_env = {**os.environ, **env, "PYTHONUNBUFFERED": unbuffered}
    whole = subprocess.run(
        f"{sys.executable} -m elliptio cat big | {sys.executable} -c "
        "'import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())'",
        shell=True,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert whole.stdout.strip() == hashlib.sha256(big.read_bytes()).hexdigest()
    cut = subprocess.run(
        f"{sys.executable} -m elliptio cat big | head -c 10 >/dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (cut.stdout.strip(), cut.stderr) == ("141", "")


def test_sizes_are_human_with_bytes_for_scripts(
    env: dict[str, str], two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "upload", *map(str, two_files), "--name", "ds")
    assert code == 0
    assert "  big.bin  1.5 MB  " in err
    assert "  train.txt  19 B  " in err
    assert "  big.bin  1500000  " in _run(capsys, "upload", str(two_files[1]), "--bytes")[2]
    code, out, _ = _run(capsys, "find")
    assert code == 0
    header, index_name, *rows = out.splitlines()
    assert header.split()[:2] == ["ref", "created"]
    assert index_name.split() == ["artifact_id"]
    named = next(row for row in rows if "ds:v1" in row)
    assert "1.5 MB" in named  # both files
    unnamed = next(row for row in rows if "ds:v1" not in row)
    assert unnamed.split()[1] == "-"  # no name: the id (the index) says it all
    assert "1500019" in _run(capsys, "find", "--bytes")[1]


def test_cat_a_reference_lists_its_files(
    env: dict[str, str], two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "upload", *map(str, two_files), "--name", "ds")
    _run(capsys, "upload", str(two_files[0]), "--name", "one")
    code, out, err = _run(capsys, "cat", "ds")
    assert code == 1
    assert out == ""
    assert "ds has 2 files: big.bin, train.txt" in err
    assert "elliptio cat ds big.bin" in err  # the next step
    code, out, err = _run(capsys, "cat", "ds", "nope.txt")
    assert code == 1
    assert "FileNotInArtifactError" in err
    assert "'nope.txt' is not a file of ds; it has big.bin, train.txt" in err
    assert _run(capsys, "cat", "one") == (0, "path,class\na.png,0\n", "")
    code, _, err = _run(capsys, "cat", "missing.txt")
    assert code == 1
    assert "nor is 'missing.txt' a local file or URL" in err


def test_cat_prefers_the_artifact_a_local_file_shares_a_name_with(
    env: dict[str, str],
    two_files: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cat --help`: an artifact of that name wins over a local file; ./NAME reads the file."""
    _run(capsys, "upload", str(two_files[0]), "--name", "one")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    monkeypatch.chdir(work)
    for name in ("one", "other", "sub/f.txt"):
        (work / name).write_text(f"local {name}\n")
    assert _run(capsys, "cat", "one") == (0, "path,class\na.png,0\n", "")
    assert _run(capsys, "cat", "./one") == (0, "local one\n", "")
    # No artifact of that name, or a path no reference could be: the local file.
    assert _run(capsys, "cat", "other") == (0, "local other\n", "")
    assert _run(capsys, "cat", "sub/f.txt") == (0, "local sub/f.txt\n", "")


def test_cat_says_so_when_it_reads_a_local_file_because_the_catalog_did_not_answer(
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cat NAME` with the catalog unreachable (or a network away, offline) read
    the local file NAME without a word, where an artifact NAME may well exist."""
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", "mongodb://user:s3cret@db.invalid:27017/lake")
    monkeypatch.setenv("ELLIPTIO_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one").write_text("local one\n")
    code, out, err = _run(capsys, "cat", "one")
    assert (code, out) == (0, "local one\n")
    assert "the catalog could not say whether an artifact is named 'one'" in err
    assert "ELLIPTIO_OFFLINE" in err
    assert "s3cret" not in err


def test_find_hints_at_fields_no_record_has(
    env: dict[str, str], two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "upload", str(two_files[0]), "--label", "datatype=table", "--infos", '{"seed": 1}')
    code, out, err = _run(capsys, "find", '{"labels.datatyp": "table"}', "--where", "usrname=x")
    assert code == 0
    assert out == "no artifacts match\n"
    assert "no artifact has a field 'labels.datatyp'; did you mean labels.datatype" in err
    assert "no artifact has a field 'usrname'; did you mean username" in err
    code, out, err = _run(capsys, "find", '{"$or": [{"labels.infos.sed": 2}]}', "--format", "json")
    assert (code, out) == (0, "")
    assert "did you mean labels.infos.seed" in err
    # A known field with no match is no misspelling: no hint.
    assert _run(capsys, "find", "--where", "username=nobody")[2] == ""


def test_find_dotted_columns_and_limit_zero(
    env: dict[str, str], two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "upload", str(two_files[0]), "--infos", '{"seed": 3}', "--name", "ds")
    code, out, _ = _run(
        capsys, "find", "--columns", "ref,labels.infos.seed,labels.datatype", "--format", "json"
    )
    assert code == 0
    [record] = [json.loads(line) for line in out.splitlines()]
    assert record == {
        "artifact_id": record["artifact_id"],
        "ref": "ds:v1",
        "labels.infos.seed": 3,
        "labels.datatype": "",
    }
    code, out, err = _run(capsys, "find", "--limit", "0")
    assert (code, out, err) == (0, "no artifacts match\n", "")
    # A negative count is a usage error naming the option (exit 2, as argparse's own).
    for argv in (["find", "--limit", "-3"], ["lineage", "ds", "--depth", "-1"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        out, err = capsys.readouterr()
        assert (stop.value.code, out) == (2, "")
        assert f"argument {argv[-2]}: must be 0 or more, not {argv[-1]}" in err


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["alias", "set", "ds:v1"], "alias set needs a name and an alias"),
        (["alias", "remove", "ds"], "alias remove needs a name and an alias"),
        (["set-labels", "ds"], "set-labels replaces every label of ds"),
        (["upload", "--reference", "s3://b/x", "--log", "a.log"], "--log keeps local log files"),
        # A number out of range is a usage error, as cli.md says (it exited 1, helper-56).
        *(
            (["gc", "--grace-hours", hours], "--grace-hours must be between 0")
            for hours in ("-1", "nan", "inf", "1e308")
        ),
    ],
)
def test_a_command_line_that_cannot_work_is_a_usage_error(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    """docs/cli.md: usage errors exit 2, with one line naming the problem; nothing runs."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    out, err = capsys.readouterr()
    assert (stop.value.code, out) == (2, "")
    assert err == f"elliptio {argv[0]}: error: {problem}" + err.split(problem, 1)[1]
    assert err.count("\n") == 1


def test_a_missing_reference_names_only_what_is_required(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`elliptio download` with no reference said "the following arguments are
    required: REF, relpaths", though its --help says the files default to all."""
    with pytest.raises(SystemExit) as stop:
        main(["download"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.splitlines()[-1] == (
        "elliptio download: error: the following arguments are required: REF"
    )


def test_a_label_given_twice_is_refused_not_dropped(
    env: dict[str, str], two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--label ticket=1 --label ticket=2` kept ticket 2, and `--label infos=...
    --infos ...` kept the --infos object, dropping the other value without a word
    (a second --where never replaces the first either); upload and set-labels."""
    file = str(two_files[0])
    for argv in (
        ["upload", file, "--label", "ticket=1", "--label", "ticket=2"],
        ["upload", file, "--label", 'infos={"a": 1}', "--infos", '{"b": 2}'],
        ["set-labels", "ds", "--label", "project=p", "--label", "project=q"],
        ["set-labels", "ds", "--label", 'infos={"a": 1}', "--infos", '{"b": 2}'],
    ):
        if argv[0] == "set-labels":
            assert _run(capsys, "upload", file, "--name", "ds")[0] == 0
        code, out, err = _run(capsys, *argv)
        assert (code, out) == (1, "")
        assert "InvalidLabelsError" in err
        assert "given twice" in err
    with elliptio.Handler(
        storage=env["ELLIPTIO_STORAGE_URL"], catalog=env["ELLIPTIO_CATALOG_URL"]
    ) as h:
        assert h.count() == 2  # the two uploads of set-labels' target, nothing else
        assert [h.get(ref).metadata.labels.project for ref in ("ds:v1", "ds:v2")] == ["", ""]
    code, _, _ = _run(capsys, "upload", file, "--label", "ticket=1", "--infos", '{"b": 2}')
    assert code == 0


def test_find_csv_and_json_hold_the_libraries_frame(
    env: dict[str, str], two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`find --help`: the table is a summary, csv and json hold find()'s frame."""
    import csv
    import io

    _run(capsys, "upload", str(two_files[0]), "--infos", '{"seed": 3}', "--name", "ds")
    _run(capsys, "upload", str(two_files[1]))
    with elliptio.Handler(
        storage=env["ELLIPTIO_STORAGE_URL"], catalog=env["ELLIPTIO_CATALOG_URL"]
    ) as h:
        frame = h.find()
    columns = ["artifact_id", *frame.columns]
    code, out, _ = _run(capsys, "find", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0
    assert rows[0] == columns
    assert [row[0] for row in rows[1:]] == list(frame.index)
    code, out, _ = _run(capsys, "find", "--format", "json")
    records = [json.loads(line) for line in out.splitlines()]
    assert [list(r) for r in records] == [columns] * 2
    assert [r["ref"] for r in records] == list(frame["ref"])
    code, out, _ = _run(capsys, "find")
    header = out.splitlines()[0].split()
    assert header == ["ref", "created", "username", "datatype", "files", "size", "inputs"]


def test_labels_and_filters_that_look_like_numbers_stay_text(
    env: dict[str, str], two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """--label ticket=123 was read as JSON, so the upload failed (a ticket is text)
    and --where labels.ticket=123 missed the record holding "123"."""
    code, _, err = _run(
        capsys, "upload", str(two_files[0]), "--label", "ticket=123", "--label", "project=2024",
        "--infos", '{"seed": 7}', "--name", "ds",
    )  # fmt: skip
    assert (code, err.count("Error")) == (0, 0)
    with elliptio.Handler(
        storage=env["ELLIPTIO_STORAGE_URL"], catalog=env["ELLIPTIO_CATALOG_URL"]
    ) as h:
        labels = h.get("ds").metadata.labels
    assert (labels.ticket, labels.project, labels.infos) == ("123", "2024", {"seed": 7})
    for where in (
        ["--where", "labels.ticket=123"],
        ["--where", 'labels.ticket="123"'],
        ["--where", 'labels.ticket={"$in": ["123"]}'],
        ["--where", "labels.infos.seed=7", "--where", "name_version=1"],
    ):
        code, out, _ = _run(capsys, "find", *where, "--format", "json", "--columns", "ref")
        assert code == 0
        assert [json.loads(line)["ref"] for line in out.splitlines()] == ["ds:v1"], where
    assert _run(capsys, "find", "--where", "labels.infos.seed=8")[1] == "no artifacts match\n"
    code, _, _ = _run(capsys, "set-labels", "ds", "--label", "dataset=42")
    assert code == 0
    with elliptio.Handler(
        storage=env["ELLIPTIO_STORAGE_URL"], catalog=env["ELLIPTIO_CATALOG_URL"]
    ) as h:
        assert h.get("ds").metadata.labels.dataset == "42"


def test_lineage_refuses_an_output_suffix_it_cannot_write(
    env: dict[str, str],
    two_files: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/lineage.md: the format comes from -o's suffix; `-o l.pdf` wrote the
    text tree into l.pdf and said "wrote l.pdf (text)" (helper-37)."""
    _run(capsys, "upload", str(two_files[0]), "--name", "ds")
    with pytest.raises(SystemExit) as stop:
        main(["lineage", "ds", "-o", str(tmp_path / "l.pdf")])
    assert stop.value.code == 2
    assert "cannot tell a format from" in capsys.readouterr().err
    assert not (tmp_path / "l.pdf").exists()
    assert main(["lineage", "ds", "-o", str(tmp_path / "l.pdf"), "--format", "text"]) == 0
    assert main(["lineage", "ds", "-o", str(tmp_path / "l.mmd")]) == 0
    assert (tmp_path / "l.mmd").read_text().startswith("flowchart")


def test_extended_json_dates_in_filters(
    env: dict[str, str], two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """{"$date": 0} (milliseconds, as Extended JSON allows) was refused as 'a dict',
    and a bad date text was reported as 'not a JSON object' (helper-37)."""
    _run(capsys, "upload", str(two_files[0]), "--name", "ds")
    for since in ('{"$date": 0}', '{"$date": {"$numberLong": "0"}}', '{"$date": "1970-01-01"}'):
        code, out, _ = _run(
            capsys, "find", f'{{"creation_time": {{"$gte": {since}}}}}', "--format", "csv"
        )
        assert code == 0
        assert len(out.splitlines()) == 2, since
    for bad, says in (
        ('{"$date": "garbage"}', "'garbage' is not a date: use ISO 8601"),
        ('{"$date": 1e30}', "milliseconds since 1970 is no date"),
        ('{"$date": [1]}', "give an ISO 8601 text or milliseconds since 1970"),
    ):
        code, _, err = _run(capsys, "find", f'{{"creation_time": {{"$gte": {bad}}}}}')
        assert code == 1
        assert says in err
        assert "not a JSON object" not in err


def test_cat_reads_a_local_file_when_no_catalog_can_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cat notes.txt` (a name that could be a reference) asks the catalog first;
    with catalog none, offline or a catalog that is down it then failed instead of
    reading the local file (helper-38)."""
    import elliptio._urls as urls

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(urls._default, "_value", None)
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "notes.txt").write_text("LOCAL\n")
    for catalog, extra in (
        ("none", {}),
        (f"sqlite:///{tmp_path / 'c.db'}", {"ELLIPTIO_OFFLINE": "1"}),
        ("mongodb://127.0.0.1:9/db?serverSelectionTimeoutMS=200", {}),
    ):
        monkeypatch.setenv("ELLIPTIO_CATALOG_URL", catalog)
        for key, value in extra.items():
            monkeypatch.setenv(key, value)
        code, out, err = _run(capsys, "cat", "notes.txt")
        assert (code, out) == (0, "LOCAL\n"), catalog
        # Said on stderr when a catalog that could hold an artifact of that name
        # did not answer (a SQLite file answers offline: it has none).
        said = "this is the local file ./notes.txt" in err
        assert said == catalog.startswith("mongodb:"), catalog
        for key in extra:
            monkeypatch.delenv(key)


def test_url_commands_protect_the_store_given_by_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--storage/--catalog were ignored by cat URL, ls, cp, mv and rm: `elliptio
    --storage S rm -r S` removed the store, and cat served its files unverified."""
    import elliptio._urls as urls

    for key in ("ELLIPTIO_STORAGE_URL", "ELLIPTIO_CATALOG_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home" / "share"))
    monkeypatch.setattr(urls._default, "_value", None)
    store, catalog = tmp_path / "store", f"sqlite:///{tmp_path / 'c.db'}"
    flags = ["--storage", str(store), "--catalog", catalog]
    src = tmp_path / "g.txt"
    src.write_text("good\n")
    with elliptio.Handler(storage=str(store), catalog=catalog) as h:
        stored = Path(h.upload(src).file.url)
    os.chmod(stored, 0o644)
    stored.write_text("evil\n")
    code, out, err = _run(capsys, *flags, "cat", str(stored))
    assert (code, out) == (1, "")
    assert "IntegrityError" in err
    code, _, err = _run(capsys, *flags, "rm", "-r", str(store))
    assert code == 1
    assert "the elliptio store lies in it" in err or "lies in the elliptio store" in err
    assert stored.exists()


def test_where_null_still_means_missing_or_null(
    env: dict[str, str], two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Only numbers and true/false become text on text fields; null stays null."""
    _run(capsys, "upload", str(two_files[0]))
    code, out, _ = _run(capsys, "find", "--where", "name=null", "--format", "csv")
    assert code == 0
    assert len(out.splitlines()) == 2


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # an earlier test's socket
def test_a_drivers_warning_is_one_line_and_masked(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """PyMongo warns of an unknown URL option in two lines (its source file and
    code) before elliptio's one-line error (helper-54)."""
    url = "mongodb://u:SECRETx@127.0.0.1:9/db?tlsInsecur=true&serverSelectionTimeoutMS=100"
    code, out, err = _run(capsys, "--catalog", url, "find")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("elliptio: warning: UserWarning: Unknown option")
    assert lines[1].startswith("elliptio: error: ")
    assert "SECRETx" not in err
    assert ".py:" not in err


def _interrupt_when(proc: subprocess.Popen[str], reached: Callable[[], bool]) -> tuple[str, str]:
    """Send Ctrl-C (SIGINT) to ``proc`` once ``reached()``; its stdout and stderr."""
    for _ in range(1200):  # a bound, not a timing: the request is stalled meanwhile
        if reached() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=120)


def _s3_cli_env(env: dict[str, str], proxy: FaultProxy) -> dict[str, str]:
    # Files s3fs writes go up in parts of 5 MiB.
    options = {"endpoint_url": proxy.url, "default_block_size": 5 * 2**20, **S3_CREDENTIALS}
    return {
        **os.environ,
        **env,
        "ELLIPTIO_STORAGE_URL": f"s3://{S3_BUCKET}/lake",
        "ELLIPTIO_STORAGE_OPTIONS": json.dumps(options),
        "ELLIPTIO_PART_SIZE": str(5 * 2**20),
        "ELLIPTIO_PROGRESS": "false",
    }


def test_ctrl_c_during_an_upload_leaves_nothing(
    env: dict[str, str], s3_endpoint: str, tmp_path: Path
) -> None:
    """Ctrl-C while a file goes up: exit 130, no traceback, and the upload cleans
    up before the process ends (it left the file in the store and its lease open,
    for gc a day later)."""
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(1000))
    direct = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True, **S3_CREDENTIALS)
    with FaultProxy(s3_endpoint) as proxy:
        proxy.add("slow", op="PutObject", key=r"data\.bin", delay=60)
        run_env = _s3_cli_env(env, proxy)
        proc = subprocess.Popen(
            [sys.executable, "-m", "elliptio", "upload", str(data), "--name", "ds"],
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = _interrupt_when(proc, lambda: proxy.served("PutObject") >= 1)
        assert (proc.returncode, out, err) == (130, "", "")
        direct.invalidate_cache()
        assert direct.find(f"{S3_BUCKET}/lake") == []  # the file moto took was removed
        gc = subprocess.run(
            [sys.executable, "-m", "elliptio", "gc", "--grace-hours", "0"],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert gc.stdout.splitlines() == [
        "0 orphaned prefixes, 0 folders of deleted artifacts holding files, 0 removed, "
        "0 stale leases, 0 incomplete uploads"
    ]  # the lease was closed, no multipart upload left open


def test_ctrl_c_during_cp_leaves_no_part_of_the_file(
    env: dict[str, str], s3_endpoint: str, tmp_path: Path
) -> None:
    """Ctrl-C while `cp` writes to S3: the multipart upload is aborted, not
    completed with the parts sent so far (the target held a cut file)."""
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(12 * 2**20))  # three parts of 5 MiB
    direct = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True, **S3_CREDENTIALS)
    with FaultProxy(s3_endpoint) as proxy:
        proxy.add("slow", op="UploadPart", delay=60, every=2, times=None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "elliptio", "cp", str(data), f"s3://{S3_BUCKET}/out/d.bin"],
            env=_s3_cli_env(env, proxy),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = _interrupt_when(proc, lambda: proxy.faults["slow"] >= 1)
    assert (proc.returncode, out, err) == (130, "", "")
    direct.invalidate_cache()
    assert not direct.exists(f"{S3_BUCKET}/out/d.bin")
    assert direct.call_s3("list_multipart_uploads", Bucket=S3_BUCKET).get("Uploads", []) == []


def _cut_after_the_first_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every copy of the URL tools fail once its first chunk is written."""
    import elliptio._urls as urls

    real = urls.copy_hashing

    def failing(readinto: Any, write: Any, *args: Any) -> Any:
        def cut(view: Any) -> None:
            write(view)
            raise OSError("the source went away")

        return real(readinto, cut, *args)

    monkeypatch.setattr(urls, "copy_hashing", failing)


def test_a_copy_that_fails_halfway_leaves_no_part_of_the_file(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy to local disk that fails after its first chunk: no cut file at the
    target, which looked copied."""

    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3 * 2**20))
    _cut_after_the_first_chunk(monkeypatch)
    target = tmp_path / "out" / "d.bin"
    fs = fsspec.filesystem("memory")
    fs.pipe(f"/src-{tmp_path.name}/d.bin", data.read_bytes())
    assert main(["cp", f"memory://src-{tmp_path.name}/d.bin", str(target)]) == 1
    assert not target.exists()
    assert main(["cp", str(data), f"memory://dst-{tmp_path.name}/d.bin"]) == 1
    assert not fs.exists(f"/dst-{tmp_path.name}/d.bin")


def test_a_local_copy_that_fails_halfway_leaves_no_part_of_the_file(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local-to-local copy (fsspec's cp_file) cut by a full disk: no cut file at
    the target either."""
    import shutil

    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(2**20))

    def full_disk(src: str, dst: str, **kwargs: Any) -> str:
        Path(dst).write_bytes(Path(src).read_bytes()[: 2**19])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    target = tmp_path / "out" / "d.bin"
    assert main(["cp", str(data), str(target)]) == 1
    assert not target.exists()


def test_a_local_copy_that_fails_never_removes_what_was_at_the_target(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local-to-local copy that failed removed its target whatever the failure:
    `cp a.txt a.txt` (shutil's "same file" error) deleted a.txt, and a copy whose
    source could not be read deleted the file the target already held."""
    import shutil

    data = tmp_path / "a.txt"
    data.write_bytes(b"precious")
    assert main(["cp", str(data), str(data)]) == 1
    assert data.read_bytes() == b"precious"
    target = tmp_path / "b.txt"
    target.write_bytes(b"kept")

    def unreadable(src: str, dst: str, **kwargs: Any) -> str:
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(shutil, "copyfile", unreadable)
    assert main(["cp", str(data), str(target)]) == 1
    assert target.read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


def test_a_copy_refused_before_writing_leaves_the_target_as_it_was(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A local copy that fails before it writes (its source missing or unreadable,
    the target the source itself) removed the target anyway: ``cp a a`` deleted
    the only copy of ``a``; a missing source took the file it was to replace; a
    recursive copy took the target's own file where a source file was broken."""
    only = tmp_path / "only.txt"
    only.write_text("the only copy")
    assert main(["cp", str(only), str(only)]) == 1
    assert only.read_text() == "the only copy"
    kept = tmp_path / "kept.txt"
    kept.write_text("kept")
    assert main(["cp", str(tmp_path / "missing.txt"), str(kept)]) == 1
    assert kept.read_text() == "kept"
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    (source / "b.txt").symlink_to(tmp_path / "nowhere")  # listed, not copied
    target = tmp_path / "dst" / "src"
    target.mkdir(parents=True)
    (target / "b.txt").write_text("the target's own")
    assert main(["cp", "-r", str(source), str(tmp_path / "dst")]) == 1
    assert (target / "b.txt").read_text() == "the target's own"


def test_a_locale_that_is_not_utf8_reads_what_the_cache_keeps(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Under LANG=C without Python's UTF-8 mode (a minimal container, an old
    system) the cache's records, written as UTF-8, were read in the locale's
    encoding: `show` of a record with a non-ASCII label failed with a bare
    UnicodeDecodeError, and a latin-1 locale read the labels back garbled."""
    data = tmp_path / "data.txt"
    data.write_text("x\n")
    run_env = {
        **os.environ,
        **env,
        "LC_ALL": "C",
        "LANG": "C",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONIOENCODING": "utf-8",
    }

    def cli(*argv: str, **extra: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "elliptio", *argv],
            env={**run_env, **extra},
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    cli("upload", str(data), "--name", "ds", "--label", 'project="caf\\u00e9 \\u2615"')
    for _ in range(2):  # the record kept in the cache, then compared with it
        assert json.loads(cli("show", "ds"))["labels"]["project"] == "café ☕"
    shown = cli("show", "ds", ELLIPTIO_OFFLINE="1")  # from the cache alone
    assert json.loads(shown)["labels"]["project"] == "café ☕"


def test_a_local_copy_over_a_file_keeps_its_mode_and_writes_through_a_link(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Since the local copy became a temporary file renamed over the target, an
    overwritten file came back with a new file's mode (0644 for a 0600 file that
    held a secret: readable by every user) and a symlink at the target was
    replaced by a file, the file it named left as it was. `cp` keeps the mode of
    the file it overwrites and writes through the link."""
    source = tmp_path / "new.txt"
    source.write_bytes(b"new")
    private = tmp_path / "private.txt"
    private.write_bytes(b"old")
    private.chmod(0o600)
    assert main(["cp", str(source), str(private)]) == 0
    assert private.read_bytes() == b"new"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    real = tmp_path / "real.txt"
    real.write_bytes(b"old")
    link = tmp_path / "link.txt"
    link.symlink_to(real.name)
    assert main(["cp", str(source), str(link)]) == 0
    assert link.is_symlink()
    assert real.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


def test_a_copy_over_a_private_file_is_never_readable_by_others_while_written(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temporary file beside a 0600 target took the target's mode only once
    whole: while the bytes were written it had a new file's mode (0644), so any
    user could open it then and read the secret going into a private file."""
    import fsspec

    import elliptio._urls as urls

    with fsspec.open("memory://h95/secret.txt", "wb") as f:
        f.write(b"new secret")
    private = tmp_path / "private.txt"
    private.write_bytes(b"old")
    private.chmod(0o600)
    modes: list[int] = []
    real = urls.copy_hashing

    def watching(readinto: Any, write: Any, *args: Any) -> Any:
        def seen(view: Any) -> None:
            modes.extend(stat.S_IMODE(p.stat().st_mode) for p in tmp_path.glob(".*.part"))
            write(view)

        return real(readinto, seen, *args)

    monkeypatch.setattr(urls, "copy_hashing", watching)
    assert main(["cp", "memory://h95/secret.txt", str(private)]) == 0
    assert private.read_bytes() == b"new secret"
    assert modes
    assert all(mode == 0o600 for mode in modes)


def test_a_copy_from_another_store_that_fails_halfway_leaves_what_was_at_the_target(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy streamed onto local disk (from S3, memory, or an artifact's file since
    it reads through the file's own open, checked as it is read) truncated the
    file at the target, then removed it when the copy failed halfway: a lost
    connection or a file changed in the store took the file the target held."""

    _cut_after_the_first_chunk(monkeypatch)
    target = tmp_path / "kept.bin"
    target.write_bytes(b"kept")
    fs = fsspec.filesystem("memory")
    fs.pipe(f"/src-{tmp_path.name}/d.bin", os.urandom(2**16))
    assert main(["cp", f"memory://src-{tmp_path.name}/d.bin", str(target)]) == 1
    assert target.read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == []


def test_a_local_copy_onto_a_device_writes_into_it(env: dict[str, str], tmp_path: Path) -> None:
    """Since the local copy became a temporary file renamed over the target,
    `elliptio cp a.txt /dev/stdout` failed (no file could be made beside
    /proc/<pid>/fd/pipe:[…]), and a device at the target (/dev/null run as
    root) was replaced by a plain file. A target that is not a plain file is
    written into, as cp does."""
    source = tmp_path / "a.txt"
    source.write_bytes(b"to stdout")
    done = subprocess.run(
        [sys.executable, "-m", "elliptio", "cp", str(source), "/dev/stdout"],
        capture_output=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, b"to stdout")
    if os.geteuid() == 0:  # a device of one's own (mknod needs root)
        device = tmp_path / "null"
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        assert main(["cp", str(source), str(device)]) == 0
        assert stat.S_ISCHR(device.stat().st_mode)


def test_a_local_copy_over_a_writable_file_in_a_folder_it_may_not_write(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file this user may write in a folder it may not (a shared output file):
    `cp` writes into it; the temporary file beside it could not be made, so the
    copy failed, saying "cannot download to"."""
    import tempfile

    source = tmp_path / "a.txt"
    source.write_bytes(b"new")
    target = tmp_path / "shared" / "out.txt"
    target.parent.mkdir()
    target.write_bytes(b"old")

    def unwritable_folder(*args: Any, **kwargs: Any) -> Any:  # as root could not see it
        raise PermissionError(13, "Permission denied", str(target.parent))

    monkeypatch.setattr(tempfile, "mkstemp", unwritable_folder)
    assert main(["cp", str(source), str(target)]) == 0
    assert target.read_bytes() == b"new"


def test_uploading_a_missing_path_says_what_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """'elliptio upload nope' said only that the path does not exist, with no next
    step (helper-97)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'c.db'}")
    assert main(["upload", "nope.csv"]) == 1
    err = capsys.readouterr().err
    assert f"local path {str(tmp_path / 'nope.csv')!r} does not exist; " in err
    assert "check its spelling" in err
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.csv"))
