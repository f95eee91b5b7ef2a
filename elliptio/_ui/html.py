"""HTML building blocks for the UI: escaping, links, sizes and the page frame. Pure.

Pages are f-strings; every value that comes from a record, a request or a file
goes through `esc` (``html.escape`` with quotes), so a label such as
``<script>`` shows as text. No template engine: the pages are few and small,
and one escaping function is easier to check than a template's autoescape rules.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from urllib.parse import quote, urlencode

__all__ = ["CSS", "SCRIPT", "esc", "href", "link", "nice_size", "page", "ref_path"]


def esc(value: object) -> str:
    """``value`` as text safe inside HTML and SVG, attribute values included."""
    return html.escape("" if value is None else str(value), quote=True)


def ref_path(prefix: str, ref: str, rest: str = "") -> str:
    """A path such as ``/a/train-set:v3``; the reference is percent-encoded."""
    tail = "/" + quote(rest, safe="/") if rest else ""
    return f"{prefix}/{quote(ref, safe=':')}{tail}"


def href(path: str, params: Mapping[str, object] | None = None) -> str:
    """``path?query`` with empty parameters left out."""
    kept = {k: str(v) for k, v in (params or {}).items() if v not in (None, "")}
    return path + ("?" + urlencode(kept) if kept else "")


def link(url: str, text: object, **attrs: str) -> str:
    """An ``<a>`` element; ``url`` and ``text`` are escaped here."""
    extra = "".join(f' {k.rstrip("_")}="{esc(v)}"' for k, v in attrs.items())
    return f'<a href="{esc(url)}"{extra}>{esc(text)}</a>'


def nice_size(size: int | None) -> str:
    """``1.5 MB`` style sizes (powers of 1000, as file managers show them)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#243b55;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:12px 16px;max-width:1400px}
table{border-collapse:collapse;background:#fff;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}
td.num{text-align:right}
code,pre{font:12px ui-monospace,monospace;background:#f0f0f0}
pre{padding:6px;overflow:auto;max-height:24em}
.error{background:#fde8e8;border:1px solid #e0a0a0;padding:8px;margin:8px 0}
.ok{background:#e6f6e6;border:1px solid #9c9;padding:8px;margin:8px 0}
.muted{color:#777}
form.search input[type=text]{width:9em}
form.search textarea{width:100%;font:12px ui-monospace,monospace}
.snippet{display:flex;gap:6px;align-items:center;margin:3px 0}
.snippet code{padding:3px 6px}
.pager{margin:8px 0;display:flex;gap:12px}
svg a:hover rect{stroke:#d2691e}
details{margin:4px 0}
.actions{display:flex;gap:16px;align-items:center;margin:8px 0}
#graph{overflow:auto;border:1px solid #ddd;background:#fff}
td.time{white-space:nowrap}
.previews img{max-width:480px;max-height:360px;border:1px solid #ddd}
"""


def page(title: str, body: str) -> str:
    """A whole HTML document: header with the navigation, then ``body``.

    ``title`` is escaped here; ``body`` is HTML built with `esc`.
    """
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · elliptio</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style><script src=/_ui.js defer></script></head><body>"
        '<header><a href="/">elliptio</a><a href="/">search</a><a href="/names">names</a>'
        "<span class=muted>read-only</span></header>"
        f"<main>{body}</main></body></html>"
    )


# Copy buttons: the only script, served from /_ui.js (the pages allow no inline script).
SCRIPT = """
document.addEventListener("click", (e) => {
  const b = e.target.closest("button.copy");
  if (!b) return;
  const text = b.previousElementSibling.textContent;
  navigator.clipboard && navigator.clipboard.writeText(text);
  b.textContent = "copied";
});
"""
