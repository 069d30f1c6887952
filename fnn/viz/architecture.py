"""The network as seed 001 draws it: columns of neurons joined by weights coloured by sign.

    plot_architecture(params, model=model)   neurons in columns, weights by sign and size
    dense_layers(params)                     the (W, b) of every Dense layer in a params pytree
"""
from typing import Mapping

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgb

from fnn.errors import InputError, InputTypeError
from fnn.validate import check_number, check_positive_int
from fnn.viz.figures import LAYER_COLORS, NEGATIVE, POSITIVE, new_axes

__all__ = ["plot_architecture", "dense_layers"]

NORM_KEYS = frozenset({"scale", "offset"})              # the params of fnn's normalization layers


def dense_layers(params, where="params"):
    """[(W (in, out), b)] of every Dense layer in a params pytree, in order.

    Args:
      params: an fnn model's parameters: Dense {'W', 'b'} dicts, nested in
        tuples/lists (() for layers without parameters; the {'scale', 'offset'}
        dicts of LayerNorm and BatchNorm are passed over).
      where: how the error messages name `params`.
    Returns:
      a list of (W, b) NumPy arrays (b is None for a Dense layer without bias).
    """
    if isinstance(params, Mapping):
        if set(params) <= NORM_KEYS:                     # LayerNorm / BatchNorm: not drawn
            return []
        if "W" not in params:
            raise InputTypeError(f"{where} is a dict without 'W' ({sorted(params)}); expected fnn Dense "
                            "parameters {'W', 'b'} or a tuple of layer parameters")
        W = np.asarray(params["W"])
        if W.ndim > 2:
            raise InputError(f"{where}['W'] has shape {W.shape}, a convolution kernel; plot_architecture "
                             "draws Dense layers only, expected W of shape (in, out)")
        if W.ndim != 2:
            raise InputError(f"{where}['W'] has shape {W.shape}; expected (in, out)")
        return [(W, None if params.get("b") is None else np.asarray(params["b"]))]
    if isinstance(params, (tuple, list)):
        return [d for i, p in enumerate(params) for d in dense_layers(p, f"{where}[{i}]")]
    raise InputTypeError(f"{where} is a {type(params).__name__}; expected fnn parameters "
                    "(dicts {'W', 'b'} in tuples) or a list of layer widths")


def _is_widths(params):
    """True for a list of layer widths such as [2, 4, 1] (ints), not parameters."""
    return (isinstance(params, (list, tuple)) and len(params) > 0
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in params))


def _all_layers(model):
    return [model] + [l for sub in model.layers for l in _all_layers(sub)]


def _flat_layers(model):
    return [l for sub in model.layers for l in _flat_layers(sub)] if model.layers else [model]


def _captions_after_dense(model, n_dense):
    """For each Dense layer, the names of the layers after it (activation, dropout, norm)."""
    after, i = [[] for _ in range(n_dense)], -1
    for layer in _flat_layers(model):
        if layer.kind == "dense":
            i += 1
        elif 0 <= i < n_dense:
            after[i].append(layer.name)
    if i + 1 != n_dense:
        raise InputError(f"model {model.name} has {i + 1} Dense layers but the params have {n_dense}")
    return after


def _shown(n, max_neurons):
    """(indices drawn, hidden count): all n, or the first and last few around an ellipsis."""
    if n <= max_neurons:
        return list(range(n)), 0
    k = max(1, (max_neurons - 2) // 2)
    return list(range(k)) + list(range(n - k, n)), n - 2 * k


def plot_architecture(params, *, model=None, ax=None, max_neurons=12, input_names=None,
                      output_names=None, title=None):
    """The network as columns of neurons (input, hidden, output), as seed 001 draws it.

    A connection's color is the sign of its weight (POSITIVE blue, NEGATIVE red)
    and its width and opacity grow with |w| / max |W| of its layer. A layer wider
    than `max_neurons` shows its first and last few neurons around "⋮ (N more)";
    only connections between drawn neurons are drawn. Biases are not drawn.

    Args:
      params: an MLP's parameters (Dense {'W', 'b'} dicts in tuples, () for
        activations), or a list of layer widths such as [2, 4, 1] (no weights).
      model: the fnn Layer, to caption each layer with its activation.
      max_neurons: the most neurons drawn per column.
      input_names, output_names: labels beside the input and output neurons.
    Returns:
      the Axes; neurons of layer l are the scatter with gid f"neurons-{l}",
      connections from layer l the LineCollection f"weights-{l}".
    """
    if model is not None:
        branched = [l.name for l in _all_layers(model) if l.kind == "parallel"]
        if branched:
            raise InputError(f"plot_architecture draws a chain of Dense layers; {branched[0]} has parallel "
                             "branches, which it does not draw")
    max_neurons = check_positive_int("max_neurons", max_neurons)
    check_number("max_neurons", max_neurons, 4)              # room for two neurons either side of ⋮
    if _is_widths(params):
        if len(params) < 2:
            raise InputError(f"layer widths must be two or more positive integers, got {list(params)!r}")
        sizes = [check_positive_int(f"layer width {i}", s) for i, s in enumerate(params)]
        weights = None
    else:
        dense = dense_layers(params)
        if not dense:
            raise InputError("plot_architecture: the params hold no Dense layer to draw")
        for l in range(1, len(dense)):
            if dense[l][0].shape[0] != dense[l - 1][0].shape[1]:
                raise InputError(f"Dense layer {l} takes {dense[l][0].shape[0]} inputs but layer "
                                 f"{l - 1} has {dense[l - 1][0].shape[1]} outputs")
        sizes = [dense[0][0].shape[0]] + [W.shape[1] for W, _ in dense]
        weights = [W for W, _ in dense]
    after = _captions_after_dense(model, len(sizes) - 1) if model is not None else None
    ax = new_axes(ax, (1.9 * len(sizes) + 1, 4.2))
    shown = [_shown(n, max_neurons) for n in sizes]
    slots = max(len(idx) + (hidden > 0) for idx, hidden in shown)
    ys = []
    for l, (idx, hidden) in enumerate(shown):
        m = len(idx) + (hidden > 0)
        pos = (m - 1) / 2 - np.arange(m)                       # top to bottom, centered on 0
        if hidden:
            k = len(idx) // 2
            ys.append(np.concatenate([pos[:k], pos[k + 1:]]))
            ax.text(l, pos[k], f"⋮ ({hidden} more)", ha="center", va="center", fontsize=7, zorder=4,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7", alpha=0.9),
                    gid=f"ellipsis-{l}")
        else:
            ys.append(pos)
    for l in range(len(sizes) - 1):
        (i_idx, _), (j_idx, _) = shown[l], shown[l + 1]
        segs = [((l, ys[l][a]), (l + 1, ys[l + 1][b]))
                for a in range(len(i_idx)) for b in range(len(j_idx))]
        if weights is None:
            colors, widths = ["0.6"] * len(segs), [0.6] * len(segs)
        else:
            W = weights[l]
            w = W[np.ix_(i_idx, j_idx)].reshape(-1)
            r = np.abs(w) / (np.max(np.abs(W)) or 1.0)         # |w| / max |W| of the layer
            colors = [(*to_rgb(POSITIVE if v > 0 else NEGATIVE), 0.15 + 0.85 * a * a) for v, a in zip(w, r)]
            widths = 0.2 + (2.8 if len(segs) <= 50 else 1.4) * r * r   # thinner when there are many
        ax.add_collection(LineCollection(segs, colors=colors, linewidths=widths, zorder=1,
                                         gid=f"weights-{l}"))
    top, lowest = (slots - 1) / 2 + 0.6, -(slots - 1) / 2 - 0.5
    for l, n in enumerate(sizes):
        kind = "input" if l == 0 else "output" if l == len(sizes) - 1 else "hidden"
        ax.scatter(np.full(len(ys[l]), l), ys[l], s=260 if slots <= 8 else 120,
                   color=LAYER_COLORS[kind], edgecolors="k", linewidths=0.8, zorder=3,
                   gid=f"neurons-{l}")
        caption = {"input": "input", "output": "output"}.get(kind, f"hidden {l}")
        extra = f" · {', '.join(after[l - 1])}" if after and l > 0 and after[l - 1] else ""
        ax.text(l, lowest, f"{caption}\n{n}{extra}", ha="center", va="top", fontsize=9)
    for names, l, side in ((input_names, 0, -1), (output_names, len(sizes) - 1, 1)):
        for name, y in zip(names or (), ys[l]):
            ax.text(l + side * 0.22, y, name, ha="right" if side < 0 else "left", va="center", fontsize=10)
    # Room under the neurons for two caption lines and the note (~46 points) at this Axes' height.
    height_pt = ax.get_position().height * ax.figure.get_figheight() * 72
    span = (top - lowest) / (1 - min(0.6, 46 / max(height_pt, 1)))
    ax.set_xlim(-0.6, len(sizes) - 0.4)
    ax.set_ylim(top - span, top)
    ax.axis("off")
    if weights is not None:
        ax.text(0.5, 0.0, "line color: sign of the weight (blue +, red −); width: |w|",
                transform=ax.transAxes, ha="center", va="bottom", fontsize=7, color="0.35")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


