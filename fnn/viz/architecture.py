"""The network as seed 001 draws it: columns of neurons joined by weights coloured by sign.

    plot_architecture(params, model=model)   neurons in columns, weights by sign and size
    plot_backward(params, grads, model=model)   the same columns, coloured by the gradient:
                                             backpropagation's blame on each weight and neuron
    draw_architecture(params, ax=ax)         the columns as an ArchitectureDrawing whose
                                             lines and neurons can be restyled (a report's frames)
    dense_layers(params)                     the (W, b) of every Dense layer in a params pytree
"""
from typing import Mapping

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm, to_rgb
from matplotlib.cm import ScalarMappable

from fnn.errors import InputError, InputTypeError
from fnn.validate import check_number, check_positive_int
from fnn.viz.figures import LAYER_COLORS, NEGATIVE, POSITIVE, new_axes
from fnn.viz.scales import log_ticks, tick_label

__all__ = ["plot_architecture", "plot_backward", "draw_architecture", "ArchitectureDrawing",
           "dense_layers", "blame_norm", "blame_colorbar", "BLAME_CMAP"]

NORM_KEYS = frozenset({"scale", "offset"})              # the params of fnn's normalization layers
BLAME_CMAP = "YlOrRd"          # |gradient|: pale for little blame, dark red for much
_WEIGHT_QUANTILE = 0.95        # a layer's widest line is this quantile of |W|: outliers do not fade the rest


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


def _sizes_and_weights(params):
    """(layer widths, [W] or None) from Dense params or a list of widths, checked."""
    if _is_widths(params):
        if len(params) < 2:
            raise InputError(f"layer widths must be two or more positive integers, got {list(params)!r}")
        return [check_positive_int(f"layer width {i}", s) for i, s in enumerate(params)], None
    dense = dense_layers(params)
    if not dense:
        raise InputError("plot_architecture: the params hold no Dense layer to draw")
    for l in range(1, len(dense)):
        if dense[l][0].shape[0] != dense[l - 1][0].shape[1]:
            raise InputError(f"Dense layer {l} takes {dense[l][0].shape[0]} inputs but layer "
                             f"{l - 1} has {dense[l - 1][0].shape[1]} outputs")
    return [dense[0][0].shape[0]] + [W.shape[1] for W, _ in dense], [W for W, _ in dense]


class ArchitectureDrawing:
    """The artists of a drawn network, to restyle for other weights or gradients.

    Attributes:
      ax: the Axes; sizes: the layer widths; shown: per layer, the indices of the drawn neurons.
      lines: per Dense layer, the LineCollection of its drawn connections (gid "weights-l"),
        segments in (input, output) order; neurons: per layer, the scatter (gid "neurons-l").
      artists: everything drawn over the connections, in drawing order: lines, neurons, the
        "⋮ (N more)" boxes (what a report redraws for each frame).
    """

    def __init__(self, ax, sizes, shown, lines, neurons, ellipses):
        self.ax, self.sizes, self.shown = ax, sizes, shown
        self.lines, self.neurons, self.ellipses = lines, neurons, ellipses

    @property
    def artists(self):
        return list(self.lines) + list(self.neurons) + list(self.ellipses)

    def _drawn(self, l, matrix):
        return np.asarray(matrix)[np.ix_(self.shown[l], self.shown[l + 1])].reshape(-1)

    def show_weights(self, weights):
        """Colour each connection by its weight's sign (POSITIVE +, NEGATIVE −); width and
        opacity grow with |w| / s, s the 95th percentile of |W| over the layer (capped at 1)."""
        for l, (lines, W) in enumerate(zip(self.lines, weights)):
            w = self._drawn(l, W)
            scale = float(np.quantile(np.abs(W), _WEIGHT_QUANTILE)) or float(np.max(np.abs(W))) or 1.0
            r = np.minimum(np.abs(w) / scale, 1.0)
            lines.set_color([(*to_rgb(POSITIVE if v > 0 else NEGATIVE), 0.15 + 0.85 * a * a)
                             for v, a in zip(w, r)])
            lines.set_linewidths(0.2 + (2.8 if len(w) <= 50 else 1.4) * r * r)   # thinner when many

    def show_gradients(self, dW, db, norm):
        """Colour connections by |∂L/∂w| and neurons by |∂L/∂b| (the error signal δ of the
        neuron, summed over the batch) on one log scale `norm` (a LogNorm); input neurons,
        and the neurons of a layer without bias, stay grey."""
        cmap = ScalarMappable(norm=norm, cmap=BLAME_CMAP)
        for l, (lines, g) in enumerate(zip(self.lines, dW)):
            a = np.clip(np.abs(self._drawn(l, g)), norm.vmin, norm.vmax)
            r = (np.log(a) - np.log(norm.vmin)) / np.log(norm.vmax / norm.vmin)       # 0..1
            lines.set_color(cmap.to_rgba(a))
            lines.set_linewidths(0.3 + (2.6 if len(a) <= 50 else 1.3) * r)
        self.neurons[0].set_facecolor("0.85")
        for l, b in enumerate(db, start=1):
            if b is None:
                self.neurons[l].set_facecolor("0.85")
            else:
                shown = np.abs(np.asarray(b).reshape(-1)[self.shown[l]])
                self.neurons[l].set_facecolor(cmap.to_rgba(np.clip(shown, norm.vmin, norm.vmax)))


def draw_architecture(params, *, model=None, ax=None, max_neurons=12, input_names=None,
                      output_names=None, title=None, note=None):
    """The columns of neurons and their connections (grey), as an ArchitectureDrawing.

    Args:
      params, model, ax, max_neurons, input_names, output_names, title: as for plot_architecture.
      note: a line of small text under the network (what the colours mean).
    Returns:
      the ArchitectureDrawing; restyle it with show_weights or show_gradients.
    """
    if model is not None:
        branched = [l.name for l in _all_layers(model) if l.kind == "parallel"]
        if branched:
            raise InputError(f"plot_architecture draws a chain of Dense layers; {branched[0]} has parallel "
                             "branches, which it does not draw")
    max_neurons = check_positive_int("max_neurons", max_neurons)
    check_number("max_neurons", max_neurons, 4)              # room for two neurons either side of ⋮
    sizes, _ = _sizes_and_weights(params)
    after = _captions_after_dense(model, len(sizes) - 1) if model is not None else None
    ax = new_axes(ax, (1.9 * len(sizes) + 1, 4.2))
    shown = [_shown(n, max_neurons) for n in sizes]
    slots = max(len(idx) + (hidden > 0) for idx, hidden in shown)
    ys, ellipses = [], []
    for l, (idx, hidden) in enumerate(shown):
        m = len(idx) + (hidden > 0)
        pos = (m - 1) / 2 - np.arange(m)                       # top to bottom, centered on 0
        if hidden:
            k = len(idx) // 2
            ys.append(np.concatenate([pos[:k], pos[k + 1:]]))
            ellipses.append(ax.text(l, pos[k], f"⋮ ({hidden} more)", ha="center", va="center", fontsize=7,
                                    zorder=4, bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7",
                                                        alpha=0.9), gid=f"ellipsis-{l}"))
        else:
            ys.append(pos)
    lines = []
    for l in range(len(sizes) - 1):
        (i_idx, _), (j_idx, _) = shown[l], shown[l + 1]
        segs = [((l, ys[l][a]), (l + 1, ys[l + 1][b])) for a in range(len(i_idx)) for b in range(len(j_idx))]
        lines.append(ax.add_collection(LineCollection(segs, colors="0.6", linewidths=0.6, zorder=1,
                                                      gid=f"weights-{l}")))
    top, lowest = (slots - 1) / 2 + 0.6, -(slots - 1) / 2 - 0.5
    neurons = []
    for l, n in enumerate(sizes):
        kind = "input" if l == 0 else "output" if l == len(sizes) - 1 else "hidden"
        neurons.append(ax.scatter(np.full(len(ys[l]), l), ys[l], s=260 if slots <= 8 else 120,
                                  color=LAYER_COLORS[kind], edgecolors="k", linewidths=0.8, zorder=3,
                                  gid=f"neurons-{l}"))
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
    if note:
        ax.text(0.5, 0.0, note, transform=ax.transAxes, ha="center", va="bottom", fontsize=7, color="0.35")
    if title:
        ax.set_title(title, fontsize=10)
    return ArchitectureDrawing(ax, sizes, [idx for idx, _ in shown], lines, neurons, ellipses)


WEIGHTS_NOTE = "line color: sign of the weight (blue +, red −); width: |w|"


def plot_architecture(params, *, model=None, ax=None, max_neurons=12, input_names=None,
                      output_names=None, title=None):
    """The network as columns of neurons (input, hidden, output), as seed 001 draws it.

    A connection's color is the sign of its weight (POSITIVE blue, NEGATIVE red)
    and its width and opacity grow with |w| against the layer's 95th percentile of
    |W| (so one large weight does not fade all the others). A layer wider than
    `max_neurons` shows its first and last few neurons around "⋮ (N more)"; only
    connections between drawn neurons are drawn. Biases are not drawn.

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
    drawing = draw_architecture(params, model=model, ax=ax, max_neurons=max_neurons, input_names=input_names,
                                output_names=output_names, title=title,
                                note=None if _is_widths(params) else WEIGHTS_NOTE)      # model checked first
    _, weights = _sizes_and_weights(params)
    if weights is not None:
        drawing.show_weights(weights)
    return drawing.ax


def blame_norm(low, high):
    """The LogNorm of plot_backward's colours: |gradient| from `low` to `high`."""
    return LogNorm(vmin=low, vmax=high, clip=True)


def blame_colorbar(cax, norm):
    """A horizontal colour scale of `norm` in the Axes `cax`, ticks labelled as the report's axes."""
    ticks = log_ticks(norm.vmin, norm.vmax)
    bar = cax.figure.colorbar(ScalarMappable(norm=norm, cmap=BLAME_CMAP), cax=cax, orientation="horizontal")
    bar.set_ticks(ticks, labels=[tick_label(t) for t in ticks])
    bar.minorticks_off()
    cax.tick_params(labelsize=7, length=2, pad=1)
    return bar


def plot_backward(params, grads, *, model=None, ax=None, max_neurons=12, norm=None, title=None,
                  colorbar=True):
    """Backpropagation on the architecture: how much blame each weight and neuron receives.

    The gradient dL/dW_ij = Σₙ aₙᵢ δₙⱼ colours the connection i → j, and dL/db_j = Σₙ δₙⱼ
    (the error signal δ = dL/dz that reached neuron j, summed over the batch) colours the
    neuron, on one log scale: pale where the gradient has vanished, dark red where it is
    large. Input neurons have no bias and stay grey.

    Args:
      params: the MLP's parameters (as for plot_architecture); grads: dL/dparams, the same tree.
      model, ax, max_neurons, title: as for plot_architecture.
      norm: a LogNorm of |gradient| (default: the gradients' largest entry down 4 decades).
      colorbar: draw the colour scale under the network.
    Returns:
      the ArchitectureDrawing.
    """
    _, weights = _sizes_and_weights(params)
    dense_grads = dense_layers(grads, "grads")
    if [g.shape for g, _ in dense_grads] != [W.shape for W in weights]:
        raise InputError(f"plot_backward: grads have Dense shapes {[g.shape for g, _ in dense_grads]}, "
                         f"params {[W.shape for W in weights]}; expected the same tree")
    if norm is None:
        top = max(float(np.max(np.abs(g))) for g, _ in dense_grads) or 1.0
        norm = blame_norm(top * 1e-4, top)
    drawing = draw_architecture(params, model=model, ax=ax, max_neurons=max_neurons, title=title)
    drawing.show_gradients([g for g, _ in dense_grads], [b for _, b in dense_grads], norm)
    if colorbar:
        bar = drawing.ax.inset_axes([0.25, 0.02, 0.5, 0.03])
        blame_colorbar(bar, norm)
        bar.set_title("|∂L/∂w| on lines, |∂L/∂b| = |Σ δ| on neurons", fontsize=7, color="0.35", pad=2)
    return drawing
