"""Catalog backends, chosen by URL scheme and imported only when used."""

from __future__ import annotations

import importlib
from typing import Any

from elliptio._errors import ConfigError
from elliptio._redact import redact_url

from .base import Catalog

__all__ = ["Catalog", "open_catalog"]

# scheme -> (module, factory taking the URL); imported lazily, like fsspec's registry.
_BACKENDS: dict[str, tuple[str, str]] = {
    "sqlite": ("elliptio._catalog.sqlite", "open_sqlite_catalog"),
    "memory": ("elliptio._catalog.sqlite", "open_sqlite_catalog"),
}
_PLANNED = ("mongodb", "mongodb+srv")


def open_catalog(spec: str | Catalog | Any) -> Catalog:
    """Return the catalog for a URL (``sqlite:///path.db``, ``memory://``) or instance.

    Raises:
        ConfigError: the URL's scheme is unknown or its backend is unavailable.
    """
    if isinstance(spec, Catalog):
        return spec
    if not isinstance(spec, str) or "://" not in spec:
        raise ConfigError(
            f"catalog {redact_url(str(spec))!r} is not a catalog URL; use "
            "'sqlite:///path/to/catalog.db' or 'memory://'"
        )
    scheme = spec.split("://", 1)[0].lower()
    if scheme in _PLANNED:
        raise ConfigError(
            f"catalog {redact_url(spec)!r}: the MongoDB backend is not part of this "
            "release yet; use 'sqlite:///path/to/catalog.db' for now"
        )
    if scheme not in _BACKENDS:
        raise ConfigError(
            f"catalog {redact_url(spec)!r} has the unknown scheme {scheme!r}; "
            f"use one of {sorted(_BACKENDS)}"
        )
    module_name, factory_name = _BACKENDS[scheme]
    factory: Any = getattr(importlib.import_module(module_name), factory_name)
    catalog: Catalog = factory(spec)
    return catalog
