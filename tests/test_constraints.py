"""`.ci/constraints.txt` pins every package the extras ask for, consistently, so the
README's install resolves in one pass."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{line!r} is not a name==version pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    names = [*project["dependencies"], *(r for extra in extras.values() for r in extra)]
    return [Requirement(r) for r in names]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} has no pin in .ci/constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])


def test_the_aws_stack_fits_together() -> None:
    pins = _pins()
    # boto3 and botocore are released in lockstep; aiobotocore pins a botocore range.
    assert pins["boto3"].release[:2] == pins["botocore"].release[:2]
    assert pins["s3fs"] == pins["fsspec"]
    try:
        wanted = [Requirement(r) for r in requires("aiobotocore") or []]
    except PackageNotFoundError:  # pragma: no cover - s3fs brings it in the test extra
        pytest.fail("aiobotocore is not installed; install the test extra")
    botocore = next(r for r in wanted if canonicalize_name(r.name) == "botocore")
    assert botocore.specifier.contains(pins["botocore"]), (botocore, pins["botocore"])
