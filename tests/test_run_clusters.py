"""Lineage from Dask and Ray workers: their reads are inputs of the driver's run.

The handler is built from explicit arguments (no ELLIPTIO_* settings): workers
learn the store and catalog from the filesystem the task carries, or from the run's
environment when they were started inside the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest

import elliptio as eio
from tests import _run_workers


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[tuple[eio.Handler, list[eio.Artifact]]]:
    h = eio.Handler(storage=str(tmp_path / "store"), catalog=f"sqlite:///{tmp_path / 'c.db'}")
    arts = []
    for n in range(3):
        path = tmp_path / f"part{n}.csv"
        path.write_text("a,b\n" + "".join(f"{i},{n}\n" for i in range(n + 1)))
        arts.append(h.upload(path, name=f"part-{n}"))
    yield h, arts
    h.close()


def _commit(h: eio.Handler, tmp_path: Path) -> eio.Artifact:
    out = tmp_path / "summary.txt"
    out.write_text("built on the parts")
    return h.upload(out)


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[object]:
    """A process cluster started before any run opens, as notebooks keep one."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_dataframe_reads_on_workers_are_inputs(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path, dask_cluster: object
) -> None:
    import dask.dataframe as dd

    h, arts = lake
    with h.run():
        frame = dd.read_csv([a.file.eio_url for a in arts[:2]])
        assert len(frame.compute()) == 3  # on the workers: the filesystem travels
        made = _commit(h, tmp_path)
    assert set(made.metadata.based_on) == {arts[0].artifact_id, arts[1].artifact_id}


def test_dask_tasks_carrying_the_filesystem_are_inputs(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path, dask_cluster: object
) -> None:
    h, arts = lake
    with h.run():
        fs = fsspec.filesystem("elliptio")
        future = dask_cluster.submit(_run_workers.rows_with, fs, arts[2].file.eio_url)  # type: ignore[attr-defined]
        assert future.result() == 3
        made = _commit(h, tmp_path)
    assert made.metadata.based_on == [arts[2].artifact_id]


def test_dask_cluster_started_in_the_run_reads_plain_urls(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    h, arts = lake
    # The run's variables go when it ends (distributed sets its own, such as
    # OMP_NUM_THREADS, in this process as its first cluster spawns workers).
    environ = {k: v for k, v in os.environ.items() if k.startswith("ELLIPTIO_")}
    with h.run():
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            urls = [a.file.eio_url for a in arts]
            assert client.gather(client.map(_run_workers.rows, urls)) == [1, 2, 3]
        made = _commit(h, tmp_path)
    assert set(made.metadata.based_on) == {a.artifact_id for a in arts}
    assert {k: v for k, v in os.environ.items() if k.startswith("ELLIPTIO_")} == environ


def test_pandas_reads_eio_url_of_an_explicit_handler_in_process(
    lake: tuple[eio.Handler, list[eio.Artifact]],
) -> None:
    _, arts = lake
    assert pd.read_csv(arts[1].file.eio_url)["a"].tolist() == [0, 1]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_tasks_reads_are_inputs(
    lake: tuple[eio.Handler, list[eio.Artifact]], tmp_path: Path, ray_cluster: object
) -> None:
    ray = ray_cluster
    h, arts = lake
    with_fs = ray.remote(_run_workers.rows_with)  # type: ignore[attr-defined]
    in_env = ray.remote(_run_workers.rows_in_env)  # type: ignore[attr-defined]
    with h.run() as run:
        fs = fsspec.filesystem("elliptio")
        # The filesystem travels with the task ...
        assert ray.get(with_fs.remote(fs, arts[0].file.eio_url)) == 1  # type: ignore[attr-defined]
        # ... or the run's variables do, for tasks that take plain URLs.
        task = in_env.options(runtime_env={"env_vars": run.env()})
        assert ray.get(task.remote(arts[1].file.eio_url, run.env())) == 2  # type: ignore[attr-defined]
        made = _commit(h, tmp_path)
    assert set(made.metadata.based_on) == {arts[0].artifact_id, arts[1].artifact_id}
