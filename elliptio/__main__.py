"""``python -m elliptio``: the command line."""

from __future__ import annotations

from ._cli import run

if __name__ == "__main__":
    run()
