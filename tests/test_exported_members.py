"""The public API is what elliptio/__init__.py lists, and nothing private leaks."""

from __future__ import annotations

import elliptio as eio


def test_all_names_exist_and_are_public() -> None:
    for name in eio.__all__:
        assert hasattr(eio, name), name
    assert len(set(eio.__all__)) == len(eio.__all__)
    public = {n for n in dir(eio) if not n.startswith("_")} - {"annotations"}
    assert public <= set(eio.__all__), public - set(eio.__all__)


def test_every_error_derives_from_the_root() -> None:
    errors = [getattr(eio, n) for n in eio.__all__ if n.endswith("Error")]
    assert all(issubclass(e, eio.ElliptioError) for e in errors)
    assert issubclass(eio.ArtifactNotFoundError, KeyError)
    assert issubclass(eio.InvalidPathError, ValueError)
    assert str(eio.ArtifactNotFoundError("no such artifact")) == "no such artifact"


def test_version_matches_the_package_metadata() -> None:
    from importlib.metadata import version

    import elliptio

    assert elliptio.__version__ == version("elliptio")
