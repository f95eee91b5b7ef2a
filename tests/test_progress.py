"""Which bars a transfer draws: widgets in Jupyter with ipywidgets, none there without."""

from __future__ import annotations

import pytest
import tqdm.notebook
import tqdm.std
from fsspec.callbacks import DEFAULT_CALLBACK

from elliptio import _progress
from elliptio._progress import TransferProgress, bar_class, make_progress


def test_outside_jupyter_bars_are_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_progress, "in_jupyter", lambda: False)
    assert bar_class(forced=False) is tqdm.std.tqdm


def test_jupyter_without_ipywidgets_draws_no_bars_unless_forced(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_progress, "in_jupyter", lambda: True)
    monkeypatch.setattr(tqdm.notebook, "IProgress", None)
    assert bar_class(forced=False) is None
    assert make_progress(None, "upload x", files=2, nbytes=10) is DEFAULT_CALLBACK
    assert bar_class(forced=True) is tqdm.std.tqdm  # asked for: text bars
    forced = make_progress(True, "upload x", files=2, nbytes=10)
    assert isinstance(forced, TransferProgress)
    forced.close()
    assert "upload x" in capsys.readouterr().err


def test_jupyter_with_ipywidgets_draws_widgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_progress, "in_jupyter", lambda: True)
    monkeypatch.setattr(tqdm.notebook, "IProgress", object)  # what ipywidgets provides
    assert bar_class(forced=False) is tqdm.notebook.tqdm
