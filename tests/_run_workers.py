"""Functions that worker processes run in the lineage tests (importable by spawn)."""

from __future__ import annotations

import pandas as pd


def rows(url: str) -> int:
    """Read an artifact file through its elliptio:// URL, as a data scientist would."""
    return len(pd.read_csv(url))


def rows_with(fs: object, url: str) -> int:
    """Read through a filesystem object the task carries (pickled with the task)."""
    with fs.open(url) as f:  # type: ignore[attr-defined]
        return len(pd.read_csv(f))


def rows_in_env(url: str, env: dict[str, str]) -> int:
    """Read in a process that got the run's variables from a Ray runtime_env."""
    import os

    assert all(os.environ.get(k) == v for k, v in env.items())
    return rows(url)


def rows_or_error(url: str) -> str:
    """Read as `rows` does; the error's type and message if it fails."""
    try:
        return str(rows(url))
    except Exception as err:
        return f"{type(err).__name__}: {err}"


def error_kinds(url: str) -> list[str]:
    """The names of the classes of the error reading ``url`` raises ([] if none)."""
    try:
        rows(url)
    except Exception as err:
        return [cls.__name__ for cls in type(err).__mro__]
    return []
