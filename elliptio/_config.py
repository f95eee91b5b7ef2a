"""Settings: one pydantic-settings class, read when a handler is built, never at import."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from ._errors import ConfigError

__all__ = ["Settings", "load_settings", "user_data_dir"]


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


class Settings(BaseSettings):
    """elliptio's settings, from ``ELLIPTIO_*`` environment variables and ``.env``.

    Explicit constructor arguments of a handler win over these.

    Attributes:
        storage_url: fsspec URL or local path of the store's root; default
            ``<user data dir>/store``.
        storage_options: keyword arguments for the fsspec filesystem, given as JSON
            in ``ELLIPTIO_STORAGE_OPTIONS`` (for instance credentials or
            ``endpoint_url``); never written to records or logs.
        catalog_url: ``sqlite:///path.db``, ``memory://[name]``; default
            ``sqlite:///<user data dir>/catalog.db``.
        max_concurrency: files of one artifact in flight at once.
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
    max_concurrency: int = Field(default=16, ge=1, le=1024)

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


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``; ``overrides`` win.

    Raises:
        ConfigError: a setting has an invalid value; the message names the
            ``ELLIPTIO_*`` variable but never its value.
    """
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
        # pydantic-settings names the field, never the value; keep it that way.
        raise ConfigError(
            f"invalid elliptio setting: {err}; ELLIPTIO_STORAGE_OPTIONS must be a JSON "
            "object such as '{\"anon\": true}'"
        ) from None
