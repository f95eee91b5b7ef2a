"""Pictures from DOT source through the Graphviz ``dot`` program, where it is installed.

Graphviz is a system program, not a Python package: elliptio calls the ``dot``
binary on the ``PATH`` and says how to install it when it is missing. The DOT
source goes in on stdin, the picture comes back on stdout; nothing is written to
disk here.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Literal

from ._errors import GraphvizError, GraphvizNotFoundError, UsageError

__all__ = ["Picture", "available", "render"]

Picture = Literal["svg", "png"]

INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install -c conda-forge graphviz), or draw it as text, Mermaid or DOT, "
    "which need no Graphviz (graph.to_text(), to_mermaid(), to_dot(); on the command "
    "line --format text, mermaid or dot)"
)
_TIMEOUT = 60.0


def available() -> bool:
    """Whether the Graphviz ``dot`` program is on the ``PATH``."""
    return shutil.which("dot") is not None


def render(source: str, fmt: Picture) -> bytes:
    """``source`` (DOT) drawn as ``fmt`` by Graphviz ``dot``.

    Raises:
        GraphvizNotFoundError: ``dot`` is not installed (the message says how to
            install it).
        GraphvizError: ``dot`` failed or took longer than a minute.
    """
    if fmt not in ("svg", "png"):
        raise UsageError(f"Graphviz pictures are 'svg' or 'png', not {fmt!r}")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFoundError(
            f"drawing a {fmt} picture needs the Graphviz 'dot' program, which is not on the PATH: "
            + INSTALL_HINT
        )
    try:
        done = subprocess.run(
            [dot, f"-T{fmt}"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise GraphvizError(f"Graphviz 'dot' took longer than {_TIMEOUT:.0f}s to draw") from err
    except OSError as err:
        why = f"Graphviz 'dot' could not run ({err}); "
        raise GraphvizNotFoundError(why + INSTALL_HINT) from err
    if done.returncode != 0:
        problem = " ".join(done.stderr.decode("utf-8", "replace").split())[:500]
        raise GraphvizError(f"Graphviz 'dot' failed (exit {done.returncode}): {problem}")
    return done.stdout
