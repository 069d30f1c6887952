"""Drawing a computational graph (examples.graph.backprop's result): forward values and gradients.

Course material beside the toy graph engine, examples/graph.py; seed 002 draws
y = (a + b)(b − c) this way:

    from examples.graph import backprop
    from examples.graph_plot import plot_computational_graph
    ax = plot_computational_graph(backprop(lambda a, b, c: (a + b) * (b - c), 2.0, 3.0, 1.0))
"""
import numpy as np

from fnn.errors import InputTypeError
from fnn.viz.figures import LAYER_COLORS, new_axes

__all__ = ["plot_computational_graph"]

_GRAD_COLOR = "#c0392b"
_INFIX = {"add": "+", "sub": "−", "mul": "·", "div": "/"}


def _fmt(v):
    """A node's value or gradient: '5', '-2.5', or 'array(3, 2)' for non-scalars."""
    if v is None:
        return "–"
    a = np.asarray(v)
    if a.size == 1:
        return f"{float(a.reshape(())):.4g}"
    return f"array{a.shape}"


def _expression(node):
    a = node.inputs
    if node.op in _INFIX and len(a) == 2:
        return f"{a[0]} {_INFIX[node.op]} {a[1]}"
    if node.op == "neg":
        return f"−{a[0]}"
    if node.op == "integer_pow":
        return f"{a[0]}^{node.params.get('y')}"
    return f"{node.op}({', '.join(a)})"


def _graph_layout(nodes):
    """{name: (column, row)}: columns by longest path from the inputs, rows by parents' mean."""
    by_name = {n.name: n for n in nodes}
    depth = {}
    for n in nodes:                                    # nodes are in topological order
        if n.op not in ("input", "const"):
            depth[n.name] = 1 + max((depth.get(i, 0) for i in n.inputs), default=0)
    for n in nodes:
        if n.op == "input":
            depth[n.name] = 0
    for n in nodes:
        if n.op == "const":
            users = [depth[m.name] for m in nodes if n.name in m.inputs]
            depth[n.name] = max(0, min(users, default=1) - 1)
    for n in nodes:                                    # inputs and consts may make an op deeper
        if n.op not in ("input", "const"):
            depth[n.name] = max(depth[n.name], 1 + max((depth[i] for i in n.inputs), default=0))
    rows = {}
    for col in range(max(depth.values()) + 1):
        names = [n.name for n in nodes if depth[n.name] == col]
        if col:
            names.sort(key=lambda m: -np.mean([rows[i] for i in by_name[m].inputs if i in rows] or [0]))
        for k, m in enumerate(names):
            rows[m] = (len(names) - 1) / 2 - k
    return {m: (depth[m], rows[m]) for m in depth}


def plot_computational_graph(graph, *, ax=None, title=None):
    """A computational graph (examples.graph.backprop's result): forward values and backward gradients.

    Each node is a box "d = a + b / = 5" (its operation and forward value) with
    its gradient ∂y/∂d in red beneath; arrows run from each operation's inputs
    to it. Columns are the longest path from the inputs, so data flows left to right.

    Args:
      graph: a GraphResult, e.g. examples.graph.backprop(lambda a, b, c: (a + b) * (b - c), 2., 3., 1.).
    Returns:
      the Axes; node boxes are texts with gid f"node-{name}", gradients f"grad-{name}".
    """
    nodes = getattr(graph, "nodes", None)
    if not nodes or not hasattr(graph, "output"):
        raise InputTypeError(f"plot_computational_graph needs examples.graph.backprop's GraphResult, "
                        f"got {type(graph).__name__}")
    pos = _graph_layout(nodes)
    cols = max(c for c, _ in pos.values()) + 1
    height = max(sum(1 for c, _ in pos.values() if c == col) for col in range(cols))
    ax = new_axes(ax, (2.3 * cols + 0.6, 1.5 * height + 1.2))
    out = graph.output
    boxes = {}
    for n in nodes:
        x, y = pos[n.name]
        y *= 1.5
        if n.op == "input":
            text, fc = f"{n.name} = {_fmt(n.value)}", LAYER_COLORS["input"]
        elif n.op == "const":
            text, fc = _fmt(n.value), "0.92"
        else:
            fc = LAYER_COLORS["output"] if n.name == out else LAYER_COLORS["hidden"]
            text = f"{n.name} = {_expression(n)}\n= {_fmt(n.value)}"
        boxes[n.name] = ax.text(x, y, text, ha="center", va="center", fontsize=10, zorder=3,
                                bbox=dict(boxstyle="round,pad=0.45", fc=fc, ec="0.2"),
                                gid=f"node-{n.name}")
        if n.grad is not None:
            below = -27 if "\n" in text else -19           # points under the box's center
            ax.annotate(f"∂{out}/∂{n.name} = {_fmt(n.grad)}", xy=(x, y), xytext=(0, below),
                        textcoords="offset points", ha="center", va="top", fontsize=9,
                        color=_GRAD_COLOR, gid=f"grad-{n.name}")
    for n in nodes:
        for i in n.inputs:                             # parent's right edge -> child's left edge
            ax.annotate("", xy=(0, 0.5), xycoords=boxes[n.name], xytext=(1, 0.5), textcoords=boxes[i],
                        arrowprops=dict(arrowstyle="-|>", color="0.3", lw=1.2, shrinkA=7, shrinkB=7),
                        gid=f"edge-{i}-{n.name}", zorder=2)
    ys = [1.5 * r for _, r in pos.values()]
    ax.set_xlim(-0.7, cols - 0.3)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 0.8)
    ax.axis("off")
    ax.text(0.0, 0.0, f"black: forward value    red: backward gradient ∂{out}/∂node",
            transform=ax.transAxes, fontsize=8, color="0.3", va="bottom")
    if title:
        ax.set_title(title, fontsize=11)
    return ax
