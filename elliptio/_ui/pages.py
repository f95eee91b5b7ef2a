"""The UI's pages, from records and query answers to HTML. Pure.

Each function takes data already read (catalog documents, `Metadata`, a
`LineageGraph` picture) and returns a whole page; every value is escaped with
`esc`. Nothing here reads storage or the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from elliptio._maintenance import VerifyReport
from elliptio._models import RESTORE_FROM_SIDECAR, Metadata
from elliptio._protocol import artifact_url

from .graph import Picture
from .html import esc, href, link, nice_size, page, ref_path
from .preview import kind
from .search import SearchForm

__all__ = [
    "artifact_page",
    "error_page",
    "lineage_page",
    "names_page",
    "search_page",
]

MAX_FILES = 500  # rows of an artifact's files table

# Columns of the results table: (title, sort key or "").
_COLUMNS = (
    ("artifact", "name"),
    ("aliases", ""),
    ("user", "user"),
    ("time", "time"),
    ("datatype", "datatype"),
    ("files", ""),
    ("size", ""),
)


def artifact_ref(doc: Mapping[str, Any]) -> str:
    """``name:vN`` for a named record, else its artifact id."""
    if doc.get("name") and doc.get("name_version"):
        return f"{doc['name']}:v{doc['name_version']}"
    return str(doc["artifact_id"])


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, datetime) else ""


def _input(name: str, value: str, placeholder: str = "", type_: str = "text") -> str:
    return (
        f'<label>{esc(name)} <input type="{type_}" name="{esc(name)}" value="{esc(value)}" '
        f'placeholder="{esc(placeholder)}"></label> '
    )


def _result_row(doc: Mapping[str, Any], aliases: Mapping[str, Mapping[str, int]]) -> str:
    """One row of search results; TypeError and the like for a malformed record."""
    ref = artifact_ref(doc)
    files = doc.get("files") or []
    relpaths = [str(f.get("relpath", "")) for f in files if isinstance(f, Mapping)]
    size = sum(_count(f.get("size")) for f in files if isinstance(f, Mapping))
    labels = doc.get("labels") or {}
    named = aliases.get(str(doc.get("name")), {}) if doc.get("name") else {}
    tags = [a for a, v in sorted(named.items()) if v == doc.get("name_version")]
    shown = ", ".join(relpaths[:3]) + (f" (+{len(relpaths) - 3})" if len(relpaths) > 3 else "")
    return (
        "<tr>"
        f"<td>{link(ref_path('/a', str(doc['artifact_id'])), ref)}</td>"
        f"<td>{esc(', '.join(tags))}</td>"
        f"<td>{esc(doc.get('username', ''))}</td>"
        f"<td class=time>{esc(_time(doc.get('creation_time')))}</td>"
        f"<td>{esc(labels.get('datatype', '') if isinstance(labels, Mapping) else '')}</td>"
        f"<td>{esc(shown)}</td>"
        f"<td class=num>{esc(nice_size(size))}</td></tr>"
    )


def search_page(
    form: SearchForm,
    docs: Sequence[Mapping[str, Any]],
    has_next: bool,
    aliases: Mapping[str, Mapping[str, int]],
    error: str | None = None,
) -> str:
    """The search form and one page of results."""
    quick = "".join(
        _input(k, getattr(form, k), hint)
        for k, hint in (
            ("name", "train-set"),
            ("user", "andy"),
            ("datatype", ""),
            ("project", ""),
            ("ticket", ""),
            ("text", "file names, description"),
        )
    )
    dates = _input("since", form.since, "2026-01-01") + _input("until", form.until, "2026-12-31")
    body = [
        '<form class=search method=get action="/">',
        "<p>",
        quick,
        dates,
        "</p><label>MongoDB filter (as for <code>find()</code>)<br>",
        f"<textarea name=q rows=2 placeholder='{{\"labels.infos.seed\": 1}}'>{esc(form.q)}"
        "</textarea></label>",
        f'<input type=hidden name=sort value="{esc(form.sort)}">',
        f'<input type=hidden name=dir value="{esc(form.dir)}">',
        '<p><button type=submit id=search>search</button> <a href="/">clear</a></p></form>',
    ]
    if error is not None:
        body.append(f"<div class=error role=alert>{esc(error)}</div>")
        return page("search", "".join(body))
    head = []
    for title, key in _COLUMNS:
        if not key:
            head.append(f"<th>{esc(title)}</th>")
            continue
        active = form.sort == key
        flip = "asc" if active and form.dir == "desc" else "desc"
        mark = (" ▼" if form.dir == "desc" else " ▲") if active else ""
        url = href("/", form.params(sort=key, dir=flip, page=1))
        head.append(f"<th>{link(url, title + mark)}</th>")
    rows = []
    for doc in docs:
        try:
            rows.append(_result_row(doc, aliases))
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            # A malformed record (a catalog writer's) is marked; the page stands.
            rows.append(
                f"<tr class=damaged><td colspan={len(_COLUMNS)}>"
                f"{esc(str(doc.get('artifact_id', '?')))}: a malformed record "
                f"(CorruptRecordError: {esc(type(err).__name__)}: {esc(str(err)[:120])}); "
                f"{esc(RESTORE_FROM_SIDECAR)}</td></tr>"
            )
    first = form.skip + 1
    summary = f"rows {first} to {form.skip + len(docs)}" if docs else "no artifact matches"
    pager = [f"<span>{esc(summary)}</span>"]
    if form.page > 1:
        pager.append(link(href("/", form.params(page=form.page - 1)), "← previous", rel="prev"))
    if has_next:
        pager.append(link(href("/", form.params(page=form.page + 1)), "next →", rel="next"))
    body.append(f"<div class=pager>{''.join(pager)}</div>")
    body.append(
        f"<table id=results><tr>{''.join(head)}</tr>{''.join(rows)}</table>" if docs else ""
    )
    return page("search", "".join(body))


def _snippet(text: str) -> str:
    return f"<div class=snippet><code>{esc(text)}</code><button class=copy>copy</button></div>"


def _value(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"<pre>{esc(json.dumps(value, indent=2, default=str))}</pre>"
    if isinstance(value, datetime):
        return esc(value.isoformat())
    return esc(value)


def artifact_page(
    record: Metadata,
    *,
    versions: Sequence[Mapping[str, Any]],
    aliases: Mapping[str, int],
    previews: Mapping[str, str],
    verify: VerifyReport | None = None,
) -> str:
    """Every field of a record, its files and previews, snippets, versions and aliases."""
    aid = record.artifact_id
    ref = record.ref or aid
    doc = record.to_document()
    body = [f"<h1>{esc(ref)}</h1>"]
    if record.ref:
        body.append(f"<p class=muted>{esc(aid)}</p>")
    verify_url = esc(ref_path("/a", aid) + "/verify")
    body.append(
        f"<div class=actions>{link(href(ref_path('/lineage', aid)), 'lineage', id='lineage-link')}"
        f'<form method=post action="{verify_url}"><button type=submit id=verify>'
        "verify files</button></form></div>"
    )
    if verify is not None:
        if verify.ok:
            body.append(
                f"<div class=ok id=verified>{verify.checked} files re-hashed: all match "
                "their sha256.</div>"
            )
        else:
            problems = ", ".join(
                [f"{p} (damaged)" for p in verify.damaged]
                + [f"{p} (missing)" for p in verify.missing]
            )
            body.append(f"<div class=error id=verified>Not intact: {esc(problems)}</div>")
    snippets = [f"art = h.get({ref!r})"]
    table = next((f.relpath for f in record.files if kind(f.relpath) in ("csv", "parquet")), None)
    if table is not None:
        reader = "read_parquet" if kind(table) == "parquet" else "read_csv"
        tabs = ", sep='\\t'" if table.lower().endswith(".tsv") else ""  # as its preview reads it
        # eio_url: read through elliptio, verified and recorded as lineage.
        snippets.append(f"pd.{reader}(art.files[{table!r}].eio_url{tabs})")
    elif record.files:
        snippets.append(f"art.files[{record.files[0].relpath!r}].local_path()")
    snippets += [artifact_url(aid, f.relpath) for f in record.files[:5]]
    body.append("<h2>Files</h2><table id=files><tr><th>file</th><th>size</th><th>sha256</th></tr>")
    for f in record.files[:MAX_FILES]:
        url = ref_path("/file", aid, f.relpath)
        body.append(
            f"<tr><td>{link(url, f.relpath)}</td><td class=num>{esc(nice_size(f.size))}</td>"
            f"<td><code>{esc(f.sha256)}</code></td></tr>"
        )
    if len(record.files) > MAX_FILES:
        more = len(record.files) - MAX_FILES
        body.append(f"<tr><td colspan=3>… and {more} more (see file_relpaths)</td></tr>")
    body.append("</table>")
    if previews:
        body.append("<h2>Previews</h2><div class=previews>")
        for relpath, html_ in previews.items():
            body.append(f"<h3>{esc(relpath)}</h3>{html_}")
        body.append("</div>")
    body.append("<h2>Use it</h2>" + "".join(_snippet(s) for s in snippets))
    if record.name:
        body.append(f"<h2>Versions of {esc(record.name)}</h2><table id=versions>")
        body.append("<tr><th>version</th><th>aliases</th><th>user</th><th>time</th></tr>")
        by_version: dict[int, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        for v in versions:
            vref = artifact_ref(v)
            text = vref + (" (this)" if v["artifact_id"] == aid else "")
            tags = ", ".join(sorted(by_version.get(_count(v.get("name_version")), [])))
            body.append(
                f"<tr><td>{link(ref_path('/a', str(v['artifact_id'])), text)}</td>"
                f"<td>{esc(tags)}</td><td>{esc(v.get('username', ''))}</td>"
                f"<td>{esc(_time(v.get('creation_time')))}</td></tr>"
            )
        body.append("</table>")
    body.append("<h2>Metadata</h2><table id=metadata>")
    labels = doc.pop("labels")
    packages = doc.pop("python_packages")
    for key, value in labels.items():
        body.append(f"<tr><th>labels.{esc(key)}</th><td>{_value(value)}</td></tr>")
    for key in ("creation_time", "username", "hostname", "run_id", "argv", "git", "based_on"):
        value = doc.pop(key)
        if key == "based_on" and value:
            links = "<br>".join(link(ref_path("/a", p), p) for p in value)
            body.append(f"<tr><th>based_on</th><td>{links}</td></tr>")
            continue
        body.append(f"<tr><th>{esc(key)}</th><td>{_value(value)}</td></tr>")
    doc.pop("files")
    for key, value in doc.items():
        body.append(f"<tr><th>{esc(key)}</th><td>{_value(value)}</td></tr>")
    body.append(
        f"<tr><th>python_packages</th><td><details><summary>{len(packages)} packages</summary>"
        f"{_value(packages)}</details></td></tr></table>"
    )
    return page(ref, "".join(body))


def lineage_page(root: Mapping[str, Any], picture: Picture, depth: int, max_depth: int) -> str:
    """The lineage picture with its depth control."""
    ref = artifact_ref(root)
    aid = str(root["artifact_id"])
    steps = []
    for d in range(1, max_depth + 1):
        text = f"depth {d}"
        if d == depth:
            steps.append(f"<b>{esc(text)}</b>")
        else:
            steps.append(link(href(ref_path("/lineage", aid), {"depth": d}), text))
    hidden = (
        f"{picture.hidden} more artifacts lie one step beyond depth {depth} (+n on a "
        "box: its hidden neighbours), and maybe more past them; raise the depth to "
        "see them."
        if picture.hidden
        else "Nothing is hidden at this depth."
    )
    gone = (
        "<p class=error id=deleted>This artifact was deleted (its page says by whom, "
        "when and why); its lineage is kept so that what was built on it keeps its own.</p>"
        if root.get("deleted")
        else ""
    )
    body = (
        f"<h1>Lineage of {link(ref_path('/a', aid), ref, id='root-link')}</h1>{gone}"
        f"<p>{' · '.join(steps)}</p>"
        "<p class=muted>Inputs on the left, what was built from them on the right; click "
        "a box to centre the view on it.</p>"
        f"<p id=hidden>{esc(hidden)}</p>"
        f"<div id=graph>{picture.svg}</div>"
    )
    return page(f"lineage of {ref}", body)


def names_page(
    rows: Sequence[tuple[str, int, int]], aliases: Mapping[str, Mapping[str, int]]
) -> str:
    """Names with their version counts, latest versions and aliases."""
    body = ["<h1>Names</h1>"]
    if not rows:
        body.append("<p>No artifact has a name yet: upload(..., name='train-set').</p>")
        return page("names", "".join(body))
    body.append(
        "<table id=names><tr><th>name</th><th>versions</th><th>latest</th><th>aliases</th></tr>"
    )
    for name, count, latest in rows:
        tags = ", ".join(
            link(ref_path("/a", f"{name}:{alias}"), f"{alias} → v{version}")
            for alias, version in sorted(aliases.get(name, {}).items())
        )
        body.append(
            f"<tr><td>{link(href('/', {'name': name}), name)}</td><td class=num>{count}</td>"
            f"<td>{link(ref_path('/a', f'{name}:v{latest}'), f'v{latest}')}</td>"
            f"<td>{tags}</td></tr>"
        )
    body.append("</table>")
    return page("names", "".join(body))


def error_page(status: int, message: str) -> str:
    """A short page for 4xx/5xx answers: the message, escaped, no traceback."""
    titles = {400: "Bad request", 403: "Forbidden", 404: "Not found", 413: "Too large"}
    title = titles.get(status, "Error")
    return page(
        title,
        f"<h1>{esc(title)}</h1><div class=error role=alert>{esc(message)}</div>"
        '<p><a href="/">back to search</a></p>',
    )


def _count(value: Any) -> int:
    """A size or version of a record for display: 0 when it is not an int (a
    record changed by hand must not take the page down)."""
    return value if type(value) is int else 0
