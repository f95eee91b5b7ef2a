"""Graphviz, when installed: DOT source to SVG with ``dot -Tsvg``.

Optional: without ``dot`` on the PATH, or when it fails or takes longer than a
few seconds, the caller keeps the picture `graph.draw` laid out itself.
"""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["render"]

_TIMEOUT = 10.0


def render(source: str) -> str | None:
    """The ``<svg>`` element Graphviz makes of ``source``, or ``None``."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    try:
        done = subprocess.run(
            [dot, "-Tsvg"],
            input=source.encode(),
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = done.stdout.decode("utf-8", errors="replace")
    start = text.find("<svg")
    if done.returncode != 0 or start < 0:
        return None
    return text[start:]
