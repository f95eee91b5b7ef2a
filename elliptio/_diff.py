"""Compare two artifacts: files added, removed and changed (by sha256), labels changed.

Pure: it works on two records and reads no file bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._models import Metadata

__all__ = ["ArtifactDiff", "diff_records"]

_MISSING = "(absent)"


@dataclass(frozen=True)
class ArtifactDiff:
    """What changed from artifact ``a`` to artifact ``b``.

    Attributes:
        a, b: the two artifacts, as ``name:vN`` where they have one, else their ids.
        added, removed: relpaths only in ``b``, only in ``a``.
        changed: relpaths in both whose content (sha256) differs.
        unchanged: relpaths in both with the same content.
        labels: changed label paths (dotted, e.g. ``infos.seed``) to
            ``(value in a, value in b)``; a side without the path shows ``None``.
        size_a, size_b: total bytes of each artifact's files.
    """

    a: str
    b: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    labels: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    size_a: int = 0
    size_b: int = 0

    @property
    def same(self) -> bool:
        """Whether both hold the same files with the same content and labels."""
        return not (self.added or self.removed or self.changed or self.labels)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return {
            "a": self.a,
            "b": self.b,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "labels": {k: {"a": old, "b": new} for k, (old, new) in self.labels.items()},
            "size_a": self.size_a,
            "size_b": self.size_b,
        }

    def __str__(self) -> str:
        lines = [f"--- {self.a}", f"+++ {self.b}"]
        lines += [f"+ {p}" for p in self.added]
        lines += [f"- {p}" for p in self.removed]
        lines += [f"~ {p}" for p in self.changed]
        for path, (old, new) in self.labels.items():
            lines.append(f"labels.{path}: {_show(old)} -> {_show(new)}")
        delta = self.size_b - self.size_a
        lines.append(
            f"{len(self.unchanged)} unchanged; size {self.size_a} -> {self.size_b} bytes "
            f"({delta:+d})"
        )
        return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return _MISSING if value is None else repr(value)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if "." not in prefix and value == {}:
        return  # no labels at all, or no infos: nothing to compare
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def _equal(x: Any, y: Any) -> bool:
    """Equal as queries tell values apart: ``True`` is not ``1`` (Python's ``==``
    says it is), ``1`` is ``1.0``, and a missing label is ``None``."""
    if isinstance(x, bool) or isinstance(y, bool):
        return type(x) is type(y) and x == y
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_equal(i, j) for i, j in zip(x, y, strict=True))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_equal(x[k], y[k]) for k in x)
    return bool(x == y)


def diff_records(a: Metadata, b: Metadata) -> ArtifactDiff:
    """The difference from record ``a`` to record ``b``."""
    files_a = {f.relpath: f for f in a.files}
    files_b = {f.relpath: f for f in b.files}
    both = sorted(files_a.keys() & files_b.keys())
    labels_a: dict[str, Any] = {}
    labels_b: dict[str, Any] = {}
    _flatten(a.labels.model_dump(exclude_defaults=True), "", labels_a)
    _flatten(b.labels.model_dump(exclude_defaults=True), "", labels_b)
    labels = {
        path: (labels_a.get(path), labels_b.get(path))
        for path in sorted(labels_a.keys() | labels_b.keys())
        if not _equal(labels_a.get(path), labels_b.get(path))
    }
    return ArtifactDiff(
        a=a.ref or a.artifact_id,
        b=b.ref or b.artifact_id,
        added=sorted(files_b.keys() - files_a.keys()),
        removed=sorted(files_a.keys() - files_b.keys()),
        changed=[p for p in both if files_a[p].sha256 != files_b[p].sha256],
        unchanged=[p for p in both if files_a[p].sha256 == files_b[p].sha256],
        labels=labels,
        size_a=sum(f.size for f in a.files),
        size_b=sum(f.size for f in b.files),
    )
