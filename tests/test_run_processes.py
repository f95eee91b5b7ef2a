"""Lineage across processes: reads in workers count as inputs of the driver's run.

Every test builds its handler from explicit arguments (no ELLIPTIO_* settings), on
local disk with a SQLite catalog file, as a pipeline on one machine would.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import fsspec
import pandas as pd
import pytest

import elliptio as eio
from tests import _run_workers

ROOT = Path(__file__).resolve().parent.parent


REAL_URI = os.environ.get("ELLIPTIO_TEST_MONGODB_URI", "")


@pytest.fixture(params=["sqlite", "mongodb"])
def lake(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[eio.Handler, list[eio.Artifact]]]:
    """Four small tables on local disk, cataloged in a SQLite file or a real MongoDB."""
    catalog = f"sqlite:///{tmp_path / 'c.db'}"
    if request.param == "mongodb":
        if not REAL_URI:
            pytest.skip("set ELLIPTIO_TEST_MONGODB_URI to run these on a real MongoDB server")
        catalog = REAL_URI
        monkeypatch.setenv("ELLIPTIO_CATALOG_URL", REAL_URI)  # workers inherit it
        monkeypatch.setenv("ELLIPTIO_MONGODB_COLLECTION", f"runs_{uuid.uuid4().hex}")
    h = eio.Handler(storage=str(tmp_path / "store"), catalog=catalog)
    arts = []
    for n in range(4):
        path = tmp_path / f"t{n}.csv"
        path.write_text("a,b\n" + "".join(f"{i},{n}\n" for i in range(n + 1)))
        arts.append(h.upload(path, name=f"table-{n}"))
    yield h, arts
    h.close()


def _commit(h: eio.Handler, tmp_path: Path) -> eio.Artifact:
    out = tmp_path / "out.txt"
    out.write_text("made from what the workers read")
    return h.upload(out)


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_pool_workers_reads_are_inputs(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path, method: str
) -> None:
    h, arts = lake
    urls = [a.file.eio_url for a in arts[:2]]
    environ = dict(os.environ)
    with h.run():
        context = multiprocessing.get_context(method)
        with ProcessPoolExecutor(2, mp_context=context) as pool:
            if method == "forkserver":
                # The server process is shared by the whole program and was not
                # started in this run: the run travels with the task's filesystem.
                fs = fsspec.filesystem("elliptio")
                rows = list(pool.map(_run_workers.rows_with, [fs, fs], urls))
            else:
                rows = list(pool.map(_run_workers.rows, urls))
            assert rows == [1, 2]
        made = _commit(h, tmp_path)
    assert set(made.metadata.based_on) == {arts[0].artifact_id, arts[1].artifact_id}
    assert dict(os.environ) == environ


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_multiprocessing_children_reads_are_inputs(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path, method: str
) -> None:
    h, arts = lake
    url = arts[2].file.eio_url
    with h.run():
        if method == "forkserver":
            task = (_run_workers.rows_with, (fsspec.filesystem("elliptio"), url))
        else:
            task = (_run_workers.rows, (url,))
        child = multiprocessing.get_context(method).Process(target=task[0], args=task[1])
        child.start()
        child.join(120)
        assert child.exitcode == 0
        made = _commit(h, tmp_path)
    assert made.metadata.based_on == [arts[2].artifact_id]


def test_child_of_a_closed_run_joins_nothing(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path
) -> None:
    h, arts = lake
    with h.run():
        pass
    with h.run():
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            assert pool.submit(_run_workers.rows, arts[0].file.eio_url).result() == 1
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
            pass
        made = _commit(h, tmp_path)
    assert made.metadata.based_on == [arts[0].artifact_id]
    # After the run closed, a task's reads belong to the run it is sent from: here
    # the driver's default run, not the closed one and not a later one.
    fs = fsspec.filesystem("elliptio")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_run_workers.rows_with, fs, arts[1].file.eio_url).result() == 2
    with h.run():
        assert _commit(h, tmp_path).metadata.based_on == []
    assert arts[1].artifact_id in _commit(h, tmp_path).metadata.based_on


def test_subprocess_joins_with_run_env(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path
) -> None:
    h, arts = lake
    code = "import sys, pandas as pd; print(len(pd.read_csv(sys.argv[1])))"
    with h.run() as run:
        outer = dict(os.environ)
        # Started from a thread of another run's making would not see the variable;
        # run.env() passes the run explicitly, store and catalog included.
        env = {k: v for k, v in outer.items() if not k.startswith("ELLIPTIO_")}
        out = subprocess.run(
            [sys.executable, "-c", code, arts[3].file.eio_url],
            env={**env, **run.env()},
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        assert out.stdout.strip() == "4"
        made = _commit(h, tmp_path)
    assert made.metadata.based_on == [arts[3].artifact_id]


async def test_concurrent_async_runs_keep_their_inputs_apart(tmp_path: Path) -> None:
    h = eio.AsyncHandler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}")
    sources = [await h.upload(_csv(tmp_path, n)) for n in range(2)]
    both_open = asyncio.Barrier(2)

    async def task(n: int) -> eio.Artifact:
        async with h.run():
            await both_open.wait()
            await (await h.get(sources[n].artifact_id)).file.aread_bytes()
            await both_open.wait()
            return await h.upload(_csv(tmp_path, 10 + n))

    first, second = await asyncio.gather(task(0), task(1))
    assert first.metadata.based_on == [sources[0].artifact_id]
    assert second.metadata.based_on == [sources[1].artifact_id]
    await h.close()


def _csv(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"s{n}.csv"
    path.write_text(f"a\n{n}\n")
    return path


def test_eio_url_resolves_through_the_handler_that_made_it(
    lake: tuple[eio.Handler, list[eio.Artifact]],
) -> None:
    h, arts = lake
    with h.run() as run:
        assert len(pd.read_csv(arts[1].file.eio_url)) == 2
    assert run.inputs == [arts[1].artifact_id]


@pytest.mark.parametrize("start", ["subprocess", "spawn", "fork"])
def test_a_name_url_resolves_in_the_runs_lake_in_every_process_of_it(
    lake: tuple[eio.Handler, list[eio.Artifact]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start: str,
) -> None:
    """Inside ``h.run()``, one URL string names the same bytes in the driver as in
    the children that inherit the run, whatever the ELLIPTIO_* settings name."""
    h, arts = lake
    other = eio.Handler(storage=str(tmp_path / "other"), catalog=f"sqlite:///{tmp_path / 'o.db'}")
    (tmp_path / "t1.csv").write_text("a,b\n" + "9,9\n" * 5)
    theirs = other.upload(tmp_path / "t1.csv", name="table-1")  # another lake, another table-1
    other.close()
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "other"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'o.db'}")
    url = "elliptio://table-1:latest/t1.csv"
    with h.run():
        if start == "subprocess":
            code = "import sys, tests._run_workers as w; print(w.rows_or_error(sys.argv[1]))"
            out = subprocess.run(
                [sys.executable, "-c", code, url],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout.strip()
        else:
            with multiprocessing.get_context(start).Pool(1) as pool:
                out = pool.apply(_run_workers.rows_or_error, (url,))
        assert out == "2"
        assert len(pd.read_csv(url)) == 2
        assert len(pd.read_csv(arts[3].file.eio_url.replace(arts[3].artifact_id, "table-3"))) == 4
        # What the run's lake does not hold is looked up as before the run.
        assert len(pd.read_csv(f"elliptio://{theirs.artifact_id}/t1.csv")) == 5
        made = _commit(h, tmp_path)
    ids = [arts[1].artifact_id, arts[3].artifact_id, theirs.artifact_id]
    assert made.metadata.based_on == ids


def test_pickled_filesystem_carries_store_catalog_and_run(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path
) -> None:
    """A pool started before the run: the task carries the run in the filesystem."""
    h, arts = lake
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        pool.submit(int, "1").result()  # the worker exists before the run opens
        with h.run():
            fs = fsspec.filesystem("elliptio")
            url = arts[2].file.eio_url
            assert fs.info(url)["size"] == arts[2].file.size
            assert pool.submit(_run_workers.rows_with, fs, url).result() == 3
            made = _commit(h, tmp_path)
    assert made.metadata.based_on == [arts[2].artifact_id]


@pytest.mark.parametrize("backend", ["sqlite", "mongomock"])
async def test_a_joined_run_writes_its_reads_before_handing_out_bytes(
    tmp_path: Path, backend: str
) -> None:
    """What a worker process does, in one process: a run joined, not owned."""
    from mongomock_motor import AsyncMongoMockClient

    from elliptio._runs import _current, joined_run

    catalog: object = f"sqlite:///{tmp_path / 'c.db'}"
    if backend == "mongomock":
        catalog = AsyncMongoMockClient()["elliptio"]["artifacts"]
    h = eio.AsyncHandler(storage=tmp_path / "store", catalog=catalog)
    sources = [await h.upload(_csv(tmp_path, n)) for n in range(3)]
    async with h.run() as run:
        # The run is shared with children (its id is in os.environ): the owner's
        # reads go to the catalog too, so children's commits list them.
        await h.get(sources[0].artifact_id)
        assert await h.catalog.run_inputs(run.run_id) == [sources[0].artifact_id]

        async def worker() -> None:
            _current.set(joined_run(run.run_id))
            for source in sources[1:]:
                await (await h.get(source.artifact_id)).file.aread_bytes()
                assert source.artifact_id in await h.catalog.run_inputs(run.run_id)

        await asyncio.create_task(worker())
        assert run.inputs == [sources[0].artifact_id]
        made = await h.upload(_csv(tmp_path, 9))
    assert made.metadata.based_on == [a.artifact_id for a in sources]
    # Each artifact once, however often it is read.
    assert await h.catalog.run_inputs(run.run_id) == [a.artifact_id for a in sources]
    await h.close()


def test_a_worker_without_the_sqlite_catalog_is_told_what_to_set(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path
) -> None:
    """A SQLite catalog is a file on one machine: elsewhere the error names the fix."""
    import pickle

    h, arts = lake
    if not str(h.aio._catalog_url).startswith("sqlite"):
        pytest.skip("only a SQLite catalog is a file on one machine")
    fs = fsspec.filesystem("elliptio")
    url = arts[0].file.eio_url
    assert fs.info(url)["size"] == arts[0].file.size
    sent = pickle.dumps(fs)
    h.close()
    db = Path(str(h.aio._catalog_url)[len("sqlite:///") :])
    db.rename(tmp_path / "elsewhere.db")  # as on a machine that does not have it
    code = (
        "import pickle, sys\n"
        "fs = pickle.loads(sys.stdin.buffer.read())\n"
        "try:\n"
        "    fs.info(sys.argv[1])\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url], input=sent, capture_output=True, check=True, cwd=ROOT
    ).stdout.decode()
    assert out.startswith("ConfigError")
    assert "MongoDB" in out
    assert "ELLIPTIO_CATALOG_URL" in out
    assert not db.exists()  # nothing created in its place


def test_a_memory_store_cannot_travel(tmp_path: Path) -> None:
    import pickle

    h = eio.Handler(storage="memory://travel", catalog=f"sqlite:///{tmp_path / 'c.db'}")
    path = tmp_path / "a.csv"
    path.write_text("a\n1\n")
    art = h.upload(path)
    fs = fsspec.filesystem("elliptio")
    fs.info(art.file.eio_url)
    code = (
        "import pickle, sys\n"
        "fs = pickle.loads(sys.stdin.buffer.read())\n"
        "try:\n"
        "    fs.info(sys.argv[1])\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, art.file.eio_url],
        input=pickle.dumps(fs),
        capture_output=True,
        check=True,
        cwd=ROOT,
    ).stdout.decode()
    assert out.startswith("ConfigError")
    assert "memory" in out
    h.close()


@pytest.mark.parametrize(
    "catalog",
    [
        "mongodb://andy:{secret}@127.0.0.1:1/db?serverSelectionTimeoutMS=100",
        # Secrets in the query, which `elliptio config` masks too.
        "mongodb://127.0.0.1:1/db?serverSelectionTimeoutMS=100&tlsCertificateKeyFilePassword={secret}",
        "mongodb://127.0.0.1:1/db?authMechanism=MONGODB-AWS"
        "&authMechanismProperties=AWS_SESSION_TOKEN:{secret}&serverSelectionTimeoutMS=100",
    ],
)
def test_run_variables_carry_no_password_and_no_storage_options(
    tmp_path: Path, catalog: str
) -> None:
    import pickle

    secret = "s3cr3t-Passw0rd"
    h = eio.Handler(
        storage=str(tmp_path / "store"),
        catalog=catalog.format(secret=secret),
        storage_options={"auto_mkdir": True, "token": secret},  # as a credential would be
    )
    with h.run() as run:
        assert secret not in repr(dict(os.environ))
        assert secret not in repr(run.env())
        assert "catalog" not in run.env().get("ELLIPTIO_RUN_HANDLER", "")
        fs = fsspec.filesystem("elliptio")
        assert secret in pickle.dumps(fs).decode("latin-1")  # only inside the pickle
    assert "ELLIPTIO_RUN_ID" not in os.environ
    h.close()


def test_a_filesystem_follows_the_current_run_where_it_was_made(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path
) -> None:
    import pickle
    import threading

    h, arts = lake
    with h.run() as first:
        fs = fsspec.filesystem("elliptio")
        sent = pickle.loads(pickle.dumps(fs))  # as to a thread worker of this process
    with h.run() as second:
        fs.cat_file(arts[0].file.eio_url)  # made in `first`, used in `second`
        # A thread has no run of its own: the copy sent in `first` reads in `first`.
        reader = threading.Thread(target=sent.cat_file, args=(arts[1].file.eio_url,))
        reader.start()
        reader.join()
        assert second.inputs == [arts[0].artifact_id]
        made = _commit(h, tmp_path)
    assert made.metadata.based_on == [arts[0].artifact_id]
    assert arts[1].artifact_id in first.inputs


async def test_a_joined_read_the_catalog_refuses_is_not_handed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader without catalog write rights in a joined run: an error, not lost lineage."""
    from elliptio._runs import _current, joined_run

    h = eio.AsyncHandler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path / 'c.db'}")
    source = await h.upload(_csv(tmp_path, 1))

    async def refuse(run_id: str, ids: list[str]) -> None:
        raise eio.CatalogError("attempt to write a readonly database")

    monkeypatch.setattr(h.catalog, "add_run_inputs", refuse)
    _current.set(joined_run("run_00000000-0000-4000-8000-000000000000"))
    with pytest.raises(eio.CatalogError, match="not handed out"):
        await h.get(source.artifact_id)
    with pytest.raises(eio.CatalogError, match="readonly"):
        await source.file.aread_bytes()
    await h.close()


def test_a_child_commit_lists_what_the_parent_read_before(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path
) -> None:
    h, arts = lake
    script = (
        "import sys, elliptio as eio\n"
        "h = eio.Handler(storage=sys.argv[1], catalog=sys.argv[2])\n"
        "h.get(sys.argv[3])\n"
        "with h.new('child.txt') as new:\n"
        "    new.file.write_text('made in the child')\n"
        "print(' '.join(new.artifact.metadata.based_on))\n"
    )
    storage, catalog = h.aio._travel_storage_url(), str(h.aio._travel_catalog_url())
    with h.run():
        h.get(arts[0].artifact_id)  # read by the parent before the child starts
        out = subprocess.run(
            [sys.executable, "-c", script, storage, catalog, arts[1].artifact_id],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        made = _commit(h, tmp_path)
    assert out.stdout.split() == [arts[0].artifact_id, arts[1].artifact_id]
    assert made.metadata.based_on == [arts[0].artifact_id, arts[1].artifact_id]


_CHILD = (
    "import sys, elliptio as eio\n"
    "h = eio.Handler(storage=sys.argv[1], catalog=sys.argv[2])\n"
    "with h.new('child.txt') as new:\n"
    "    new.file.write_text('made in the child')\n"
    "print(' '.join(new.artifact.metadata.based_on))\n"
)


def test_reads_made_before_a_run_is_shared_count_in_a_childs_commit(
    lake: tuple[eio.Handler, list[eio.Artifact]],
) -> None:
    """helper-80: reads of a run that was not shared yet stayed in the parent's
    memory; a child started with eio.run_env() (the default run) or run.env() (a
    run overlapping another, so not in os.environ) committed without them."""
    h, arts = lake
    storage, catalog = h.aio._travel_storage_url(), str(h.aio._travel_catalog_url())

    def child(env: dict[str, str]) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, storage, catalog],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return out.stdout.split()

    h.get(arts[0].artifact_id)  # in the process's default run
    assert child(eio.run_env()) == [arts[0].artifact_id]
    opened, done = threading.Event(), threading.Event()

    def other_run() -> None:  # a run of another thread overlaps: neither is in os.environ
        with h.run():
            opened.set()
            done.wait(60)

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert opened.wait(60)
        with h.run() as run:
            h.get(arts[1].artifact_id)
            assert child({**os.environ, **run.env()}) == [arts[1].artifact_id]
    finally:
        done.set()
        thread.join()


@pytest.mark.parametrize(
    "catalog",
    [
        "mongodb://127.0.0.1:1/db?tls=true&tlsCertificateKeyFile=/etc/ssl/client.pem"
        "&authMechanism=MONGODB-X509&serverSelectionTimeoutMS=100",
        "mongodb://127.0.0.1:1/db?authMechanism=GSSAPI"
        "&authMechanismProperties=SERVICE_NAME:mongodb&serverSelectionTimeoutMS=100",
    ],
)
def test_a_catalog_url_without_a_secret_reaches_child_processes(
    tmp_path: Path, catalog: str
) -> None:
    """A key file's path or a Kerberos service name is no secret: children of a run
    on such a catalog must write to it too (helper-38: they lost it)."""
    h = eio.Handler(storage=str(tmp_path / "store"), catalog=catalog)
    with h.run() as run:
        sent = json.loads(run.env()["ELLIPTIO_RUN_HANDLER"])
        assert sent["catalog"] == catalog
    h.close()


def test_a_password_behind_a_semicolon_never_reaches_child_processes(tmp_path: Path) -> None:
    """pymongo also separates options with ';' (helper-39)."""
    from elliptio._handler import _has_password

    assert _has_password("mongodb://h/db?authSource=admin;tlsCertificateKeyFilePassword=x")
    assert _has_password("mongodb://h/db?jwt=abc")
    assert not _has_password("mongodb://h/db?authSource=admin;tlsCertificateKeyFile=/a.pem")


def test_a_password_holding_a_hash_sign_never_reaches_child_processes(tmp_path: Path) -> None:
    """pymongo reads the userinfo to the last "@": "#" is part of the password, not
    the start of a fragment (helper-64)."""
    catalog = "mongodb://andy:PLANTED#PW1@127.0.0.1:1/db?serverSelectionTimeoutMS=100"
    h = eio.Handler(storage=str(tmp_path / "store"), catalog=catalog)
    with h.run() as run:
        sent = json.loads(run.env()["ELLIPTIO_RUN_HANDLER"])
        assert "catalog" not in sent
        assert "PLANTED" not in json.dumps(run.env())
        assert "PLANTED" not in os.environ.get("ELLIPTIO_RUN_HANDLER", "")
    h.close()


@pytest.mark.parametrize(
    "catalog",
    [
        "mongodb://h1:27017,h2:27017/db?replicaSet=rs&appName=me@lab",
        "mongodb://[::1]:27017/db?appName=me@lab",
        "sqlite:////tmp/proj:v2/runs@2024/cat.db",
    ],
)
def test_an_at_sign_after_the_hosts_is_no_password(catalog: str) -> None:
    """pymongo reads the userinfo in the hosts, before the first '/': an '@' in the
    options or in a SQLite path holds no secret, and workers need the URL (helper-65)."""
    from elliptio._handler import _has_password

    assert not _has_password(catalog)
    assert _has_password("mongodb://u:p?w@h/db")
    assert _has_password("mongodb+srv://u:p#w@cluster.example.net/db")
    # A "/" in the password (pymongo refuses it, but the URL would travel first),
    # and options after a "#", which pymongo reads as options (helper-66).
    assert _has_password("mongodb://u:abc/def@127.0.0.1:1/db")
    assert _has_password("mongodb://h/db?appname=a#&tlsCertificateKeyFilePassword=S")
    assert _has_password("mongodb://h/db?a=1#&authMechanismProperties=AWS_SESSION_TOKEN:S")
    # A password holding "/" and "?" (helper-67): pymongo cannot read the URL.
    assert _has_password("mongodb://u:a/b?c@h/db")
    assert _has_password("mongodb+srv://u:p/q?r@c.example.net/db")
    assert not _has_password("mongodb://user@h/db")  # a user name alone is no secret
    assert not _has_password("mongodb+srv://c.example.net/db?srvServiceName=x&srvMaxHosts=2")
    assert not _has_password("mongodb://h:27017/db?directConnection=true&loadBalanced=false")
    assert not _has_password("mongodb://%2Ftmp%2Fmongodb-27017.sock/db")


@pytest.mark.parametrize(
    "store",
    [
        "s3 with options in code",
        "memory",
        "local with options",
        "s3 with credentials in the environment",
        "memory run, the lake in the environment",
    ],
)
def test_a_worker_that_cannot_open_the_runs_store_is_told_what_to_set(
    tmp_path: Path, store: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storage options given in code never travel in the environment, and a memory
    store lives in one process: a spawned worker handed a URL string says so,
    instead of 'offline, retry when online' or 'not a plain URL of this store'.
    Only once reaching the store failed: a worker whose own settings reach it
    (AWS_* variables, its own ELLIPTIO_* lake) reads (helper-49)."""
    lake = None
    if store == "memory":
        h = eio.Handler(storage="memory://spawned", catalog=f"sqlite:///{tmp_path / 'c.db'}")
    elif store == "memory run, the lake in the environment":
        lake = eio.Handler(storage=str(tmp_path / "lake"), catalog=f"sqlite:///{tmp_path / 'l.db'}")
        monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "lake"))
        monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'l.db'}")
        h = eio.Handler(storage="memory://scratch", catalog="memory://scratch")
    elif store == "s3 with credentials in the environment":
        options = request.getfixturevalue("s3_options")
        monkeypatch.setenv("AWS_ENDPOINT_URL", options["endpoint_url"])
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", options["key"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", options["secret"])
        h = eio.Handler(
            storage="s3://elliptio-test/spawned-env",
            catalog=f"sqlite:///{tmp_path / 'c.db'}",
            storage_options={"default_fill_cache": False},  # tuning only
        )
    elif store == "local with options":  # nothing a local folder needs: it works
        h = eio.Handler(
            storage=str(tmp_path / "store"),
            catalog=f"sqlite:///{tmp_path / 'c.db'}",
            storage_options={"auto_mkdir": True},
        )
    else:
        options = request.getfixturevalue("s3_options")
        h = eio.Handler(
            storage="s3://elliptio-test/spawned",
            catalog=f"sqlite:///{tmp_path / 'c.db'}",
            storage_options=options,
        )
    path = tmp_path / "a.csv"
    path.write_text("a\n1\n2\n")
    art = (lake or h).upload(path)
    spawn = multiprocessing.get_context("spawn")
    with h.run():
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            answer = pool.submit(_run_workers.rows_or_error, art.file.eio_url).result()
        if store not in ("memory", "s3 with options in code"):
            assert answer == "2"
            h.close()
            return
        assert answer.startswith("ConfigError"), answer
        if store == "memory":
            assert "memory" in answer
        else:
            assert "ELLIPTIO_STORAGE_OPTIONS" in answer
            assert options["secret"] not in answer
            # What the message says to do works.
            os.environ["ELLIPTIO_STORAGE_OPTIONS"] = json.dumps(options)
            try:
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    assert pool.submit(_run_workers.rows_or_error, art.file.eio_url).result() == "2"
            finally:
                del os.environ["ELLIPTIO_STORAGE_OPTIONS"]
    h.close()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_a_pool_that_outlives_its_run_reads_in_the_run_its_tasks_come_from(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path, method: str
) -> None:
    """docs/lineage.md: send the filesystem with the task when a pool outlives the
    run. A fork worker carried the first run in its memory and credited every
    later read to it, though that run was closed."""
    h, arts = lake
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        with h.run():
            assert pool.submit(_run_workers.rows, arts[0].file.eio_url).result() == 1
            first = _commit(h, tmp_path)
        with h.run():
            fs = fsspec.filesystem("elliptio")
            assert pool.submit(_run_workers.rows_with, fs, arts[1].file.eio_url).result() == 2
            second = _commit(h, tmp_path)
    assert first.metadata.based_on == [arts[0].artifact_id]
    assert second.metadata.based_on == [arts[1].artifact_id]


def test_a_worker_of_a_memory_run_reading_its_own_lake_gets_its_own_lakes_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged record in the worker's own lake came out as a ConfigError
    blaming the parent's memory store, and an unknown id too: no longer an
    IntegrityError, nor a FileNotFoundError (helper-50)."""
    import sqlite3

    lake = eio.Handler(storage=str(tmp_path / "lake"), catalog=f"sqlite:///{tmp_path / 'l.db'}")
    path = tmp_path / "a.csv"
    path.write_text("a\n1\n2\n")
    art = lake.upload(path)
    lake.close()
    db = sqlite3.connect(tmp_path / "l.db")
    db.execute("UPDATE artifacts SET labels_json = '{bad'")
    db.commit()
    db.close()
    monkeypatch.setenv("ELLIPTIO_STORAGE_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("ELLIPTIO_CATALOG_URL", f"sqlite:///{tmp_path / 'l.db'}")
    unknown = art.file.eio_url.replace(
        art.artifact_id, "artifact_" + "1" * 8 + "-1111-4111-8111-" + "1" * 12
    )
    h = eio.Handler(storage="memory://scratch", catalog="memory://scratch")
    spawn = multiprocessing.get_context("spawn")
    with h.run(), ProcessPoolExecutor(1, mp_context=spawn) as pool:
        damaged = pool.submit(_run_workers.error_kinds, art.file.eio_url).result()
        missing = pool.submit(_run_workers.error_kinds, unknown).result()
    assert "IntegrityError" in damaged
    assert "ConfigError" not in damaged
    assert "FileNotFoundError" in missing
    h.close()


def test_a_store_url_with_credentials_never_reaches_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A storage URL whose filesystem keeps the userinfo out of its paths
    (``sftp://user:password@host/lake``) was put whole into the variables every
    child process inherits (helper-50); like a catalog URL with a password, it
    is left out, and children use their own settings."""
    h = eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setattr(h.aio, "_travel_storage_url", lambda: "sftp://me:s3cr3t@host/lake")
    with h.run() as run:
        assert "s3cr3t" not in json.dumps(run.env())
        assert "s3cr3t" not in json.dumps(dict(os.environ))
    h.close()


def test_a_handler_a_run_or_a_new_artifact_sent_to_a_worker_says_what_to_send(
    tmp_path: Path,
) -> None:
    """A Handler passed to a process pool failed with a bare "cannot pickle
    '_thread.lock' object" (so did a run, a run scope and an artifact being
    written); like an Artifact, each says what travels instead."""
    import copy
    import pickle

    h = eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with h.run() as run, h.new(["a.txt"]) as new:
            new.file.url  # noqa: B018 - a file being written
            Path(new.file.url).write_text("a")
            held: list[tuple[object, str]] = [
                (h, "fsspec.filesystem('elliptio')"),
                (h.aio, "fsspec.filesystem('elliptio')"),
                (run, "run.env()"),
                (h.run(), "run.env()"),
                (new, "eio_url"),
                (new.file, "eio_url"),
            ]
            for obj, hint in held:
                with pytest.raises(eio.ArgumentTypeError, match=r"neither pickled") as err:
                    pickle.dumps(obj)
                assert hint in str(err.value)
                with pytest.raises(eio.ArgumentTypeError, match=r"neither pickled"):
                    copy.deepcopy(obj)
            assert copy.copy(h).count() == 0  # a shallow copy stays here: it works
            # What a pool's user sees: the error, on the future.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                with pytest.raises(eio.ArgumentTypeError, match="a Handler"):
                    pool.submit(repr, h).result(timeout=120)
    finally:
        h.close()


def test_a_child_reads_the_runs_store_paths_as_artifact_files(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path
) -> None:
    """A child started inside `with h.run():` knows the run's store and catalog
    (its elliptio:// URLs resolve there), yet the URL tools took a path in that
    store for a plain file: `elliptio cat STORE_PATH` served a damaged file's bytes
    with exit 0, a good one was no input of the run, and `elliptio rm` removed a
    committed file."""
    h, arts = lake

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "elliptio", *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)

    damaged = Path(arts[2].file.url)
    os.chmod(damaged, 0o644)
    damaged.write_text("a,b\n9,9\n9,9\n")
    with h.run():
        good = cli("cat", arts[1].file.url)
        assert good.returncode == 0, good.stderr
        assert good.stdout == Path(arts[1].file.url).read_text()
        bad = cli("cat", arts[2].file.url)
        assert bad.returncode == 1
        assert "IntegrityError" in bad.stderr
        assert "9,9" not in bad.stdout
        removed = cli("rm", arts[3].file.url)
        assert removed.returncode != 0
        assert "elliptio store" in removed.stderr
        made = _commit(h, tmp_path)
    assert made.metadata.based_on == [arts[1].artifact_id]
    assert Path(arts[3].file.url).exists()
