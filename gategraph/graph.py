"""Renderer-neutral computation graphs of a cell: nodes, edges and groups, no drawing.

`forward(cell)` is one step as a bipartite DAG: value nodes (inputs, carried states, parameters and
the names equations define) and op nodes (σ, ⊙, ·, ...). An expression used by several equations (the
LSTM's [h_{t-1}, x_t]) is one node; ops and parameters used by one equation only are grouped with it
("forget gate f_t"), so a renderer can draw each gate as a box.

Imports: gategraph.ops, gategraph.spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from gategraph.ops import op_of
from gategraph.spec import Cell, Var


@dataclass(frozen=True)
class Node:
    """kind: input | memory | state | param | let | op | const. `name` is the symbol's or the op's name."""

    id: str
    kind: str
    name: str
    group: str | None = None
    label: str = ""  # for op nodes: numbers folded in, e.g. "1 −"


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    kind: str = "forward"  # forward | adjoint | carry


@dataclass
class Graph:
    nodes: dict = field(default_factory=dict)  # id -> Node, in insertion order
    edges: list = field(default_factory=list)
    groups: dict = field(default_factory=dict)  # group id -> equation name
    outputs: tuple = ()  # value node ids emitted per step

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def link(self, src: str, dst: str, kind: str = "forward") -> None:
        edge = Edge(src, dst, kind)
        if edge not in self.edges:
            self.edges.append(edge)

    def preds(self, node_id: str) -> list[str]:
        return [e.src for e in self.edges if e.dst == node_id]


def value_id(name: str) -> str:
    return f"v_{name}"


def forward(cell: Cell) -> Graph:
    """One step of `cell` as a DAG; op nodes get ids `op<k>` in the order the equations use them."""
    g = Graph(outputs=tuple(value_id(n) for n in cell.outputs))
    users = _users(cell)
    for d in cell.decls:
        group = users[d.name][0] if d.role == "param" and len(users[d.name]) == 1 else None
        g.add(Node(value_id(d.name), d.role, d.name, group))
    ids: dict[sp.Basic, str] = {}
    for eq in cell.equations:
        g.groups[eq.name] = eq.name
        root = _add_expr(g, eq.rhs, ids, users, eq.name)
        g.add(Node(value_id(eq.name), "let", eq.name, eq.name))
        g.link(root, value_id(eq.name))
    return g


def _users(cell: Cell) -> dict[str, list[str]]:
    """symbol name -> the equations whose right side reads it; subexpression -> equations, likewise."""
    users: dict = {}
    for eq in cell.equations:
        for node in sp.preorder_traversal(eq.rhs):
            key = node.name if isinstance(node, Var) else node
            if eq.name not in users.setdefault(key, []):
                users[key].append(eq.name)
    for name in cell.shapes:
        users.setdefault(name, [])
    return users


def _add_expr(g: Graph, expr, ids: dict, users: dict, eq_name: str) -> str:
    if isinstance(expr, Var):
        return value_id(expr.name)
    if expr in ids:
        return ids[expr]
    op = op_of(expr)
    numbers = [a for a in expr.args if a.is_number]
    label = " ".join([_num(n) for n in numbers] + [op.glyph]) if op.name != "Slice" else op.glyph
    group = eq_name if len(users.get(expr, [])) <= 1 else None
    node_id = g.add(Node(f"op{len(ids)}", "op", op.name, group, label))
    ids[expr] = node_id
    for a in expr.args:
        if isinstance(a, Var) or op_of(a) is not None:  # numbers are folded into the label, sizes skipped
            g.link(_add_expr(g, a, ids, users, eq_name), node_id)
    return node_id


def _num(n) -> str:
    return str(int(n)) if n == int(n) else f"{float(n):g}"
