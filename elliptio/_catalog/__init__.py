"""Catalog backends, chosen by URL scheme and imported only when used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from elliptio._errors import ConfigError
from elliptio._redact import redact_url

from .base import Catalog

if TYPE_CHECKING:
    from elliptio._config import Settings

__all__ = ["Catalog", "open_catalog"]

# scheme -> (module, factory taking the URL); imported lazily, like fsspec's registry.
_BACKENDS: dict[str, tuple[str, str]] = {
    "sqlite": ("elliptio._catalog.sqlite", "open_sqlite_catalog"),
    "memory": ("elliptio._catalog.sqlite", "open_sqlite_catalog"),
    "mongodb": ("elliptio._catalog.mongo", "open_mongo_catalog"),
    "mongodb+srv": ("elliptio._catalog.mongo", "open_mongo_catalog"),
}
_MONGO = "elliptio._catalog.mongo"
_ACCEPTED = (
    "'sqlite:///path/to/catalog.db', 'memory://', 'mongodb://host/db', "
    "'mongodb+srv://cluster/db' or 'none' (a writer with storage credentials only)"
)


def open_catalog(spec: str | Catalog | Any, settings: Settings | None = None) -> Catalog:
    """Return the catalog for a URL, a `Catalog`, or a MongoDB driver object.

    Args:
        spec: ``sqlite:///path.db``, ``memory://[name]``, ``mongodb://...``,
            ``mongodb+srv://...``, ``none`` (write storage only: files and sidecars,
            indexed later), a `Catalog` (returned as it is), or a client,
            database or collection of PyMongo's async API, Motor or mongomock-motor.
        settings: where ``mongodb_database`` and ``mongodb_collection`` come from;
            read from the environment when needed and not given.

    Raises:
        ConfigError: the URL's scheme is unknown, or the URL or object cannot be used.
    """
    if isinstance(spec, Catalog):
        return spec
    if isinstance(spec, str) and spec.strip().lower() == "none":
        from .none import StorageOnlyCatalog

        return StorageOnlyCatalog()
    if isinstance(spec, str) and "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme not in _BACKENDS:
            raise ConfigError(
                f"catalog {redact_url(spec)!r} has the unknown scheme {scheme!r}; use {_ACCEPTED}"
            )
        module_name, factory_name = _BACKENDS[scheme]
        factory: Any = getattr(importlib.import_module(module_name), factory_name)
        if module_name == _MONGO:
            return _open_mongo(factory, spec, settings)
        catalog: Catalog = factory(spec)
        return catalog
    if not isinstance(spec, str):
        mongo: Any = importlib.import_module(_MONGO)
        if mongo.is_mongo_object(spec):
            return _open_mongo(mongo.open_mongo_catalog, spec, settings)
        raise ConfigError(
            f"catalog of type {type(spec).__name__} is neither a catalog URL, a Catalog nor "
            f"a MongoDB async client, database or collection; use {_ACCEPTED}"
        )
    raise ConfigError(
        f"catalog {redact_url(str(spec), whole=True)!r} is not a catalog URL; use {_ACCEPTED}"
    )


def _open_mongo(factory: Any, spec: Any, settings: Settings | None) -> Catalog:
    if settings is None:
        from elliptio._config import load_settings

        settings = load_settings()
    catalog: Catalog = factory(
        spec, database=settings.mongodb_database, collection=settings.mongodb_collection
    )
    return catalog
