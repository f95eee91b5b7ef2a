"""How artifacts show in Jupyter: `Artifact._repr_html_`, every value escaped."""

from __future__ import annotations

import re
from pathlib import Path

import elliptio as eio


def test_artifact_html_shows_its_record_escaped(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n" + "1\n" * 700)
    (tmp_path / "<b>.txt").write_text("hi")
    with eio.Handler(storage=tmp_path / "store", catalog="memory://") as h:
        raw = h.upload(tmp_path / "a.csv")
        with h.run(), eio.mock_username("andy&co"):
            h.get(raw.artifact_id)
            art = h.upload(
                [tmp_path / "a.csv", tmp_path / "<b>.txt"],
                name="train-set",
                labels=eio.Labels(datatype='"table" & <i>co</i>', description="two\nlines"),
            )
        page = art._repr_html_()
        plain = raw._repr_html_()
    rows = dict(re.findall(r"<tr><th[^>]*>([^<]*)</th><td>(.*?)</td></tr>", page, re.S))
    assert rows["name"] == "train-set:v1"
    assert rows["artifact_id"] == art.artifact_id
    assert rows["user"].startswith("andy&amp;co@")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", rows["created"])
    assert rows["labels.datatype"] == "&quot;table&quot; &amp; &lt;i&gt;co&lt;/i&gt;"
    assert rows["based_on"] == raw.artifact_id
    assert "labels.project" not in rows  # empty labels are left out
    assert "<script" not in page
    assert "<i>" not in page
    assert page.startswith("<div><b>Artifact train-set:v1</b>")
    # files with their sizes, and the total
    files = re.findall(r"<tr><td>([^<]*)</td><td[^>]*>([^<]*)</td></tr>", page)
    assert files == [("&lt;b&gt;.txt", "2 B"), ("a.csv", "1.4 kB")]
    total = "<th style='text-align:left'>2 files</th><th style='text-align:right'>1.4 kB</th>"
    assert total in page
    # an unnamed artifact: titled by its id, nothing read
    assert plain.startswith(f"<div><b>Artifact {raw.artifact_id}</b>")
    assert "<th style='text-align:left'>name</th>" not in plain
    assert "(nothing read)" in plain
    assert "1 file</th>" in plain
