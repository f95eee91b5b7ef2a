"""The catalog benchmark still runs against the current API (tiny sizes, no peer)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> list[str]:
    """Run a benchmark script; its output lines (it must succeed)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_catalog_benchmark_runs_and_prints_its_table() -> None:
    lines = _run("catalog.py", "--sizes", "300", "--baseline", "")
    assert any(line.startswith("| 300 artifacts | baseline | now |") for line in lines)
    rows = [line for line in lines if line.startswith("| ") and "---" not in line]
    measured = {row.split("|")[1].strip(): row.split("|")[3].strip() for row in rows[1:]}
    # Every bar is measured: sizes, rates, latencies and the frame.
    assert len(measured) == 9
    assert all(value not in ("", "-") for value in measured.values())
    assert float(measured["catalog bytes per artifact (SQLite file / N)"].replace(",", "")) > 0


def test_commit_overhead_benchmark_prints_the_floor_and_its_bar() -> None:
    lines = _run("commit_overhead.py", "--n", "3")
    # The floor is the first row, every ratio is to it, and the 3x bar is judged.
    assert lines[2].startswith("floor: put_file+sha256+insert")
    assert lines[2].split()[-1] == "1.0x"
    assert any(line.startswith("elliptio upload()") for line in lines)
    assert lines[-1].split()[0] in {"MET", "MISS"}
    assert "within 3x of the floor" in lines[-1]


def test_lineage_workers_benchmark_prints_both_modes_and_the_ratio() -> None:
    lines = _run("lineage_workers.py", "--reads", "6", "--repeat", "1", "--chunk", "2")
    assert lines[0].startswith("6 reads of one-row CSV artifacts")
    assert lines[2].startswith("lineage off")
    assert lines[2].split()[-1] == "1.00x"
    assert lines[3].startswith("lineage on")
    assert lines[4].startswith("on/off per round: ")
    assert lines[-1].split()[0] in {"MET", "MISS"}
    assert "within 1.2x of lineage off" in lines[-1]


def test_delete_benchmark_prints_its_ratio() -> None:
    lines = _run("delete.py", "--n", "5", "--mongo")
    rows = [line for line in lines if line.startswith("| local disk")]
    assert [row.split("|")[1].strip() for row in rows] == [
        "local disk + SQLite",
        "local disk + mongomock",
    ]
    assert all(row.rstrip(" |").endswith("x") for row in rows)


def test_index_benchmark_prints_its_ratios() -> None:
    lines = _run("index.py", "--n", "3")
    rows = [line.split("|")[1:-1] for line in lines if line.startswith("| local disk")]
    assert [row[1].strip() for row in rows] == [
        "upload with a catalog",
        "write, storage only",
        "reindex --prefix <day>",
    ]
    assert rows[0][3].strip() == "1.00x"
    assert all(row[3].strip().endswith("x") for row in rows)


def test_in_lists_benchmark_finds_what_pandas_finds() -> None:
    lines = _run("in_lists.py", "--size", "400", "--values", "300")
    rows = [line.split("|") for line in lines if line.startswith("| ") and "---" not in line]
    found = {row[1].strip(): int(row[3].strip().replace(",", "")) for row in rows[1:]}
    assert set(found) == {
        "artifact_id",
        "labels.infos.seed",
        "based_on",
        "username",
        "labels.datatype",
    }
    # Every other id and seed of 400 records: 200 of them; every user and datatype.
    assert found["artifact_id"] == found["labels.infos.seed"] == 200
    assert found["username"] == found["labels.datatype"] == 400
