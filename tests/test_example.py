"""The README's first command: the user story runs on the embedded default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_user_story_example_runs_on_the_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELLIPTIO_")}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    for _ in range(2):  # a second run finds the newest artifacts, not the first ones
        result = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "user_story.py")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "The user story works." in result.stdout
        # Andy's drawing: his files, then Brenda's model built on them
        [andy] = [
            line for line in result.stdout.splitlines() if line.endswith("[train.txt, test.txt]")
        ]
        assert andy.startswith("artifact_")
        assert " andy (annotation_file) " in andy
        lines = result.stdout.splitlines()
        assert lines[lines.index(andy) + 1].startswith("└── -> artifact_")
        assert lines[lines.index(andy) + 1].endswith(" brenda [model.pt]")
    assert (tmp_path / "data" / "elliptio" / "catalog.db").is_file()
    store = tmp_path / "data" / "elliptio" / "store"
    models = [
        record
        for sidecar in store.rglob("metadata.json")
        if (record := json.loads(sidecar.read_text()))["file_relpaths"] == ["model.pt"]
    ]
    assert len(models) == 2
    # The second run saved the very same model bytes: stored once, referenced twice.
    assert len(list(store.rglob("model.pt"))) == 1
    assert models[0]["files"][0]["url"] == models[1]["files"][0]["url"]


def _python_block_after(text: str, heading: str) -> str:
    after = text.split(heading, 1)[1]
    return after.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    """README "A tour", copied as written after its note's two small files: `.file`
    on a two-file artifact and an undefined `model` stopped it (helper-42)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELLIPTIO_")}
    env["HOME"] = str(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "train.txt").write_text("a,b\n1,2\n")
    (tmp_path / "docs" / "test.txt").write_text("a,b\n3,4\n")
    pages = ((ROOT / "README.md", "## A tour"), (ROOT / "docs/concepts.md", "# Concepts"))
    for page, heading in pages:
        code = _python_block_after(page.read_text(), heading)
        env["XDG_DATA_HOME"] = str(tmp_path / page.name)  # a fresh store and catalog
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{page.name}: {result.stderr}"


def test_the_readme_tour_type_checks(tmp_path: Path) -> None:
    """The package ships py.typed, so the README tour must pass a strict type
    check as written: `h.lineage(artifact, ...)` takes the Artifact the tour holds
    (as get, resolve and the runtime do), but lineage, verify, diff, set_alias,
    set_labels and delete were annotated `str` only."""
    pages = ((ROOT / "README.md", "## A tour"), (ROOT / "docs/concepts.md", "# Concepts"))
    for page, heading in pages:
        code = _python_block_after(page.read_text(), heading)
        extra = (
            "\nh.verify(artifact); h.diff(artifact, artifact)"
            '\nh.set_alias(artifact, "p"); h.set_labels(artifact, {}); '
            'h.delete(artifact, reason="r")\n'
        )
        (tmp_path / f"tour_{page.stem}.py").write_text(code + extra)
    tours = sorted(str(p) for p in tmp_path.glob("tour_*.py"))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", *tours],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
