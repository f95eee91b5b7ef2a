"""Lineage drawn as an SVG picture, laid out in layers. Pure.

The root sits in layer 0, its inputs in layers -1, -2, ... to the left and what
was built on it in layers 1, 2, ... to the right (each node in the layer where
the walk from the root first meets it). Within a layer, nodes follow the mean
position of their neighbours in the layer nearer the root, so edges cross
little. Layers deeper than ``depth`` are not drawn: the picture says how many
artifacts lie beyond, and marks the nodes they hang off. A layer holds at most
``max_per_layer`` nodes; the rest are counted in a last box. Every node links
to the lineage view centred on it. No Graphviz or browser library needed: the
picture is built here, so it works offline and renders the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from elliptio._lineage import LineageGraph, LineageNode, escape_dot

from .html import esc

__all__ = ["Picture", "Selection", "draw", "layers", "select", "to_dot"]

_W, _H, _GAP_X, _GAP_Y, _PAD = 170, 58, 40, 16, 12
_CHARS = 24


@dataclass(frozen=True)
class Picture:
    """The SVG, and what was left out of it."""

    svg: str
    shown: int
    hidden: int


def layers(graph: LineageGraph) -> dict[str, int]:
    """Each node's signed distance from the root: inputs negative, outputs positive."""
    layer = {graph.root: 0}
    for step, neighbours in ((-1, graph.parents), (1, graph.children)):
        frontier = [graph.root]
        while frontier:
            nxt = []
            for node in frontier:
                for other in sorted(neighbours(node)):
                    if other not in layer:
                        layer[other] = layer[node] + step
                        nxt.append(other)
            frontier = nxt
    return layer


def _short(text: str) -> str:
    return text if len(text) <= _CHARS else text[: _CHARS - 1] + "…"


def _lines(node: LineageNode, ref: str | None) -> list[str]:
    if node.missing:
        return [node.artifact_id[:20] + "…", "(not in the catalog)"]
    title = ref or node.artifact_id[:20] + "…"
    return [_short(title), _short(node.username), _short(node.datatype)]


@dataclass(frozen=True)
class Selection:
    """Which nodes are drawn: per layer, in drawing order, and what is left out."""

    layer: dict[str, int]
    shown: dict[int, list[str]]
    overflow: dict[int, int]
    hidden: int

    def beyond(self, graph: LineageGraph, node: str, depth: int) -> int:
        """Neighbours of ``node`` deeper than ``depth``, which are not drawn."""
        around = {*graph.parents(node), *graph.children(node)}
        return sum(1 for o in around if abs(self.layer.get(o, 0)) > depth)


def select(graph: LineageGraph, depth: int, max_per_layer: int = 25) -> Selection:
    """The nodes within ``depth`` layers, ordered in each layer, at most
    ``max_per_layer`` each; the rest counted as hidden."""
    layer = layers(graph)
    shown: dict[int, list[str]] = {}
    for node, n in layer.items():
        if abs(n) <= depth:
            shown.setdefault(n, []).append(node)
    position: dict[str, float] = {graph.root: 0.0}
    hidden = sum(1 for n in layer.values() if abs(n) > depth)
    overflow: dict[int, int] = {}
    for n in sorted(shown, key=lambda n: (abs(n), n)):
        nearer = graph.children if n < 0 else graph.parents

        def key(node: str, nearer: Callable[[str], list[str]] = nearer) -> tuple[float, str]:
            near = [position[o] for o in nearer(node) if o in position]
            return (sum(near) / len(near) if near else 0.0, node)

        nodes = sorted(shown[n], key=key)
        if len(nodes) > max_per_layer:
            overflow[n] = len(nodes) - max_per_layer
            hidden += overflow[n]
            nodes = nodes[:max_per_layer]
        shown[n] = nodes
        for i, node in enumerate(nodes):
            position[node] = float(i)
    return Selection(layer, shown, overflow, hidden)


def draw(
    graph: LineageGraph,
    *,
    depth: int,
    refs: Mapping[str, str],
    url: Callable[[str], str],
    max_per_layer: int = 25,
) -> Picture:
    """Lay out and draw ``graph`` up to ``depth`` layers each way from its root.

    Args:
        graph: a graph walked at least ``depth`` levels (one more to count the hidden).
        depth: layers to draw on each side.
        refs: ``name:vN`` of the named nodes.
        url: the link of a node, from its artifact id.
        max_per_layer: nodes drawn per layer; the rest are counted.
    """
    chosen = select(graph, depth, max_per_layer)
    shown_layers, overflow, hidden = chosen.shown, chosen.overflow, chosen.hidden
    placed: dict[str, tuple[float, float]] = {}
    low = min(shown_layers)
    tallest = max(len(v) + (1 if k in overflow else 0) for k, v in shown_layers.items())
    height = _PAD * 2 + tallest * (_H + _GAP_Y)
    for n, nodes in shown_layers.items():
        column = len(nodes) + (1 if n in overflow else 0)
        top = _PAD + (tallest - column) * (_H + _GAP_Y) / 2
        x = float(_PAD + (n - low) * (_W + _GAP_X))
        for i, node in enumerate(nodes):
            placed[node] = (x, top + i * (_H + _GAP_Y))
    width = float(_PAD * 2 + (max(shown_layers) - low + 1) * (_W + _GAP_X) - _GAP_X)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#888"/></marker></defs>',
    ]
    for a, b in graph.edges:
        if a in placed and b in placed:
            (ax, ay), (bx, by) = placed[a], placed[b]
            x1, y1, x2, y2 = ax + _W, ay + _H / 2, bx, by + _H / 2
            mid = (x1 + x2) / 2
            parts.append(
                f'<path d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} '
                f'{x2:.0f},{y2:.0f}" fill="none" stroke="#888" marker-end="url(#arrow)"/>'
            )
    for node, (x, y) in placed.items():
        beyond = chosen.beyond(graph, node, depth)
        parts.append(_box(graph, node, x, y, refs.get(node), url(node), beyond))
    for n, count in overflow.items():
        x = float(_PAD + (n - low) * (_W + _GAP_X))
        y = max(placed[node][1] for node in shown_layers[n]) + _H + _GAP_Y
        parts.append(
            f'<rect x="{x}" y="{y:.0f}" width="{_W}" height="{_H}" rx="6" fill="#f4f4f4" '
            f'stroke="#bbb" stroke-dasharray="4"/><text x="{x + 10}" y="{y + 34:.0f}">'
            f"{count} more not drawn</text>"
        )
    parts.append("</svg>")
    return Picture("".join(parts), len(placed), hidden)


def _box(
    graph: LineageGraph, node_id: str, x: float, y: float, ref: str | None, url: str, beyond: int
) -> str:
    node = graph.nodes[node_id]
    root = node_id == graph.root
    fill = "#fff3d6" if root else ("#f4f4f4" if node.missing else "#ffffff")
    stroke = "#d2691e" if root else "#4a6fa5"
    texts = []
    for i, line in enumerate(_lines(node, ref)):
        weight = ' font-weight="bold"' if i == 0 else ""
        texts.append(f'<text x="{x + 8}" y="{y + 16 + i * 15:.0f}"{weight}>{esc(line)}</text>')
    if beyond:
        texts.append(
            f'<text x="{x + _W - 6}" y="{y + _H - 6:.0f}" text-anchor="end" fill="#a0522d">'
            f"+{beyond} more</text>"
        )
    return (
        f'<g id="node-{esc(node_id)}" class="node"><a href="{esc(url)}">'
        f"<title>{esc(node.label)}</title>"
        f'<rect x="{x}" y="{y:.0f}" width="{_W}" height="{_H}" rx="6" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{3 if root else 1.5}"/>' + "".join(texts) + "</a></g>"
    )


def _dot_text(text: str, *, tooltip: bool = False) -> str:
    return f'"{escape_dot(text, tooltip=tooltip)}"'


def to_dot(
    graph: LineageGraph,
    *,
    depth: int,
    refs: Mapping[str, str],
    url: Callable[[str], str],
    max_per_layer: int = 25,
) -> tuple[str, Selection]:
    """Graphviz DOT source of the same selection `draw` shows, with links and ids."""
    chosen = select(graph, depth, max_per_layer)
    ids: dict[str, str] = {}
    lines = [
        "digraph lineage {",
        "rankdir=LR; nodesep=0.25; ranksep=0.5; bgcolor=transparent;",
        'node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=11];',
        'edge [color="#888888", arrowsize=0.7];',
    ]
    for n in sorted(chosen.shown):
        for node_id in chosen.shown[n]:
            ids[node_id] = f"n{len(ids)}"
            node = graph.nodes[node_id]
            root = node_id == graph.root
            text = _lines(node, refs.get(node_id))
            beyond = chosen.beyond(graph, node_id, depth)
            if beyond:
                text.append(f"+{beyond} more")
            label = '"' + "\\n".join(escape_dot(line) for line in text) + '"'
            fill = "#fff3d6" if root else ("#f4f4f4" if node.missing else "#ffffff")
            color = "#d2691e" if root else "#4a6fa5"
            lines.append(
                f"{ids[node_id]} [id={_dot_text('node-' + node_id)}, label={label}, "
                f"URL={_dot_text(url(node_id))}, tooltip={_dot_text(node.label, tooltip=True)}, "
                f'fillcolor="{fill}", color="{color}", penwidth={3 if root else 1}];'
            )
        if n in chosen.overflow:
            more = f"more_{len(ids)}"
            lines.append(f'{more} [label="{chosen.overflow[n]} more not drawn", style=dashed];')
            lines.append(f"{{rank=same; {ids[chosen.shown[n][0]]}; {more};}}")
    lines.extend(f"{ids[a]} -> {ids[b]};" for a, b in graph.edges if a in ids and b in ids)
    lines.append("}")
    return "\n".join(lines), chosen
