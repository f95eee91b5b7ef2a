"""The catalog benchmark still runs against the current API (tiny sizes, no peer)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_catalog_benchmark_runs_and_prints_its_table() -> None:
    script = ROOT / "benchmarks" / "catalog.py"
    done = subprocess.run(
        [sys.executable, str(script), "--sizes", "300", "--monty", ""],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("| artifacts | catalog |") for line in lines)
    [row] = [line for line in lines if line.startswith("| 300 | elliptio SQLite |")]
    # insert rate, three query latencies, the frame and its freeing: all measured.
    assert len(row.strip("|").split("|")) == 8
    assert "frame=" in done.stdout


def test_commit_overhead_benchmark_prints_the_floor_and_its_bar() -> None:
    script = ROOT / "benchmarks" / "commit_overhead.py"
    done = subprocess.run(
        [sys.executable, str(script), "--n", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # The floor is the first row, every ratio is to it, and the 3x bar is judged.
    assert lines[2].startswith("floor: put_file+sha256+insert")
    assert lines[2].split()[-1] == "1.0x"
    assert any(line.startswith("elliptio upload()") for line in lines)
    assert lines[-1].split()[0] in {"MET", "MISS"}
    assert "within 3x of the floor" in lines[-1]
