"""Graphviz views: DOT source from `gategraph.graph`'s DAGs; PNG, SVG and PDF through the `dot` program.

Labels are Graphviz HTML labels in the lecture's notation (f<sub>t</sub>, C̃<sub>t</sub>). PNG, SVG and PDF go
through cairo (`png:cairo`, `svg:cairo`), which draws subscripts correctly where Graphviz's own SVG does not.

Imports: graphviz, gategraph.graph, gategraph.spec, gategraph.errors, gategraph.files, renderers.latex, renderers.svg.
An SVG is marked with the size of its smallest text (`renderers.svg`), which cairo's outlines do not show.
A cell's name is shown HTML-escaped in titles; the DOT names are `file_stem`s of it, which need no quoting.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import graphviz

from gategraph.errors import RenderError, ToolMissingError, UsageError
from gategraph.files import atomic_write, file_stem
from gategraph.graph import Graph
from gategraph.graph import forward as forward_graph
from gategraph.renderers import svg
from gategraph.renderers.latex import symbol, times
from gategraph.spec import Cell, Var

FONT = "DejaVu Sans"
STYLE = {
    "input": dict(shape="box", style="rounded,filled", fillcolor="#dbeafe", color="#3b82f6"),
    "memory": dict(shape="box3d", style="filled", fillcolor="#dbeafe", color="#3b82f6"),
    "state": dict(shape="box", style="rounded,filled", fillcolor="#fef3c7", color="#d97706"),
    "param": dict(shape="box", style="filled", fillcolor="#f3f4f6", color="#9ca3af", width="0", height="0",
                  margin="0.06,0.03"),
    "let": dict(shape="ellipse", style="filled", fillcolor="#dcfce7", color="#16a34a", width="0", height="0",
                margin="0.04,0.02"),
    "op": dict(shape="circle", style="filled", fillcolor="white", color="#374151", width="0.3", margin="0.02"),
}
FORMATS = {"png": "cairo", "svg": "cairo", "pdf": "cairo"}  # format -> renderer; graphs set margin="0", since
# PDF's default margin (half an inch) would frame the PDF more widely than the SVG
INSTALL_HINT = "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"


def html_text(text: str) -> str:
    """The text notation as a Graphviz HTML label: `h_{t-1}` -> h<SUB>t-1</SUB>, `∂ℓ_t/∂h_t` likewise."""
    out = re.sub(r"_\{([^{}]*)\}|_(\w)", lambda m: f"\x00{m.group(1) or m.group(2)}\x01", text)
    out = html.escape(out)
    return out.replace("\x00", "<SUB>").replace("\x01", "</SUB>")


def html_symbol(name: str, time: int | None) -> str:
    """`h_{t-1}` as a Graphviz HTML label: h<SUB>t-1</SUB>."""
    return html_text(symbol(name, time, style="text"))


def cell_dot(cell: Cell, graph: Graph | None = None) -> graphviz.Digraph:
    """The DOT graph of one step of `cell`: each equation's ops (and its own parameters) boxed and titled."""
    graph = graph or forward_graph(cell)
    names = times(cell)
    dot = graphviz.Digraph(file_stem(cell.name), graph_attr=dict(
        rankdir="LR", fontname=FONT, fontsize="18", nodesep="0.12", ranksep="0.25", bgcolor="white", labelloc="t",
        dpi="130", margin="0", label=f"<<B>{html.escape(cell.name)}</B>: one step>"),
        node_attr=dict(fontname=FONT, fontsize="17"),
        edge_attr=dict(color="#4b5563", arrowsize="0.7"))
    clusters = {g: graphviz.Digraph(f"cluster_{g}") for g in graph.groups}
    sources = graphviz.Digraph("sources", graph_attr=dict(rank="source"))
    updates = {st.name for st in cell.states}
    for node in graph.nodes.values():
        if node.kind not in STYLE:  # adjoint nodes: drawn by backward_dot
            continue
        attrs = dict(STYLE[node.kind])
        if node.kind == "op":
            label = html.escape(node.label)
            if len(node.label) > 2:
                attrs.update(shape="box", style="rounded,filled", width="0", height="0.3", margin="0.06,0.02")
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
                 color="#d1d5db", fontname=FONT, fontsize="17", margin="5")
        dot.subgraph(sub)
    for e in graph.edges:
        if e.kind == "forward":
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
            if fmt == "svg":  # cairo draws text as outlines: say how large the smallest is
                data = svg.mark(data, smallest_text(dot))
        except graphviz.ExecutableNotFound:
            raise ToolMissingError(f"Graphviz's `dot` program could not be run: {INSTALL_HINT}") from None
        except graphviz.CalledProcessError as e:
            first = (e.stderr or b"").decode(errors="replace").strip().splitlines()[:1]
            raise RenderError(f"Graphviz could not lay out {path.name}: {first[0] if first else e}") from None
    else:
        raise UsageError(f"unknown graph format {path.suffix!r}: use .png, .svg, .pdf or .dot")
    return atomic_write(path, data)


SUBSCRIPT = 1 / 1.2  # what pango sets <SUB> text at (its `smaller`)


def smallest_text(dot: graphviz.Digraph) -> float:
    """The smallest text Graphviz sets in `dot`, in the units of its SVG (points · dpi / 72): the least font
    size of the text it draws (`dot -Tjson`), a subscript at `SUBSCRIPT` of its font."""
    layout = json.loads(dot.pipe(format="json"))
    sizes = []
    for obj in [layout, *layout.get("objects", []), *layout.get("edges", [])]:
        for key in ("_ldraw_", "_hldraw_", "_tldraw_", "_hdraw_", "_tdraw_"):
            size = flags = 0
            for op in obj.get(key, []):
                if op["op"] == "F":
                    size = op["size"]
                elif op["op"] == "t":
                    flags = op["fontchar"]
                elif op["op"] == "T" and op["text"].strip():
                    sizes.append(size * (SUBSCRIPT if flags & 24 else 1))  # 8: superscript, 16: subscript
    return min(sizes, default=0.0) * float(layout.get("dpi") or 72) / 72


ADJOINT = dict(shape="ellipse", style="filled", fillcolor="#fee2e2", color="#dc2626", fontcolor="#7f1d1d")
SEED = dict(shape="note", style="filled", fillcolor="#fef2f2", color="#dc2626", fontcolor="#7f1d1d", fontsize="11")
GRADIENT = dict(shape="box", style="filled,bold", fillcolor="#fee2e2", color="#dc2626", fontcolor="#7f1d1d",
                fontsize="11")
RED = "#dc2626"


def backward_dot(cell: Cell, adj) -> graphviz.Digraph:
    """One step and, beside it, its adjoint: the backward step as a graph of its own, read left to right
    from the loss's seeds and what step t+1 sends back, to what flows on to step t-1 and to the parameters'
    gradients. Adjoint nodes are red; each adjoint sits in the box of the gate it belongs to."""
    from gategraph.graph import backward
    from gategraph.renderers.derivation import adjoint_printer, gradient_lhs

    g = backward(cell, adj)
    dot = cell_dot(cell, g)
    dot.attr(label=f"<<B>{html.escape(cell.name)}</B>: one step, and its adjoint in the red box>")
    p = adjoint_printer(adj, "text")
    flow = ("from the loss and step t+1 (left) to step t-1 and the parameters (right)" if cell.states
            else "from the loss (left) to the inputs and the parameters (right)")
    back = graphviz.Digraph("cluster_adjoint", graph_attr=dict(
        label=f"<the backward step: {flow}>",
        style="rounded", color=RED, fontcolor=RED, fontname=FONT, fontsize="12"))
    boxes: dict[str, graphviz.Digraph] = {}
    for node in g.nodes.values():
        if node.kind in ("adjoint", "seed"):
            label = html_text(p.doprint(adj.var(node.name)))
            attrs = ADJOINT if node.kind == "adjoint" else SEED
        elif node.kind == "gradient":
            label, attrs = html_text(gradient_lhs(node.name, "text")), GRADIENT
        else:
            continue
        if node.group and node.kind != "seed":
            if node.group not in boxes:
                eq = cell.equation(node.group)
                boxes[node.group] = graphviz.Digraph(f"cluster_adjoint_{node.group}", graph_attr=dict(
                    label=f"<{html.escape(eq.title)} {html_symbol(*times(cell)[node.group])}>",
                    style="rounded,filled", fillcolor="#fef2f2", color="#fecaca", fontname=FONT, fontsize="11"))
            boxes[node.group].node(node.id, f"<{label}>", **attrs)
        else:
            back.node(node.id, f"<{label}>", **attrs)
    for box in boxes.values():
        back.subgraph(box)
    dot.subgraph(back)
    for e in g.edges:
        if e.kind == "adjoint":
            dot.edge(e.src, e.dst, color=RED, penwidth="1.2", arrowsize="0.6")
    return dot


def unrolled_dot(cell: Cell, T: int, highlight: str | None = None) -> graphviz.Digraph:
    """The cell unrolled over T steps on a grid: time runs left to right, and within a step the values stack
    upwards (inputs, then the states in the order the step computes them, then the loss ℓ_t), so each
    state's values form one row. Forward edges are grey; each red dashed arc is the gradient going back.
    With `highlight`, the path from the last loss back to that state at step 0 is drawn bold, each step of a
    state's own chain labelled with its Jacobian (diag(f_t) for the LSTM's cell state)."""
    from gategraph.derive import derive
    from gategraph.graph import gradient_path, step_id, unrolled
    from gategraph.renderers.derivation import jacobian_factor_text

    g = unrolled(cell, T)
    path = gradient_path(g, cell, highlight) if highlight else set()
    title = f"<B>{html.escape(cell.name)}</B> unrolled over {T} steps"
    if highlight:
        s0 = f"{html_symbol(highlight, None)}<SUB>0</SUB>"
        chain = all((step_id(highlight, t - 1), step_id(highlight, t)) in path for t in range(1, T + 1))
        way = f"along {html_symbol(highlight, None)} alone" if chain and len(cell.states) > 1 else ""
        title += f": the gradient's way from ℓ<SUB>{T}</SUB> back to {s0} {way}".rstrip()
    dot = graphviz.Digraph(f"{file_stem(cell.name)}_unrolled", engine="neato", graph_attr=dict(
        fontname=FONT, bgcolor="white", labelloc="t", dpi="130", margin="0", splines="curved", outputorder="edgesfirst",
        label=f"<{title}>", fontsize="16"), node_attr=dict(fontname=FONT, fontsize="15", width="0.55", height="0.4"),
        edge_attr=dict(color="#9ca3af", arrowsize="0.6"))
    adj = derive(cell) if highlight else None
    labels = {t: jacobian_factor_text(adj, highlight, t) for t in range(1, T + 1)} if highlight in \
        {st.name for st in cell.states} else {}
    spacing = max([1.7] + [0.8 + 0.095 * len(text) for text in labels.values()])  # room for the labels
    states = {st.name for st in cell.states}
    level = _levels(cell)
    used = sorted({level[n.name] for n in g.nodes.values() if n.kind != "loss"})
    row = {name: used.index(k) for name, k in level.items() if k in used}
    for node in g.nodes.values():
        t = int(node.id.rsplit("__", 1)[1])
        label = f"{html.escape(symbol(node.name, None, 'text'))}<SUB>{t}</SUB>"
        if node.kind == "loss":
            label = f"ℓ<SUB>{t}</SUB>"
            attrs = dict(shape="diamond", style="filled", fillcolor="#e5e7eb", color="#6b7280", fontsize="14")
        elif node.name in states:
            attrs = dict(STYLE["state"], shape="box")
        else:
            attrs = dict(STYLE[node.kind])
        y = row.get(node.name, len(used))
        x = t - 0.45 if node.kind in ("state", "memory") else t  # step 0's states sit just left of step 1
        dot.node(node.id, f"<{label}>", pos=f"{spacing * x:.2f},{1.15 * y:.2f}!", **attrs)
    for e in g.edges:
        if e.kind == "forward":
            bold = (e.src, e.dst) in path
            dot.edge(e.src, e.dst, color="#374151" if bold else "#9ca3af", penwidth="1.8" if bold else "1")
            continue
        on_path = (e.dst, e.src) in path
        attrs = dict(color=RED, style="solid" if on_path else "dashed", penwidth="2.8" if on_path else "0.6",
                     arrowsize="0.9" if on_path else "0.45")
        if on_path and e.src.startswith(f"{highlight}__") and e.dst.startswith(f"{highlight}__"):
            t = int(e.src.rsplit("__", 1)[1])
            attrs.update(label=f"<{html_text(labels[t])}>", fontcolor=RED,
                         fontsize="14", fontname=FONT)
        dot.edge(e.src, e.dst, **attrs)
    _legend(dot, highlight and f"the gradient's way back to {s0}", spacing)
    return dot


def _legend(dot: graphviz.Digraph, path: str | None, spacing: float):
    """Under the unrolled grid, what its edge styles mean: one short edge of each style and its words."""
    items = [("#9ca3af", "solid", "1", "the forward computation"), (RED, "dashed", "0.6", "the gradient, going back")]
    if path:
        items.append((RED, "solid", "2.8", path))
    x = -0.45 * spacing  # from the left edge of the grid
    for k, (color, style, width, words) in enumerate(items):
        a, b, text = f"legend{k}a", f"legend{k}b", f"legend{k}"
        for name, at in ((a, x), (b, x + 0.6)):
            dot.node(name, "", shape="point", width="0.01", style="invis", pos=f"{at:.2f},-0.8!")
        dot.edge(a, b, color=color, style=style, penwidth=width, arrowsize="0.6", splines="line")
        chars = len(re.sub(r"<[^>]*>", "", words))
        dot.node(text, f"<{words}>", shape="plaintext", fontsize="15", fontcolor="#374151",
                 pos=f"{x + 0.7 + 0.056 * chars:.2f},-0.8!")
        x += 1.1 + 0.112 * chars


def _levels(cell: Cell) -> dict[str, int]:
    """How high a value sits within its step: inputs 0, then one above everything it reads at the same step.
    A carried state sits with its update (C_0 on C_t's row)."""
    level = {d.name: 0 for d in cell.inputs}
    for eq in cell.equations:
        reads = [level[v.name] for v in eq.rhs.atoms(Var) if cell.roles[v.name] in ("input", "memory", "let")
                 and v.name in level]
        level[eq.name] = 1 + max(reads, default=0)
    return level


STRUCTURES = ("one-to-one", "many-to-one", "one-to-many", "many-to-many", "encoder-decoder", "bidirectional",
              "deep")


def structure_dot(kind: str, T: int = 4) -> graphviz.Digraph:
    """How a recurrent network is wired in time: inputs (blue) at the bottom, cells in the middle, outputs
    at the top, time left to right. kind: one of STRUCTURES."""
    if kind not in STRUCTURES:
        raise UsageError(f"unknown structure {kind!r}: one of {', '.join(STRUCTURES)}")
    g = graphviz.Digraph(kind, graph_attr=dict(rankdir="BT", nodesep="0.35", ranksep="0.35", fontname=FONT, margin="0",
                                               label=kind.replace("-", " "), labelloc="t", fontsize="16"),
                         node_attr=dict(fontname=FONT, fontsize="13"), edge_attr=dict(color="#6b7280"))
    cell = dict(shape="box", style="rounded,filled", fillcolor="#fef3c7", color="#d97706", width="0.6")
    xin, yout = STYLE["input"], dict(shape="box", style="rounded,filled", fillcolor="#dcfce7", color="#16a34a")
    steps = 1 if kind == "one-to-one" else T
    rows = {"deep": 2, "bidirectional": 2}.get(kind, 1)
    enc = T if kind == "encoder-decoder" else 0
    n = steps + enc
    for t in range(n):
        reads = kind not in ("one-to-many",) or t == 0
        reads = reads and not (kind == "encoder-decoder" and t >= enc)
        writes = {"many-to-one": t == n - 1, "encoder-decoder": t >= enc}.get(kind, True)
        if reads:
            g.node(f"x{t}", f"<x<sub>{t + 1}</sub>>", group=f"t{t}", **xin)
        else:  # keeps the cells of every step on one row
            g.node(f"x{t}", "", style="invis", width="0.3", group=f"t{t}")
        for r in range(rows):
            label = ("→" if r == 0 else "←") if kind == "bidirectional" else ("enc" if t < enc else "dec") if enc \
                else f"layer {r + 1}" if kind == "deep" else "RNN"
            g.node(f"c{r}_{t}", label, group=f"t{t}", **cell)  # a step's nodes in one column
        g.edge(f"x{t}", f"c0_{t}", **({} if reads else {"style": "invis"}))
        if kind == "bidirectional":
            g.edge(f"x{t}", f"c1_{t}", color="#6b7280:invis" if reads else "invis", weight="0")
            g.edge(f"c0_{t}", f"c1_{t}", style="invis")  # the backward row above the forward one
        if kind == "deep":
            g.edge(f"c0_{t}", f"c1_{t}")
        if writes:
            g.node(f"y{t}", f"<y<sub>{t + 1 - enc}</sub>>", group=f"t{t}", **yout)
            g.edge(f"c{rows - 1}_{t}", f"y{t}")
            if kind == "bidirectional":
                g.edge(f"c0_{t}", f"y{t}", weight="0")  # edges that skip a row do not pull on columns
        if t:
            for r in range(rows):  # the recurrence: a flat edge from step t-1 to step t keeps the steps in order;
                back = kind == "bidirectional" and r == 1  # the backward row's arrows point back in time
                g.edge(f"c{r}_{t - 1}", f"c{r}_{t}", color="#d97706", penwidth="2", **({"dir": "back"} if back else {}))
    for row in [[f"x{t}" for t in range(n)]] + [[f"c{r}_{t}" for t in range(n)] for r in range(rows)]:
        with g.subgraph() as s:  # each row on one rank, its steps left to right
            s.attr(rank="same")
            for a, b in zip(row, row[1:], strict=False):
                s.edge(a, b, style="invis")
    return g
