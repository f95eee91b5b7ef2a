"""The catalog conformance suite on every backend.

SQLite on a file and in memory, MongoDB through mongomock-motor, and a real MongoDB
server when ``ELLIPTIO_TEST_MONGODB_URI`` is set (the only case that skips). In the
MongoDB runs every document handed to the driver goes through a real
``bson.encode`` / ``bson.decode`` round trip, which must give it back unchanged,
and mongomock then stores what a server would have decoded.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import bson
import pytest
from bson.codec_options import CodecOptions

from elliptio._catalog import Catalog, open_catalog
from elliptio._catalog.mongo import SIDE_INDEXES
from elliptio._catalog.sqlite import SQLiteCatalog
from tests.catalog_conformance import Backend, CatalogConformance

REAL_URI = os.environ.get("ELLIPTIO_TEST_MONGODB_URI", "")
_BSON_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)


def _instrument(collection: Any, backend: Backend) -> None:
    """Check every written document through BSON and count what reaches the server."""
    assert backend.bson_checked is not None
    checked = backend.bson_checked

    def round_trip(doc: dict[str, Any]) -> dict[str, Any]:
        back = bson.decode(bson.encode(doc), codec_options=_BSON_OPTIONS)
        assert back == doc, "a document changed in a BSON round trip"
        checked.append(doc["artifact_id"])
        return back

    def wrap(name: str, convert: Callable[[Any], Any] | None = None) -> None:
        original = getattr(collection, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            backend.sent.append(name)
            if convert is not None:
                args = (convert(args[0]), *args[1:])
            return await original(*args, **kwargs)

        def sync_call(*args: Any, **kwargs: Any) -> Any:
            backend.sent.append(name)
            return original(*args, **kwargs)

        setattr(collection, name, sync_call if name == "find" else call)

    wrap("insert_one", round_trip)
    wrap("insert_many", lambda docs: [round_trip(d) for d in docs])
    for name in ("find", "find_one", "count_documents", "delete_one", "delete_many"):
        wrap(name)


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "mongomock", "mongo-real"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name: str = request.param
    if name == "sqlite-file":
        path = tmp_path / "catalog.db"
        cat = SQLiteCatalog(path)
        yield Backend(name, cat, open_another=lambda: SQLiteCatalog(path))
        await cat.close()
        return
    if name == "sqlite-memory":
        shared = f"memory://conformance-{uuid.uuid4().hex}"
        cat = open_catalog(shared)
        yield Backend(name, cat, open_another=lambda: open_catalog(shared))
        await cat.close()
        return
    if name == "mongomock":
        from mongomock_motor import AsyncMongoMockClient

        collection = AsyncMongoMockClient()["elliptio"]["artifacts"]
        b = Backend(name, open_catalog(collection), is_mock=True, bson_checked=[])
        _instrument(collection, b)
        b.open_another = lambda: open_catalog(collection)
        yield b
        await _finish(b)
        return
    if not REAL_URI:
        pytest.skip("set ELLIPTIO_TEST_MONGODB_URI to run the suite on a real MongoDB server")
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        REAL_URI, tz_aware=True, serverSelectionTimeoutMS=10_000
    )
    database = client.get_default_database("elliptio_test")
    coll_name = f"conformance_{uuid.uuid4().hex}"
    collection = database[coll_name]
    b = Backend(name, open_catalog(collection), bson_checked=[])
    _instrument(collection, b)
    b.open_another = lambda: open_catalog(database[coll_name])
    yield b
    await _finish(b)
    for name in (coll_name, *(f"{coll_name}.{suffix}" for suffix in SIDE_INDEXES)):
        await database.drop_collection(name)
    await client.close()


async def _finish(b: Backend) -> None:
    """Every stored document went through the BSON round trip."""
    cat: Catalog = b.catalog
    try:
        stored = await cat.find(fields=[]) if not getattr(cat, "_closed", False) else []
    except Exception:  # the test left the catalog unusable on purpose
        stored = []
    assert b.bson_checked is not None
    assert {d["artifact_id"] for d in stored} <= set(b.bson_checked)
    await cat.close()


class TestCatalogConformance(CatalogConformance):
    """The whole suite, once per backend."""
