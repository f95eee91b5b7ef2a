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
    assert "<b>Lineage of artifact_" in text  # the graph, drawn by its _repr_html_
    assert (tmp_path / "data" / "elliptio" / "catalog.db").is_file()


def test_interrupting_an_upload_in_a_kernel_leaves_nothing_and_the_handler_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jupyter's "interrupt the kernel" while a cell uploads a folder (the cell's
    KeyboardInterrupt cancels the call on the IO loop): the copying threads went
    on after the clean-up had removed the folder and closed the lease, so files
    that landed during the removal stayed in a folder without lease or record."""
    from jupyter_client.manager import start_new_kernel

    for key in [k for k in os.environ if k.startswith("ELLIPTIO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), path) if p))
    src = tmp_path / "src"
    src.mkdir()
    for i in range(200):
        (src / f"f{i}.bin").write_bytes(os.urandom(500_000))
    store = tmp_path / "store"
    sent = tmp_path / "interrupt-sent"
    manager, client = start_new_kernel(kernel_name="python3")
    try:

        def run(code: str, interrupt_on: str | None = None) -> list[str]:
            msg_id = client.execute(code)
            seen: list[str] = []
            while True:
                msg = client.get_iopub_msg(timeout=120)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    seen.append(content["text"])
                    if interrupt_on is not None and interrupt_on in content["text"]:
                        manager.interrupt_kernel()
                        sent.touch()
                elif kind == "error":
                    seen.append(f"{content['ename']}: {content['evalue']}")
                elif kind == "execute_result":
                    seen.append(content["data"]["text/plain"])
                elif kind == "status" and content["execution_state"] == "idle":
                    return seen

        setup = (
            "import os, threading, time\n"
            "import elliptio as eio\n"
            f"h = eio.Handler(storage={str(store)!r}, "
            f"catalog={'sqlite:///' + str(tmp_path / 'catalog.db')!r})\n"
            # One file's copy waits until the interrupt is sent (and half a second
            # more), so the interrupt lands before the copy is over and the record
            # in (with a fixed delay it sometimes did not: the artifact stayed then,
            # as it should). The others copy at full speed. Under load it still
            # failed, 3 full runs in 6: the OS handed SIGINT to another thread, and
            # the sync call's wait did not wake for it (fixed in 2ed4053).
            "backend = h.aio.storage.backend\n"
            "real_put = backend._put_file\n"
            "def slow_put(local, *args):\n"
            "    if local.name == 'f7.bin':\n"
            "        deadline = time.monotonic() + 120\n"
            f"        while not os.path.exists({str(sent)!r}) and time.monotonic() < deadline:\n"
            "            time.sleep(0.01)\n"
            "        time.sleep(0.5)\n"
            "    return real_put(local, *args)\n"
            "backend._put_file = slow_put\n"
            "def tell():  # once the first file has landed, the copy is under way\n"
            f"    while not any(n.endswith('.bin') for *_, ns in os.walk({str(store)!r}) "
            "for n in ns):\n"
            "        time.sleep(0.001)\n"
            "    print('copying', flush=True)\n"
        )
        assert run(setup) == []
        out = run(
            f"threading.Thread(target=tell).start()\nh.upload({str(src)!r})",
            interrupt_on="copying",
        )
        assert any(line.startswith("KeyboardInterrupt") for line in out), out
        assert run("print(h.count())") == ["0\n"]
        assert [p for p in store.rglob("*") if p.is_file()] == []
        leases = "from datetime import UTC, datetime, timedelta\nfrom elliptio._sync import sync\n"
        leases += "print(sync(h.catalog.old_leases(datetime.now(tz=UTC) + timedelta(days=1))))"
        assert run(leases) == ["[]\n"]
        again = run(
            f"print(h.upload({str(src / 'f1.bin')!r}).file.read_bytes() == "
            f"open({str(src / 'f1.bin')!r}, 'rb').read(), h.count())"
        )
        assert again == ["True 1\n"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
