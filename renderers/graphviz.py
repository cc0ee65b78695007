"""Graphviz views: DOT source from `gategraph.graph`'s DAGs; PNG, SVG and PDF through the `dot` program.

Labels are Graphviz HTML labels in the lecture's notation (f<sub>t</sub>, C̃<sub>t</sub>). PNG, SVG and PDF go
through cairo (`png:cairo`, `svg:cairo`), which draws subscripts correctly where Graphviz's own SVG does not.

Imports: graphviz, gategraph.graph, gategraph.spec, gategraph.errors, gategraph.files, gategraph.renderers.latex.
"""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

import graphviz

from gategraph.errors import ToolMissingError, UsageError
from gategraph.files import atomic_write
from gategraph.graph import Graph
from gategraph.graph import forward as forward_graph
from gategraph.renderers.latex import symbol, times
from gategraph.spec import Cell

FONT = "DejaVu Sans"
STYLE = {
    "input": dict(shape="box", style="rounded,filled", fillcolor="#dbeafe", color="#3b82f6"),
    "memory": dict(shape="box3d", style="filled", fillcolor="#dbeafe", color="#3b82f6"),
    "state": dict(shape="box", style="rounded,filled", fillcolor="#fef3c7", color="#d97706"),
    "param": dict(shape="box", style="filled", fillcolor="#f3f4f6", color="#9ca3af", fontsize="11"),
    "let": dict(shape="ellipse", style="filled", fillcolor="#dcfce7", color="#16a34a"),
    "op": dict(shape="circle", style="filled", fillcolor="white", color="#374151", fontsize="12",
               width="0.3", margin="0.02"),
}
FORMATS = {"png": "cairo", "svg": "cairo", "pdf": "cairo"}  # format -> renderer
INSTALL_HINT = "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"


def html_symbol(name: str, time: int | None) -> str:
    """`h_{t-1}` as a Graphviz HTML label: h<SUB>t-1</SUB>."""
    text = symbol(name, time, style="text")
    base, _, sub = text.partition("_")
    base = html.escape(base)
    return f"{base}<SUB>{html.escape(sub.strip('{}'))}</SUB>" if sub else base


def cell_dot(cell: Cell, graph: Graph | None = None) -> graphviz.Digraph:
    """The DOT graph of one step of `cell`: each equation's ops (and its own parameters) boxed and titled."""
    graph = graph or forward_graph(cell)
    names = times(cell)
    dot = graphviz.Digraph(cell.name, graph_attr=dict(rankdir="LR", fontname=FONT, nodesep="0.22",
                                                      ranksep="0.3", bgcolor="white", labelloc="t", dpi="130",
                                                      label=f"<<B>{html.escape(cell.name)}</B>: one step>"),
                           node_attr=dict(fontname=FONT), edge_attr=dict(color="#4b5563", arrowsize="0.7"))
    clusters = {g: graphviz.Digraph(f"cluster_{g}") for g in graph.groups}
    sources = graphviz.Digraph("sources", graph_attr=dict(rank="source"))
    updates = {st.name for st in cell.states}
    for node in graph.nodes.values():
        attrs = dict(STYLE[node.kind])
        if node.kind == "op":
            label = html.escape(node.label)
            if len(node.label) > 2:
                attrs.update(shape="box", style="rounded,filled", width="0", height="0.3")
        else:
            label = html_symbol(*names[node.name])
            if node.id in graph.outputs:
                attrs["peripheries"] = "2"
            if node.kind == "let" and node.name in updates:  # h_t is next step's h_{t-1}: same colours
                attrs.update(fillcolor=STYLE["state"]["fillcolor"], color=STYLE["state"]["color"])
        target = clusters[node.group] if node.group else sources if node.kind in ("input", "memory", "state") else dot
        target.node(node.id, f"<{label}>", **attrs)
    dot.subgraph(sources)
    # Graphviz stacks clusters of one rank bottom-up in LR layouts: add them in reverse to read top-down
    for name, sub in reversed(clusters.items()):
        eq = cell.equation(name)
        title = f"{html.escape(eq.title)} " if eq.title else ""
        sub.attr(label=f"<{title}{html_symbol(*names[name])}>", style="rounded,filled", fillcolor="#f9fafb",
                 color="#d1d5db", fontname=FONT, fontsize="12")
        dot.subgraph(sub)
    for e in graph.edges:
        dot.edge(e.src, e.dst)
    return dot


def require_dot() -> None:
    if shutil.which("dot") is None:
        raise ToolMissingError(f"Graphviz's `dot` program was not found on PATH: {INSTALL_HINT}")


def render(dot: graphviz.Digraph, path: str | os.PathLike) -> Path:
    """Write `dot` to `path`; the suffix picks the format (.dot, .gv, .png, .svg, .pdf). Atomic: a failed
    render leaves no partial file."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt in ("dot", "gv"):
        data = dot.source.encode()
    elif fmt in FORMATS:
        require_dot()
        try:
            data = dot.pipe(format=fmt, renderer=FORMATS[fmt])
        except graphviz.ExecutableNotFound:
            raise ToolMissingError(f"Graphviz's `dot` program could not be run: {INSTALL_HINT}") from None
    else:
        raise UsageError(f"unknown graph format {path.suffix!r}: use .png, .svg, .pdf or .dot")
    return atomic_write(path, data)
