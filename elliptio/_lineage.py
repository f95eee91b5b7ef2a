"""Lineage graphs: which artifacts an artifact was built from, and what was built on it.

`build_lineage` walks the catalog breadth-first, one level at a time, in either
direction; cycles end the walk, ids that ``based_on`` names but the catalog does
not hold become nodes marked missing. Where the catalog can fetch every linked
record in one query (`Catalog.lineage_docs`: ``$graphLookup`` on MongoDB), the
walk reads them from that answer; otherwise it sends one `find` per level. Both
give the same graph. The graph renders as a text tree, Mermaid, Graphviz DOT and
HTML (pure), and as SVG or PNG through the Graphviz program (`elliptio._graphviz`).
Nodes show ``name:vN`` (the id where the artifact has no name), user, datatype and
files; every format escapes what the records hold, which a shared catalog does not
vouch for.
"""

from __future__ import annotations

import functools
import html
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from . import _graphviz
from ._catalog.base import Catalog, Document
from ._errors import ElliptioError, QueryError

__all__ = ["Direction", "LineageGraph", "LineageNode", "build_lineage"]

Direction = Literal["up", "down", "both"]


@dataclass(frozen=True)
class LineageNode:
    """One artifact in a lineage graph, with the metadata worth showing."""

    artifact_id: str
    username: str = ""
    creation_time: datetime | None = None
    file_relpaths: tuple[str, ...] = ()
    datatype: str = ""
    missing: bool = False
    name: str | None = None
    name_version: int | None = None
    deleted: bool = False

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> LineageNode:
        """Take the displayed fields from a catalog document."""
        labels = doc.get("labels") or {}
        name, version = doc.get("name"), doc.get("name_version")
        named = isinstance(name, str) and isinstance(version, int) and name and version > 0
        # Only a list names files: a record planted in a shared catalog may hold
        # anything there (a number, a text), and one node must not stop the graph.
        relpaths = doc.get("file_relpaths")
        return cls(
            artifact_id=doc["artifact_id"],
            username=str(doc.get("username") or ""),
            creation_time=doc.get("creation_time"),
            file_relpaths=tuple(map(str, relpaths)) if isinstance(relpaths, list) else (),
            datatype=str(labels.get("datatype") or "") if isinstance(labels, dict) else "",
            name=name if named else None,
            name_version=version if named else None,
            deleted=doc.get("deleted") is not None,
        )

    @property
    def ref(self) -> str | None:
        """``name:v<n>`` for a named artifact, else ``None``."""
        if self.name is None or self.name_version is None:
            return None
        return f"{self.name}:v{self.name_version}"

    @property
    def title(self) -> str:
        """``name:v<n>``, or the artifact id where the artifact has no name."""
        return self.ref or self.artifact_id

    def lines(self) -> list[str]:
        """Short one-line strings for diagrams: name:vN (else a short id), user,
        datatype, files. Unescaped: each format escapes them its own way."""
        if self.ref is not None:
            head = self.ref
        else:
            head = self.artifact_id[:17] + ("…" if len(self.artifact_id) > 17 else "")
        if self.missing:
            return [_one_line(head), "(not in the catalog)"]
        if self.deleted:
            return [_one_line(head), _one_line(self.username), "(deleted)"]
        files = ", ".join(self.file_relpaths[:3]) + (" …" if len(self.file_relpaths) > 3 else "")
        return [_one_line(line) for line in (head, self.username, self.datatype, files) if line]

    @property
    def label(self) -> str:
        """A one-line description: name:vN (else the id), user, datatype, files."""
        if self.missing:
            return _one_line(f"{self.artifact_id} (not in the catalog)")
        if self.deleted:
            return _one_line(f"{self.title} {self.username} (deleted)")
        files = ", ".join(self.file_relpaths[:3]) + (" ..." if len(self.file_relpaths) > 3 else "")
        parts = [self.title, self.username, self.datatype and f"({self.datatype})", f"[{files}]"]
        return _one_line(" ".join(p for p in parts if p))


@dataclass(frozen=True, repr=False)
class LineageGraph:
    """Artifacts and ``input -> output`` edges around one root artifact.

    ``print(graph)`` draws a text tree; `to_mermaid`, `to_dot`, `to_svg` and
    `to_png` draw it for other tools; in Jupyter it shows as a picture (Graphviz
    installed) or a table.
    """

    root: str
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: tuple[tuple[str, str], ...] = ()

    @functools.cached_property
    def _adjacent(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Inputs and outputs of every artifact, in edge order, made once: a scan
        of the edges per node took time quadratic in a wide lineage."""
        inputs: dict[str, list[str]] = {}
        outputs: dict[str, list[str]] = {}
        for a, b in self.edges:
            inputs.setdefault(b, []).append(a)
            outputs.setdefault(a, []).append(b)
        return inputs, outputs

    def parents(self, artifact_id: str) -> list[str]:
        """Inputs of ``artifact_id`` within the graph."""
        return list(self._adjacent[0].get(artifact_id, ()))

    def children(self, artifact_id: str) -> list[str]:
        """Artifacts in the graph built on ``artifact_id``."""
        return list(self._adjacent[1].get(artifact_id, ()))

    def to_text(self) -> str:
        """A tree: the root, its inputs above (``<-``) and its outputs below (``->``).

        Each artifact is drawn once on each side; where it comes again, it is
        marked ``(see above)``. So the tree grows with the artifacts and edges,
        never with the number of paths, and is walked without recursion.
        """
        lines = [self.nodes[self.root].label]
        for step, neighbours in (("<-", self.parents), ("->", self.children)):
            shown = {self.root}
            # (neighbours of a node, the next one to draw, the prefix of their lines)
            stack: list[tuple[list[str], int, str]] = [(neighbours(self.root), 0, "")]
            while stack:
                items, i, prefix = stack.pop()
                if i == len(items):
                    continue
                stack.append((items, i + 1, prefix))
                other, last = items[i], i == len(items) - 1
                repeat = " (see above)" if other in shown else ""
                branch = "└── " if last else "├── "
                lines.append(f"{prefix}{branch}{step} {self.nodes[other].label}{repeat}")
                if not repeat:  # its own branch is drawn right under its line
                    shown.add(other)
                    stack.append((neighbours(other), 0, prefix + ("    " if last else "│   ")))
        return "\n".join(lines)

    def _ids(self) -> dict[str, str]:
        return {a: f"n{i}" for i, a in enumerate(sorted(self.nodes))}

    def to_mermaid(self) -> str:
        """A Mermaid ``flowchart`` (inputs point to what was built from them)."""
        ids = self._ids()
        lines = ["flowchart LR"]
        for artifact_id in sorted(self.nodes):
            node = self.nodes[artifact_id]
            text = "<br/>".join(_escape_mermaid(line) for line in node.lines())
            lines.append(f'    {ids[artifact_id]}["{text}"]')
        lines.extend(f"    {ids[a]} --> {ids[b]}" for a, b in self.edges)
        lines.append(f"    style {ids[self.root]} stroke-width:3px")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """Graphviz DOT source (inputs point to what was built from them)."""
        ids = self._ids()
        lines = ["digraph lineage {", "    rankdir=LR;", '    node [shape=box, fontname="sans"];']
        for artifact_id in sorted(self.nodes):
            node = self.nodes[artifact_id]
            style = ', style="dashed"' if node.missing else ""
            style += ', style="dotted", color="gray"' if node.deleted else ""
            style += ", penwidth=3" if artifact_id == self.root else ""
            text = "\\n".join(escape_dot(line) for line in node.lines())
            lines.append(f'    {ids[artifact_id]} [label="{text}"{style}];')
        lines.extend(f"    {ids[a]} -> {ids[b]};" for a, b in self.edges)
        lines.append("}")
        return "\n".join(lines)

    def to_svg(self) -> str:
        """An SVG picture, drawn by Graphviz ``dot``.

        Raises:
            GraphvizNotFoundError: Graphviz is not installed; the message says how
                to install it (`to_dot` and `to_mermaid` need no Graphviz).
        """
        return _graphviz.render(self.to_dot(), "svg").decode("utf-8")

    def to_png(self) -> bytes:
        """A PNG picture, drawn by Graphviz ``dot``; raises as `to_svg` does."""
        return _graphviz.render(self.to_dot(), "png")

    def _repr_html_(self) -> str:
        """Jupyter: the picture where Graphviz is installed, else a table."""
        head = (
            f"<p><b>Lineage of {_html(self.nodes[self.root].title)}</b>: "
            f"{_count(len(self.nodes), 'artifact')}, {_count(len(self.edges), 'link')}</p>"
        )
        if _graphviz.available():
            try:
                svg = self.to_svg()
            except ElliptioError:
                pass  # the table below says the same
            else:
                return head + svg[svg.find("<svg") :]
        return head + self._html_table()

    def _html_table(self) -> str:
        rows = []
        for artifact_id in self._order():
            node = self.nodes[artifact_id]
            role = "root" if artifact_id == self.root else ""
            built_from = ", ".join(self.nodes[p].title for p in self.parents(artifact_id))
            when = _when(node.creation_time)
            cells = [
                node.title + (" (not in the catalog)" if node.missing else ""),
                role,
                node.username,
                node.datatype,
                when,
                ", ".join(node.file_relpaths),
                built_from,
            ]
            weight = ' style="font-weight:bold"' if role else ""
            rows.append(f"<tr{weight}>" + "".join(f"<td>{_html(c)}</td>" for c in cells) + "</tr>")
        header = "".join(
            f"<th>{h}</th>"
            for h in ("artifact", "", "user", "datatype", "created", "files", "built from")
        )
        return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

    def _order(self) -> list[str]:
        """Inputs first: ancestors (farthest first), the root, then descendants."""
        ups: list[str] = []
        downs: list[str] = []
        for out, step in ((ups, self.parents), (downs, self.children)):
            frontier, seen = [self.root], {self.root}
            while frontier:
                nxt = [n for f in frontier for n in sorted(step(f)) if n not in seen]
                nxt = list(dict.fromkeys(nxt))
                seen.update(nxt)
                out.extend(nxt)
                frontier = nxt
        ordered = [*reversed(ups), self.root, *(d for d in downs if d not in ups)]
        rest = sorted(set(self.nodes) - set(ordered))
        return ordered + rest

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return (
            f"<LineageGraph of {self.nodes[self.root].title}: "
            f"{_count(len(self.nodes), 'artifact')}, {_count(len(self.edges), 'link')}; "
            "print() it to see the tree>"
        )


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _when(moment: datetime | None) -> str:
    if not isinstance(moment, datetime):
        return ""
    if moment.tzinfo is not None:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _one_line(text: str) -> str:
    """``text`` with line breaks and other control characters as spaces."""
    return "".join(" " if unicodedata.category(c) in _CONTROL else c for c in text)


_CONTROL = {"Cc", "Zl", "Zp"}


def _html(text: str) -> str:
    return html.escape(_one_line(text), quote=True)


# Mermaid reads ``#<code>;`` as a character: these would end a label, start markup
# or an entity, or be taken as HTML by its renderer.
_MERMAID_SPECIAL = set('"#&<>[]`')


def _escape_mermaid(text: str) -> str:
    return "".join(f"#{ord(c)};" if c in _MERMAID_SPECIAL else c for c in _one_line(text))


def escape_dot(text: str, *, tooltip: bool = False) -> str:
    """``text`` for a quoted DOT string, shown exactly as it is.

    A backslash starts an escape (``\\n``, ``\\N``, ``\\G`` ...) and a quote ends
    the string; Graphviz also reads ``&name;`` as a character. A ``tooltip`` is
    expanded twice (Graphviz 2.43), so its backslashes are doubled twice.
    """
    text = _one_line(text).replace("&", "&amp;")
    backslash = "\\\\\\\\" if tooltip else "\\\\"
    return text.replace("\\", backslash).replace('"', '\\"')


# ``ids -> records``: up, the records with those ids; down, the records naming them.
_Fetch = Callable[[list[str]], Awaitable[list[Document]]]
# What the walk reads of a record: its links and what `LineageNode` shows.
_FIELDS = (
    "based_on",
    "username",
    "creation_time",
    "file_relpaths",
    "labels.datatype",
    "name",
    "name_version",
    "deleted",
)
_FIND_FIELDS = (*_FIELDS[:4], "labels", "name", "name_version", "deleted")


async def build_lineage(
    catalog: Catalog, artifact_id: str, direction: Direction = "both", depth: int | None = None
) -> LineageGraph:
    """Walk the catalog from ``artifact_id`` up (inputs), down (outputs) or both.

    Args:
        catalog: where the records are.
        artifact_id: the root artifact.
        direction: ``"up"``, ``"down"`` or ``"both"``.
        depth: levels to walk in each direction; ``None`` walks to the end.

    Raises:
        ArtifactNotFoundError: the root is not in the catalog.
        QueryError: ``direction`` or ``depth`` is invalid.
    """
    if direction not in ("up", "down", "both"):
        raise QueryError(f"direction must be 'up', 'down' or 'both', not {direction!r}")
    if depth is not None and (not isinstance(depth, int) or depth < 0):
        raise QueryError(f"depth must be a non-negative int or None, not {depth!r}")
    root = await catalog.get(artifact_id)
    nodes = {artifact_id: LineageNode.from_document(root)}
    edges: set[tuple[str, str]] = set()
    if depth != 0 and direction in ("up", "both"):
        await _walk_up(root, depth, await _fetcher(catalog, artifact_id, "up", depth), nodes, edges)
    if depth != 0 and direction in ("down", "both"):
        fetch = await _fetcher(catalog, artifact_id, "down", depth)
        await _walk_down(artifact_id, depth, fetch, nodes, edges)
    return LineageGraph(artifact_id, nodes, tuple(sorted(edges)))


def _parents(doc: Document) -> list[str]:
    """The ids a record's ``based_on`` names: the strings of a list, or one string,
    which is what ``based_on`` filters and ``$graphLookup`` follow."""
    value = doc.get("based_on")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


async def _fetcher(
    catalog: Catalog, artifact_id: str, direction: Literal["up", "down"], depth: int | None
) -> _Fetch:
    """How the walk in ``direction`` gets the records of each level.

    From one `Catalog.lineage_docs` answer where the catalog gives one: it holds
    every record the walk can reach within ``depth``, so looking them up there
    answers exactly as the `find` per level does otherwise.
    """
    linked = await catalog.lineage_docs(artifact_id, direction, depth, _FIELDS)
    if linked is None:
        key = "artifact_id" if direction == "up" else "based_on"

        async def find(ids: list[str]) -> list[Document]:
            return await catalog.find({key: {"$in": ids}}, fields=_FIND_FIELDS)

        return find
    if direction == "up":
        by_id = {doc["artifact_id"]: doc for doc in linked}

        async def by_ids(ids: list[str]) -> list[Document]:
            return [by_id[i] for i in ids if i in by_id]

        return by_ids
    naming: dict[str, list[Document]] = {}
    for doc in linked:
        for parent in dict.fromkeys(_parents(doc)):
            naming.setdefault(parent, []).append(doc)

    async def naming_ids(ids: list[str]) -> list[Document]:
        found = {d["artifact_id"]: d for i in ids for d in naming.get(i, ())}
        return list(found.values())

    return naming_ids


async def _walk_up(
    root: Document,
    depth: int | None,
    fetch: _Fetch,
    nodes: dict[str, LineageNode],
    edges: set[tuple[str, str]],
) -> None:
    docs = {root["artifact_id"]: root}
    frontier = [root["artifact_id"]]
    level = 0
    while frontier and (depth is None or level < depth):
        wanted: set[str] = set()
        for child in frontier:
            for parent in _parents(docs[child]):
                if parent != child:
                    edges.add((parent, child))
                    wanted.add(parent)
        new = sorted(wanted - nodes.keys())
        found = {d["artifact_id"]: d for d in await fetch(new)} if new else {}
        for missing in new:
            if missing not in found:
                nodes[missing] = LineageNode(missing, missing=True)
        for found_id, doc in found.items():
            nodes[found_id] = LineageNode.from_document(doc)
            docs[found_id] = doc
        frontier = sorted(found)
        level += 1


async def _walk_down(
    artifact_id: str,
    depth: int | None,
    fetch: _Fetch,
    nodes: dict[str, LineageNode],
    edges: set[tuple[str, str]],
) -> None:
    frontier = {artifact_id}
    seen = {artifact_id}
    level = 0
    while frontier and (depth is None or level < depth):
        next_frontier: set[str] = set()
        for doc in await fetch(sorted(frontier)):
            child = doc["artifact_id"]
            # A record naming itself is no edge: as on the way up.
            edges.update((p, child) for p in _parents(doc) if p in frontier and p != child)
            nodes.setdefault(child, LineageNode.from_document(doc))
            if child not in seen:
                seen.add(child)
                next_frontier.add(child)
        frontier = next_frontier
        level += 1
