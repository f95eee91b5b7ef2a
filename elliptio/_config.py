"""Settings: one pydantic-settings class, read when a handler is built, never at import."""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from ._errors import ConfigError

__all__ = ["Settings", "load_settings", "user_data_dir"]

# What the settings read as JSON look like, for the message when they are not JSON.
_JSON_EXAMPLES = {
    "storage_options": """a JSON object such as '{"anon": true}'""",
    "reference_roots": """a JSON list of URLs such as '["s3://bucket/raw"]'""",
}


def user_data_dir(appname: str = "elliptio") -> Path:
    """Return the platform's per-user data directory for ``appname`` (not created).

    Linux and other Unix: ``$XDG_DATA_HOME/elliptio`` or ``~/.local/share/elliptio``;
    macOS: ``~/Library/Application Support/elliptio``; Windows:
    ``%LOCALAPPDATA%\\elliptio``.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / appname
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / appname
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base_path = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base_path / appname


_URL_FIELDS = frozenset({"storage_url", "catalog_url", "cache_dir", "reference_roots"})


class Settings(BaseSettings):
    """elliptio's settings, from ``ELLIPTIO_*`` environment variables and ``.env``.

    Explicit constructor arguments of a handler win over these.

    Attributes:
        storage_url: fsspec URL or local path of the store's root; default
            ``<user data dir>/store``.
        storage_options: keyword arguments for the fsspec filesystem, given as JSON
            in ``ELLIPTIO_STORAGE_OPTIONS`` (for instance credentials or
            ``endpoint_url``); never written to records or logs.
        catalog_url: ``sqlite:///path.db``, ``memory://[name]``,
            ``mongodb://...`` or ``mongodb+srv://...``; default
            ``sqlite:///<user data dir>/catalog.db``.
        mongodb_database: the MongoDB database of the catalog when the URL names
            none (default ``elliptio``).
        mongodb_collection: the MongoDB collection of the catalog.
        max_concurrency: transfers in flight at once (files of an artifact, or
            parts of a large file).
        progress: progress bars for uploads and downloads: ``true`` / ``false``;
            unset, they show when interactive (a terminal or Jupyter) and the
            transfer takes longer than a second.
        part_size: bytes per part of multipart uploads (and the largest single
            PUT), 5 MiB to 5 GiB.
    """

    model_config = SettingsConfigDict(
        env_prefix="ELLIPTIO_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    storage_url: str = ""
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False)
    catalog_url: str = ""
    mongodb_database: str = "elliptio"
    mongodb_collection: str = "artifacts"
    max_concurrency: int = Field(default=16, ge=1, le=1024)
    progress: bool | None = None
    part_size: int = Field(default=8 * 2**20, ge=5 * 2**20, le=5 * 2**30)
    # Cache and offline mode (issue 6): see elliptio._cache and elliptio._urls.
    cache_dir: str = ""
    file_mode: int = Field(default=0o600, ge=0, le=0o777)
    cache_max_bytes: int = Field(default=0, ge=0)
    offline: bool = False
    revalidate_seconds: float = Field(default=60.0, ge=0)
    # Folders on the store's filesystem whose files reference artifacts may name
    # and reads may open (see AsyncHandler.add_reference), as a JSON list.
    reference_roots: list[str] = Field(default_factory=list)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() and str(): the URLs as `elliptio config` shows them, passwords and
        # secret options masked (a handler's settings are printed in notebooks);
        # the fields themselves keep what the handler connects with.
        from ._redact import redact_options

        for name, value in super().__repr_args__():
            yield name, redact_options(value, name or "") if name in _URL_FIELDS else value

    @field_validator("file_mode", mode="before")
    @classmethod
    def _octal(cls, value: Any) -> Any:
        # ELLIPTIO_FILE_MODE=0o640 or 640 (octal, as chmod takes it).
        if isinstance(value, str):
            text = value.strip().lower().removeprefix("0o")
            try:
                return int(text, 8)
            except ValueError:
                return value
        return value

    def resolved_cache_dir(self) -> Path:
        """The cache folder, or the platform's user cache dir."""
        from ._cache import user_cache_dir

        return Path(self.cache_dir).expanduser() if self.cache_dir else user_cache_dir()

    @field_validator("storage_url", "catalog_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    def resolved_storage_url(self) -> str:
        """The storage URL, or the default local store under the user data dir."""
        return self.storage_url or str(user_data_dir() / "store")

    def resolved_catalog_url(self) -> str:
        """The catalog URL, or the default SQLite file under the user data dir."""
        return self.catalog_url or f"sqlite:///{user_data_dir() / 'catalog.db'}"


# ELLIPTIO_* variables that are not settings: those runs pass to their children.
_OTHER_VARIABLES = frozenset({"ELLIPTIO_RUN_ID", "ELLIPTIO_RUN_HANDLER"})
_warned: set[str] = set()


def _warn_misspelled() -> None:
    """Warn (once per process) of each ``ELLIPTIO_*`` variable, in the environment
    or ``.env``, that is no setting but close to one: 'ELLIPTIO_STORAGE_ULR' was
    ignored without a word, and files went to the default store."""
    known = [f"ELLIPTIO_{name.upper()}" for name in Settings.model_fields]
    names = set(os.environ)
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in Path(".env").read_text(encoding="utf-8").splitlines():
            names.add(line.strip().removeprefix("export ").partition("=")[0].strip())
    for name in sorted(names):
        upper = name.upper()
        if (
            not upper.startswith("ELLIPTIO_")
            or upper.startswith("ELLIPTIO_TEST_")  # a test set-up's, as in .env.example
            or upper in known
            or upper in _OTHER_VARIABLES
        ):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        if close and name not in _warned:
            _warned.add(name)
            warnings.warn(
                f"{name} is no elliptio setting and is ignored; did you mean {close[0]}?",
                UserWarning,
                stacklevel=_outside_stacklevel(),
            )


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of a warning raised by the caller that names the first
    frame outside elliptio: the user's line that made the handler, however deep."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame: FrameType | None = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``; ``overrides`` win.

    Raises:
        ConfigError: a setting has an invalid value; the message names the
            ``ELLIPTIO_*`` variable but never its value.
    """
    _warn_misspelled()
    given = {key: value for key, value in overrides.items() if value is not None}
    # pydantic-settings merges a dict argument into the env's; an argument must win whole.
    options = given.pop("storage_options", None)
    try:
        settings = Settings(**given)
        if options is not None:
            settings.storage_options = dict(options)
        return settings
    except ValidationError as err:
        names = ", ".join(
            f"ELLIPTIO_{'.'.join(str(part) for part in error['loc']).upper()} ({error['msg']})"
            for error in err.errors(include_input=False)
        )
        raise ConfigError(
            f"invalid elliptio setting: {names}; fix the environment variable, "
            "the .env file or the argument"
        ) from None
    except SettingsError as err:
        # A value that is not JSON where JSON is read (a dict or list). pydantic-settings
        # names the field, never the value; keep it that way.
        field = re.search(r'field "(\w+)"', str(err))
        name = field[1] if field else ""
        example = _JSON_EXAMPLES.get(name, "")
        raise ConfigError(
            f"invalid elliptio setting: ELLIPTIO_{name.upper() or '*'} is not valid JSON"
            f"{f'; it must be {example}' if example else ''}"
        ) from None
