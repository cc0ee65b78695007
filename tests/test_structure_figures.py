"""The structure figures are checked from the layout Graphviz computed (`dot -Tjson`), as a student reads
them: steps left to right in order, inputs at the bottom, layers above them in order and outputs on top, and
every recurrent arrow pointing forward in time (backward for the backward direction of a bidirectional
network)."""

import json
import re

import pytest

from gategraph.renderers.graphviz import STRUCTURES, structure_dot
from tests.conftest import needs_dot

RECURRENT = "#d97706"


def layout(kind: str) -> tuple[dict, list]:
    """{node name: (x, y, label, visible)} with y upwards, and [(from, to)] of the recurrent arrows as drawn."""
    data = json.loads(structure_dot(kind).pipe(format="json"))
    nodes, by_id = {}, {}
    for obj in data.get("objects", []):
        if "pos" not in obj:
            continue
        x, y = map(float, obj["pos"].split(","))
        label = re.sub(r"<[^>]*>", "", obj.get("label", ""))
        nodes[obj["name"]] = (x, y, label, obj.get("style") != "invis")
        by_id[obj["_gvid"]] = obj["name"]
    arrows = []
    for e in data.get("edges", []):
        if e.get("color") == RECURRENT:
            tail, head = by_id[e["tail"]], by_id[e["head"]]
            arrows.append((head, tail) if e.get("dir") == "back" else (tail, head))
    return nodes, arrows


@needs_dot
@pytest.mark.parametrize("kind", STRUCTURES)
def test_a_structure_figure_reads_left_to_right_and_bottom_to_top(kind):
    nodes, arrows = layout(kind)
    steps = sorted(int(n[1:]) for n in nodes if re.fullmatch(r"x\d+", n))
    rows = sorted({int(n[1:].split("_")[0]) for n in nodes if n.startswith("c")})
    xs = [nodes[f"x{t}"][0] for t in steps]
    assert xs == sorted(xs) and len(set(xs)) == len(xs), f"{kind}: steps out of order {xs}"
    for r in rows:
        cells = [nodes[f"c{r}_{t}"][0] for t in steps]
        assert cells == sorted(cells), f"{kind}: the cells of row {r} out of order"
    for t in steps:
        heights = [nodes[f"x{t}"][1]] + [nodes[f"c{r}_{t}"][1] for r in rows]
        if f"y{t}" in nodes:
            heights.append(nodes[f"y{t}"][1])
        assert heights == sorted(heights) and len(set(heights)) == len(heights), \
            f"{kind}: step {t + 1} is not input, layers, output from the bottom up"
    outputs = [nodes[n][0] for n in sorted(nodes, key=lambda n: int(n[1:])) if re.fullmatch(r"y\d+", n)]
    assert outputs == sorted(outputs), f"{kind}: outputs out of order"
    labels = [nodes[f"x{t}"][2] for t in steps if nodes[f"x{t}"][3]]
    assert labels == [f"x{t + 1}" for t in steps if nodes[f"x{t}"][3]], labels
    for a, b in arrows:
        row, backward = a.split("_")[0], kind == "bidirectional" and a.startswith("c1_")
        assert b.startswith(row + "_"), f"{kind}: a recurrent arrow leaves its row ({a} → {b})"
        forward = nodes[b][0] > nodes[a][0]
        assert forward != backward, f"{kind}: the arrow {a} → {b} points the wrong way in time"
    assert len(arrows) == len(rows) * (len(steps) - 1)


@needs_dot
def test_the_deep_network_names_its_layers():
    nodes, _ = layout("deep")
    assert {nodes[n][2] for n in nodes if n.startswith("c0_")} == {"layer 1"}
    assert {nodes[n][2] for n in nodes if n.startswith("c1_")} == {"layer 2"}


@needs_dot
def test_the_unrolled_graph_has_a_legend_below_it():
    from gategraph import cells
    from gategraph.renderers.graphviz import unrolled_dot

    data = json.loads(unrolled_dot(cells.lstm(), 4, highlight="C").pipe(format="json"))
    placed = {o["name"]: (float(o["pos"].split(",")[1]), re.sub(r"<[^>]*>", "", o.get("label", "")))
              for o in data["objects"] if "pos" in o}
    legend = {label for name, (_, label) in placed.items() if re.fullmatch(r"legend\d", name)}
    assert legend == {"the forward computation", "the gradient, going back", "the gradient's way back to C0"}
    lowest = min(y for name, (y, _) in placed.items() if not name.startswith("legend"))
    assert all(y < lowest for name, (y, _) in placed.items() if name.startswith("legend"))
    styles = {(e.get("color"), e.get("style", "solid")) for e in data["edges"]
              if data["objects"][e["tail"]]["name"].startswith("legend")}
    assert styles == {("#9ca3af", "solid"), ("#dc2626", "dashed"), ("#dc2626", "solid")}


@needs_dot
@pytest.mark.parametrize("kind", STRUCTURES)
def test_each_step_is_one_column(kind):
    """A step's input, its cells in every row and its output stand one above the other (the forward and the
    backward row of a bidirectional network too), so a column reads as one step."""
    nodes, _ = layout(kind)
    steps = sorted(int(n[1:]) for n in nodes if re.fullmatch(r"x\d+", n))
    for t in steps:
        column = {n: nodes[n][0] for n in nodes if re.fullmatch(rf"(x|y|c\d+_){t}", n) and nodes[n][3]}
        assert max(column.values()) - min(column.values()) < 1.0, f"{kind}: step {t + 1} is staggered: {column}"
