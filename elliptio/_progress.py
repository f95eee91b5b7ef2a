"""Progress bars for transfers: tqdm bars fed through fsspec callbacks.

A transfer gets one `TransferProgress` (an fsspec `Callback`): it draws a bytes bar
and, for more than one file, a files bar. Each file's transfer takes a child from
``progress.branched(src, dst)`` (the fsspec convention) and reports its bytes with
``child.relative_update(n)``; the transfer calls ``progress.relative_update(1)``
when a file is done, which advances the files bar. Bars are drawn only when the
session is interactive (a terminal on stderr, or Jupyter) unless the
``progress`` setting forces them on or off; when off, the no-op
`fsspec.callbacks.DEFAULT_CALLBACK` stands in at no cost.

In Jupyter the bars are widgets when ipywidgets is installed; without it they
are left out (rather than tqdm's ``IProgress not found`` warning and text bars in
the cell), unless the setting forces them on, which draws them as text.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from fsspec.callbacks import DEFAULT_CALLBACK, Callback

__all__ = ["TransferProgress", "bar_class", "in_jupyter", "is_interactive", "make_progress"]

# Shown only for transfers that take longer than this (when not forced on), so
# quick saves stay quiet even in a terminal.
AUTO_DELAY_SECONDS = 1.0


def in_jupyter() -> bool:
    """Whether this runs in a Jupyter kernel (IPython with a kernel)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return shell is not None and hasattr(shell, "kernel")


def bar_class(forced: bool) -> type[Any] | None:
    """The tqdm class to draw with: widgets in Jupyter when ipywidgets is there.

    Args:
        forced: the bars were asked for explicitly; without ipywidgets in Jupyter
            they are drawn as text then, else left out (``None``).
    """
    if in_jupyter():
        from tqdm import notebook

        if getattr(notebook, "IProgress", None) is not None:  # ipywidgets imported
            return notebook.tqdm
        if not forced:
            return None
    from tqdm.std import tqdm

    return tqdm


def is_interactive() -> bool:
    """Whether a person is watching: stderr is a terminal, or this is Jupyter."""
    if in_jupyter():
        return True
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def make_progress(setting: bool | None, desc: str, *, files: int, nbytes: int | None) -> Callback:
    """A progress callback for a transfer, or the no-op callback when bars are off.

    Args:
        setting: the ``progress`` setting: ``True`` forces bars on (drawn at once),
            ``False`` off, ``None`` draws them when interactive and the transfer
            lasts longer than a second.
        desc: what is moving, e.g. ``"upload artifact_..."``.
        files: how many files the transfer holds.
        nbytes: their total size, if known.
    """
    enabled = is_interactive() if setting is None else setting
    bar = bar_class(forced=bool(setting)) if enabled else None
    if bar is None:
        return DEFAULT_CALLBACK
    delay = 0.0 if setting else AUTO_DELAY_SECONDS
    return TransferProgress(desc, files=files, nbytes=nbytes, delay=delay, bar=bar)


class TransferProgress(Callback):  # type: ignore[misc]  # fsspec is untyped
    """Bytes and files bars for one transfer; thread-safe.

    Its own ``value``/``size`` count files; children count bytes.
    """

    def __init__(
        self,
        desc: str,
        *,
        files: int,
        nbytes: int | None,
        delay: float = 0.0,
        bar: type[Any] | None = None,
    ) -> None:
        super().__init__(size=files, value=0)
        if bar is None:
            from tqdm.std import tqdm

            bar = tqdm

        self._lock = threading.Lock()
        common: dict[str, Any] = {"delay": delay, "leave": True, "dynamic_ncols": True}
        self.bytes_bar = bar(
            total=nbytes,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            position=0,
            **common,
        )
        self.files_bar = (
            bar(total=files, desc="files", unit="file", position=1, **common) if files > 1 else None
        )

    def add_bytes(self, n: int) -> None:
        """Advance the bytes bar by ``n``."""
        with self._lock:
            self.bytes_bar.update(n)

    def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
        """Draw the files count (fsspec calls this on every update)."""
        if self.files_bar is not None:
            with self._lock:
                self.files_bar.update(self.value - self.files_bar.n)

    def relative_update(self, inc: int = 1) -> None:
        """Count ``inc`` more files done."""
        with self._lock:
            self.value += inc
        self.call()

    def branched(self, path_1: str, path_2: str, **kwargs: Any) -> Callback:
        """The callback of one file's transfer, ``path_1`` to ``path_2``."""
        return _FileProgress(self)

    def close(self) -> None:
        """Close the bars."""
        with self._lock:
            self.bytes_bar.close()
            if self.files_bar is not None:
                self.files_bar.close()


class _FileProgress(Callback):  # type: ignore[misc]  # fsspec is untyped
    """One file's bytes, relayed to its parent's bytes bar."""

    def __init__(self, parent: TransferProgress) -> None:
        super().__init__()
        self._parent = parent

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        self._parent.add_bytes(inc)

    def absolute_update(self, value: int) -> None:
        self.relative_update(value - self.value)

    def set_size(self, size: int) -> None:
        self.size = size

    def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
        return None


def counting_bar(desc: str, total: int) -> Any:
    """A bar counting ``total`` items when someone watches, else ``None``; the
    caller calls ``update(n)`` and ``close()`` on it."""
    bar = bar_class(forced=False) if is_interactive() else None
    if bar is None:
        return None
    return bar(total=total, desc=desc, unit=" records", delay=AUTO_DELAY_SECONDS)
