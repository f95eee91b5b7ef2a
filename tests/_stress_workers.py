"""Worker processes for the concurrency and crash-safety tests.

Kept apart from the test modules so that a spawned child imports only this and
elliptio, not pytest and the test modules.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import elliptio as eio


def concurrent_writer(
    worker: int,
    storage: str,
    catalog: str,
    input_id: str,
    count: int,
    work_dir: str,
    start: Any,
    results: Any,
) -> None:
    """Read ``input_id``, write ``count`` artifacts; put (worker, ids, errors) on ``results``."""
    ids: list[str] = []
    errors: list[str] = []
    try:
        folder = Path(work_dir) / f"w{worker}"
        folder.mkdir(parents=True, exist_ok=True)
        with eio.Handler(storage=storage, catalog=catalog) as h:
            start.wait(60)
            with h.run(f"worker-{worker}"):
                assert h.get(input_id).file.read_text() == f"input {worker}"
                for n in range(count):
                    labels = {"project": "stress", "infos": {"worker": worker, "n": n}}
                    try:
                        if n % 2:
                            path = folder / f"part-{n}.txt"
                            path.write_text(f"worker {worker} artifact {n}")
                            ids.append(h.upload(path, labels=labels).artifact_id)
                        else:
                            with h.new(f"out-{n}.txt", labels=labels) as new:
                                new.file.write_text(f"worker {worker} artifact {n}")
                            ids.append(new.artifact.artifact_id)
                    except Exception as err:  # reported to the parent, which fails the test
                        errors.append(f"{type(err).__name__}: {err}")
    except BaseException:
        errors.append(traceback.format_exc())
    results.put((worker, ids, errors))


def crash_writer(
    storage: str, catalog: str, work_dir: str, mode: str, kill_at: int, how: str
) -> None:
    """Write artifacts until killed; ``kill_at`` > 0 kills at that local storage write.

    ``mode`` is ``upload`` (four files per artifact: writes 1-4, then the sidecar)
    or ``new`` (``x.bin`` through ``write_bytes``, ``sub/y.bin`` through
    ``open("wb")``, then the sidecar). At write number ``kill_at`` the process
    writes half of the bytes (``how="half"``) or all of them (``"full"``) and
    kills itself with SIGKILL. With ``kill_at`` <= 0 the parent kills it at a
    moment of its choosing. Prints ``ready`` once the handler is open, then each
    committed artifact id (flushed) once ``upload`` / the ``with`` block returned.
    """
    import elliptio._backends as backends
    import elliptio._storage as storage_module
    import elliptio._transfer as transfer

    writes = 0

    def maybe_die(data: Any, fd: int) -> None:
        nonlocal writes
        writes += 1
        if writes == kill_at:
            view = memoryview(data).cast("B")
            original_write_all(fd, view if how == "full" else view[: max(1, len(view) // 2)])
            os.kill(os.getpid(), signal.SIGKILL)

    original_write_all = transfer.write_all

    def write_all(fd: int, data: Any) -> None:
        maybe_die(data, fd)
        original_write_all(fd, data)

    storage_module.write_all = write_all  # type: ignore[attr-defined]
    backends.write_all = write_all  # type: ignore[attr-defined]
    transfer.write_all = write_all

    folder = Path(work_dir)
    with eio.Handler(storage=storage, catalog=catalog) as h:
        print("ready", flush=True)
        for n in range(1_000):
            if mode == "upload":
                files = []
                for k in range(4):
                    path = folder / f"a{n}" / f"f{k}.bin"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(os.urandom(64 * 1024 * (k + 1)))
                    files.append(path)
                art = h.upload(files, labels={"infos": {"n": n}})
            else:
                with h.new(["x.bin", "sub/y.bin"], labels={"infos": {"n": n}}) as new:
                    new.files["x.bin"].write_bytes(os.urandom(200_000))
                    with new.files["sub/y.bin"].open("wb") as f:
                        for _ in range(4):
                            f.write(os.urandom(50_000))
                art = new.artifact
            print(art.artifact_id, flush=True)


if __name__ == "__main__":
    crash_writer(*sys.argv[1:5], int(sys.argv[5]), sys.argv[6])


def named_writer(
    worker: int,
    storage: str,
    catalog: str,
    count: int,
    work_dir: str,
    start: Any,
    results: Any,
) -> None:
    """Commit ``count`` artifacts under the name ``dataset``; put (worker, refs, errors)."""
    refs: list[str] = []
    errors: list[str] = []
    try:
        folder = Path(work_dir) / f"named-{worker}"
        folder.mkdir(parents=True, exist_ok=True)
        with eio.Handler(storage=storage, catalog=catalog) as h:
            start.wait(60)
            for n in range(count):
                try:
                    if n % 2:
                        path = folder / f"part-{n}.txt"
                        path.write_text(f"worker {worker} version {n}")
                        art = h.upload(path, name="dataset")
                    else:
                        with h.new("part.txt", name="dataset") as new:
                            new.file.write_text(f"worker {worker} version {n}")
                        art = new.artifact
                    refs.append(str(art.ref))
                except Exception as err:  # reported to the parent, which fails the test
                    errors.append(f"{type(err).__name__}: {err}")
    except BaseException:
        errors.append(traceback.format_exc())
    results.put((worker, refs, errors))


def racing_writer(storage: str, catalog: str, count: int, work_dir: str, results: Any) -> None:
    """Commit ``count`` artifacts while the parent runs gc with no grace period.

    Puts (committed ids, ids whose commit gc pre-empted, other errors) on ``results``.
    """
    committed: list[str] = []
    lost: list[str] = []
    errors: list[str] = []
    try:
        folder = Path(work_dir)
        folder.mkdir(parents=True, exist_ok=True)
        with eio.Handler(storage=storage, catalog=catalog) as h:
            for n in range(count):
                try:
                    if n % 2:
                        paths = []
                        for k in range(3):
                            path = folder / f"file-{n}-{k}.txt"
                            path.write_text(f"artifact {n} file {k}")
                            paths.append(path)
                        committed.append(h.upload(paths, dedup=False).artifact_id)
                    else:
                        with h.new(["a.txt", "b.txt"], dedup=False) as new:
                            new.files["a.txt"].write_text(f"artifact {n} a")
                            new.files["b.txt"].write_text(f"artifact {n} b")
                        committed.append(new.artifact.artifact_id)
                except eio.CommitError as err:
                    # gc took a write that had not reached its commit point.
                    if "gc found it unfinished" in str(err):
                        lost.append(str(err).split()[0])
                    else:
                        errors.append(f"{type(err).__name__}: {err}")
                except eio.ElliptioError as err:
                    errors.append(f"{type(err).__name__}: {err}")
    except BaseException:
        errors.append(traceback.format_exc())
    results.put((committed, lost, errors))
