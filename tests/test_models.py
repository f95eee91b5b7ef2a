"""The record model: labels validation, UTC times, JSON round trip, schema versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import elliptio as eio
from elliptio._models import UPGRADES, upgrade_record


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": eio.SCHEMA_VERSION,
        "artifact_id": "artifact_b4c31f3a-c25d-4dda-aa74-cab7245116f8",
        "run_id": "run_2ea13cb6-61b9-41ef-82f7-b58acf119180",
        "creation_time": datetime(2023, 12, 3, 13, 42, 55, 338000, tzinfo=UTC),
        "username": "andy",
        "hostname": "cgebbe",
        "argv": ["python", "-m", "ipykernel_launcher"],
        "python_version": "3.11.7",
        "platform": "Linux",
        "python_packages": {"pandas": "2.1.3"},
        "git": None,
        "labels": {"datatype": "annotation_file", "infos": {"seed": 1}},
        "files": [{"relpath": "a.txt", "url": "/lake/a.txt", "size": 1, "sha256": "0" * 64}],
        "file_relpaths": ["a.txt"],
        "remote_root": "/lake",
    }
    doc.update(changes)
    return doc


def test_record_round_trips_through_json() -> None:
    m = upgrade_record(_doc())
    again = eio.Metadata.model_validate_json(m.model_dump_json())
    assert again == m
    assert again.creation_time.tzinfo is not None


def test_creation_time_is_kept_in_utc() -> None:
    cet = timezone(timedelta(hours=1))
    m = upgrade_record(_doc(creation_time=datetime(2023, 12, 3, 14, 0, tzinfo=cet)))
    assert m.creation_time == datetime(2023, 12, 3, 13, 0, tzinfo=UTC)
    assert m.creation_time.utcoffset() == timedelta(0)


def test_naive_creation_time_is_refused() -> None:
    with pytest.raises(eio.CorruptRecordError, match=r"creation_time.*timezone"):
        upgrade_record(_doc(creation_time=datetime(2023, 12, 3)))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"files": "not a list"}, "files"),
        ({"labels": {"infos": 3}}, "labels"),
        ({"artifact_id": "x" * 500}, "artifact_id"),
        (
            {"files": [{"relpath": "../../.bashrc", "url": "u", "size": 1, "sha256": "0" * 64}]},
            "relpath",
        ),
        ({"name": "train-set", "name_version": None}, "name"),
        ({"name": "bad name!", "name_version": 1}, "name"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_malformed_record_is_a_typed_error(change: dict[str, object], needle: str) -> None:
    # A record from a shared catalog or a sidecar is input too: a malformed one
    # gives a typed error naming the field, never pydantic's own exception.
    with pytest.raises(eio.CorruptRecordError, match=needle) as info:
        upgrade_record(_doc(**change))
    assert "reindex" in str(info.value)
    assert len(str(info.value)) < 1000


def test_version_1_records_read_as_unnamed() -> None:
    m = upgrade_record(_doc(version=1))
    assert m.version == eio.SCHEMA_VERSION
    assert (m.name, m.name_version, m.ref) == (None, None, None)


def test_schema_versions() -> None:
    with pytest.raises(eio.SchemaVersionError, match="newer"):
        upgrade_record(_doc(version=eio.SCHEMA_VERSION + 1))
    with pytest.raises(eio.SchemaVersionError, match="no upgrade"):
        upgrade_record(_doc(version=0))
    with pytest.raises(eio.SchemaVersionError, match="integer"):
        upgrade_record(_doc(version="1"))


def test_older_versions_load_through_upgrade_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    def from_v0(doc: dict[str, Any]) -> dict[str, Any]:
        doc = dict(doc, version=1)
        doc["argv"] = doc["argv"].split()  # say v0 stored argv as one string
        return doc

    monkeypatch.setitem(UPGRADES, 0, from_v0)
    m = upgrade_record(_doc(version=0, argv="python train.py"))
    assert m.version == eio.SCHEMA_VERSION
    assert m.argv == ["python", "train.py"]


def test_labels_are_frozen_values() -> None:
    labels = eio.Labels(ticket="AB-123", infos={"when": datetime(2024, 1, 1, tzinfo=UTC)})
    assert labels == eio.Labels(ticket="AB-123", infos={"when": datetime(2024, 1, 1, tzinfo=UTC)})
    with pytest.raises(ValueError, match="frozen"):
        labels.ticket = "x"  # type: ignore[misc]
    cet = timezone(timedelta(hours=1))
    moved = eio.Labels(infos={"t": datetime(2024, 1, 1, 1, tzinfo=cet), "l": (1, 2)})
    assert moved.infos == {"t": datetime(2024, 1, 1, tzinfo=UTC), "l": [1, 2]}
