"""The command line: every command through main() and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from elliptio._catalog.filters import MAX_DEPTH
from elliptio._cli import main


@pytest.fixture
def env(cli_env: dict[str, str]) -> dict[str, str]:
    return cli_env


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "train.txt").write_text("path,class\na.png,0\n")
    (docs / "test.txt").write_text("path,class\nb.png,1\n")
    return [docs / "train.txt", docs / "test.txt"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_story_through_the_cli(
    env: dict[str, str], files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys,
        "upload",
        *map(str, files),
        "--label",
        "datatype=annotation_file",
        "--infos",
        '{"seed": 1}',
    )
    assert code == 0
    andy = out.strip()
    assert andy.startswith("artifact_")

    code, out, _ = _run(capsys, "find", "--where", "labels.datatype=annotation_file")
    assert code == 0
    assert andy in out
    code, out, _ = _run(capsys, "find", '{"labels.infos.seed": 1}', "--format", "json")
    assert json.loads(out.splitlines()[0])["artifact_id"] == andy
    since = '{"creation_time": {"$gte": {"$date": "2020-01-01T00:00:00Z"}}}'
    assert andy in _run(capsys, "find", since)[1]
    until = '{"creation_time": {"$lt": {"$date": "2020-01-01T00:00:00Z"}}}'
    assert _run(capsys, "find", until)[1] == "no artifacts match\n"
    code, out, _ = _run(capsys, "find", "--where", "username=nobody", "--format", "csv")
    assert out.splitlines()[0].startswith("artifact_id")

    code, out, _ = _run(capsys, "show", andy)
    record = json.loads(out)
    assert record["file_relpaths"] == ["train.txt", "test.txt"]
    assert "python_packages" not in record

    code, out, _ = _run(capsys, "cat", andy, "test.txt")
    assert out == "path,class\nb.png,1\n"
    code, out, _ = _run(capsys, "download", andy, "-o", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "train.txt").read_text() == "path,class\na.png,0\n"

    code, out, _ = _run(capsys, "verify", andy)
    assert code == 0
    assert f"{andy} ok (2 files)" in out

    code, out, _ = _run(capsys, "lineage", andy, "--format", "mermaid")
    assert out.startswith("flowchart LR")
    code, out, _ = _run(capsys, "lineage", andy, "--format", "dot")
    assert out.startswith("digraph")
    code, out, _ = _run(capsys, "lineage", andy)
    assert out.startswith(andy)
    assert _run(capsys, "lineage", andy, "--format", "text")[1] == out


def test_lineage_pictures(
    env: dict[str, str], files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' is not installed (.ci/run installs it)")
    raw = _run(capsys, "upload", str(files[0]), "--name", "raw-set")[1].strip()
    code, out, _ = _run(capsys, "lineage", "raw-set:v1", "--format", "svg")
    assert code == 0
    assert "<svg" in out
    assert ">raw&#45;set:v1</text>" in out
    code, _, err = _run(capsys, "lineage", raw, "-o", str(tmp_path / "g.svg"))
    assert (code, err) == (0, f"wrote {tmp_path / 'g.svg'} (svg)\n")
    assert ">raw&#45;set:v1</text>" in (tmp_path / "g.svg").read_text()
    code, _, _ = _run(capsys, "lineage", raw, "--format", "png", "-o", str(tmp_path / "g.out"))
    assert (tmp_path / "g.out").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    _run(capsys, "lineage", raw, "-o", str(tmp_path / "g.png"))
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    _run(capsys, "lineage", raw, "-o", str(tmp_path / "g.mmd"))
    assert (tmp_path / "g.mmd").read_text().startswith("flowchart LR")
    _run(capsys, "lineage", raw, "-o", str(tmp_path / "g.txt"))
    text = (tmp_path / "g.txt").read_text()
    assert text.startswith("raw-set:v1 ")
    assert text.endswith(" [train.txt]\n")


def test_lineage_picture_without_graphviz(
    env: dict[str, str],
    files: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = _run(capsys, "upload", str(files[0]))[1].strip()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on it
    code, out, err = _run(capsys, "lineage", raw, "--format", "svg", "-o", str(tmp_path / "g.svg"))
    assert (code, out, err.count("\n")) == (1, "", 1)
    assert err.startswith("elliptio: error: GraphvizNotFoundError: ")
    assert "apt-get install graphviz" in err
    assert "brew install graphviz" in err
    assert "--format text, mermaid or dot" in err
    assert not (tmp_path / "g.svg").exists()
    code, out, _ = _run(capsys, "lineage", raw, "--format", "dot")
    assert (code, out.startswith("digraph")) == (0, True)


def test_url_commands(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.txt"
    src.write_text("hello")
    assert _run(capsys, "cp", str(src), "memory:///cli/a.txt")[0] == 0
    assert _run(capsys, "exists", "memory:///cli/a.txt") == (0, "true\n", "")
    assert _run(capsys, "ls", "memory:///cli")[1] == "memory:///cli/a.txt\n"
    assert _run(capsys, "cat", "memory:///cli/a.txt")[1] == "hello"
    assert _run(capsys, "mv", "memory:///cli/a.txt", "memory:///cli/b.txt")[0] == 0
    assert _run(capsys, "exists", "memory:///cli/a.txt") == (1, "false\n", "")
    assert _run(capsys, "rm", "memory:///cli/b.txt")[0] == 0
    _code, out, _ = _run(capsys, "cache", "size", "--bytes")
    assert int(out) > 0
    assert _run(capsys, "cache", "size")[1].strip().endswith(" B")  # a unit, for people
    assert _run(capsys, "cache", "prune")[0] == 0
    assert _run(capsys, "cache", "prune", "--days", "1")[1] == "freed 0 B\n"
    # --days is for prune: 'clear --days 3650' cleared everything (helper-52).
    with pytest.raises(SystemExit) as stopped:
        _run(capsys, "cache", "clear", "--days", "3650")
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "--days is for prune" in err
    assert int(_run(capsys, "cache", "size", "--bytes")[1]) > 0
    assert _run(capsys, "cache", "clear")[1].startswith("freed ")
    assert _run(capsys, "cache", "size")[1] == "0 B\n"
    assert _run(capsys, "cache", "size", "--bytes")[1] == "0\n"


def test_maintenance_commands(
    env: dict[str, str], files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    art = _run(capsys, "upload", str(files[0]))[1].strip()
    assert _run(capsys, "reindex")[1].startswith("added 0, unchanged 1")
    _code, out, err = _run(capsys, "gc", "--delete")
    assert "dry run" in err
    assert "0 orphaned prefixes" in out
    assert _run(capsys, "verify", art)[0] == 0


def test_gc_says_why_an_open_upload_was_not_aborted(
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An open upload gc leaves under --delete (no start time from the store): the
    line says why, and what ends it (helper-94)."""
    from elliptio._backends import Backend
    from elliptio._layout import artifact_prefix, new_artifact_id

    prefix = artifact_prefix(
        str(tmp_path / "store"), datetime(2020, 1, 1, tzinfo=UTC), "w", new_artifact_id()
    )

    async def listed(self: Backend, path: str) -> list[tuple[str, str, datetime | None]]:
        return [(f"{prefix}/big.bin", "upload-1", None)]

    monkeypatch.setattr(Backend, "open_uploads", listed)
    code, out, _ = _run(capsys, "gc", "--delete", "--yes")
    assert code == 0
    [line] = [line for line in out.splitlines() if "big.bin" in line]
    assert line.startswith("incomplete upload of ")
    assert "not aborted: the store gave no start time" in line
    assert "lifecycle rule" in line


def test_config_masks_secrets(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "ELLIPTIO_STORAGE_OPTIONS", '{"key": "AKIAPLANTED", "secret": "s3cr3t-planted"}'
    )
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", "sqlite:////tmp/x.db")
    code, out, _ = _run(capsys, "config")
    assert code == 0
    assert "storage_url" in out
    assert "planted" not in out.lower()
    # The effective values, defaults included (docs/configuration.md's table).
    assert "mongodb_database = elliptio\n" in out
    assert "mongodb_collection = artifacts\n" in out


def test_errors_are_one_line_and_exit_1(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = _run(capsys, "show", "artifact_00000000-0000-4000-8000-000000000000")
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("elliptio: error: ArtifactNotFoundError")
    code, _, err = _run(capsys, "find", '{"$where": "1"}')
    assert code == 1
    assert "$where" in err
    code, _, err = _run(capsys, "find", "--where", "novalue")  # a value: its typed error
    assert code == 1
    assert err.startswith("elliptio: error: QueryError")
    code, _, err = _run(capsys, "--debug", "show", "nope")  # --debug: the traceback
    assert code == 1
    assert err.startswith("Traceback")
    assert err.splitlines()[-1].startswith("elliptio._errors.ArtifactNotFoundError:")


def test_a_filter_nested_too_deep_is_one_line(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for depth in (17, 60, 600, 100_000):
        deep = '{"$and": [' * depth + '{"username": "andy"}' + "]}" * depth
        code, out, err = _run(capsys, "find", deep)
        assert (code, out) == (1, "")
        assert err.count("\n") == 1
        assert err.startswith("elliptio: error: QueryError:")
        assert f"{MAX_DEPTH} levels" in err or "too deep to be read as JSON" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["upload"])
    assert info.value.code == 2


@pytest.mark.parametrize(
    "command",
    [
        "upload", "find", "show", "download", "cat", "lineage", "ls", "exists", "cp",
        "mv", "rm", "cache", "reindex", "gc", "verify", "config", "alias", "names",
    ],
)  # fmt: skip
def test_every_command_has_help_with_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_every_command_as_a_real_subprocess(
    env: dict[str, str], files: list[Path], tmp_path: Path
) -> None:
    environ = {**os.environ, **env}

    def cli(*argv: str, ok: bool = True) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "elliptio", *argv],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (result.returncode == 0) is ok, result.stderr
        return result.stdout

    art = cli("upload", str(files[1])).strip()
    assert art in cli("find", "--where", f"artifact_id={art}")
    assert json.loads(cli("show", art))["artifact_id"] == art
    assert cli("cat", art, "test.txt") == "path,class\nb.png,1\n"
    cli("download", art, "-o", str(tmp_path / "sub"))
    assert (tmp_path / "sub" / "test.txt").exists()
    assert cli("lineage", art, "--format", "dot").startswith("digraph")
    local = tmp_path / "x.txt"
    local.write_text("x")
    cli("cp", str(local), str(tmp_path / "y.txt"))
    cli("mv", str(tmp_path / "y.txt"), str(tmp_path / "z.txt"))
    assert cli("exists", str(tmp_path / "z.txt")) == "true\n"
    assert str(tmp_path / "z.txt") in cli("ls", str(tmp_path))
    cli("rm", str(tmp_path / "z.txt"))
    cli("exists", str(tmp_path / "z.txt"), ok=False)
    assert cli("cache", "size", "--bytes").strip().isdigit()
    assert cli("reindex").startswith("added 0")
    assert "orphaned" in cli("gc")
    assert "ok" in cli("verify", art)
    assert "catalog_url" in cli("config")
    named = cli("upload", str(files[0]), "--name", "train-set").strip()
    assert json.loads(cli("alias", "set", "train-set:v1", "production")) == {"production": "v1"}
    assert json.loads(cli("show", "train-set:production"))["artifact_id"] == named
    assert json.loads(cli("alias", "list", "train-set")) == {"production": "v1"}
    assert "train-set" in cli("names")
    assert cli("cat", "train-set:latest", "train.txt") == "path,class\na.png,0\n"
    assert json.loads(cli("alias", "remove", "train-set", "production")) == {}


def test_names_versions_and_aliases(
    env: dict[str, str], files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "upload", str(files[0]), "--name", "train-set")
    assert code == 0
    v1 = out.strip()
    assert "committed as train-set:v1" in err
    v2 = _run(capsys, "upload", str(files[1]), "--name", "train-set")[1].strip()
    assert json.loads(_run(capsys, "show", "train-set")[1])["artifact_id"] == v2
    assert json.loads(_run(capsys, "show", "train-set:v1")[1])["artifact_id"] == v1
    assert _run(capsys, "alias", "set", "train-set:v1", "production")[1] == (
        '{"production": "v1"}\n'
    )
    assert _run(capsys, "alias", "set", "train-set:v2", "production")[1] == (
        '{"production": "v2"}\n'
    )
    code, out, _ = _run(capsys, "names", "--format", "json")
    row = json.loads(out)
    assert (row["name"], row["versions"], row["latest"]) == ("train-set", 2, "v2")
    assert row["aliases"] == {"production": "v2"}
    assert '{"production": "v2"}' in _run(capsys, "names")[1]
    code, out, _ = _run(capsys, "download", "train-set:production", "-o", str(tmp_path / "d"))
    assert code == 0
    assert (tmp_path / "d" / "test.txt").read_text() == files[1].read_text()
    assert _run(capsys, "lineage", "train-set:v1", "--format", "mermaid")[0] == 0
    assert _run(capsys, "verify", "train-set:v1", "train-set:latest")[0] == 0
    code, _, err = _run(capsys, "alias", "set", "train-set:v1", "latest")
    assert code == 1
    assert "InvalidNameError" in err
    assert "reserved" in err
    code, _, err = _run(capsys, "show", "train-set:v7")
    assert (code, err.count("\n")) == (1, 1)
    assert "no version v7 of 'train-set'" in err
    code, _, err = _run(capsys, "alias", "remove", "train-set", "staging")
    assert code == 1
    assert "has no alias 'staging'" in err
    code, out, err = _run(capsys, "alias", "list", "trian-set")
    assert (code, out, err.count("\n")) == (1, "", 1)
    assert "no artifact named 'trian-set'" in err
    # Identical content is referenced unless --no-dedup.
    again = _run(capsys, "upload", str(files[0]), "--no-dedup", "--no-progress")[1].strip()
    record = json.loads(_run(capsys, "show", again)[1])
    assert record["files"][0]["url"].startswith(record["remote_root"])
    deduped = json.loads(_run(capsys, "show", _run(capsys, "upload", str(files[0]))[1].strip())[1])
    assert deduped["files"][0]["url"] == json.loads(_run(capsys, "show", v1)[1])["files"][0]["url"]


def test_progress_flag_forces_bars(
    env: dict[str, str],
    files: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = _run(capsys, "upload", *map(str, files), "--progress")
    assert code == 0
    assert f"upload {out.strip()}" in err
    assert "2/2" in err
    code, _, err = _run(capsys, "download", out.strip(), "-o", str(tmp_path / "d"), "--progress")
    assert code == 0
    assert f"download {out.strip()}" in err  # one bar for the artifact, as upload shows
    assert "2/2" in err
    code, _, err = _run(
        capsys, "download", out.strip(), "test.txt", "-o", str(tmp_path / "e"), "--progress"
    )
    assert code == 0
    assert "download test.txt" in err
    monkeypatch.setenv("ELLIPTIO_PROGRESS", "true")  # the flag wins over the setting
    code, out, err = _run(capsys, "upload", str(files[0]), "--no-progress", "--no-dedup")
    assert code == 0
    assert "upload artifact_" not in err


def test_a_folder_with_a_symlink_out_of_it_uploads_nothing(
    env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import elliptio as eio

    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "metrics.json").write_text("{}")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the store")
    (folder / "leak.txt").symlink_to(secret)
    store = Path(env["ELLIPTIO_STORAGE_URL"])

    def nothing_written() -> None:
        assert not store.exists() or not [p for p in store.rglob("*") if p.is_file()]
        with eio.Handler() as h:
            assert h.find().empty

    with eio.Handler() as h, pytest.raises(eio.InvalidPathError, match="outside") as info:
        h.upload(folder)
    assert str(folder / "leak.txt") in str(info.value)
    assert str(secret) in str(info.value)
    nothing_written()

    code, out, err = _run(capsys, "upload", str(folder))
    assert code == 1
    assert out == ""
    assert f"InvalidPathError: '{folder / 'leak.txt'}' is a symlink to '{secret}'" in err
    assert "explicitly" in err
    nothing_written()
    # Given explicitly, the same file is the user's choice.
    code, out, _ = _run(capsys, "upload", str(folder / "leak.txt"), str(folder / "metrics.json"))
    assert code == 0
    assert out.startswith("artifact_")


def _strict_json(line: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(line, parse_constant=refuse)


def test_repeated_where_conditions_all_hold(
    env: dict[str, str], files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A second --where on a field, or one on a field of the JSON filter,
    replaced the first silently (helper-54)."""
    only_a = _run(capsys, "upload", str(files[0]), "--infos", '{"tags": ["a"]}')[1].strip()
    both = _run(capsys, "upload", str(files[1]), "--infos", '{"tags": ["a", "b"]}')[1].strip()
    for argv in (
        ["--where", "labels.infos.tags=a", "--where", "labels.infos.tags=b"],
        ["--where", "labels.infos.tags=b", "--where", "labels.infos.tags=a"],
        ['{"labels.infos.tags": "b"}', "--where", "labels.infos.tags=a"],
        ['{"labels.infos.tags": "a"}', "--where", "labels.infos.tags=b"],
    ):
        code, out, _ = _run(capsys, "find", *argv, "--format", "json")
        assert code == 0
        assert [json.loads(line)["artifact_id"] for line in out.splitlines()] == [both], argv
    code, out, _ = _run(capsys, "find", "--where", "labels.infos.tags=a", "--format", "json")
    assert {json.loads(line)["artifact_id"] for line in out.splitlines()} == {only_a, both}


def test_json_format_is_json_lines_of_plain_json(
    env: dict[str, str], files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # An int above 2**53 in a column with gaps came back rounded (helper-54).
    infos = '{"ratio": 0.25, "big": 1e300, "neg": -2.5, "seed": 7, "huge": 9007199254740993}'
    named = _run(capsys, "upload", str(files[0]), "--name", "train-set", "--infos", infos)[1]
    unnamed = _run(capsys, "upload", str(files[1]), "--label", "datatype=model")[1]
    named, unnamed = named.strip(), unnamed.strip()
    _run(capsys, "alias", "set", "train-set:v1", "production")
    for columns in ([], ["--columns", "name,name_version,labels,creation_time"]):
        code, out, _ = _run(capsys, "find", "--format", "json", *columns)
        assert code == 0
        records = {r["artifact_id"]: r for r in map(_strict_json, out.splitlines())}
        assert set(records) == {named, unnamed}
        assert (records[unnamed]["name"], records[unnamed]["name_version"]) == (None, None)
        assert records[named]["name"] == "train-set"
        assert records[named]["name_version"] == 1
        assert isinstance(records[named]["name_version"], int)
        for key, value in json.loads(infos).items():  # labels as dotted columns
            assert records[named][f"labels.infos.{key}"] == value
            assert records[unnamed][f"labels.infos.{key}"] is None
        assert records[unnamed]["labels.datatype"] == "model"
        for record in records.values():
            when = datetime.fromisoformat(record["creation_time"])
            assert "T" in record["creation_time"]
            assert when.utcoffset() == timedelta(0)
    code, out, _ = _run(capsys, "find", "--format", "csv", "--columns", "labels.infos.huge")
    assert code == 0
    assert f"{named},9007199254740993" in out.splitlines()
    # The table shows the same whole numbers (it showed 7.0, NaN and 9.007199e+15;
    # helper-87).
    code, out, _ = _run(capsys, "find", "--columns", "labels.infos.seed,labels.infos.huge")
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert rows[named] == ["7", "9007199254740993"]
    assert rows[unnamed][0] == "<NA>"
    code, out, _ = _run(capsys, "names", "--format", "json")
    assert code == 0
    assert [_strict_json(line) for line in out.splitlines()] == [
        {"name": "train-set", "versions": 1, "latest": "v1", "aliases": {"production": "v1"}}
    ]


@pytest.mark.parametrize("command", ["find", "names"])
def test_help_says_json_is_json_lines(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "JSON Lines" in " ".join(capsys.readouterr().out.split())
