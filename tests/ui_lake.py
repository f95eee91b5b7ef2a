"""A small lake for the UI tests: a lineage chain, versions, aliases, previews, XSS.

raw-data:v1 -> clean:v1 -> train-set:v2 -> model:v1 -> report:v1, plus train-set:v1
(alias ``production``) and an unnamed artifact whose label is a script tag.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import elliptio as eio

XSS = "<script>alert(1)</script>"


def png(width: int = 24, height: int = 16) -> bytes:
    """A small valid PNG (an orange rectangle), made without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\xff\x80\x00" * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@dataclass
class Lake:
    raw: str
    clean: str
    train_v1: str
    train_v2: str
    model: str
    report: str
    xss: str


def build(h: eio.Handler, folder: Path) -> Lake:
    """Commit the lake's artifacts through ``h``; returns their ids."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raw.csv").write_text("id,text\n1,hello\n2,world\n")
    (folder / "clean.csv").write_text("id,text\n1,hello\n")
    (folder / "train.csv").write_text("sample,label\nalpha,1\nbeta,0\ngamma,1\n")
    (folder / "cover.png").write_bytes(png())
    (folder / "notes.txt").write_text("notes about the training set\n")
    (folder / "model.bin").write_bytes(b"\x00\x01weights")
    (folder / "report.md").write_text("# report\n")
    (folder / "evil.txt").write_text(XSS)
    ids = {}
    with eio.mock_username("andy"):
        ids["raw"] = h.upload(
            [folder / "raw.csv"], eio.Labels(datatype="raw", project="lake"), name="raw-data"
        ).artifact_id
        ids["train_v1"] = h.upload(
            [folder / "train.csv"],
            eio.Labels(datatype="annotation_file", project="lake", ticket="AB-1"),
            name="train-set",
        ).artifact_id
        h.set_alias("train-set:v1", "production")
        with h.run():
            h.get("raw-data:v1")
            ids["clean"] = h.upload(
                [folder / "clean.csv"], eio.Labels(datatype="clean"), name="clean"
            ).artifact_id
        with h.run():
            h.get("clean:v1")
            ids["train_v2"] = h.upload(
                [folder / "train.csv", folder / "cover.png", folder / "notes.txt"],
                eio.Labels(
                    datatype="annotation_file",
                    project="lake",
                    ticket="AB-2",
                    description="the second training set",
                    infos={"seed": 7, "stratification": "special"},
                ),
                name="train-set",
            ).artifact_id
    with eio.mock_username("brenda"), h.run():
        h.get("train-set:v2")
        ids["model"] = h.upload(
            [folder / "model.bin"], eio.Labels(datatype="model"), name="model"
        ).artifact_id
    with eio.mock_username("carl"), h.run():
        h.get("model:v1")
        ids["report"] = h.upload(
            [folder / "report.md"], eio.Labels(datatype="report"), name="report"
        ).artifact_id
    ids["xss"] = h.upload(
        [folder / "evil.txt"],
        eio.Labels(datatype=XSS, project="lake", infos={XSS: XSS}, description=XSS),
    ).artifact_id
    return Lake(**ids)
