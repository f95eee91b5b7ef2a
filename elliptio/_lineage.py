"""Lineage graphs: which artifacts an artifact was built from, and what was built on it.

`build_lineage` walks the catalog breadth-first, one level at a time, in either
direction; cycles end the walk, ids that ``based_on`` names but the catalog does
not hold become nodes marked missing. Where the catalog can fetch every linked
record in one query (`Catalog.lineage_docs`: ``$graphLookup`` on MongoDB), the
walk reads them from that answer; otherwise it sends one `find` per level. Both
give the same graph. The graph renders as a text tree, Mermaid and Graphviz DOT.
Rendering is pure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ._catalog.base import Catalog, Document
from ._errors import QueryError

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
    deleted: bool = False

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> LineageNode:
        """Take the displayed fields from a catalog document."""
        labels = doc.get("labels") or {}
        return cls(
            artifact_id=doc["artifact_id"],
            username=str(doc.get("username", "")),
            creation_time=doc.get("creation_time"),
            file_relpaths=tuple(doc.get("file_relpaths") or ()),
            datatype=str(labels.get("datatype", "")) if isinstance(labels, dict) else "",
            deleted=doc.get("deleted") is not None,
        )

    def lines(self) -> list[str]:
        """Short lines for diagrams: id prefix, user, files, datatype."""
        short = self.artifact_id[:17] + ("…" if len(self.artifact_id) > 17 else "")
        if self.missing:
            return [short, "(not in the catalog)"]
        if self.deleted:
            return [short, self.username, "(deleted)"]
        files = ", ".join(self.file_relpaths[:3]) + (" …" if len(self.file_relpaths) > 3 else "")
        return [line for line in (short, self.username, files, self.datatype) if line]

    @property
    def label(self) -> str:
        """A one-line description: short id, user, files, datatype."""
        if self.missing:
            return f"{self.artifact_id} (not in the catalog)"
        if self.deleted:
            return f"{self.artifact_id} {self.username} (deleted)"
        files = ", ".join(self.file_relpaths[:3]) + (" ..." if len(self.file_relpaths) > 3 else "")
        parts = [self.artifact_id, self.username, f"[{files}]"]
        if self.datatype:
            parts.append(self.datatype)
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class LineageGraph:
    """Artifacts and ``input -> output`` edges around one root artifact."""

    root: str
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: tuple[tuple[str, str], ...] = ()

    def parents(self, artifact_id: str) -> list[str]:
        """Inputs of ``artifact_id`` within the graph."""
        return [a for a, b in self.edges if b == artifact_id]

    def children(self, artifact_id: str) -> list[str]:
        """Artifacts in the graph built on ``artifact_id``."""
        return [b for a, b in self.edges if a == artifact_id]

    def to_text(self) -> str:
        """A tree: the root, its inputs above (``<-``) and its outputs below (``->``)."""
        lines = [self.nodes[self.root].label]

        def walk(node: str, step: str, neighbours: Any, prefix: str, seen: set[str]) -> None:
            items = neighbours(node)
            for i, other in enumerate(items):
                last = i == len(items) - 1
                branch = "└── " if last else "├── "
                repeat = " (see above)" if other in seen else ""
                lines.append(f"{prefix}{branch}{step} {self.nodes[other].label}{repeat}")
                if not repeat:
                    walk(
                        other,
                        step,
                        neighbours,
                        prefix + ("    " if last else "│   "),
                        seen | {other},
                    )

        walk(self.root, "<-", self.parents, "", {self.root})
        walk(self.root, "->", self.children, "", {self.root})
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
        lines = ["digraph lineage {", "    rankdir=LR;", "    node [shape=box];"]
        for artifact_id in sorted(self.nodes):
            node = self.nodes[artifact_id]
            style = ', style="dashed"' if node.missing else ""
            style += ', style="dotted", color="gray"' if node.deleted else ""
            style += ", penwidth=3" if artifact_id == self.root else ""
            text = "\\n".join(_escape_dot(line) for line in node.lines())
            lines.append(f'    {ids[artifact_id]} [label="{text}"{style}];')
        lines.extend(f"    {ids[a]} -> {ids[b]};" for a, b in self.edges)
        lines.append("}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _escape_mermaid(text: str) -> str:
    return text.replace('"', "#quot;").replace("[", "#91;").replace("]", "#93;")


def _escape_dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


# ``ids -> records``: up, the records with those ids; down, the records naming them.
_Fetch = Callable[[list[str]], Awaitable[list[Document]]]
# What the walk reads of a record: its links and what `LineageNode` shows.
_FIELDS = ("based_on", "username", "creation_time", "file_relpaths", "labels.datatype", "deleted")
_FIND_FIELDS = ("based_on", "username", "creation_time", "file_relpaths", "labels", "deleted")


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
            edges.update((p, child) for p in _parents(doc) if p in frontier)
            nodes.setdefault(child, LineageNode.from_document(doc))
            if child not in seen:
                seen.add(child)
                next_frontier.add(child)
        frontier = next_frontier
        level += 1
