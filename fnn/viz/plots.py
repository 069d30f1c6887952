"""Curves: the activation menu, training history, loss landscapes with descent paths, gradient checks.

A function that draws into one Axes takes `ax=None` (a new figure when None)
and returns that Axes; one that lays out several Axes returns the Figure.

    plot_activations(names)                 each f beside its hand-written derivative f′
    plot_history(history)                   train/validation loss and accuracy per epoch or step
    descent_path(value_and_grad, start, lr, steps)   the iterates of gradient descent
    plot_loss_1d(loss_fn, path)             L(w) with a gradient-descent path (seed 002's parabola)
    plot_loss_surface(loss_fn, path)        L(w, b) in 3-D with the path
    plot_gradient_agreement(check)          manual vs autodiff (and finite-difference) errors, log scale
"""
import math
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.activations import get_activation
from fnn.check import TOL_AUTODIFF, TOL_FD, GradCheckResult, LayerCheckResult
from fnn.errors import InputError, InputTypeError
from fnn.validate import check_choice, check_non_negative_int, check_positive_int
from fnn.viz.figures import NEGATIVE, POSITIVE, figure, new_axes
from fnn.viz.scales import log_range, set_log_axis

__all__ = ["ACTIVATION_MENU", "plot_activations", "plot_history", "descent_path", "plot_loss_1d",
           "plot_loss_surface", "plot_gradient_agreement"]

# The activations seeds 001 and 004 draw, in their order.
ACTIVATION_MENU = ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "swish")

# Panel titles: the formula of each activation, by its name (display text only).
_FORMULAS = {
    "identity": "f(z) = z", "linear": "f(z) = z",
    "sigmoid": "σ(z) = 1 / (1 + e⁻ᶻ)", "tanh": "tanh(z)", "relu": "max(0, z)",
    "leaky_relu": "max(0.1·z, z)", "gelu": "z·Φ(z)", "gelu_tanh": "z·Φ(z), tanh approx.",
    "swish": "z·σ(z)", "silu": "z·σ(z)", "softplus": "log(1 + eᶻ)",
}


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
    points = check_positive_int("points", points)
    ncols = check_positive_int("ncols", ncols)
    acts = [get_activation(n) for n in names]
    if not acts:
        raise InputError("plot_activations needs at least one activation name")
    for act in acts:
        if act.derivative is None:
            raise InputError(f"activation {act.name!r} has no elementwise derivative to draw "
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
        raise InputError(f"history[{name!r}] has {len(values)} entries, expected {n} (one per epoch)")
    keep = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    return keep, [values[i] for i in keep]


def plot_history(history, *, x="epoch", metrics=_METRICS, axes=None, mark=None, log_loss=True,
                 val_label="validation"):
    """Training curves: train and validation loss (and accuracy) against epoch or step.

    Args:
      history: fit()'s history: lists epoch, step, train_loss, train_accuracy,
        val_loss, val_accuracy (None entries are skipped).
      x: "epoch" or "step".
      metrics: which panels, from ("loss", "accuracy"); accuracy is left out if
        the history has none (regression).
      axes: Axes to draw into, one per metric (a new figure when None).
      mark: an x value to mark with a vertical line and dots (the report's current frame).
      log_loss: log-scale the loss axis (whole decades, readable ticks) when every loss is positive.
      val_label: the legend's name for the val_* curves (the split fit() was given, e.g. "test").
    Returns:
      the Figure.
    """
    check_choice("history axis x", x, _HISTORY_X)
    unknown = [m for m in metrics if m not in _METRICS]
    if unknown or not metrics:
        raise InputError(f"plot_history: metrics must be drawn from {_METRICS}, got {metrics!r}")
    if not isinstance(history, Mapping) or not history.get(x) or "train_loss" not in history:
        got = sorted(history) if isinstance(history, Mapping) else type(history).__name__
        raise InputError(f"plot_history: history needs non-empty {x!r} and 'train_loss' lists "
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
        for split, color, label in (("train", POSITIVE, "train"), ("val", "#ff7f0e", val_label)):
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
            set_log_axis(ax.yaxis, *log_range([v for _, vs, _ in drawn for v in vs], tight=True))
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------
# Loss landscapes with gradient-descent paths
# ---------------------------------------------------------------------------

def descent_path(value_and_grad, start, lr, steps):
    """Iterates of w ← w − α·∂L/∂w: (ws (steps + 1, ...), losses (steps + 1,)).

    value_and_grad(w) -> (L, ∂L/∂w) for an array w; plain NumPy in and out.
    """
    steps = check_non_negative_int("steps", steps)
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
        raise InputError("plot_loss_1d needs a non-empty path of weights")
    points = check_positive_int("points", points)
    ax = new_axes(ax, (6, 4))
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
        raise InputError(f"plot_loss_surface needs a path of shape (steps, 2) of (w, b), got {path.shape}")
    points = check_positive_int("points", points)

    def extent(col, given):
        if given is not None:
            return given
        lo, hi = path[:, col].min(), path[:, col].max()
        pad = 0.3 * (hi - lo or 1.0)
        return lo - pad, hi + pad

    if ax is None:
        ax = figure((6.4, 5)).add_subplot(projection="3d")
    if getattr(ax, "name", "") != "3d":
        raise InputError("plot_loss_surface draws on a 3-D Axes: fig.add_subplot(projection='3d')")
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
# Gradient agreement
# ---------------------------------------------------------------------------

_ERROR_FLOOR = 1e-18        # where an exact 0 is drawn on the log axis


class _Agreement(NamedTuple):
    """What plot_gradient_agreement draws: one bar group per label, one bar per series."""
    labels: list                  # bar-group labels (parameter paths or layer names)
    series: dict                  # series name -> relative errors, one per label
    finite_differences: bool      # a series compares against finite differences (draw TOL_FD)


def _agreement_table(check):
    """The bars to draw from any supported check result."""
    if isinstance(check, GradCheckResult):
        leaves = check.leaves
        return _Agreement([l.path for l in leaves],
                          {"manual vs jax.grad": [l.manual_vs_autodiff for l in leaves],
                           "manual vs finite differences": [l.manual_vs_fd for l in leaves],
                           "jax.grad vs finite differences": [l.autodiff_vs_fd for l in leaves]}, True)
    if isinstance(check, LayerCheckResult):
        return _Agreement([p for p, _ in check.leaves] + ["dx"],
                          {"manual vs jax.vjp": [e for _, e in check.leaves] + [check.dx]}, False)
    if isinstance(check, Mapping) and check:
        values = list(check.values())
        if all(isinstance(v, LayerCheckResult) for v in values):
            return _Agreement(list(check), {"manual vs jax.vjp (max over dW, db, dx)":
                                            [v.max_error for v in values]}, False)
        if all(isinstance(v, GradCheckResult) for v in values):
            return _Agreement(list(check),
                              {"manual vs jax.grad": [v.max_manual_vs_autodiff for v in values],
                               "manual vs finite differences": [v.max_manual_vs_fd for v in values]},
                              True)
        if all(isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) for v in values):
            return _Agreement(list(check), {"manual vs jax.grad": [float(v) for v in values]}, False)
    raise InputTypeError("plot_gradient_agreement takes a GradCheckResult, a LayerCheckResult, or a "
                    "non-empty dict of label -> relative error (float, LayerCheckResult or "
                    f"GradCheckResult); got {type(check).__name__}")


def plot_gradient_agreement(check, *, ax=None, title=None, tolerances=True):
    """Hand-written vs automatic gradients: relative error per layer or parameter, log scale.

    Each bar is rel(a, b) = ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞); an exact 0 is drawn at
    1e-18 and labelled "0". Dashed lines mark fnn.check's tolerances
    (TOL_AUTODIFF for manual vs jax.grad, TOL_FD against finite differences).

    Args:
      check: fnn.check_gradients' GradCheckResult (per parameter leaf, three
        comparisons), fnn.check_layer's LayerCheckResult (per leaf and dx), or a
        dict label -> float / LayerCheckResult / GradCheckResult (one bar group per
        label, e.g. per layer).
    Returns:
      the Axes; bars are patches with gid f"bar-{series index}-{label}".
    """
    table = _agreement_table(check)
    labels, series = table.labels, table.series
    ax = new_axes(ax, (max(5.0, 0.9 * len(labels) * max(1, len(series)) ** 0.5 + 2), 3.8))
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
        if table.finite_differences:
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


