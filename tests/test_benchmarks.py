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
