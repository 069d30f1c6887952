"""A network of any layers drawn as a chain of blocks, one per layer, sized by its output.

    plot_blocks(model, input_shape)

plot_architecture draws every neuron, which suits an MLP of a few dozen
units; a convolutional network has thousands of activations, so here each
layer is one block: its height grows with the output's length (the spatial
size; the units of a flat output) and its width with the number of channels,
and its caption gives the layer and its output shape, e.g. "Conv(25, k5, s2)
· relu / 19 × 25". Activations and dropout are captions of the block before
them, not blocks. A residual block's layers are bridged by an arc marked "+"
(y = x + f(x)); other combinators (parallel branches) are one block each.
"""
import math

import jax
import jax.numpy as jnp
from matplotlib.patches import FancyArrowPatch, Rectangle

from fnn.errors import InputTypeError
from fnn.layers import Layer
from fnn.viz.figures import LAYER_COLORS, new_axes

__all__ = ["plot_blocks", "blocks"]

_CAPTIONED = ("activation", "dropout")      # drawn as a caption of the block before them


def _output_shape(layer, shape, dtype):
    out = []

    def init(key):
        s, params = layer.init(key, shape, dtype)
        out.append(tuple(s))
        return params

    jax.eval_shape(init, jax.random.key(0))
    return out[0]


def blocks(model, input_shape, dtype=jnp.float32):
    """The blocks plot_blocks draws: (list of dicts name/kind/shape/captions, list of residual spans).

    Each block dict has "name", "kind", "shape" (its output shape, batch
    axis dropped) and "captions" (the activations after it). A span (i, j)
    says blocks i..j are a residual branch.
    """
    if not isinstance(model, Layer):
        raise InputTypeError(f"plot_blocks expects an fnn Layer, got {type(model).__name__}")
    found = [dict(name="input", kind="input", shape=tuple(input_shape)[1:], captions=[])]
    spans = []

    def visit(layer, shape):
        if layer.kind == "serial":
            for sub in layer.layers:
                shape = visit(sub, shape)
            return shape
        if layer.kind == "residual" and layer.layers:
            first = len(found)
            inner = shape
            for sub in layer.layers:
                inner = visit(sub, inner)
            spans.append((first, len(found) - 1))
            return _output_shape(layer, shape, dtype)
        out = _output_shape(layer, shape, dtype)
        if layer.kind in _CAPTIONED and len(found) > 1:
            found[-1]["captions"].append(layer.name)
        else:
            found.append(dict(name=layer.name, kind=layer.kind, shape=out[1:], captions=[]))
        return out

    visit(model, tuple(input_shape))
    return found, spans


def _size(shape):
    """(length, channels) of an output shape without its batch axis."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], 1
    return math.prod(shape[:-1]), shape[-1]


def plot_blocks(model, input_shape, *, ax=None, title=None, dtype=jnp.float32):
    """The model as a chain of blocks (see the module docstring); returns the Axes.

    Args:
      model: an fnn Layer.
      input_shape: its input shape with -1 for the batch, e.g. (-1, 40).
      ax: the Axes to draw into (a new figure if None); title: its title.
    Each block is a Rectangle with gid f"block-{i}" (0: the input).
    """
    found, spans = blocks(model, input_shape, dtype)
    ax = new_axes(ax, (1.3 * len(found) + 1, 4.0))
    sizes = [_size(b["shape"]) for b in found]
    longest = max(s[0] for s in sizes)
    widest = max(s[1] for s in sizes)
    for i, (b, (length, channels)) in enumerate(zip(found, sizes)):
        h = 0.3 + 2.2 * math.sqrt(length / longest)
        w = 0.12 + 0.55 * math.log1p(channels) / math.log1p(max(widest, 2))
        kind = "input" if i == 0 else "output" if i == len(found) - 1 else "hidden"
        ax.add_patch(Rectangle((i - w / 2, -h / 2), w, h, facecolor=LAYER_COLORS[kind], edgecolor="k",
                               linewidth=0.8, alpha=0.85, gid=f"block-{i}"))
        shape = " × ".join(map(str, b["shape"])) or "1"
        caption = b["name"] + "".join(f"\n· {c}" for c in b["captions"])
        ax.text(i, -1.45, f"{caption}\n{shape}", ha="center", va="top", fontsize=7)
        if i:
            ax.annotate("", (i - w / 2, 0), (i - 0.5 + 0.08, 0),
                        arrowprops=dict(arrowstyle="->", color="0.4", lw=0.8))
    for first, last in spans:
        arc = FancyArrowPatch((first - 1, 1.25), (last + 0.05, 1.25), connectionstyle="arc3,rad=-0.35",
                              arrowstyle="->", color="0.35", lw=1.0, mutation_scale=8)
        ax.add_patch(arc)
        ax.text((first - 1 + last) / 2, 1.25 + 0.22 + 0.12 * (last - first + 1), "+ x", ha="center",
                va="bottom", fontsize=8, color="0.25")
    ax.set_xlim(-0.7, len(found) - 0.3)
    ax.set_ylim(-2.6, 2.4)
    ax.axis("off")
    ax.text(0.5, 0.0, "block height: length of the output; width: its channels",
            transform=ax.transAxes, ha="center", va="bottom", fontsize=7, color="0.35")
    if title:
        ax.set_title(title, fontsize=10)
    return ax
