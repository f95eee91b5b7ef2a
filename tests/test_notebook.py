"""examples/user_story.ipynb, executed by a real Jupyter kernel: no errors, no warnings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "user_story.ipynb"


def _text(output: dict[str, Any]) -> str:
    if output["output_type"] == "stream":
        return str(output["text"])
    data = output.get("data", {})
    return str(data.get("text/html", data.get("text/plain", "")))


def test_user_story_notebook_runs_in_a_kernel_without_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat
    from nbclient import NotebookClient

    # The kernel inherits this environment: the embedded default under tmp_path,
    # this checkout's elliptio, and Jupyter's own files under tmp_path too.
    for key in [k for k in os.environ if k.startswith("ELLIPTIO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), path) if p))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out["output_type"] == "error"]
    assert errors == [], errors
    stderr = [out["text"] for out in outputs if out.get("name") == "stderr"]
    assert stderr == [], stderr  # no TqdmWarning, no DeprecationWarning, nothing
    text = "\n".join(_text(out) for out in outputs)
    assert "annotation_file" in text  # the find() frame, rendered
    assert "labels.infos.stratification" in text
    assert "The user story works." in text
    assert (tmp_path / "data" / "elliptio" / "catalog.db").is_file()
