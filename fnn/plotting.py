"""Pictures of networks, gradients and training, drawn with matplotlib and no display.

Figures are made with `figure()`, a `matplotlib.figure.Figure` on the Agg
canvas: pyplot is never imported, so nothing here needs a display or a GUI
backend, and no figure is left open in a global registry.

A function that draws into one Axes takes `ax=None` (a new figure when None)
and returns that Axes; one that lays out several Axes returns the Figure.

    plot_activations(names)                 the activation menu: f and the hand-written f′
    plot_history(history)                   train/validation loss and accuracy per epoch or step
    plot_decision_boundary(model, params, x, y)   a 2-D classifier's regions over its points
    plot_fit_1d(model, params, x, y)        a 1-D regression: data and the model's curve
    plot_loss_1d(loss_fn, path)             L(w) with a gradient-descent path (seed 002's parabola)
    plot_loss_surface(loss_fn, path)        L(w, b) in 3-D with the path
    plot_architecture(params)               neurons in columns, weights by sign and size
    plot_computational_graph(graph)         fnn.graph.backprop's nodes: values and gradients
    plot_gradient_agreement(check)          manual vs autodiff (and finite-difference) errors, log scale
    plot_confusion_matrix(labels, predicted)
    plot_sample_predictions(x, labels, probabilities)
    seed_figures(key) / save_seed_figures(directory, key)   the seeds' pictures
"""
import math
import os
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import LinearSegmentedColormap, ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.path import Path
from matplotlib.ticker import FuncFormatter, LogFormatter

from fnn.activations import get_activation
from fnn.gradcheck import TOL_AUTODIFF, TOL_FD, GradCheckResult, LayerCheckResult
from fnn.train import predict

__all__ = [
    "figure", "save_figure", "ACTIVATION_MENU", "POSITIVE", "NEGATIVE", "CLASS_COLORS",
    "plot_activations", "plot_history", "plot_decision_boundary", "plot_fit_1d",
    "region_of", "plot_loss_1d", "plot_loss_surface", "plot_architecture",
    "plot_computational_graph", "plot_gradient_agreement", "plot_confusion_matrix", "confusion_counts",
    "plot_sample_predictions", "descent_path", "seed_figures", "save_seed_figures",
    "SEED_FIGURES",
]

# The activations seeds 001 and 004 draw, in their order.
ACTIVATION_MENU = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "swish")

POSITIVE = "#1f77b4"    # a weight w > 0
NEGATIVE = "#d62728"    # a weight w < 0
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_LAYER_COLORS = {"input": "#f6d365", "hidden": "#8ec5e8", "output": "#9fd8a0"}
_GRAD_COLOR = "#c0392b"

_FORMULAS = {
    "identity": "f(z) = z", "linear": "f(z) = z",
    "sigmoid": "σ(z) = 1 / (1 + e⁻ᶻ)", "tanh": "tanh(z)", "relu": "max(0, z)",
    "leaky_relu": "max(0.1·z, z)", "gelu": "z·Φ(z)", "gelu_tanh": "z·Φ(z), tanh approx.",
    "swish": "z·σ(z)", "silu": "z·σ(z)", "softplus": "log(1 + eᶻ)",
}


def figure(figsize=(6.4, 4.8), dpi=100, **kwargs):
    """A new matplotlib Figure on the Agg canvas (no pyplot, no display needed)."""
    fig = Figure(figsize=figsize, dpi=dpi, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi=None):
    """Write `fig` to `path` (format from the suffix, e.g. .png); returns the path."""
    fig.savefig(os.fspath(path), dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def _new_ax(ax, figsize=(6.4, 4.8), **kwargs):
    return figure(figsize).add_subplot(**kwargs) if ax is None else ax


def _lighten(color, amount):
    """`color` mixed with white: amount 0 keeps it, 1 gives white."""
    return tuple(c + (1 - c) * amount for c in to_rgb(color))


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------

def plot_activations(names=ACTIVATION_MENU, *, z_range=(-4.0, 4.0), points=401, ncols=3):
    """The activation menu: each f(z) (solid) beside its hand-written derivative f′(z) (dashed).

    f′ is the ActivationFn's own `derivative(z, y)`, the one backprop uses.

    Args:
      names: activation names (or fnn.ActivationFn); softmax has no elementwise derivative.
      z_range, points: the z grid.
      ncols: panels per row.
    Returns:
      the Figure, one Axes per activation, each with two lines (f, f′).
    """
    if isinstance(names, str):
        names = (names,)
    acts = [get_activation(n) for n in names]
    if not acts:
        raise ValueError("plot_activations needs at least one activation name")
    for act in acts:
        if act.derivative is None:
            raise ValueError(f"activation {act.name!r} has no elementwise derivative to draw "
                             "(softmax's Jacobian is not diagonal); pick elementwise activations")
    ncols = min(ncols, len(acts))
    nrows = math.ceil(len(acts) / ncols)
    fig = figure((3.2 * ncols, 2.6 * nrows))
    z = jnp.linspace(z_range[0], z_range[1], points, dtype=jnp.float32)
    curves = jax.jit(lambda z: [(a.fn(z), a.derivative(z, a.fn(z))) for a in acts])(z)  # one compile
    for i, (act, (y, dy)) in enumerate(zip(acts, curves)):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
        ax.plot(np.asarray(z), np.asarray(y), color=POSITIVE, lw=2, label="f(z)")
        ax.plot(np.asarray(z), np.asarray(dy), color=NEGATIVE, lw=1.5, ls="--", label="f′(z)")
        ax.set_title(f"{act.name}: {_FORMULAS.get(act.name, act.name)}", fontsize=10)
        ax.set_xlabel("z")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------

_HISTORY_X = ("epoch", "step")
_METRICS = ("loss", "accuracy")


def _series(history, name, n):
    """(x indices, values) of history[name] with the None entries dropped."""
    values = list(history.get(name) or [])
    if values and len(values) != n:
        raise ValueError(f"history[{name!r}] has {len(values)} entries, expected {n} (one per epoch)")
    keep = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    return keep, [values[i] for i in keep]


def plot_history(history, *, x="epoch", metrics=_METRICS, axes=None, mark=None, log_loss=True):
    """Training curves: train and validation loss (and accuracy) against epoch or step.

    Args:
      history: fit()'s history: lists epoch, step, train_loss, train_accuracy,
        val_loss, val_accuracy (None entries are skipped).
      x: "epoch" or "step".
      metrics: which panels, from ("loss", "accuracy"); accuracy is left out if
        the history has none (regression).
      axes: Axes to draw into, one per metric (a new figure when None).
      mark: an x value to mark with a vertical line and dots (the report's current frame).
      log_loss: log-scale the loss axis when every loss is positive.
    Returns:
      the Figure.
    """
    if x not in _HISTORY_X:
        raise ValueError(f"plot_history: x must be one of {', '.join(_HISTORY_X)}, got {x!r}")
    unknown = [m for m in metrics if m not in _METRICS]
    if unknown or not metrics:
        raise ValueError(f"plot_history: metrics must be drawn from {_METRICS}, got {metrics!r}")
    if not isinstance(history, Mapping) or not history.get(x) or "train_loss" not in history:
        got = sorted(history) if isinstance(history, Mapping) else type(history).__name__
        raise ValueError(f"plot_history: history needs non-empty {x!r} and 'train_loss' lists "
                         f"(fit()'s history), got {got}")
    xs = list(history[x])
    metrics = [m for m in metrics
               if m == "loss" or any(v is not None for k in ("train_accuracy", "val_accuracy")
                                     for v in history.get(k) or [])]
    if axes is None:
        fig = figure((5.2 * len(metrics), 3.6))
        axes = [fig.add_subplot(1, len(metrics), i + 1) for i in range(len(metrics))]
    else:
        axes = list(axes)[:len(metrics)]
        fig = axes[0].figure
    for ax, metric in zip(axes, metrics):
        drawn = []
        for split, color, label in (("train", POSITIVE, "train"), ("val", "#ff7f0e", "validation")):
            keep, values = _series(history, f"{split}_{metric}", len(xs))
            if values:
                ax.plot([xs[i] for i in keep], values, color=color, lw=1.6, label=label)
                drawn.append((keep, values, color))
        if mark is not None:
            ax.axvline(mark, color="0.3", lw=1, ls=":")
            for keep, values, color in drawn:
                at = [j for j, i in enumerate(keep) if xs[i] <= mark]
                if at:
                    ax.plot([xs[keep[at[-1]]]], [values[at[-1]]], "o", color=color, ms=5)
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        if metric == "loss" and log_loss and drawn and all(v > 0 for _, vs, _ in drawn for v in vs):
            ax.set_yscale("log")                       # labels as 2e-01, not 2×10⁻¹ in mathtext
            ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
            ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------
# Decision boundaries and 1-D fits
# ---------------------------------------------------------------------------

def _labels(y):
    """Integer class labels from int labels (n,) or 0/1 binary targets (n, 1)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (n,) or (n, 1), got {y.shape}")
    return np.rint(y).astype(np.int64)


def _grid(x, resolution, margin, limits):
    """(xx, yy) meshgrid over the points' box widened by `margin` of its span (or `limits`)."""
    if limits is None:
        lo, hi = x.min(axis=0), x.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        limits = ((lo[0] - margin * span[0], hi[0] + margin * span[0]),
                  (lo[1] - margin * span[1], hi[1] + margin * span[1]))
    (x0, x1), (y0, y1) = limits
    return np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))


def _class_scores(out):
    """(predicted class, p(class 1) or None) from logits: (n, 1)/(n,) binary or (n, K) softmax."""
    out = np.asarray(out, np.float64)
    if out.ndim == 1 or out.shape[1] == 1:
        z = out.reshape(-1)
        p = 0.5 * (1 + np.tanh(0.5 * z))                    # σ(z), overflow-free
        return (z > 0).astype(np.int64), p
    if out.shape[1] == 2:
        z = out[:, 1] - out[:, 0]                          # softmax p1 = σ(z1 − z0)
        return (z > 0).astype(np.int64), 0.5 * (1 + np.tanh(0.5 * z))
    return np.argmax(out, axis=1), None


def _class_cmap(k):
    return ListedColormap([_lighten(CLASS_COLORS[i % 10], 0.6) for i in range(k)])


_TWO_CLASS = LinearSegmentedColormap.from_list(
    "fnn_two_class", [_lighten(CLASS_COLORS[0], 0.45), (1, 1, 1), _lighten(CLASS_COLORS[1], 0.45)])


def plot_decision_boundary(model, params, x, y, *, ax=None, resolution=150, margin=0.25,
                           limits=None, title=None, legend=True):
    """The regions a 2-D classifier assigns to each class, with its boundary and training points.

    Two classes (one logit, or two softmax logits): p(class 1) shaded in ten
    bands (artist gid "decision-regions") and the boundary p = ½ as a black
    line ("decision-boundary"). More classes: one flat color per predicted
    class and the lines between them.

    Args:
      model, params: an fnn Layer taking (n, 2) inputs and its parameters.
      x: points (n, 2); y: labels (n,) or 0/1 targets (n, 1).
      resolution: grid points per axis.
      margin: how far the grid extends past the points, as a fraction of their span.
      limits: ((x_min, x_max), (y_min, y_max)) instead of the margin rule.
    Returns:
      the Axes.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary needs 2-D points of shape (n, 2), got {x.shape}")
    labels = _labels(y)
    if len(labels) != len(x):
        raise ValueError(f"plot_decision_boundary: {len(x)} points but {len(labels)} labels")
    ax = _new_ax(ax, (5, 4.4))
    xx, yy = _grid(x, resolution, margin, limits)
    flat = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)          # (r², 2)
    out = np.asarray(predict(model, params, flat))
    cls, p1 = _class_scores(out)
    n_classes = max(int(labels.max(initial=0)) + 1, 2 if p1 is not None else out.shape[1])
    if p1 is not None:
        p1 = p1.reshape(xx.shape)
        regions = ax.contourf(xx, yy, p1, levels=np.linspace(0, 1, 11), cmap=_TWO_CLASS, vmin=0, vmax=1)
        if p1.min() < 0.5 < p1.max():
            boundary = ax.contour(xx, yy, p1, levels=[0.5], colors="k", linewidths=1.8)
            boundary.set_gid("decision-boundary")
    else:
        cls = cls.reshape(xx.shape)
        regions = ax.contourf(xx, yy, cls, levels=np.arange(n_classes + 1) - 0.5,
                              cmap=_class_cmap(n_classes))
        if cls.min() != cls.max():
            boundary = ax.contour(xx, yy, cls, levels=np.arange(n_classes - 1) + 0.5,
                                  colors="k", linewidths=1.2)
            boundary.set_gid("decision-boundary")
    regions.set_gid("decision-regions")
    for k in range(n_classes):
        pts = x[labels == k]
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], s=60 if len(x) <= 20 else 14,
                       color=CLASS_COLORS[k % 10], edgecolors="k", linewidths=0.6,
                       label=f"class {k}", zorder=3, gid=f"points-{k}")
    ax.set_xlim(xx[0, 0], xx[0, -1])
    ax.set_ylim(yy[0, 0], yy[-1, 0])
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    if title:
        ax.set_title(title, fontsize=10)
    if legend and n_classes <= 10:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    return ax


def region_of(ax, point):
    """Which band of the Axes' decision-regions contour holds `point`: (low, high) level, or None.

    Bands are compound paths with holes; a point is inside a band when it lies
    inside an odd number of the band's polygons (even-odd rule).
    """
    regions = [c for c in ax.collections if c.get_gid() == "decision-regions"]
    if not regions:
        raise ValueError("the Axes has no decision regions; draw them with plot_decision_boundary")
    cs = regions[0]
    for i, path in enumerate(cs.get_paths()):
        inside = sum(Path(poly).contains_point(point) for poly in path.to_polygons(closed_only=True))
        if inside % 2:
            return float(cs.levels[i]), float(cs.levels[i + 1])
    return None


def plot_fit_1d(model, params, x, y, *, ax=None, points=200, title=None):
    """A regression with one input: the data (dots) and the model's curve over their range."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(x), -1)
    if x.shape[1] != 1 or y.shape[1] != 1:
        raise ValueError(f"plot_fit_1d needs one input and one output, got x {x.shape}, y {y.shape}")
    ax = _new_ax(ax, (5, 4))
    lo, hi = x.min(), x.max()
    grid = np.linspace(lo, hi, points).reshape(-1, 1).astype(np.float32)
    ax.scatter(x[:, 0], y[:, 0], s=10, color="0.5", label="data", gid="data")
    ax.plot(grid[:, 0], np.asarray(predict(model, params, grid)).reshape(-1), color=POSITIVE,
            lw=2, label="model", gid="model")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# ---------------------------------------------------------------------------
# Loss landscapes with gradient-descent paths
# ---------------------------------------------------------------------------

def descent_path(value_and_grad, start, lr, steps):
    """Iterates of w ← w − α·∂L/∂w: (ws (steps + 1, ...), losses (steps + 1,)).

    value_and_grad(w) -> (L, ∂L/∂w) for an array w; plain NumPy in and out.
    """
    w = np.asarray(start, np.float64)
    ws, losses = [w], []
    for _ in range(steps):
        value, grad = value_and_grad(w)
        losses.append(np.asarray(value, np.float64).item())
        w = w - lr * np.asarray(grad, np.float64)
        ws.append(w)
    losses.append(np.asarray(value_and_grad(w)[0], np.float64).item())
    return np.stack(ws), np.asarray(losses)


def plot_loss_1d(loss_fn, path, *, ax=None, w_range=None, points=300, color=NEGATIVE, label=None,
                 xlabel="weight w", ylabel="loss L(w)", curve=True):
    """L(w) against one weight with a gradient-descent path of dots and arrows on it.

    Args:
      loss_fn: L as a vectorized function of w (NumPy array in, array out).
      path: the iterates w₀, w₁, ... of gradient descent.
      w_range: (low, high) of the curve; default the path's range, widened.
      color, label: of the path; label goes into the legend.
      curve: draw the curve (False to add a second path to an Axes that has it).
    Returns:
      the Axes: the curve is the line with gid "loss-curve", the dots "descent-path".
    """
    path = np.asarray(path, np.float64).reshape(-1)
    if path.size == 0:
        raise ValueError("plot_loss_1d needs a non-empty path of weights")
    ax = _new_ax(ax, (6, 4))
    if curve:
        lo, hi = w_range if w_range is not None else (path.min(), path.max())
        pad = 0.25 * (hi - lo or 1.0)
        w = np.linspace(lo - (0 if w_range else pad), hi + (0 if w_range else pad), points)
        ax.plot(w, np.asarray(loss_fn(w), np.float64), color="0.25", lw=2, label="L(w)", gid="loss-curve")
    L = np.asarray(loss_fn(path), np.float64)
    ax.plot(path, L, "o", color=color, ms=6, zorder=3, label=label, gid="descent-path")
    for k in range(len(path) - 1):
        ax.annotate("", xy=(path[k + 1], L[k + 1]), xytext=(path[k], L[k]),
                    arrowprops=dict(arrowstyle="->", color=color, lw=1.2, shrinkA=4, shrinkB=4))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return ax


def plot_loss_surface(loss_fn, path, *, ax=None, w_range=None, b_range=None, points=60,
                      xlabel="weight w", ylabel="bias b", zlabel="loss L"):
    """The loss over a weight and a bias as a 3-D surface, with the gradient-descent path on it.

    Args:
      loss_fn: L(w, b), vectorized over same-shaped arrays.
      path: (steps + 1, 2) iterates (w, b).
      w_range, b_range: the surface's extent; default the path's box, widened.
      ax: a 3-D Axes (add_subplot(projection="3d")), or None.
    Returns:
      the 3-D Axes; the path is the line with gid "descent-path".
    """
    path = np.asarray(path, np.float64)
    if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0:
        raise ValueError(f"plot_loss_surface needs a path of shape (steps, 2) of (w, b), got {path.shape}")

    def extent(col, given):
        if given is not None:
            return given
        lo, hi = path[:, col].min(), path[:, col].max()
        pad = 0.3 * (hi - lo or 1.0)
        return lo - pad, hi + pad

    if ax is None:
        ax = figure((6.4, 5)).add_subplot(projection="3d")
    if getattr(ax, "name", "") != "3d":
        raise ValueError("plot_loss_surface draws on a 3-D Axes: fig.add_subplot(projection='3d')")
    ax.computed_zorder = False          # the path is drawn over the surface, not sorted into it
    W, B = np.meshgrid(np.linspace(*extent(0, w_range), points), np.linspace(*extent(1, b_range), points))
    L = np.asarray(loss_fn(W, B), np.float64)
    ax.plot_surface(W, B, L, cmap="viridis", alpha=0.6, linewidth=0, antialiased=True,
                    rstride=1, cstride=1, gid="loss-surface", zorder=1)
    Lp = np.asarray(loss_fn(path[:, 0], path[:, 1]), np.float64)
    floor = L.min() - 0.25 * (L.max() - L.min())             # contours and the path's shadow below
    ax.contour(W, B, L, levels=12, zdir="z", offset=floor, cmap="viridis", linewidths=0.8, zorder=0)
    ax.plot(path[:, 0], path[:, 1], np.full(len(path), floor), ".-", color=NEGATIVE, ms=2, lw=1,
            alpha=0.8, gid="descent-path-floor", zorder=0.5)
    ax.set_zlim(floor, L.max())
    ax.plot(path[:, 0], path[:, 1], Lp, "o-", color=NEGATIVE, ms=3.5, lw=1.6, zorder=10,
            gid="descent-path", label="gradient descent")
    ax.scatter([path[-1, 0]], [path[-1, 1]], [Lp[-1]], color="k", s=30, depthshade=False, zorder=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_zlabel(zlabel)
    return ax


# ---------------------------------------------------------------------------
# Network architecture
# ---------------------------------------------------------------------------

def _dense_layers(params, where="params"):
    """[(W (in, out), b)] of every Dense layer in a params pytree, in order."""
    if isinstance(params, Mapping):
        if "W" not in params:
            raise TypeError(f"{where} is a dict without 'W' ({sorted(params)}); expected fnn Dense "
                            "parameters {'W', 'b'} or a tuple of layer parameters")
        W = np.asarray(params["W"])
        if W.ndim != 2:
            raise ValueError(f"{where}['W'] has shape {W.shape}; expected (in, out)")
        return [(W, None if params.get("b") is None else np.asarray(params["b"]))]
    if isinstance(params, (tuple, list)):
        return [d for i, p in enumerate(params) for d in _dense_layers(p, f"{where}[{i}]")]
    raise TypeError(f"{where} is a {type(params).__name__}; expected fnn parameters "
                    "(dicts {'W', 'b'} in tuples) or a list of layer widths")


def _flat_layers(model):
    return [l for sub in model.layers for l in _flat_layers(sub)] if model.layers else [model]


def _captions_after_dense(model, n_dense):
    """For each Dense layer, the names of the layers after it (activation, dropout)."""
    after, i = [[] for _ in range(n_dense)], -1
    for layer in _flat_layers(model):
        if layer.kind == "dense":
            i += 1
        elif 0 <= i < n_dense:
            after[i].append(layer.name)
    if i + 1 != n_dense:
        raise ValueError(f"model {model.name} has {i + 1} Dense layers but the params have {n_dense}")
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
    if not (isinstance(max_neurons, int) and max_neurons >= 4):
        raise ValueError(f"max_neurons must be an int >= 4, got {max_neurons!r}")
    if isinstance(params, (list, tuple)) and params and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in params):
        sizes, weights = [int(s) for s in params], None
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"layer widths must be two or more positive ints, got {list(params)!r}")
    else:
        dense = _dense_layers(params)
        if not dense:
            raise ValueError("plot_architecture: the params hold no Dense layer to draw")
        for l in range(1, len(dense)):
            if dense[l][0].shape[0] != dense[l - 1][0].shape[1]:
                raise ValueError(f"Dense layer {l} takes {dense[l][0].shape[0]} inputs but layer "
                                 f"{l - 1} has {dense[l - 1][0].shape[1]} outputs")
        sizes = [dense[0][0].shape[0]] + [W.shape[1] for W, _ in dense]
        weights = [W for W, _ in dense]
    after = _captions_after_dense(model, len(sizes) - 1) if model is not None else None
    ax = _new_ax(ax, (1.9 * len(sizes) + 1, 4.2))
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
                   color=_LAYER_COLORS[kind], edgecolors="k", linewidths=0.8, zorder=3,
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


# ---------------------------------------------------------------------------
# Computational graph
# ---------------------------------------------------------------------------

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
    """A computational graph (fnn.graph.backprop's result): forward values and backward gradients.

    Each node is a box "d = a + b / = 5" (its operation and forward value) with
    its gradient ∂y/∂d in red beneath; arrows run from each operation's inputs
    to it. Columns are the longest path from the inputs, so data flows left to right.

    Args:
      graph: a GraphResult, e.g. fnn.graph.backprop(lambda a, b, c: (a + b) * (b - c), 2., 3., 1.).
    Returns:
      the Axes; node boxes are texts with gid f"node-{name}", gradients f"grad-{name}".
    """
    nodes = getattr(graph, "nodes", None)
    if not nodes or not hasattr(graph, "output"):
        raise TypeError(f"plot_computational_graph needs fnn.graph.backprop's GraphResult, "
                        f"got {type(graph).__name__}")
    pos = _graph_layout(nodes)
    cols = max(c for c, _ in pos.values()) + 1
    height = max(sum(1 for c, _ in pos.values() if c == col) for col in range(cols))
    ax = _new_ax(ax, (2.3 * cols + 0.6, 1.5 * height + 1.2))
    out = graph.output
    boxes = {}
    for n in nodes:
        x, y = pos[n.name]
        y *= 1.5
        if n.op == "input":
            text, fc = f"{n.name} = {_fmt(n.value)}", _LAYER_COLORS["input"]
        elif n.op == "const":
            text, fc = _fmt(n.value), "0.92"
        else:
            fc = _LAYER_COLORS["output"] if n.name == out else _LAYER_COLORS["hidden"]
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


# ---------------------------------------------------------------------------
# Gradient agreement
# ---------------------------------------------------------------------------

_ERROR_FLOOR = 1e-18        # where an exact 0 is drawn on the log axis


def _agreement_table(check):
    """(bar labels, {series name: [relative errors]}) from any supported check result."""
    if isinstance(check, GradCheckResult):
        labels = [l.path for l in check.leaves]
        return labels, {"manual vs jax.grad": [l.manual_vs_autodiff for l in check.leaves],
                        "manual vs finite differences": [l.manual_vs_fd for l in check.leaves],
                        "jax.grad vs finite differences": [l.autodiff_vs_fd for l in check.leaves]}
    if isinstance(check, LayerCheckResult):
        labels = [p for p, _ in check.leaves] + ["dx"]
        return labels, {"manual vs jax.vjp": [e for _, e in check.leaves] + [check.dx]}
    if isinstance(check, Mapping) and check:
        values = list(check.values())
        if all(isinstance(v, LayerCheckResult) for v in values):
            return list(check), {"manual vs jax.vjp (max over dW, db, dx)": [v.max_error for v in values]}
        if all(isinstance(v, GradCheckResult) for v in values):
            return list(check), {"manual vs jax.grad": [v.max_manual_vs_autodiff for v in values],
                                 "manual vs finite differences": [v.max_manual_vs_fd for v in values]}
        if all(isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) for v in values):
            return list(check), {"manual vs jax.grad": [float(v) for v in values]}
    raise TypeError("plot_gradient_agreement takes a GradCheckResult, a LayerCheckResult, or a "
                    "non-empty dict of label -> relative error (float, LayerCheckResult or "
                    f"GradCheckResult); got {type(check).__name__}")


def plot_gradient_agreement(check, *, ax=None, title=None, tolerances=True):
    """Hand-written vs automatic gradients: relative error per layer or parameter, log scale.

    Each bar is rel(a, b) = ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞); an exact 0 is drawn at
    1e-18 and labelled "0". Dashed lines mark fnn.gradcheck's tolerances
    (TOL_AUTODIFF for manual vs jax.grad, TOL_FD against finite differences).

    Args:
      check: fnn.check_gradients' GradCheckResult (per parameter leaf, three
        comparisons), fnn.check_layer's LayerCheckResult (per leaf and dx), or a
        dict label -> float / LayerCheckResult / GradCheckResult (one bar group per
        label, e.g. per layer).
    Returns:
      the Axes; bars are patches with gid f"bar-{series index}-{label}".
    """
    labels, series = _agreement_table(check)
    ax = _new_ax(ax, (max(5.0, 0.9 * len(labels) * max(1, len(series)) ** 0.5 + 2), 3.8))
    width = 0.8 / len(series)
    x = np.arange(len(labels))
    colors = (POSITIVE, "#ff7f0e", "#2ca02c")
    finite = [v for vs in series.values() for v in vs if 0 < v < math.inf]
    for s, (name, values) in enumerate(series.items()):
        heights = [min(max(v, _ERROR_FLOOR), 1.0) if math.isfinite(v) else 1.0 for v in values]
        bars = ax.bar(x + (s - (len(series) - 1) / 2) * width, heights, width, bottom=0,
                      color=colors[s % 3], label=name)
        for bar, label, v in zip(bars, labels, values):
            bar.set_gid(f"bar-{s}-{label}")
            if v == 0 or not math.isfinite(v):
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() * 2, "0" if v == 0 else "∞",
                        ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    low = min([_ERROR_FLOOR] + finite) / 10
    ax.set_ylim(low, 10)
    if tolerances:
        ax.axhline(TOL_AUTODIFF, color="k", ls="--", lw=1, gid="tol-autodiff",
                   label=f"tolerance vs jax.grad ({TOL_AUTODIFF:g})")
        if any("finite" in n for n in series):
            ax.axhline(TOL_FD, color="0.5", ls=":", lw=1, gid="tol-fd",
                       label=f"tolerance vs finite differences ({TOL_FD:g})")
    ax.set_xticks(x)
    slanted = len(labels) > 3
    ax.set_xticklabels(labels, rotation=30 if slanted else 0, ha="right" if slanted else "center", fontsize=8)
    ax.set_ylabel("relative error")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# ---------------------------------------------------------------------------
# Classification summaries
# ---------------------------------------------------------------------------

def confusion_counts(labels, predicted, n_classes=None):
    """counts[i, j] = number of examples of true class i predicted as j."""
    labels, predicted = _labels(labels), _labels(predicted)
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predicted.shape} differ in shape")
    k = n_classes or int(max(labels.max(initial=0), predicted.max(initial=0))) + 1
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def plot_confusion_matrix(labels, predicted, *, n_classes=None, ax=None, title=None):
    """Counts of (true class, predicted class) as an image with each count written in its cell.

    Returns:
      the Axes; the image (gid "confusion") holds the counts.
    """
    counts = confusion_counts(labels, predicted, n_classes)
    k = counts.shape[0]
    ax = _new_ax(ax, (4.6, 4))
    ax.imshow(counts, cmap="Blues", vmin=0, gid="confusion")
    if k <= 12:
        top = counts.max() or 1
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7 if k > 6 else 9,
                        color="white" if counts[i, j] > 0.6 * top else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(title or f"confusion matrix (accuracy {acc:.3f})", fontsize=10)
    return ax


def plot_sample_predictions(x, labels, probabilities, *, axes=None, n=8, ncols=4):
    """A few examples as 1-D signals, each titled with its true and predicted class.

    Titles are green when the prediction is right and red when wrong, e.g.
    "true 3 → 3 (0.92)" (the predicted class and its probability).

    Args:
      x: (n, features) inputs, drawn as a line each (MNIST-1D signals).
      labels: true classes (n,); probabilities: (n, K) predicted class probabilities.
      axes: at least `n` Axes to draw into (a new figure when None).
    Returns:
      the list of Axes drawn.
    """
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    labels, probs = _labels(labels), np.asarray(probabilities, np.float64)
    if probs.ndim != 2 or len(probs) != len(x) or len(labels) != len(x):
        raise ValueError(f"plot_sample_predictions: x has {len(x)} rows, labels {len(labels)}, "
                         f"probabilities shape {probs.shape}; expected (n, K) probabilities for n examples")
    n = min(n, len(x))
    if axes is None:
        fig = figure((2.4 * ncols, 1.8 * math.ceil(n / ncols)))
        axes = [fig.add_subplot(math.ceil(n / ncols), ncols, i + 1) for i in range(n)]
    axes = list(axes)[:n]
    for i, ax in enumerate(axes):
        pred = int(np.argmax(probs[i]))
        ok = pred == labels[i]
        ax.plot(x[i], color="0.25", lw=1.2)
        ax.set_title(f"true {labels[i]} → {pred} ({probs[i, pred]:.2f})", fontsize=8,
                     color="#2e7d32" if ok else NEGATIVE)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_color("#2e7d32" if ok else NEGATIVE)
    return axes


# ---------------------------------------------------------------------------
# The seeds' pictures
# ---------------------------------------------------------------------------

SEED_FIGURES = ("house_prices", "xor_boundaries", "gradient_descent", "loss_surface",
                "activations", "computational_graph", "architecture")


def _house_prices_figure(key):
    from examples import seeds
    r = seeds.house_prices(key)
    fig = figure((6, 4))
    ax = fig.add_subplot()
    sizes = np.linspace(800, 2700, 50)
    per, icpt = r["price_per_sqft"], r["intercept"]
    sign = "+" if icpt >= 0 else "−"
    ax.plot(sizes, per * sizes + icpt, color=POSITIVE, lw=2, gid="fit",
            label=f"fitted: price = \\${per:.1f} per sq ft × size {sign} \\${abs(icpt):,.0f}")
    ax.scatter(r["sizes_sqft"], r["prices"], s=60, color="k", zorder=3, label="training houses", gid="data")
    ax.scatter([r["query_sqft"]], [r["predicted_price"]], s=140, marker="*", color="#ff7f0e", zorder=3,
               edgecolors="k", label=f"{r['query_sqft']:,.0f} sq ft → \\${r['predicted_price']:,.0f}",
               gid="query")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"\\${v / 1000:,.0f}k"))
    ax.set_xlabel("size (sq ft)")
    ax.set_ylabel("price")
    ax.set_title("Seed 000: one linear neuron learns price from size", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def _xor_models(key, steps=2000, lr=1.0, hidden=4):
    """(neuron, neuron params, net, net params) trained on XOR by gradient descent on BCE."""
    from examples import seeds
    from fnn.layers import Dense, mlp
    from fnn.losses import get_loss
    x = jnp.asarray(seeds.XOR_INPUTS, jnp.float32)
    y = jnp.asarray(seeds.XOR_TARGETS, jnp.float32)
    bce = get_loss("binary_cross_entropy")
    k_neuron, k_net = jax.random.split(key)
    neuron, net = Dense(1), mlp([2, hidden, 1], activation="tanh")
    _, p_neuron = neuron.init(k_neuron, (-1, 2))
    _, p_net = net.init(k_net, (-1, 2))
    p_neuron, _ = seeds.gradient_descent(neuron, bce, p_neuron, x, y, lr, steps)
    p_net, _ = seeds.gradient_descent(net, bce, p_net, x, y, lr, steps)
    return neuron, p_neuron, net, p_net


def _xor_figure(trained):
    from examples import seeds
    neuron, p_neuron, net, p_net = trained
    x = np.asarray(seeds.XOR_INPUTS)
    y = np.asarray(seeds.XOR_TARGETS)
    fig = figure((10, 4.4))
    for i, (model, params, name) in enumerate(((neuron, p_neuron, "one logistic neuron"),
                                               (net, p_net, "one hidden layer, 2-4-1 tanh"))):
        ax = fig.add_subplot(1, 2, i + 1)
        logits = np.asarray(predict(model, params, x)).reshape(-1)
        correct = int(np.sum((logits > 0) == (y > 0.5)))
        unsure = ", p ≈ ½ at every point" if np.max(np.abs(logits)) < 0.1 else ""
        plot_decision_boundary(model, params, x, y, ax=ax, margin=0.3,
                               title=f"XOR, {name}: {correct}/4 correct{unsure}")
    fig.suptitle("Seeds 003/004: a line cannot separate XOR; a hidden layer bends the boundary", fontsize=11)
    fig.tight_layout()
    return fig


def _dense_value_and_grad(x, y):
    """value_and_grad((w, b)) of L = ½·mean((w·x + b − y)²) by fnn's hand-written Dense backward."""
    from fnn.layers import Dense
    from fnn.losses import get_loss
    dense, loss = Dense(1), get_loss("half_squared_error")
    xs = jnp.asarray(x, jnp.float32).reshape(-1, 1)
    ys = jnp.asarray(y, jnp.float32).reshape(-1, 1)

    def value_and_grad(wb):
        params = {"W": jnp.full((1, 1), wb[0], jnp.float32), "b": jnp.full((1,), wb[1], jnp.float32)}
        out, saved = dense.forward(params, xs)
        grads, _ = dense.backward(params, saved, loss.grad(out, ys))
        return float(loss.fn(out, ys)), np.array([float(grads["W"][0, 0]), float(grads["b"][0])])

    return value_and_grad


def _gradient_descent_figure():
    # Seed 002: y_hat = w·x with x = 1, y = 2, w₀ = 0, b fixed at 0: L(w) = ½(w − 2)².
    vg = _dense_value_and_grad([1.0], [2.0])
    only_w = lambda w: (lambda v, g: (v, g[:1]))(*vg(np.array([w[0], 0.0])))
    loss = lambda w: 0.5 * (np.asarray(w) * 1.0 - 2.0) ** 2
    fig = figure((6.4, 4.2))
    ax = fig.add_subplot()
    slow, _ = descent_path(only_w, [0.0], 0.5, 6)
    fast, _ = descent_path(only_w, [0.0], 1.8, 6)
    plot_loss_1d(loss, slow[:, 0], ax=ax, w_range=(-0.6, 4.6), label="α = 0.5: steady descent")
    plot_loss_1d(loss, fast[:, 0], ax=ax, color="#ff7f0e", curve=False,
                 label="α = 1.8: overshoots, zig-zags across")
    ax.set_title("Seed 002: loss vs weight, L(w) = ½(w·x − y)² with x = 1, y = 2, from w = 0",
                 fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _loss_surface_figure():
    # Seed 000's houses: x = size − 1500 sq ft in 1000s, y = price in $100k, so y = 2x + 3.
    # L(w, b) = ½·mean((w·x + b − y)²); b's direction is 6× steeper than w's, so the path bends.
    x, y = np.array([-0.5, 0.0, 0.5]), np.array([2.0, 3.0, 4.0])
    path, _ = descent_path(_dense_value_and_grad(x, y), [-1.0, 0.5], 0.9, 30)

    def loss(w, b):
        w, b = np.asarray(w)[..., None], np.asarray(b)[..., None]
        return 0.5 * np.mean((w * x + b - y) ** 2, axis=-1)

    fig = figure((7, 5.6))
    ax = fig.add_subplot(projection="3d")
    plot_loss_surface(loss, path, ax=ax, w_range=(-1.5, 4.5), b_range=(0.0, 5.0))
    ax.view_init(elev=30, azim=-60)
    ax.set_title("Seed 002: the loss surface over a weight and a bias, 30 gradient-descent steps "
                 "(α = 0.9)\nseed 000's houses, size − 1500 sq ft in 1000s, price in $100k; "
                 "minimum at w = 2, b = 3", fontsize=9)
    return fig


def _graph_figure():
    from examples.graph import backprop
    g = backprop(lambda a, b, c: (a + b) * (b - c), 2.0, 3.0, 1.0, output_name="y")
    ax = plot_computational_graph(g, title="Seed 002: y = (a + b)(b − c) at a = 2, b = 3, c = 1")
    return ax.figure


def _architecture_figure(trained, key):
    from fnn.layers import mlp
    _, _, net, p_net = trained
    big = mlp([40, 100, 100, 10], activation="relu")
    p_big = jax.jit(lambda k: big.init(k, (-1, 40))[1])(key)
    fig = figure((11, 4.6))
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    plot_architecture(p_net, model=net, ax=ax1, input_names=("x₁", "x₂"), output_names=("ŷ",),
                      title="The XOR network after training (seed 003)")
    plot_architecture(p_big, model=big, ax=ax2, title="MNIST-1D's 40-100-100-10 MLP at initialization")
    fig.tight_layout()
    return fig


def seed_figures(key, names=SEED_FIGURES):
    """The seeds' pictures as {name: Figure}; `key` seeds the house-price and XOR training.

    house_prices         seed 000: the houses and the fitted line, with the 2,500 sq ft prediction
    xor_boundaries       seeds 003/004: the lone logistic neuron fails, the hidden layer succeeds
    gradient_descent     seed 002: the parabola L(w) with gradient-descent paths
    loss_surface         seed 002: L(w, b) in 3-D with the path
    activations          seeds 001/004: the activation menu and hand-written derivatives
    computational_graph  seed 002: y = (a + b)(b − c) with values and gradients
    architecture         seed 001: the trained XOR network and a wide MLP
    """
    unknown = [n for n in names if n not in SEED_FIGURES]
    if unknown:
        raise ValueError(f"unknown seed figure(s) {', '.join(map(repr, unknown))}; expected "
                         f"names from {', '.join(SEED_FIGURES)}")
    k_house, k_xor, k_big = jax.random.split(key, 3)
    trained = _xor_models(k_xor) if {"xor_boundaries", "architecture"} & set(names) else None
    makers = {
        "house_prices": lambda: _house_prices_figure(k_house),
        "xor_boundaries": lambda: _xor_figure(trained),
        "gradient_descent": _gradient_descent_figure,
        "loss_surface": _loss_surface_figure,
        "activations": lambda: plot_activations(),
        "computational_graph": _graph_figure,
        "architecture": lambda: _architecture_figure(trained, k_big),
    }
    return {name: makers[name]() for name in names}


def save_seed_figures(directory, key, *, names=SEED_FIGURES, dpi=100):
    """Write the seeds' pictures as DIRECTORY/NAME.png (the folder is created); returns the paths."""
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{directory} exists and is not a directory; expected a folder for the pictures")
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, fig in seed_figures(key, names).items():
        paths.append(save_figure(fig, os.path.join(directory, f"{name}.png"), dpi=dpi))
    return paths
