"""Settings come from ELLIPTIO_* and .env when a handler is built; arguments win."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import elliptio as eio
from elliptio._config import load_settings, user_data_dir


def test_defaults_live_in_the_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    s = load_settings()
    assert user_data_dir() == tmp_path / "xdg" / "elliptio"
    assert s.resolved_storage_url() == str(tmp_path / "xdg" / "elliptio" / "store")
    assert s.resolved_catalog_url() == f"sqlite:///{tmp_path / 'xdg' / 'elliptio' / 'catalog.db'}"


def test_env_dotenv_and_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "ELLIPTIO_STORAGE_URL=/from/dotenv\nELLIPTIO_CATALOG_URL=memory://dotenv\n"
    )
    s = load_settings()
    assert s.storage_url == "/from/dotenv"
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", "/from/env")
    monkeypatch.setenv("ELLIPTIO_STORAGE_OPTIONS", '{"anon": true}')
    s = load_settings()
    assert s.storage_url == "/from/env"
    assert s.catalog_url == "memory://dotenv"
    assert s.storage_options == {"anon": True}
    s = load_settings(storage_url="/from/arg", storage_options={"a": 1})
    assert s.storage_url == "/from/arg"
    assert s.storage_options == {"a": 1}


def test_a_misspelled_setting_is_named_with_the_one_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ELLIPTIO_STORAGE_ULR was ignored without a word, and files went to the
    default local store (helper-57)."""
    import warnings

    from elliptio import _config
    from elliptio._cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_config, "_warned", set())
    monkeypatch.setenv("ELLIPTIO_STORAGE_ULR", "s3://team/lake")
    monkeypatch.setenv("ELLIPTIO_RUN_ID", "run_x")  # not a setting, and no misspelling
    monkeypatch.setenv("ELLIPTIO_SOMETHING_ELSE", "1")  # close to nothing: not ours to judge
    monkeypatch.setenv("ELLIPTIO_TEST_MONGODB_DATABASE", "t")  # a test set-up's (helper-58)
    (tmp_path / ".env").write_text("export ELLIPTIO_CATALOG_ULR=sqlite:///x.db\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_settings()
    said = sorted(str(w.message) for w in caught)
    assert said == [
        "ELLIPTIO_CATALOG_ULR is no elliptio setting and is ignored; did you mean "
        "ELLIPTIO_CATALOG_URL?",
        "ELLIPTIO_STORAGE_ULR is no elliptio setting and is ignored; did you mean "
        "ELLIPTIO_STORAGE_URL?",
    ]
    monkeypatch.setattr(_config, "_warned", set())
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "lake"))
    assert main(["config"]) == 0
    err = capsys.readouterr().err
    assert sorted(err.splitlines()) == [f"elliptio: warning: UserWarning: {line}" for line in said]


def test_handler_uses_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'c.db'}")
    with eio.Handler() as h:
        assert h.storage.root == str(tmp_path / "lake")
        (tmp_path / "f.txt").write_text("x")
        art = h.upload(tmp_path / "f.txt")
    assert art.file.url.startswith(str(tmp_path / "lake"))
    assert (tmp_path / "c.db").exists()


def test_storage_options_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(storage_options={"secret": "hunter2"})
    assert "hunter2" not in repr(s)


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / ".env").write_text("ELLIPTIO_MAX_CONCURRENCY=not-a-number\n")
    code = "import elliptio, threading; assert threading.active_count() == 1"
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True)
    assert list(home.iterdir()) == []  # no data dir created, the bad .env not read


@pytest.mark.parametrize(
    ("variable", "shape"),
    [("ELLIPTIO_STORAGE_OPTIONS", "JSON object"), ("ELLIPTIO_REFERENCE_ROOTS", "JSON list")],
)
def test_a_setting_that_is_not_json_is_named_by_its_own_variable(
    variable: str, shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SECURITY.md: an invalid setting is reported by its variable name, never its
    value; ELLIPTIO_REFERENCE_ROOTS=notjson was blamed on ELLIPTIO_STORAGE_OPTIONS."""
    monkeypatch.setenv(variable, "not-json-s3cr3t")
    with pytest.raises(eio.ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert f"{variable} is not valid JSON; it must be a {shape}" in message
    others = {"ELLIPTIO_STORAGE_OPTIONS", "ELLIPTIO_REFERENCE_ROOTS"} - {variable}
    assert not [other for other in others if other in message]
    assert "s3cr3t" not in message


def test_a_misspelled_setting_is_warned_about_at_the_users_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warning named a line inside elliptio (_sync_handler.py), not the line
    that made the handler (helper-97)."""
    import warnings

    from elliptio import _config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_config, "_warned", set())
    monkeypatch.setenv("ELLIPTIO_STORAGE_ULR", "s3://team/lake")
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", "memory://")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = eio.Handler()  # the line the warning must name
        h.close()
    [warning] = [w for w in caught if "ELLIPTIO_STORAGE_ULR" in str(w.message)]
    assert warning.filename == __file__
