"""The MongoDB catalog's own behaviour: URLs, settings, clients, indexes and errors.

What every catalog must do is in the conformance suite; this module covers what only
the MongoDB backend has. It needs no server: mongomock-motor stands in for one,
and an unreachable server is a real closed port.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import re
import socket
import uuid
import warnings
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from bson.regex import Regex
from mongomock_motor import AsyncMongoMockClient
from pymongo import errors as mongo_errors

import elliptio as eio
from elliptio._catalog import open_catalog
from elliptio._catalog.mongo import INDEXES, MongoCatalog, _Uri, to_mongo_filter
from elliptio._config import load_settings
from elliptio._errors import CatalogError, CatalogUnavailableError, ConfigError
from tests.catalog_conformance import record

UTC = dt.UTC
PASSWORD = "s3cr3t-Pa55"


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_and_collect(main: Coroutine[Any, Any, None]) -> None:
    """Run a test body on its own loop, then collect what PyMongo left behind.

    PyMongo's async monitor can leave the socket of a refused connection in the
    loop until the loop closes (its own suite has such ResourceWarnings,
    PYTHON-3923); collecting it right after, quietly, keeps it from failing a
    later test.
    """
    try:
        asyncio.run(main)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def test_urls_open_the_mongodb_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    cat = open_catalog(f"mongodb://andy:{PASSWORD}@db1:27017,db2/team?authSource=admin")
    assert isinstance(cat, MongoCatalog)
    assert cat._database == "team"
    assert cat._collection_name == "artifacts"
    assert cat._client is None  # nothing connects before first use
    assert PASSWORD not in repr(cat)
    # no database in the URL: the setting, else "elliptio"
    assert open_catalog("mongodb+srv://cluster0.example.net/?retryWrites=true")._database == (
        "elliptio"
    )
    monkeypatch.setenv("ELLIPTIO_MONGODB_DATABASE", "lake")
    monkeypatch.setenv("ELLIPTIO_MONGODB_COLLECTION", "records")
    srv = open_catalog("mongodb+srv://cluster0.example.net")
    assert (srv._database, srv._collection_name) == ("lake", "records")
    assert open_catalog("mongodb://h/explicit")._database == "explicit"  # the URL wins
    settings = load_settings(catalog_url="mongodb://h")
    assert open_catalog("mongodb://h", settings)._database == "lake"


@pytest.mark.parametrize(
    ("url", "env", "needle"),
    [
        ("mongodb://", {}, "no host"),
        ("mongodb://h/bad.name", {}, "'bad'"),
        ("mongodb://h", {"ELLIPTIO_MONGODB_DATABASE": "a/b"}, "'a/b'"),
        ("mongodb://h", {"ELLIPTIO_MONGODB_COLLECTION": "$x"}, "'$x'"),
        ("mongo://h/db", {}, "unknown scheme"),
    ],
)
def test_bad_mongodb_settings(
    monkeypatch: pytest.MonkeyPatch, url: str, env: dict[str, str], needle: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if url == "mongodb://h/bad.name":
        # "db.collection" in the path names the database "bad", which is fine
        assert open_catalog(url)._database == "bad"
        return
    with pytest.raises(ConfigError, match=re.escape(needle)):
        open_catalog(url)


def test_an_unreadable_tls_file_is_a_config_error(tmp_path: Path) -> None:
    """A TLS file the URL names that cannot be read: ConfigError naming the
    setting, its password masked (PyMongo raised a bare FileNotFoundError)."""
    url = (
        "mongodb://u:S3CRET@127.0.0.1:1/db?tls=true"
        f"&tlsCertificateKeyFile={tmp_path / 'missing.pem'}&serverSelectionTimeoutMS=200"
    )
    h = eio.Handler(storage=tmp_path / "store", catalog=url)
    try:
        with pytest.raises(ConfigError, match="tlscertificatekeyfile") as info:
            h.find({})
        assert "S3CRET" not in str(info.value)
    finally:
        h.close()


def test_objects_that_are_not_async_mongodb_are_refused() -> None:
    import mongomock

    with pytest.raises(ConfigError, match="async client"):
        open_catalog(mongomock.MongoClient())
    with pytest.raises(ConfigError, match="neither"):
        open_catalog(object())


async def test_client_database_or_collection_objects() -> None:
    client = AsyncMongoMockClient()
    by_client = open_catalog(client)
    await by_client.insert(record(1))
    by_database = open_catalog(client["elliptio"])
    by_collection = open_catalog(client["elliptio"]["artifacts"])
    assert await by_database.count() == await by_collection.count() == 1
    for cat in (by_client, by_database, by_collection):
        await cat.close()
    # the caller's client stays open
    assert await client["elliptio"]["artifacts"].count_documents({}) == 1


async def test_indexes_are_created_once_and_idempotently() -> None:
    collection = AsyncMongoMockClient()["elliptio"]["artifacts"]
    calls: list[int] = []
    original = collection.create_indexes

    async def counted(models: Any) -> Any:
        calls.append(len(models))
        await asyncio.sleep(0.01)  # let the other first users arrive meanwhile
        return await original(models)

    collection.create_indexes = counted
    cat = open_catalog(collection)
    await asyncio.gather(*(cat.insert(record(i)) for i in range(5)), cat.count())
    assert calls == [len(INDEXES)]
    again = open_catalog(collection)
    await again.count()  # a second catalog creates them again: a no-op for the server
    info = await collection.index_information()
    assert {m.document["name"] for m in INDEXES} <= set(info)
    assert info["elliptio_artifact_id"]["unique"] is True
    assert dict(info["elliptio_based_on"]["key"]) == {"based_on": 1}
    assert dict(info["elliptio_labels"]["key"]) == {"labels.$**": 1}
    await cat.close()
    await again.close()


def test_unreachable_server_names_host_and_timeout_not_password(closed_port: int) -> None:
    run_and_collect(_unreachable(closed_port))


async def _unreachable(closed_port: int) -> None:
    url = f"mongodb://andy:{PASSWORD}@127.0.0.1:{closed_port}/team?serverSelectionTimeoutMS=200"
    cat = open_catalog(url)
    for attempt in (cat.count({}), cat.get("artifact_x"), cat.insert(record(1))):
        with pytest.raises(CatalogUnavailableError) as info:
            await attempt
        message = str(info.value)
        assert f"127.0.0.1:{closed_port}" in message
        assert "0.2 s" in message
        assert PASSWORD not in message
        assert info.value.__cause__ is None
        assert isinstance(info.value, ConnectionError)
    client = cat._client
    assert client is not None
    assert client.codec_options.tz_aware is True
    await cat.close()
    assert cat._client is None
    with pytest.raises(CatalogError, match="closed"):
        await cat.count()


def test_handler_with_an_unreachable_catalog_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closed_port: int
) -> None:
    run_and_collect(_unreachable_handler(monkeypatch, tmp_path, closed_port))


async def _unreachable_handler(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closed_port: int
) -> None:
    monkeypatch.setenv(
        "ELLIPTIO_CATALOG_URL",
        f"mongodb://andy:{PASSWORD}@127.0.0.1:{closed_port}/?serverSelectionTimeoutMS=100",
    )
    async with eio.AsyncHandler(storage=tmp_path / "store") as h:
        assert PASSWORD not in repr(h)
        with pytest.raises(eio.CatalogUnavailableError) as info:
            await h.find({"username": "andy"})
    assert PASSWORD not in str(info.value)


async def test_server_errors_are_translated_without_credentials() -> None:
    collection = AsyncMongoMockClient()["elliptio"]["artifacts"]

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise mongo_errors.OperationFailure(f"Authentication failed for andy:{PASSWORD}", code=18)

    collection.count_documents = refuse
    collection.create_indexes = refuse
    uri = _Uri(f"mongodb://andy:{PASSWORD}@db.example.net/team")
    cat = MongoCatalog(uri=uri, database="team", collection="artifacts", target=collection)
    with pytest.raises(CatalogError, match="credentials") as info:
        await cat.count()
    assert PASSWORD not in str(info.value)
    assert "***" in str(info.value)
    await cat.close()


async def test_regex_queries_have_a_server_time_limit() -> None:
    """MongoDB bounds a query's regexes by maxTimeMS, as SQLite bounds them by clock."""
    collection = AsyncMongoMockClient()["elliptio"]["artifacts"]
    seen: list[dict[str, Any]] = []
    real_find, real_count = collection.find, collection.count_documents

    def find(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real_find(*args, **kwargs)

    async def count(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return await real_count(*args, **kwargs)

    collection.find, collection.count_documents = find, count
    cat = MongoCatalog(target=collection)
    await cat.insert(record(0))  # username "andy"
    assert len(await cat.find({"username": {"$regex": "^an"}})) == 1
    assert await cat.count({"$or": [{"x": 1}, {"username": re.compile("dy$")}]}) == 1
    await cat.find({"username": "andy"})
    assert [kw.get("max_time_ms", kw.get("maxTimeMS")) for kw in seen] == [30_000, 30_000, None]

    async def too_slow(*args: Any, **kwargs: Any) -> Any:
        raise mongo_errors.ExecutionTimeout("operation exceeded time limit", code=50)

    collection.count_documents = too_slow
    with pytest.raises(eio.QueryError, match=r"stopped the query after 30 s"):
        await cat.count({"username": {"$regex": "^an"}})
    await cat.close()


async def test_one_loop_per_catalog() -> None:
    cat = open_catalog(AsyncMongoMockClient())
    await cat.count()

    def other_loop() -> None:
        asyncio.run(cat.count())

    with pytest.raises(CatalogError, match="another event loop"):
        await asyncio.to_thread(other_loop)
    await cat.close()


def test_filters_are_sent_as_mongodb_takes_them() -> None:
    when = dt.datetime(2024, 1, 1, 13, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    sent = to_mongo_filter(
        {
            "a": re.compile("^x", re.I),
            "b": {"$regex": re.compile("y", re.M), "$options": "s"},
            "c": {"$in": [re.compile("z"), (1, 2)], "$nin": [when]},
            "d": {"$not": re.compile("w", re.X)},
            "e": {"$elemMatch": {"f": {"$gte": when}}},
            "$or": [{"g": {"$type": ("string", 2)}}, {"h": {"$all": [{"$elemMatch": {"$gt": 1}}]}}],
        }
    )
    utc = dt.datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert sent == {
        "a": Regex("^x", "i"),
        "b": {"$regex": "y", "$options": "ms"},
        "c": {"$in": [Regex("z", ""), [1, 2]], "$nin": [utc]},
        "d": {"$not": Regex("w", "x")},
        "e": {"$elemMatch": {"f": {"$gte": utc}}},
        "$or": [{"g": {"$type": ["string", 2]}}, {"h": {"$all": [{"$elemMatch": {"$gt": 1}}]}}],
    }


def test_user_story_on_mongodb(tmp_path: Path) -> None:
    """The user story with a MongoDB catalog (mongomock-motor standing in for a server)."""
    data = tmp_path / "docs"
    data.mkdir()
    (data / "train.txt").write_text("path,class\n/a.png,0\n")
    (data / "test.txt").write_text("path,class\n/b.png,1\n")
    client = AsyncMongoMockClient()
    with eio.Handler(storage=tmp_path / "store", catalog=client) as h:
        with eio.mock_username("andy"):
            andy = h.upload(
                [data / "train.txt", data / "test.txt"],
                labels=eio.Labels(project="awesome-project", datatype="annotation_file"),
            )
        andy_id = andy.metadata.artifact_id
        df = h.find(
            query={
                "username": "andy",
                "labels.datatype": "annotation_file",
                "creation_time": {"$gte": dt.datetime.now(tz=UTC) - dt.timedelta(days=7)},
                "file_relpaths": {"$regex": r"\.txt"},
            },
            max_docs=1,
        )
        assert list(df.index) == [andy_id]
        assert str(df["creation_time"].dt.tz) == "UTC"
        artifact = h.get(andy_id)
        assert artifact.metadata == andy.metadata
        with eio.mock_username("brenda"), h.new(["model.pt"]) as new:
            new.file.write_bytes(b"model")
        users = h.find(query={"based_on": andy_id})
        assert list(users.index) == [new.artifact.metadata.artifact_id]
        assert users.loc[users.index[0], "username"] == "brenda"
    stored = asyncio.run(client["elliptio"]["artifacts"].find({}, {"_id": 0}).to_list(None))
    assert {d["artifact_id"] for d in stored} == {andy_id, new.artifact.metadata.artifact_id}


async def test_python_packages_are_stored_once_per_environment() -> None:
    """Records of one environment share one document of ``<name>.environments``;
    reads give each record its own copy, queries on the packages still match."""
    import bson

    from elliptio._errors import CorruptRecordError, InvalidLabelsError, QueryError

    database = AsyncMongoMockClient()["elliptio"]
    cat = open_catalog(database["artifacts"])
    packages = {f"p{i}": "1.0" for i in range(300)}
    other = {**packages, "p7": "2.0"}
    docs = [record(i, python_packages=other if i == 3 else packages) for i in range(10)]
    await cat.insert_many(docs[:5])
    for doc in docs[5:]:
        await cat.insert(doc)
    assert await database["artifacts.environments"].count_documents({}) == 2
    raw = await database["artifacts"].find_one({"artifact_id": "artifact_0001"})
    assert "python_packages" not in raw
    assert len(bson.encode(raw)) < 1500 < len(bson.encode(docs[1]))
    assert [await cat.get(d["artifact_id"]) for d in docs] == docs
    found = await cat.find(sort=[("artifact_id", 1)])
    assert found == docs
    found[0]["python_packages"]["p0"] = "changed"
    assert found[1]["python_packages"] == packages
    assert await cat.find({"labels.infos.seed": 3}, fields=["python_packages"]) == [
        {"artifact_id": "artifact_0003", "python_packages": other}
    ]
    # Conditions on the packages, alone, combined and negated.
    assert await cat.count({"python_packages.p7": "2.0"}) == 1
    assert await cat.count({"python_packages.p7": {"$ne": "2.0"}}) == 9
    assert await cat.count({"python_packages.nope": {"$exists": False}}) == 10
    assert await cat.count({"$or": [{"python_packages.p7": "2.0"}, {"username": "brenda"}]}) == 4
    assert await cat.count({"$nor": [{"python_packages.p7": {"$regex": "^1"}}]}) == 1
    assert await cat.count({"python_packages": {"$exists": True}, "labels.infos.seed": 4}) == 1
    # Lineage reads fill the packages in too.
    lineage = await cat.lineage_docs("artifact_0003", "up", None, ["python_packages"])
    assert lineage is not None
    assert all(d["python_packages"] in (packages, other) for d in lineage)
    with pytest.raises(QueryError, match="cannot sort by python_packages"):
        await cat.find(sort=[("python_packages.p7", 1)])
    with pytest.raises(QueryError, match="internal"):
        await cat.find({"_environment": "x"})
    with pytest.raises(InvalidLabelsError, match="_environment"):
        await cat.insert(record(20, _environment="x"))
    # An environment changed behind the catalog (a catalog writer can) is refused,
    # never shown as the records' packages; one that went missing says so too.
    environments = database["artifacts.environments"]
    await environments.update_one(
        {"python_packages.p7": "1.0"}, {"$set": {"python_packages.p0": "9"}}
    )
    with pytest.raises(CorruptRecordError, match="does not hash to its id"):
        await cat.get("artifact_0001")
    await environments.delete_many({"python_packages.p7": "2.0"})
    with pytest.raises(CorruptRecordError, match="environment"):
        await cat.get("artifact_0003")
    await cat.close()


async def test_records_written_before_environments_read_and_match_as_they_are() -> None:
    """Records that hold their own package list (written by 0.4 and before) are
    left as they are, read and queried beside records naming an environment;
    a record that is rewritten (relabelled, deleted) moves to the new form."""
    database = AsyncMongoMockClient()["elliptio"]
    old = [record(i, python_packages={"numpy": f"1.{i}"}) for i in range(3)]
    await database["artifacts"].insert_many([dict(d) for d in old])
    cat = open_catalog(database["artifacts"])
    new = [record(i, python_packages={"numpy": "1.1"}) for i in range(3, 6)]
    await cat.insert_many(new)
    assert await cat.find(sort=[("artifact_id", 1)]) == old + new
    assert await cat.count({"python_packages.numpy": "1.1"}) == 4
    assert await cat.count({"python_packages.numpy": {"$in": ["1.0", "1.2"]}}) == 2
    changed = {**old[0], "labels": {**old[0]["labels"], "stage": "done"}}
    assert await cat.replace(changed, (False, 0))
    raw = await database["artifacts"].find_one({"artifact_id": old[0]["artifact_id"]})
    assert "python_packages" not in raw
    assert "_environment" in raw
    assert await cat.get(old[0]["artifact_id"]) == changed
    # A field of that name from before is no environment: it reads as it was.
    await database["artifacts"].insert_one({**record(9), "_environment": "staging"})
    assert (await cat.get("artifact_0009"))["_environment"] == "staging"
    await cat.close()


async def test_who_uses_the_files_of_a_huge_artifact_is_asked_in_filters_mongodb_takes() -> None:
    """Deleting an artifact of 100,000 files asked MongoDB who else names them in
    one filter of 2 x 100,000 URLs, over the 16 MiB a BSON document may hold."""
    import bson

    cat = open_catalog(AsyncMongoMockClient())
    urls = [
        "s3://team-lake/projects/vision/2026/01/01/someone/000000_artifact_"
        f"0f8e6d2c-5b3a-4c1d-9e7f-123456789abc/data/train/part-{i:06d}.snappy.parquet"
        for i in range(100_000)
    ]
    sent: list[int] = []
    real = cat.find

    async def find(flt: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(len(bson.encode(to_mongo_filter(flt))))
        return await real(flt, *args, **kwargs)

    cat.find = find  # type: ignore[method-assign]
    assert await cat.object_users(urls) == {}
    assert sent
    assert max(sent) < 16 * 2**20
    await cat.close()


async def test_run_inputs_read_by_processes_in_one_second_keep_first_read_first() -> None:
    """Each process's ObjectIds carry its own random bytes: within one second they
    sort by process, not by when the read was noted."""
    from bson import ObjectId

    database = AsyncMongoMockClient()["elliptio"]
    cat = MongoCatalog(target=database["artifacts"])
    await cat.add_run_inputs("run_a", ["artifact_0001"])  # this process reads first
    side = database["artifacts.run_inputs"]
    ours = await side.find_one({"run_id": "run_a"})
    assert ours is not None
    # Another process of the run, later in the same second, whose random bytes sort
    # before this process's: the document its insert_many writes.
    theirs = ObjectId(ours["_id"].binary[:4] + b"\x00" * 8)
    await side.insert_one(
        {
            "_id": theirs,
            "run_id": "run_a",
            "artifact_id": "artifact_0002",
            "read": ours["read"] + dt.timedelta(milliseconds=1),
        }
    )
    assert await cat.run_inputs("run_a") == ["artifact_0001", "artifact_0002"]
    await cat.close()


def _decoding_collection() -> Any:
    """A mongomock collection that holds what a MongoDB server hands back: every
    document written goes through a real BSON round trip first, as PyMongo decodes
    it (whole numbers beyond 32 bits as ``bson.Int64``, dates tz-aware)."""
    import bson
    from bson.codec_options import CodecOptions

    options: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
    collection = AsyncMongoMockClient()["elliptio"]["artifacts"]

    def decoded(doc: Any) -> Any:
        return bson.decode(bson.encode(doc), codec_options=options)

    insert_one, insert_many, replace_one = (
        collection.insert_one,
        collection.insert_many,
        collection.replace_one,
    )

    async def one(doc: Any, *args: Any, **kwargs: Any) -> Any:
        return await insert_one(decoded(doc), *args, **kwargs)

    async def many(docs: Any, *args: Any, **kwargs: Any) -> Any:
        return await insert_many([decoded(d) for d in docs], *args, **kwargs)

    async def replace(flt: Any, doc: Any, *args: Any, **kwargs: Any) -> Any:
        return await replace_one(flt, decoded(doc), *args, **kwargs)

    collection.insert_one, collection.insert_many, collection.replace_one = one, many, replace
    return collection


def test_whole_numbers_beyond_32_bits_are_found_exact_on_mongodb(tmp_path: Path) -> None:
    """PyMongo decodes a BSON int64 as ``bson.Int64``; a label of 2**60 + 1 that some
    records lack came back from find() as the float 1.152921504606847e+18 (SQLite:
    the int), and get() handed out the driver's type."""
    big = 2**60 + 1
    (tmp_path / "a.txt").write_text("a")
    for catalog in (f"sqlite:///{tmp_path / 'c.db'}", _decoding_collection()):
        with eio.Handler(storage=tmp_path / "store", catalog=catalog) as h:
            art = h.upload([tmp_path / "a.txt"], labels={"infos": {"seed": big}})
            h.upload([tmp_path / "a.txt"], labels={"project": "p"})
            seeds = h.find(query={}, sort=[("creation_time", 1)])["labels.infos.seed"]
            assert seeds.tolist()[0] == big
            assert type(seeds.tolist()[0]) is int
            got = h.get(art.metadata.artifact_id).metadata.labels.infos["seed"]
            assert (got, type(got)) == (big, int)


def test_a_planted_record_whose_artifact_id_is_a_list_is_a_corrupt_record(tmp_path: Path) -> None:
    """MongoDB matches ``{"artifact_id": X}`` against every element of an array, so a
    record a catalog writer planted with ``artifact_id: [X]`` (X: an id it saw in
    an open lease, say) was found by get(X), then dropped as no record, and get,
    lineage and set_labels of X crashed with a ValueError instead of an elliptio error."""
    collection = _decoding_collection()
    (tmp_path / "a.txt").write_text("a")
    planted = f"artifact_{uuid.uuid4()}"
    with eio.Handler(storage=tmp_path / "store", catalog=collection) as h:
        art = h.upload([tmp_path / "a.txt"])
        doc = asyncio.run(collection.find_one({"artifact_id": art.metadata.artifact_id}))
        del doc["_id"]
        asyncio.run(collection.insert_one({**doc, "artifact_id": [planted, "x"]}))
        for call in (
            lambda: h.get(planted),
            lambda: h.lineage(planted),
            lambda: h.set_labels(planted, {"project": "p"}),
        ):
            with pytest.raises(eio.CorruptRecordError, match="artifact_id of type list"):
                call()
        assert h.get(art.metadata.artifact_id).file.read_bytes() == b"a"


def _decoding_reads(collection: Any) -> Any:
    """``collection`` answering as PyMongo does: every document read is decoded
    from BSON (with the catalog's tz-aware options), so one a server holds but
    Python cannot (a date past year 9999) raises ``bson.errors.InvalidBSON``."""
    import bson
    from bson.codec_options import CodecOptions

    options: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)

    def decoded(doc: Any) -> Any:
        return bson.decode(bson.encode(doc), codec_options=options)

    find_one, find = collection.find_one, collection.find

    class Cursor:
        def __init__(self, cursor: Any) -> None:
            self._cursor = cursor

        async def to_list(self, length: int | None) -> list[Any]:
            return [decoded(doc) for doc in await self._cursor.to_list(length)]

    async def one(*args: Any, **kwargs: Any) -> Any:
        doc = await find_one(*args, **kwargs)
        return None if doc is None else decoded(doc)

    collection.find_one = one
    collection.find = lambda *args, **kwargs: Cursor(find(*args, **kwargs))
    return collection


def test_a_planted_record_that_does_not_decode_is_a_corrupt_record(tmp_path: Path) -> None:
    """A catalog writer can store a date Python cannot hold (mongosh: new
    Date('+010000-01-01')); PyMongo then raises bson.errors.InvalidBSON, which is
    no PyMongoError, so every find() and the get() of that record crashed with it
    instead of the CorruptRecordError SECURITY.md promises for a record that does
    not decode."""
    from bson.datetime_ms import DatetimeMS

    collection = _decoding_reads(AsyncMongoMockClient()["elliptio"]["artifacts"])
    (tmp_path / "a.txt").write_text("a")
    with eio.Handler(storage=tmp_path / "store", catalog=collection) as h:
        art = h.upload([tmp_path / "a.txt"])
        doc = asyncio.run(collection.find_one({"artifact_id": art.metadata.artifact_id}))
        del doc["_id"]
        planted = f"artifact_{uuid.uuid4()}"
        doc["labels"]["infos"] = {"when": DatetimeMS(2**62)}
        asyncio.run(collection.insert_one({**doc, "artifact_id": planted}))
        for call in (lambda: h.get(planted), lambda: h.find(query={})):
            with pytest.raises(eio.CorruptRecordError, match="does not decode"):
                call()
        assert h.get(art.metadata.artifact_id).file.read_bytes() == b"a"


async def test_versions_past_32_bits_are_still_handed_out_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A record at version 2**40 (a catalog writer's: the next version follows the
    highest held) puts the name's counter past 32 bits, which PyMongo hands back as
    bson.Int64: the counter was then taken for no number at every reservation, set
    back to the highest version held plus one, and every writer got that same
    version until one of them committed."""
    import bson
    from bson.codec_options import CodecOptions

    options: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
    collection_class = type(AsyncMongoMockClient()["elliptio"]["artifacts"])
    for method in ("find_one_and_update", "find_one"):
        original = getattr(collection_class, method)

        def decoding(original: Any) -> Any:
            async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
                doc = await original(self, *args, **kwargs)
                return None if doc is None else bson.decode(bson.encode(doc), options)

            return call

        monkeypatch.setattr(collection_class, method, decoding(original))
    cat = open_catalog(AsyncMongoMockClient()["elliptio"]["artifacts"])
    await cat.insert(record(1, name="ds", name_version=2**40))
    reserved = [await cat.reserve_version("ds") for _ in range(3)]
    assert reserved == [2**40 + 1, 2**40 + 2, 2**40 + 3]
    await cat.close()


def test_a_record_over_the_document_limit_is_a_catalog_error(tmp_path: Path) -> None:
    """A record over what one MongoDB document holds (16 MiB: an artifact of tens
    of thousands of files) made PyMongo raise DocumentTooLarge, which is no
    PyMongoError, so the commit ended in a raw driver exception. The collection
    here refuses as PyMongo does, with a smaller limit so that 300 files reach it."""
    import bson
    from pymongo.errors import DocumentTooLarge

    limit = 32 * 1024
    collection = AsyncMongoMockClient()["elliptio"]["artifacts"]
    insert_one = collection.insert_one

    async def checked(doc: Any, *args: Any, **kwargs: Any) -> Any:
        size = len(bson.encode(doc))
        if size > limit:  # as pymongo.message._raise_document_too_large says it
            raise DocumentTooLarge(
                f"BSON document too large ({size} bytes) - the connected server "
                f"supports BSON document sizes up to {limit} bytes."
            )
        return await insert_one(doc, *args, **kwargs)

    collection.insert_one = checked
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        (folder / f"part-{i:05d}.txt").write_text(str(i))
    with eio.Handler(storage=tmp_path / "store", catalog=collection) as h:
        with pytest.raises(eio.CatalogError, match="16 MiB") as err:
            h.upload([folder])
        assert "too large" in str(err.value)
        assert h.find(query={}).empty


async def test_a_count_over_the_document_limit_is_a_query_error_saying_to_split_it() -> None:
    """A filter too large for one MongoDB command (an $in of hundreds of thousands
    of ids, 16 MiB) makes PyMongo refuse count()'s aggregate command with
    DocumentTooLarge: that is the query's fault, a QueryError saying to split it (as
    SQLite says of a filter too large for it), not the commit's advice to save files
    as several artifacts. The collection here refuses as PyMongo does
    (command_runner: "aggregate command document too large"), with a smaller limit."""
    import bson
    from pymongo.errors import DocumentTooLarge

    limit = 32 * 1024
    collection = AsyncMongoMockClient()["elliptio"]["artifacts"]
    count_documents = collection.count_documents

    async def checked(flt: Any, *args: Any, **kwargs: Any) -> Any:
        if len(bson.encode(flt)) > limit:  # as pymongo.message._raise_document_too_large
            raise DocumentTooLarge("aggregate command document too large")
        return await count_documents(flt, *args, **kwargs)

    collection.count_documents = checked
    cat = open_catalog(collection)
    await cat.insert(record(1))
    ids = [f"artifact_{uuid.UUID(int=i)}" for i in range(2000)]
    with pytest.raises(eio.QueryError, match="split it into several queries"):
        await cat.count({"artifact_id": {"$in": ids}})
    assert await cat.count({"artifact_id": {"$in": ids[:10]}}) == 0
    await cat.close()
