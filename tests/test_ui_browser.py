"""The UI end to end in a real headless Chromium (Debian's package, driven by Playwright).

The issue's "done when" flow: search by a label, open an artifact, see a CSV and
an image preview, follow lineage two hops up and down by clicking, switch to
another version, verify, and see a script label as text. The run also takes the
README's screenshots; ``UI_SCREENSHOTS=docs pytest tests/test_ui_browser.py`` refreshes
them there (a path relative to the repository).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import elliptio as eio
from tests.ui_lake import XSS, Lake, build

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Lake]]:
    with eio.Handler(storage=tmp_path / "store", catalog=f"sqlite:///{tmp_path}/c.db") as h:
        lake = build(h, tmp_path / "src")
        server = h.ui()
        try:
            yield server.url, lake
        finally:
            server.stop()


@pytest.fixture
def page(served: tuple[str, Lake]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Chromium: apt-get install -y chromium"
    url = served[0]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1100, "height": 640})
        foreign: list[str] = []
        tab.on("request", lambda r: None if r.url.startswith(url) else foreign.append(r.url))
        dialogs: list[str] = []
        tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        tab.foreign, tab.dialogs = foreign, dialogs
        try:
            yield tab
        finally:
            browser.close()
    assert foreign == []  # the page works offline: nothing but our own server
    assert dialogs == []  # no script of a record ever ran


def shoot(tab: Any, tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    tab.screenshot(path=str(target))
    assert target.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("UI_SCREENSHOTS")
    if keep:
        folder = Path(__file__).parents[1] / keep
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, folder / name)


def heading(tab: Any) -> str:
    return str(tab.locator("h1").inner_text())


def node(tab: Any, artifact_id: str) -> Any:
    return tab.locator(f'#graph [id="node-{artifact_id}"] a')


def test_search_preview_lineage_versions(
    page: Any, served: tuple[str, Lake], tmp_path: Path
) -> None:
    url, lake = served
    page.goto(url)
    # search by a label
    page.fill("input[name=datatype]", "annotation_file")
    page.click("#search")
    results = page.locator("#results td:first-child a")
    assert results.all_inner_texts() == ["train-set:v2", "train-set:v1"]
    page.click("#results >> text=train-set:v2")
    assert heading(page) == "train-set:v2"
    # CSV preview as a table, image preview drawn
    preview = page.locator(".previews table.preview")
    assert preview.locator("th").all_inner_texts() == ["sample", "label"]
    assert "gamma" in preview.inner_text()
    image = page.locator(".previews img")
    image.scroll_into_view_if_needed()
    assert page.evaluate("document.querySelector('.previews img').naturalWidth") == 24
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, tmp_path, "ui-artifact.png")
    # verify re-hashes the files
    page.click("#verify")
    assert "3 files re-hashed: all match" in page.locator("#verified").inner_text()
    # lineage: two hops up by clicking, then two hops down
    page.click("#lineage-link")
    assert heading(page) == "Lineage of train-set:v2"
    shoot(page, tmp_path, "ui-lineage.png")
    node(page, lake.clean).click()
    assert heading(page) == "Lineage of clean:v1"
    node(page, lake.raw).click()
    assert heading(page) == "Lineage of raw-data:v1"
    node(page, lake.clean).click()
    node(page, lake.train_v2).click()
    node(page, lake.model).click()
    node(page, lake.report).click()
    assert heading(page) == "Lineage of report:v1"
    # depth control: depth 1 from train-set:v2 hides two, says so
    page.goto(f"{url}lineage/{lake.train_v2}")
    page.click("text=depth 1")
    assert "2 more artifacts lie one step beyond depth 1" in page.locator("#hidden").inner_text()
    assert node(page, lake.raw).count() == 0
    # switch to another version of the name
    page.click("#root-link")
    page.click("#versions >> text=train-set:v1")
    assert heading(page) == "train-set:v1"
    assert "production" in page.locator("#versions").inner_text()


def test_script_label_shows_as_text(page: Any, served: tuple[str, Lake]) -> None:
    url, lake = served
    page.goto(url)
    page.fill("input[name=project]", "lake")
    page.click("#search")
    assert XSS in page.locator("#results").inner_text()  # shown, as text
    page.click(f"#results >> text={lake.xss}")
    assert XSS in page.locator("#metadata").inner_text()
    assert XSS in page.locator(".previews pre").inner_text()
    # the only script on the page is the UI's own
    assert page.evaluate("[...document.scripts].map(s => s.src)") == [f"{url}_ui.js"]


def test_another_site_cannot_send_the_browser_to_the_ui_without_a_click(
    served: tuple[str, Lake],
) -> None:
    """A page of another site (here on ``localhost``, the UI on ``127.0.0.1``) that
    moves the browser to a UI search by itself gets the UI's page offering the
    link, with nothing looked up; a link the user clicks opens the UI."""
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    url, _ = served
    target = f"{url}?datatype=annotation_file"
    pages = {
        "/auto": f'<script>location.href = "{target}"</script>',
        "/link": f'<a id=go href="{target}">the UI</a>',
    }

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    other = f"http://localhost:{site.server_address[1]}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            tab = browser.new_page()
            tab.goto(f"{other}/auto")
            tab.wait_for_url(target)
            assert tab.title() == "Opened from another site · elliptio"
            assert tab.locator("#results").count() == 0
            with tab.expect_navigation():  # to the same URL: wait_for_url is done already
                tab.click("#continue")  # the user's own click: a page of the UI's own
            assert tab.locator("#results td:first-child a").count() == 2
            tab.goto(f"{other}/link")
            tab.click("#go")
            tab.wait_for_url(target)
            assert tab.locator("#results td:first-child a").count() == 2
            browser.close()
    finally:
        site.shutdown()
        site.server_close()
