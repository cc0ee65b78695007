"""Renderer-neutral computation graphs of a cell: nodes, edges and groups, no drawing.

`forward(cell)` is one step as a bipartite DAG: value nodes (inputs, carried states, parameters and
the names equations define) and op nodes (σ, ⊙, ·, ...). An expression used by several equations (the
LSTM's [h_{t-1}, x_t]) is one node; ops and parameters used by one equation only are grouped with it
("forget gate f_t"), so a renderer can draw each gate as a box.

Imports: gategraph.derive, gategraph.ops, gategraph.spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from gategraph.derive import AdjointVar, Role, adjoint_name
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


def adjoint_id(var) -> str:
    """The node id of an adjoint variable: `b_bar_f` for f̄, `b_pre_f` for ā_f; seeds and carries from step
    t+1 (`s_dl_h`, `s_carry_C`) are "seed" nodes. The role comes first, so no two variables share an id."""
    prefix = "s" if var.role in (Role.SEED, Role.CARRY) else "b"
    return f"{prefix}_{var.role.value}_{var.of}"


def backward(cell: Cell, adj) -> Graph:
    """One step with its adjoint on top: every adjoint variable (f̄, ā_f, the carries into step t-1) is a
    node beside its forward twin, with edges of kind "adjoint" from the adjoints it is computed from; the
    loss's seeds (∂ℓ_t/∂h_t) and what step t+1 sends back are "seed" nodes; each parameter's gradient is a
    "gradient" node. A node's `name` is the adjoint variable's name (`adj.var(name)` gives its role)."""
    g = forward(cell)
    group_of = {n.name: n.group for n in g.nodes.values() if n.kind != "op"}

    def reads(expr):
        return sorted(expr.atoms(AdjointVar), key=lambda v: v.name)

    seeds = [adj.var(n) for n in adj.seeds.values()]
    seeds += [adj.var(adjoint_name(Role.CARRY, s.name)) for s in cell.states]
    for var in seeds:
        g.add(Node(adjoint_id(var), "seed", var.name))
    for eq in adj.equations:
        node = g.add(Node(adjoint_id(eq.lhs), "adjoint", eq.name, group_of.get(eq.lhs.of)))
        for src in reads(eq.rhs):
            g.link(adjoint_id(src), node, "adjoint")
    for param, grad in adj.grads.items():
        if grad == 0:
            continue
        node = g.add(Node(f"g_{param}", "gradient", param, group_of.get(param)))
        for src in reads(grad):
            g.link(adjoint_id(src), node, "adjoint")
    return g


def step_id(name: str, t: int) -> str:
    return f"{name}__{t}"


def unrolled(cell: Cell, T: int) -> Graph:
    """The cell unrolled over steps 1..T, one group per step, with the values a reader follows through time:
    the inputs, the carried states and the outputs (the gates stay inside the step; `forward(cell)` shows
    them), the initial states at step 0, and a loss node ℓ_t per step fed by the outputs. An edge u -> v
    means v at its step reads u, directly or through gates; its reverse, of kind "adjoint", is the way the
    gradient flows back."""
    if T < 1:
        raise ValueError("unroll over at least one step")
    g = Graph(outputs=tuple(step_id(o, T) for o in cell.outputs))
    kept = [st.name for st in cell.states] + [o for o in cell.outputs if o not in {st.name for st in cell.states}]
    sources = _sources(cell, kept)
    for st in cell.states:
        g.add(Node(step_id(st.name, 0), "state", st.name, None))
    for d in cell.by_role("memory"):
        g.add(Node(step_id(d.name, 0), "memory", d.name, None))
    for t in range(1, T + 1):
        g.groups[str(t)] = str(t)
        for d in cell.by_role("input"):
            g.add(Node(step_id(d.name, t), "input", d.name, str(t)))
        for name in [eq.name for eq in cell.equations if eq.name in kept]:
            node = g.add(Node(step_id(name, t), "let", name, str(t)))
            for src, when in sources[name]:
                src_id = step_id(src, 0 if cell.roles.get(src) == "memory" else t + when)
                g.link(src_id, node)
                g.link(node, src_id, "adjoint")
        loss = g.add(Node(step_id("loss", t), "loss", "loss", str(t)))
        for o in cell.outputs:
            g.link(step_id(o, t), loss)
            g.link(loss, step_id(o, t), "adjoint")
    return g


def _sources(cell: Cell, kept: list[str]) -> dict[str, list[tuple[str, int]]]:
    """For each kept name: the kept values, inputs and carried states (at step offset -1) it reads,
    looking through the names that are not kept (the gates)."""
    states = {st.prev.name: st.name for st in cell.states}
    direct: dict[str, list] = {}
    for eq in cell.equations:
        found: list = []
        for v in sorted(eq.rhs.atoms(Var), key=lambda v: v.name):
            role = cell.roles[v.name]
            if role == "param":
                continue
            if role == "state":
                found.append((states[v.name], -1))
            elif role in ("input", "memory") or v.name in kept:
                found.append((v.name, 0))
            else:
                found += direct[v.name]
        direct[eq.name] = list(dict.fromkeys(found))
    return {name: direct[name] for name in kept}


def gradient_path(g: Graph, cell: Cell, state: str) -> set:
    """The forward edges (src, dst) the gradient flows back along from the last loss to `state` at step 0:
    the state's own chain s_0 -> s_1 -> ... -> s_T where each step reads the last one directly (the LSTM's
    cell state), otherwise every path from s_0 to s_T; then every path from s_T to the last loss."""
    if state not in {st.name for st in cell.states}:
        names = ", ".join(st.name for st in cell.states) or "none"
        raise ValueError(f"{state!r} is not a carried state of {cell.name!r}; its states are {names}")
    T = len(g.groups)
    forward_edges = [(e.src, e.dst) for e in g.edges if e.kind == "forward"]
    chain = [(step_id(state, t - 1), step_id(state, t)) for t in range(1, T + 1)]
    if all(edge in forward_edges for edge in chain):
        path = set(chain)
    else:
        path = _edges_between(forward_edges, step_id(state, 0), step_id(state, T))
    return path | _edges_between(forward_edges, step_id(state, T), step_id("loss", T))


def _edges_between(edges, src, dst) -> set:
    succ, pred = {}, {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)

    def reach(start, nxt):
        seen, todo = {start}, [start]
        while todo:
            for n in nxt.get(todo.pop(), []):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen

    after, before = reach(src, succ), reach(dst, pred)
    return {(a, b) for a, b in edges if a in after and b in before}
