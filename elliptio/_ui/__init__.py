"""``elliptio ui``: browse, search, preview and follow lineage in a browser.

Needs the optional extra: ``pip install 'elliptio[ui]'`` (Starlette and uvicorn).
Modules: `search` (form to filter), `graph` (lineage as SVG), `preview` (file
previews), `pages` (HTML), `app` (routes and reads), `server` (uvicorn).
"""

from __future__ import annotations

from elliptio._errors import ConfigError

__all__ = ["require"]


def require() -> None:
    """Raise `ConfigError` with the install hint when the UI's packages are missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"the UI needs {err.name}: pip install 'elliptio[ui]'") from None
