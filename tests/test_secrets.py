"""Planted secrets never surface: records, sidecars, catalogs, logs, errors, CLI, DataFrames.

Each test plants known credentials where users put them (argv, URLs, storage
options, ``ELLIPTIO_*`` variables), drives elliptio through its public API and
CLI, and then searches every byte elliptio produced for them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from elliptio._cli import main
from tests.conftest import S3_BUCKET

ARGV_SECRETS = {
    "--password=PLANTED_ARGV_PASSWORD": "PLANTED_ARGV_PASSWORD",
    "token=PLANTED_ARGV_TOKEN": "PLANTED_ARGV_TOKEN",
    "--db-uri=mongodb://andy:PLANTED_ARGV_URI_PW@db.example/x": "PLANTED_ARGV_URI_PW",
    "https://PLANTED_ARGV_GITHUB_PAT@github.com/o/r.git": "PLANTED_ARGV_GITHUB_PAT",
    "+db.secret=PLANTED_ARGV_HYDRA": "PLANTED_ARGV_HYDRA",
    "Authorization: Bearer PLANTED_ARGV_BEARER": "PLANTED_ARGV_BEARER",
    # A URL that is the whole argument, its password not percent-encoded.
    "mongodb://andy:a b#PLANTED_ARGV_RAW_PW@db.example/x": "PLANTED_ARGV_RAW_PW",
    # Options given as JSON text.
    '--opts={"aws_secret_access_key": "PLANTED_ARGV_JSON"}': "PLANTED_ARGV_JSON",
    # A secret assignment in a list, a command line given as one argument, and a
    # URL's path parameter.
    "--opts=a=1,password=PLANTED_ARGV_LISTED": "PLANTED_ARGV_LISTED",
    "--extra-args=--epochs 3 --api-key PLANTED_ARGV_NESTED": "PLANTED_ARGV_NESTED",
    "curl -H 'Authorization: Bearer PLANTED_ARGV_NESTED_HEADER' x": "PLANTED_ARGV_NESTED_HEADER",
    "https://h.example/x;token=PLANTED_ARGV_PATH_PARAM": "PLANTED_ARGV_PATH_PARAM",
    # Credentials that go by no secret name (curl, mysql, JDBC, Oracle, pip --proxy).
    "--user=andy:PLANTED_ARGV_CURL_USER": "PLANTED_ARGV_CURL_USER",
    "mysql -uandy -pPLANTED_ARGV_MYSQL shop": "PLANTED_ARGV_MYSQL",
    "jdbc:postgresql://andy:a#PLANTED_ARGV_JDBC@db.example/x": "PLANTED_ARGV_JDBC",
    "scott/PLANTED_ARGV_ORACLE@orcl": "PLANTED_ARGV_ORACLE",
    "andy:PLANTED_ARGV_PROXY@proxy.example:3128": "PLANTED_ARGV_PROXY",
}
# `--api-key VALUE`: the secret is the next element.
SPLIT_SECRET = "PLANTED_ARGV_SPLIT_KEY"
ENV_OPTION_SECRET = "PLANTED_ENV_OPTION_SECRET"
ENV_NESTED_SECRET = "PLANTED_ENV_NESTED_TOKEN"
MONGO_PASSWORD = "PLANTED_MONGO_PASSWORD"
MONGO_TOKEN = "PLANTED_MONGO_SESSION_TOKEN"
S3_SECRET = "PLANTED_S3_SECRET_ACCESS_KEY"
URL_SECRET = "PLANTED_URL_SECRET"

ALL_PLANTED = [
    *ARGV_SECRETS.values(),
    SPLIT_SECRET,
    ENV_OPTION_SECRET,
    ENV_NESTED_SECRET,
    MONGO_PASSWORD,
    MONGO_TOKEN,
    S3_SECRET,
    URL_SECRET,
]


def _leaks(texts: Iterable[str | bytes], secrets: Iterable[str] = ALL_PLANTED) -> list[str]:
    found = []
    for text in texts:
        data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
        found += [s for s in secrets if s.encode() in data]
    return sorted(set(found))


def _all_files(*roots: Path) -> list[bytes]:
    return [
        p.read_bytes() for root in roots if root.exists() for p in root.rglob("*") if p.is_file()
    ]


CHILD = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    import elliptio as eio

    with eio.Handler() as h:
        print(repr(h))
        art = h.upload(["input.txt"], labels={"project": "secrets", "infos": {"seed": 1}})
        with h.new("out.txt") as new:
            new.file.write_text("derived")
        got = h.get(art.artifact_id)
        print(got.file.read_text())
        print(got.metadata.model_dump_json())
        frame = h.find({}, include_packages=True)
        print(frame.to_csv())
        print(frame.to_json(default_handler=str, date_format="iso"))
        print("ARGV", got.metadata.argv)
    """
)


def _child_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ELLIPTIO_STORAGE_URL=str(tmp_path / "store"),
        ELLIPTIO_CATALOG_URL=f"sqlite:///{tmp_path / 'catalog.db'}",
        ELLIPTIO_CACHE_DIR=str(tmp_path / "cache"),
        # fsspec's local filesystem accepts (and ignores) extra options.
        ELLIPTIO_STORAGE_OPTIONS=json.dumps(
            {
                "auto_mkdir": True,
                "client_secret": ENV_OPTION_SECRET,
                "client_kwargs": {"session_token": ENV_NESTED_SECRET},
            }
        ),
        **(extra or {}),
    )
    return env


def test_argv_env_and_options_secrets_stay_out_of_everything(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "input.txt").write_text("hello")
    (work / "child.py").write_text(CHILD)
    argv = [sys.executable, "child.py", *ARGV_SECRETS, "--api-key", SPLIT_SECRET]
    env = _child_env(tmp_path)
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert b"hello" in done.stdout
    # The argv is there, masked, with its public parts kept.
    assert b"child.py" in done.stdout
    assert b"***" in done.stdout

    outputs: list[str | bytes] = [done.stdout, done.stderr]
    cli = [sys.executable, "-m", "elliptio"]
    record_id = json.loads(done.stdout.splitlines()[2])["artifact_id"]
    for args in (
        ["config"],
        ["find", "--format", "json"],
        ["find", "--format", "csv"],
        ["find"],
        ["show", record_id, "--packages"],
        ["verify", record_id],
        ["cat", record_id, "nope.txt"],  # an error path
        ["show", "artifact_00000000-0000-4000-8000-000000000000"],
    ):
        ran = subprocess.run(cli + args, cwd=work, env=env, capture_output=True, timeout=120)
        outputs += [ran.stdout, ran.stderr]
    store, cache = tmp_path / "store", tmp_path / "cache"
    sidecars = list(store.rglob("metadata.json"))
    assert len(sidecars) == 2
    outputs += [*_all_files(store, cache), (tmp_path / "catalog.db").read_bytes()]
    assert _leaks(outputs) == []


def test_s3_storage_options_never_surface(
    s3_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": S3_SECRET}
    (tmp_path / "a.txt").write_text("a")
    messages: list[str] = []
    with eio.Handler(
        storage=f"s3://{S3_BUCKET}/lake",
        catalog=f"sqlite:///{tmp_path / 'c.db'}",
        storage_options=options,
    ) as h:
        art = h.upload([tmp_path / "a.txt"], labels={"project": "s3"})
        got = h.get(art.artifact_id)
        assert got.file.read_text() == "a"
        assert h.verify(art.artifact_id).ok
        frame = h.find({})
        messages += [repr(h), frame.to_csv(), frame.to_json(default_handler=str, date_format="iso")]
        messages.append(got.metadata.model_dump_json())
    # A bucket that does not exist: an error message built from botocore's.
    with eio.Handler(
        storage="s3://no-such-bucket-elliptio/lake",
        catalog=f"sqlite:///{tmp_path / 'c2.db'}",
        storage_options=options,
    ) as h2:
        with pytest.raises(eio.StorageError) as info:
            h2.upload([tmp_path / "a.txt"])
        messages.append(str(info.value))
    messages += [r.getMessage() for r in caplog.records]
    messages += _all_files(tmp_path)
    assert _leaks(messages, [S3_SECRET]) == []


@pytest.mark.parametrize(
    "storage",
    [
        f"s3://AKIAEXAMPLE:{URL_SECRET}@{S3_BUCKET}/lake",
        f"memory://andy:{URL_SECRET}@lake",
        f"s3://AKIAEXAMPLE:x {URL_SECRET} y@{S3_BUCKET}/lake",  # blanks in the password
        # A secret query or path parameter the filesystem keeps in its paths.
        f"s3://{S3_BUCKET}/lake?X-Amz-Security-Token={URL_SECRET}",
        f"memory://lake;token={URL_SECRET}/x",
    ],
)
def test_storage_url_with_credentials_is_refused_without_echoing_them(
    storage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(eio.ConfigError, match="storage_options") as info:
        eio.Handler(storage=storage, catalog="memory://")
    assert "***" in str(info.value)
    assert _leaks([str(info.value), *(r.getMessage() for r in caplog.records)]) == []


# A password as written, not percent-encoded, may hold blanks, "#", "?" or "/"
# (pymongo takes the first two, and reads what follows a "?" as options, and
# "2024/pw@h" as a port and a database name "pw@h", helper-73).
@pytest.mark.parametrize("shape", ["{}", "a {} b", "a#{}", "a?{}", "{}/x", "2024/{}"])
@pytest.mark.filterwarnings("ignore:Unknown option")
def test_mongodb_url_password_never_surfaces(
    shape: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    password = shape.format(MONGO_PASSWORD)
    url = (
        f"mongodb://andy:{password}@127.0.0.1:9/lake?serverSelectionTimeoutMS=200"
        f"&authMechanismProperties=AWS_SESSION_TOKEN:{MONGO_TOKEN}"
    )
    texts: list[str] = []
    # Unreachable, or (with "?" or "/") a URL pymongo cannot read.
    failures = (eio.CatalogUnavailableError, eio.ConfigError)
    try:
        h = eio.Handler(storage=tmp_path / "store", catalog=url)
    except eio.ConfigError as err:  # "/" then "@": refused before anything is sent
        texts.append(str(err))
        assert shape.startswith(("{}/", "2024/")), texts[-1]
    else:
        with h:
            texts.append(repr(h))
            with pytest.raises(failures) as info:
                h.find({})
            texts.append(str(info.value))
            (tmp_path / "x.txt").write_text("x")
            with pytest.raises(failures) as info2:
                h.upload([tmp_path / "x.txt"])
            texts.append(str(info2.value))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", url)
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    assert main(["config"]) == 0
    assert main(["find"]) == 1
    out, err = capsys.readouterr()
    assert "catalog_url = mongodb://andy:***@127.0.0.1:9/lake" in out
    texts += [out, err, *(r.getMessage() for r in caplog.records)]
    texts += [t.decode("utf-8", "replace") for t in _all_files(tmp_path)]
    assert _leaks(texts) == []
    assert _leaks(texts, [password]) == []


def test_the_settings_of_a_handler_show_no_url_secret(tmp_path: Path) -> None:
    """eio.Settings and a handler's settings are public; printed in a notebook
    (or logged by the caller) they showed the catalog URL's password and secret
    options whole, while storage_options were left out of them."""
    url = (
        f"mongodb://andy:{MONGO_PASSWORD}@127.0.0.1:9/lake?tlsCertificateKeyFilePassword="
        f"{MONGO_PASSWORD}2&authMechanismProperties=AWS_SESSION_TOKEN:{MONGO_TOKEN}"
    )
    storage = f"s3://{S3_BUCKET}/lake?X-Amz-Security-Token={MONGO_TOKEN}3"
    settings = eio.Settings(catalog_url=url, storage_url=storage)
    with eio.Handler(storage=tmp_path / "store", catalog=url) as h:
        texts = [repr(settings), str(settings), repr(h.aio.settings), f"{h.aio.settings}"]
    assert _leaks(texts) == []
    assert "mongodb://andy:***@127.0.0.1:9/lake" in texts[0]
    assert settings.catalog_url == url  # what the handler connects with, unchanged


def test_config_masks_every_secret_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _child_env(tmp_path)
    for name in ("ELLIPTIO_STORAGE_URL", "ELLIPTIO_CATALOG_URL", "ELLIPTIO_STORAGE_OPTIONS"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv(
        "ELLIPTIO_STORAGE_OPTIONS",
        json.dumps(
            {
                "client_secret": ENV_OPTION_SECRET,
                "client_kwargs": {"session_token": ENV_NESTED_SECRET},
                "endpoint_url": f"http://andy:{URL_SECRET}@minio.local:9000",
                "headers": [{"authorization": S3_SECRET}],
                # Headers as aiohttp and requests also take them: pairs, and lines.
                "client_kwargs_headers": [["Authorization", f"Bearer {MONGO_TOKEN}"]],
                "extra": [f"X-Api-Key: {MONGO_PASSWORD}", f"--token={SPLIT_SECRET}"],
            }
        ),
    )
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "storage_options" in out
    assert "Authorization" in out
    assert "X-Api-Key" in out
    assert _leaks([out]) == []


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("ELLIPTIO_CATALOG_URL", "mongodb:/alice:SECRETx@db.example.com/lake"),
        ("ELLIPTIO_CATALOG_URL", "mongodb//alice:SECRETx@db.example.com/lake"),
        ("ELLIPTIO_CATALOG_URL", "alice:SECRETx@db.example.com:27017/lake"),
        ("ELLIPTIO_STORAGE_URL", "s3:/KEY:SECRETx@bucket/lake"),
        # One slash too many, and passwords of digits only (helper-58).
        ("ELLIPTIO_CATALOG_URL", "mongodb:///alice:SECRETx@db.example.com/lake"),
        ("ELLIPTIO_CATALOG_URL", "mongodb:/alice:20240917@db.example.com/lake"),
        ("ELLIPTIO_CATALOG_URL", "mongodb://alice:20240917@db.example.com/lake"),
        # "user:password" quoted whole (quote_plus of both, the ":" written %3A):
        # with no ":" in the userinfo, it all passed for a user name.
        ("ELLIPTIO_CATALOG_URL", "mongodb://alice%3ASECRETx@db.example.com/lake"),
        ("ELLIPTIO_CATALOG_URL", "mongodb://alice%3aSECRETx@127.0.0.1:1/lake"),
        ("ELLIPTIO_STORAGE_URL", "s3://KEY%3ASECRETx@bucket/lake"),
    ],
)
def test_a_mistyped_url_setting_never_shows_its_password(
    variable: str,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A catalog URL missing a slash was printed whole by `elliptio config` and in
    the error refusing it, password included (helper-55); so was one whose
    "user:password" was quoted whole (helper-111). Also with --debug."""
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path}/c.db")
    monkeypatch.setenv(variable, url)
    assert main(["config"]) == 0
    out, err = capsys.readouterr()
    assert "***" in out
    main(["find"])
    more, more_err = capsys.readouterr()
    main(["--debug", "find"])
    debug, debug_err = capsys.readouterr()
    secret = "20240917" if "20240917" in url else "SECRETx"
    assert secret not in out + err + more + more_err + debug + debug_err


@pytest.mark.parametrize(
    "options",
    [
        {"endpoint_url": "https://u:SECRET'x@minio.local"},  # a quote in the password
        {"args": ["--password", "SECRETx"]},
        {"kw": [["--token", "SECRETx"]]},
        {"h": "X-Foo: bar\nAuthorization: Bearer SECRETx"},  # the secret on a later line
        {"headers": [["Authorization", ["Bearer", "SECRETx"]]]},
        {"Cookie": "session=SECRETx"},
        {"conn": "DefaultEndpointsProtocol=https;AccountName=lake;AccountKey=SECRETx"},
        {"headers": [{"name": "Authorization", "value": "Bearer SECRETx"}]},
        {"extra": ["  Authorization: Bearer SECRETx"]},  # a header line, indented
        # Options given as JSON text inside a string.
        {"client_kwargs": json.dumps({"aws_secret_access_key": "SECRETx"})},
        {"args": json.dumps(["--password", "SECRETx"])},
        {"deep": json.dumps({"kw": json.dumps({"token": "SECRETx"})})},
    ],
)
def test_every_shape_of_secret_in_options_is_masked_in_config_and_messages(
    options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from elliptio._redact import known_secrets, redact_text

    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "store"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", "mongodb://andy:pa'SECRETss@db.local/lake")
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", json.dumps(options))
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "SECRET" not in out, out
    said = redact_text(f"failed: {json.dumps(options)} {options}", known_secrets([], options))
    assert "SECRET" not in said, said


def test_secrets_of_header_pairs_and_lines_in_options_are_masked_in_messages() -> None:
    from elliptio._redact import known_secrets, redact_options, redact_text

    options = {
        "headers": [["Authorization", "Bearer pair-secret"], ["Accept", "text/csv"]],
        "lines": ["X-Api-Key: line-secret", "Accept: text/plain"],
    }
    secrets = known_secrets(options=options)
    assert {"Bearer pair-secret", "line-secret"} <= secrets
    assert "text/csv" not in secrets
    assert "text/plain" not in secrets
    said = redact_text("failed with Bearer pair-secret and line-secret", secrets)
    assert "secret" not in said.replace("***", "")
    assert redact_options(options) == {
        "headers": [["Authorization", "***"], ["Accept", "text/csv"]],
        "lines": ["X-Api-Key: ***", "Accept: text/plain"],
    }


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ELLIPTIO_MAX_CONCURRENCY", "PLANTED_ENV_OPTION_SECRET"),
        ("ELLIPTIO_PART_SIZE", "PLANTED_ENV_OPTION_SECRET"),
        ("ELLIPTIO_STORAGE_OPTIONS", '{"secret": "PLANTED_ENV_OPTION_SECRET"'),
        ("ELLIPTIO_STORAGE_OPTIONS", '["PLANTED_ENV_OPTION_SECRET"]'),
        ("ELLIPTIO_OFFLINE", "PLANTED_ENV_OPTION_SECRET"),
    ],
)
def test_bad_setting_values_are_not_echoed(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(eio.ConfigError) as info:
        eio.Handler(storage=tmp_path / "store", catalog="memory://")
    assert name.removeprefix("ELLIPTIO_").lower() in str(info.value).lower()
    assert main(["config"]) == 1
    captured = capsys.readouterr()
    assert _leaks([str(info.value), captured.out, captured.err]) == []


def test_known_secrets_collects_url_and_option_secrets() -> None:
    from elliptio._redact import known_secrets

    found = known_secrets(
        [f"s3://AKIA:{URL_SECRET}@bucket/x", f"https://h/x?token={MONGO_TOKEN}&a=1"],
        {
            "secret": S3_SECRET,
            "client_kwargs": {"aws_session_token": ENV_NESTED_SECRET, "region_name": "eu"},
            "endpoint_url": f"http://u:{MONGO_PASSWORD}@minio:9000",
            "headers": [{"authorization": ENV_OPTION_SECRET}],
            "anon": False,
        },
    )
    assert found == {
        URL_SECRET,
        MONGO_TOKEN,
        S3_SECRET,
        ENV_NESTED_SECRET,
        MONGO_PASSWORD,
        ENV_OPTION_SECRET,
    }


# -- the URL tools and their commands: a URL with a password in it -----------------------

SECRET_URLS = [
    f"s3://AKIAEXAMPLE:{URL_SECRET}@{S3_BUCKET}/x.txt",
    f"memory://andy:{URL_SECRET}@lake/x.txt",
    f"https://{URL_SECRET}@example.invalid/x.txt",
]
URL_COMMANDS = {
    "ls": ["ls", "{url}"],
    "exists": ["exists", "{url}"],
    "cat": ["cat", "{url}"],
    "cp from": ["cp", "{url}", "{local}"],
    "cp to": ["cp", "{local}", "{url}"],
    "mv": ["mv", "{url}", "{local}"],
    "rm": ["rm", "-r", "{url}"],
}


@pytest.fixture
def url_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import elliptio._urls as urls

    monkeypatch.setenv("ELLIPTIO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(urls._default, "_value", None)
    local = tmp_path / "local.txt"
    local.write_text("local")
    return local


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("command", list(URL_COMMANDS))
@pytest.mark.parametrize("url", SECRET_URLS, ids=["s3", "memory", "https-token"])
def test_url_commands_refuse_a_url_password_without_printing_it(
    url_env: Path, capsys: pytest.CaptureFixture[str], url: str, command: str, debug: bool
) -> None:
    argv = [a.format(url=url, local=url_env) for a in URL_COMMANDS[command]]
    code = main(["--debug", *argv] if debug else argv)
    out, err = capsys.readouterr()
    assert code == (2 if command == "exists" else 1)  # exists: 1 is "not there"
    assert _leaks([out, err]) == []
    assert "ELLIPTIO_STORAGE_OPTIONS" in err
    if debug:
        assert err.startswith("Traceback")
    else:
        assert err.startswith("elliptio: error: ConfigError:")
        assert err.count("\n") == 1
    assert url_env.read_text() == "local"  # nothing was copied over it


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_url_command_in_a_real_process_never_prints_the_password(
    tmp_path: Path, debug: bool
) -> None:
    env = {**os.environ, "ELLIPTIO_CACHE_DIR": str(tmp_path / "cache")}
    argv = [sys.executable, "-m", "elliptio", *(["--debug"] if debug else [])]
    for args in (["ls", SECRET_URLS[0]], ["cp", SECRET_URLS[0], str(tmp_path / "x")]):
        ran = subprocess.run(argv + args, env=env, capture_output=True, timeout=120, check=False)
        assert ran.returncode == 1
        assert _leaks([ran.stdout, ran.stderr]) == []
        assert (b"Traceback" in ran.stderr) is debug
        assert ran.stderr.decode().strip().splitlines()[-1].endswith("instead")


@pytest.mark.parametrize(
    "call",
    [
        lambda url: eio.ls(url),
        lambda url: eio.exists(url),
        lambda url: eio.cp(url, "memory:///elsewhere.txt"),
        lambda url: eio.cp("memory:///elsewhere.txt", url),
        lambda url: eio.mv(url, "memory:///elsewhere.txt"),
        lambda url: eio.rm(url),
        lambda url: eio.open(url).close(),
        lambda url: eio.open(url, "wb").close(),
    ],
    ids=["ls", "exists", "cp-from", "cp-to", "mv", "rm", "open", "open-wb"],
)
@pytest.mark.parametrize("url", SECRET_URLS, ids=["s3", "memory", "https-token"])
def test_url_tools_refuse_a_url_password_without_echoing_it(
    url_env: Path, url: str, call: Callable[[str], object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with eio.open("memory:///elsewhere.txt", "wb") as f:
        f.write(b"x")
    with pytest.raises(eio.ConfigError, match="storage_options") as info:
        call(url)
    assert "***" in str(info.value)
    assert _leaks([str(info.value), *(r.getMessage() for r in caplog.records)]) == []


# An unclosed socket of an earlier test, collected during the command, would be
# printed as the CLI prints warnings (pytest turns ResourceWarning on; Python's
# default filters, which the CLI runs under, ignore it).
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_cli_errors_mask_secrets_of_options_and_urls_with_and_without_debug(
    url_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A presigned URL that cannot be read: fsspec's FileNotFoundError quotes it whole.
    presigned = f"http://127.0.0.1:9/x.txt?X-Amz-Signature={URL_SECRET}&token={MONGO_TOKEN}"
    # An S3 endpoint that cannot be reached, with credentials in the settings:
    # botocore raises its own exception type, which elliptio does not translate.
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", f"s3://{S3_BUCKET}/lake")
    monkeypatch.setenv(
        "ELLIPTIO_STORAGE_OPTIONS",
        json.dumps(
            {
                "endpoint_url": f"http://andy:{MONGO_PASSWORD}@127.0.0.1:9",
                "key": "AKIAEXAMPLE",
                "secret": S3_SECRET,
                "config_kwargs": {"retries": {"max_attempts": 1}},
            }
        ),
    )
    for argv in (["cat", presigned], ["ls", f"s3://{S3_BUCKET}/lake/"]):
        assert main(argv) == 1
        _, err = capsys.readouterr()
        assert err.startswith("elliptio: error: ")
        assert err.count("\n") == 1
        assert _leaks([err]) == []
        assert main(["--debug", *argv]) == 1
        _, err = capsys.readouterr()
        assert err.startswith("Traceback")
        assert _leaks([err]) == []
        if argv[0] == "cat":  # the URL is in the traceback, masked
            assert "X-Amz-Signature=***&token=***" in err


def test_usage_errors_do_not_echo_a_url_password(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["exists", "memory:///x", SECRET_URLS[0], f"https://h/x?token={MONGO_TOKEN}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err
    assert _leaks([err]) == []


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_cli_errors_mask_a_url_password_read_as_a_port_and_a_path(
    url_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], debug: bool
) -> None:
    """'https://u:2024/pw@h/x' is a host, a port and a path to an HTTP client, but
    the password its writer meant: the record masks it, so does every error."""
    url = f"http://andy.invalid:2024/{URL_SECRET}@h.example/x.txt"
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", f"s3://{S3_BUCKET}/lake")
    monkeypatch.setenv(
        "ELLIPTIO_STORAGE_OPTIONS",
        json.dumps(
            {
                "endpoint_url": f"http://andy.invalid:2024/{MONGO_PASSWORD}@127.0.0.1:9",
                "config_kwargs": {"retries": {"max_attempts": 1}},
            }
        ),
    )
    for argv in (["cat", url], ["ls", f"s3://{S3_BUCKET}/lake/"]):
        assert main(["--debug", *argv] if debug else argv) == 1
        _, err = capsys.readouterr()
        assert _leaks([err]) == []
