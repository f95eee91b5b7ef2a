"""Catalog files written by earlier releases' own code, for the upgrade tests.

``records()`` are the records every file holds. Run from a checkout of the release
(its ``elliptio`` first on ``sys.path``) to write that release's file::

    git worktree add /tmp/v031 fa13802   # 0.3.1, SQLite schema 4
    PYTHONPATH=/tmp/v031 python tests/data/old_catalogs.py tests/data/catalog-0.3.1.db
    git worktree add /tmp/v040 d6ef46f   # 0.4.0, SQLite schema 7
    PYTHONPATH=/tmp/v040 python tests/data/old_catalogs.py tests/data/catalog-0.4.0.db

The files of the schemas between releases come the same way from the commits that
introduced them (``catalog-schema-N.db``; schema 8 from a1f865c, the last commit
before schema 9; schema 9 from 0fdd5ef, the last commit before schema 10; schema
10 from e772f05, the last commit before schema 11; schema 11 from 685e302, the
last commit before schema 12). Only the standard library and
the release's ``SQLiteCatalog`` are used, so each file is what that code wrote.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from typing import Any

T0 = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC)
PACKAGES = {f"package-{i:02d}": f"1.{i}.0" for i in range(40)}


def records() -> list[dict[str, Any]]:
    """Records as handlers write them, with the odd shapes a catalog must keep."""
    out: list[dict[str, Any]] = []
    for i in range(30):
        out.append(
            {
                "version": 1,
                "artifact_id": f"artifact_{i:04d}",
                "run_id": f"run_{i // 3}",
                "creation_time": T0 + dt.timedelta(minutes=i),
                "username": ["andy", "bob"][i % 2],
                "hostname": "host",
                "argv": ["train.py", str(i)],
                "python_version": "3.11.7",
                "platform": "Linux",
                "python_packages": PACKAGES if i % 3 else {**PACKAGES, "extra": str(i)},
                "git": {"commit": f"{i:040x}", "dirty": bool(i % 2), "diff": "+x\n" * (i % 4)},
                "labels": {
                    "datatype": ["model", "table"][i % 2],
                    "project": "lake" if i % 5 else 5,
                    "infos": {"seed": i, "lr": i / 8, "when": T0, "tags": ["a", str(i)]},
                },
                "files": [
                    {
                        "relpath": f"part-{i}.csv",
                        "url": f"file:///lake/{i}/part-{i}.csv",
                        "size": 100 + i % 3,
                        "sha256": f"{i % 3:064x}",
                    }
                ],
                "file_relpaths": [f"part-{i}.csv"],
                "logs": [],
                "log_relpaths": [],
                "based_on": [f"artifact_{j:04d}" for j in range(max(0, i - 2), i)],
                "remote_root": f"file:///lake/{i}",
                "local_root": "/home/andy",
                **({"name": "results", "name_version": i // 10 + 1} if i % 10 == 0 else {}),
            }
        )
    out.append({"artifact_id": "bare", "labels": {}})  # a record with almost nothing
    return out


async def _write(path: str) -> None:
    from elliptio._catalog.sqlite import SQLiteCatalog

    catalog = SQLiteCatalog(path)
    await catalog.insert_many(records())
    if hasattr(catalog, "reserve_version"):  # from schema 3 on
        await catalog.reserve_version("results")
        await catalog.set_alias("results", "best", 2)
        await catalog.open_lease("artifact_9999", "file:///lake/9999", T0)
    if hasattr(catalog, "add_run_inputs"):  # from schema 5 on
        await catalog.add_run_inputs("run_1", ["artifact_0001"])
    await catalog.close()


if __name__ == "__main__":
    asyncio.run(_write(sys.argv[1]))
