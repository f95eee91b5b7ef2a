"""Artifact names, versions and aliases: validation and parsing. Pure.

An artifact may be committed under a ``name``; each commit under a name gets the
next version, ``v1``, ``v2``, ... An artifact is then found by reference:

* ``train-set:v3``: version 3 of ``train-set``;
* ``train-set:latest`` (or plain ``train-set``): its highest committed version;
* ``train-set:production``: the version the alias ``production`` points to.
  Aliases move only when someone moves them (``h.set_alias``); only ``latest``
  follows new commits by itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import InvalidNameError

# The highest version a name counts to: past it, a counter or ``name_version``
# (one planted in a shared catalog) is ignored, and one more than 64 bits hold is
# never computed; JSON readers take integers up to it exactly.
VERSION_CEILING = 2**53

__all__ = [
    "LATEST",
    "NameRef",
    "format_aliases",
    "format_ref",
    "parse_ref",
    "validate_alias",
    "validate_name",
]

LATEST = "latest"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VERSION_RE = re.compile(r"v([1-9][0-9]{0,17})")
# Artifact ids start so (`elliptio._layout`); a name starting so could not be told apart.
ID_PREFIX = "artifact_"
_RULE = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"


def validate_name(name: object) -> str:
    """Return ``name`` if it can name artifacts.

    Raises:
        InvalidNameError: it is not a str of 1 to 128 letters, digits, ``.``,
            ``_`` or ``-`` that starts with a letter or digit.
    """
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"artifact name {_show(name)} is not valid: use {_RULE}, e.g. 'train-set'"
        )
    if name.startswith(ID_PREFIX):
        raise InvalidNameError(
            f"artifact name {name!r} starts with {ID_PREFIX!r}, as artifact ids do, so "
            "no reference could reach it; choose another name, e.g. 'train-set'"
        )
    return name


def validate_alias(alias: object) -> str:
    """Return ``alias`` if it can be set by a user.

    Raises:
        InvalidNameError: it is malformed, or reserved (``latest``, ``v<n>``).
    """
    if not isinstance(alias, str) or not _NAME_RE.fullmatch(alias):
        raise InvalidNameError(f"alias {_show(alias)} is not valid: use {_RULE}, e.g. 'production'")
    if alias == LATEST or re.fullmatch(r"v[0-9]+", alias):
        raise InvalidNameError(
            f"alias {alias!r} is reserved: 'latest' always follows the newest version and "
            "'v<n>' names version n; choose another alias, e.g. 'production'"
        )
    return alias


@dataclass(frozen=True)
class NameRef:
    """A parsed reference: ``version`` set for ``name:v<n>``, ``alias`` for an
    alias, neither for ``latest``."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return format_ref(self.name, self.version)
        return f"{self.name}:{self.alias or LATEST}"


def parse_ref(ref: str) -> NameRef:
    """Parse ``name``, ``name:latest``, ``name:v<n>`` or ``name:<alias>``.

    Raises:
        InvalidNameError: the reference is malformed.
    """
    name, sep, tag = ref.partition(":")
    if not sep and _NAME_RE.fullmatch(name):
        return NameRef(name)
    if not _NAME_RE.fullmatch(name) or not _NAME_RE.fullmatch(tag):
        raise InvalidNameError(
            f"{_show(ref)} is neither an artifact id nor a name reference; use "
            "'artifact_<uuid4>', 'name', 'name:latest', 'name:v3' or 'name:<alias>'"
        )
    if tag == LATEST:
        return NameRef(name)
    match = _VERSION_RE.fullmatch(tag)
    if match:
        return NameRef(name, version=int(match[1]))
    return NameRef(name, alias=tag)


def format_ref(name: str, version: int) -> str:
    """``name:v<version>``."""
    return f"{name}:v{version}"


def format_aliases(aliases: Mapping[str, int]) -> dict[str, str]:
    """Aliases as every API and the CLI show them: ``{"production": "v2"}``, by alias."""
    return {alias: f"v{version}" for alias, version in sorted(aliases.items())}


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
