"""Many processes write into one local store and one SQLite catalog at the same time."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
from datetime import timedelta
from pathlib import Path
from typing import Any

import elliptio as eio
from tests._stress_workers import concurrent_writer

WORKERS = 8
PER_WORKER = 50


def test_eight_processes_write_400_artifacts(tmp_path: Path) -> None:
    storage = str(tmp_path / "store")
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    inputs: list[str] = []
    with eio.Handler(storage=storage, catalog=catalog) as h:
        for worker in range(WORKERS):
            path = tmp_path / "inputs" / f"input-{worker}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"input {worker}")
            inputs.append(h.upload(path, labels={"project": "inputs"}).artifact_id)

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=concurrent_writer,
            args=(
                w,
                storage,
                catalog,
                inputs[w],
                PER_WORKER,
                str(tmp_path / "work"),
                start,
                results,
            ),
        )
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    start.set()  # every worker waits for this after opening its handler
    collected: dict[int, tuple[list[str], list[str]]] = {}
    try:
        for _ in procs:
            worker, ids, errors = results.get(timeout=120)
            collected[worker] = (ids, errors)
    except queue.Empty:  # pragma: no cover - only when a worker died
        pass
    for p in procs:
        p.join(timeout=30)
    exit_codes = [p.exitcode for p in procs]
    assert exit_codes == [0] * WORKERS
    assert sorted(collected) == list(range(WORKERS))
    errors = [e for _, errs in collected.values() for e in errs]
    assert errors == [], errors[:3]
    assert not any("locked" in e for e in errors)

    written = {w: ids for w, (ids, _) in collected.items()}
    all_ids = [i for ids in written.values() for i in ids]
    assert len(all_ids) == WORKERS * PER_WORKER
    assert len(set(all_ids)) == len(all_ids)

    with eio.Handler(storage=storage, catalog=catalog) as h:
        frame = h.find(
            {"labels.project": "stress"}, columns=["based_on", "labels", "run_id"], flatten=False
        )
        assert sorted(frame.index) == sorted(all_ids)
        for worker, ids in written.items():
            rows = frame.loc[ids]
            # Lineage: every output of a worker is based on exactly its one input.
            assert all(list(b) == [inputs[worker]] for b in rows["based_on"])
            assert {labels["infos"]["worker"] for labels in rows["labels"]} == {worker}
            assert sorted(labels["infos"]["n"] for labels in rows["labels"]) == list(
                range(PER_WORKER)
            )
            assert rows["run_id"].nunique() == 1
        assert frame["run_id"].nunique() == WORKERS
        for artifact_id in all_ids:
            report = h.verify(artifact_id)
            assert report.ok
            assert report.checked == 1
        # Downstream lineage of each input is exactly its worker's outputs.
        for worker, input_id in enumerate(inputs):
            down = h.find({"based_on": input_id})
            assert sorted(down.index) == sorted(written[worker])
        assert h.gc(grace=timedelta(0)).orphans == []
        assert h.count({}) == WORKERS + WORKERS * PER_WORKER


async def test_eight_tasks_write_400_artifacts_through_mock_mongodb(tmp_path: Path) -> None:
    """The same through the MongoDB backend (mongomock-motor), as concurrent asyncio tasks."""
    from mongomock_motor import AsyncMongoMockClient

    async with eio.AsyncHandler(storage=tmp_path / "store", catalog=AsyncMongoMockClient()) as h:
        inputs = []
        for worker in range(WORKERS):
            path = tmp_path / "inputs" / f"input-{worker}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"input {worker}")
            inputs.append((await h.upload(path, labels={"project": "inputs"})).artifact_id)

        async def task(worker: int) -> list[str]:
            ids = []
            async with h.run(f"task-{worker}"):
                assert await (await h.get(inputs[worker])).file.aread_text() == f"input {worker}"
                for n in range(PER_WORKER):
                    labels = {"project": "stress", "infos": {"worker": worker, "n": n}}
                    if n % 2:
                        path = tmp_path / f"t{worker}" / f"part-{n}.txt"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(f"worker {worker} artifact {n}")
                        ids.append((await h.upload(path, labels=labels)).artifact_id)
                    else:
                        async with h.new(f"out-{n}.txt", labels=labels) as new:
                            await new.file.awrite_text(f"worker {worker} artifact {n}")
                        ids.append(new.artifact.artifact_id)
            return ids

        written = await asyncio.gather(*(task(w) for w in range(WORKERS)))
        all_ids = [i for ids in written for i in ids]
        assert len(set(all_ids)) == WORKERS * PER_WORKER
        frame = await h.find(
            {"labels.project": "stress"}, columns=["based_on", "labels"], flatten=False
        )
        assert sorted(frame.index) == sorted(all_ids)
        for worker, ids in enumerate(written):
            assert all(list(b) == [inputs[worker]] for b in frame.loc[ids, "based_on"])
            down = await h.find({"based_on": inputs[worker]}, columns=["labels"])
            assert sorted(down.index) == sorted(ids)
        for artifact_id in all_ids:
            assert (await h.verify(artifact_id)).ok
