"""What a model predicts: decision regions, a 1-D fit, a confusion matrix, sample predictions.

    plot_decision_boundary(model, params, x, y)   a 2-D classifier's regions over its points
    region_of(ax, point)                    which drawn band holds a point (for tests and checks)
    plot_fit_1d(model, params, x, y)        a 1-D regression: data and the model's curve
    confusion_counts(labels, predicted)     counts[i, j] of true class i predicted as j
    plot_confusion_matrix(labels, predicted)
    plot_sample_predictions(x, labels, probabilities)
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, ListedColormap
from matplotlib.path import Path

from fnn.errors import InputError
from fnn.numerics import sigmoid
from fnn.train import predict
from fnn.validate import check_number, check_positive_int
from fnn.viz.figures import CLASS_COLORS, NEGATIVE, POSITIVE, class_labels, figure, lighten, new_axes

__all__ = ["plot_decision_boundary", "region_of", "plot_fit_1d", "confusion_counts",
           "plot_confusion_matrix", "plot_sample_predictions", "draw_regions", "draw_points",
           "probability_of_class_1", "decision_grid", "RIGHT"]

RIGHT = "#2e7d32"       # a sample prediction that is right (wrong ones are NEGATIVE)


# ---------------------------------------------------------------------------
# Decision boundaries and 1-D fits
# ---------------------------------------------------------------------------

def decision_grid(x, resolution, margin=0.25, limits=None):
    """(xx, yy) meshgrid over the points' box widened by `margin` of its span (or `limits`)."""
    if limits is None:
        lo, hi = x.min(axis=0), x.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        limits = ((lo[0] - margin * span[0], hi[0] + margin * span[0]),
                  (lo[1] - margin * span[1], hi[1] + margin * span[1]))
    (x0, x1), (y0, y1) = limits
    return np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))


def _two_class_logit(out):
    """z with p(class 1) = σ(z) from two-class logits, or None for more classes.

    One logit: z itself. Two softmax logits: p1 = e^z1 / (e^z0 + e^z1) = σ(z1 − z0).
    """
    out = np.asarray(out)
    if out.ndim == 1 or out.shape[1] == 1:
        return out.reshape(-1)                               # (n,)
    if out.shape[1] == 2:
        return out[:, 1] - out[:, 0]                         # (n,)
    return None


def _class_cmap(k):
    return ListedColormap([lighten(CLASS_COLORS[i % 10], 0.6) for i in range(k)])


_TWO_CLASS = LinearSegmentedColormap.from_list(
    "fnn_two_class", [lighten(CLASS_COLORS[0], 0.45), (1, 1, 1), lighten(CLASS_COLORS[1], 0.45)])


def plot_decision_boundary(model, params, x, y, *, ax=None, resolution=150, margin=0.25,
                           limits=None, title=None, legend=True, model_state=None):
    """The regions a 2-D classifier assigns to each class, with its boundary and training points.

    Two classes (one logit, or two softmax logits): p(class 1) = σ(z) shaded
    in ten bands (artist gid "decision-regions") and the boundary p = ½ as a
    black line ("decision-boundary"). More classes: one flat color per
    predicted class and the lines between them.

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
        raise InputError(f"plot_decision_boundary needs 2-D points of shape (n, 2), got {x.shape}")
    labels = class_labels(y)
    if len(labels) != len(x):
        raise InputError(f"plot_decision_boundary: {len(x)} points but {len(labels)} labels")
    resolution = check_positive_int("resolution", resolution)
    check_number("margin", margin, 0)
    ax = new_axes(ax, (5, 4.4))
    xx, yy = decision_grid(x, resolution, margin, limits)
    flat = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)          # (r², 2)
    out = np.asarray(predict(model, params, flat, model_state=model_state))
    n_classes = max(int(labels.max(initial=0)) + 1, 2 if _two_class_logit(out) is not None else out.shape[1])
    draw_regions(ax, xx, yy, out, n_classes)
    draw_points(ax, x, labels, n_classes)
    ax.set_xlim(xx[0, 0], xx[0, -1])
    ax.set_ylim(yy[0, 0], yy[-1, 0])
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    if title:
        ax.set_title(title, fontsize=10)
    if legend and n_classes <= 10:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    return ax


def probability_of_class_1(z):
    """σ(z) in float64 for a grid of two-class logits z (float32 rounds σ(z) to ½ for |z| < 1e-7,
    which would hide a lone neuron's boundary)."""
    with jax.enable_x64(True):
        return np.asarray(sigmoid(jnp.asarray(z, jnp.float64)))


def draw_regions(ax, xx, yy, out, n_classes):
    """The regions of the model's outputs `out` (r², K) on the grid (xx, yy): their artists.

    Two classes: p(class 1) in ten bands (gid "decision-regions") and the line p = ½
    ("decision-boundary"); more classes: a flat colour per predicted class and the lines between.
    """
    z = _two_class_logit(out)
    drawn = []
    if z is not None:
        p1 = probability_of_class_1(z.reshape(xx.shape))                          # (r, r)
        regions = ax.contourf(xx, yy, p1, levels=np.linspace(0, 1, 11), cmap=_TWO_CLASS, vmin=0, vmax=1)
        drawn.append(regions)
        if p1.min() < 0.5 < p1.max():
            drawn.append(ax.contour(xx, yy, p1, levels=[0.5], colors="k", linewidths=1.8))
            drawn[-1].set_gid("decision-boundary")
    else:
        cls = np.argmax(out, axis=1).reshape(xx.shape)                            # (r, r)
        regions = ax.contourf(xx, yy, cls, levels=np.arange(n_classes + 1) - 0.5,
                              cmap=_class_cmap(n_classes))
        drawn.append(regions)
        if cls.min() != cls.max():
            drawn.append(ax.contour(xx, yy, cls, levels=np.arange(n_classes - 1) + 0.5,
                                    colors="k", linewidths=1.2))
            drawn[-1].set_gid("decision-boundary")
    regions.set_gid("decision-regions")
    return drawn


def draw_points(ax, x, labels, n_classes):
    """The points x (n, 2) coloured by class (gid f"points-{k}"): their scatters."""
    drawn = []
    for k in range(n_classes):
        pts = x[labels == k]
        if len(pts):
            drawn.append(ax.scatter(pts[:, 0], pts[:, 1], s=60 if len(x) <= 20 else 14,
                                    color=CLASS_COLORS[k % 10], edgecolors="k", linewidths=0.6,
                                    label=f"class {k}", zorder=3, gid=f"points-{k}"))
    return drawn


def region_of(ax, point):
    """Which band of the Axes' decision-regions contour holds `point`: (low, high) level, or None.

    Bands are compound paths with holes; a point is inside a band when it lies
    inside an odd number of the band's polygons (even-odd rule).
    """
    regions = [c for c in ax.collections if c.get_gid() == "decision-regions"]
    if not regions:
        raise InputError("the Axes has no decision regions; draw them with plot_decision_boundary")
    cs = regions[0]
    for i, path in enumerate(cs.get_paths()):
        inside = sum(Path(poly).contains_point(point) for poly in path.to_polygons(closed_only=True))
        if inside % 2:
            return float(cs.levels[i]), float(cs.levels[i + 1])
    return None


def plot_fit_1d(model, params, x, y, *, ax=None, points=200, title=None, model_state=None):
    """A regression with one input: the data (dots) and the model's curve over their range.

    model_state: the state of a stateful model (fnn.init_state, FitResult.model_state)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(x), -1)
    if x.shape[1] != 1 or y.shape[1] != 1:
        raise InputError(f"plot_fit_1d needs one input and one output, got x {x.shape}, y {y.shape}")
    points = check_positive_int("points", points)
    ax = new_axes(ax, (5, 4))
    lo, hi = x.min(), x.max()
    grid = np.linspace(lo, hi, points).reshape(-1, 1).astype(np.float32)
    ax.scatter(x[:, 0], y[:, 0], s=10, color="0.5", label="data", gid="data")
    ax.plot(grid[:, 0], np.asarray(predict(model, params, grid, model_state=model_state)).reshape(-1), color=POSITIVE,
            lw=2, label="model", gid="model")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


# ---------------------------------------------------------------------------
# Classification summaries
# ---------------------------------------------------------------------------

def confusion_counts(labels, predicted, n_classes=None):
    """counts[i, j] = number of examples of true class i predicted as j."""
    labels, predicted = class_labels(labels), class_labels(predicted)
    if labels.shape != predicted.shape:
        raise InputError(f"labels {labels.shape} and predictions {predicted.shape} differ in shape")
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
    ax = new_axes(ax, (4.6, 4))
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
    labels, probs = class_labels(labels), np.asarray(probabilities, np.float64)
    if probs.ndim != 2 or len(probs) != len(x) or len(labels) != len(x):
        raise InputError(f"plot_sample_predictions: x has {len(x)} rows, labels {len(labels)}, "
                         f"probabilities shape {probs.shape}; expected (n, K) probabilities for n examples")
    n = min(check_positive_int("n", n), len(x))
    ncols = check_positive_int("ncols", ncols)
    if axes is None:
        fig = figure((2.4 * ncols, 1.8 * math.ceil(n / ncols)))
        axes = [fig.add_subplot(math.ceil(n / ncols), ncols, i + 1) for i in range(n)]
    axes = list(axes)[:n]
    for i, ax in enumerate(axes):
        pred = int(np.argmax(probs[i]))
        ok = pred == labels[i]
        ax.plot(x[i], color="0.25", lw=1.2)
        ax.set_title(f"true {labels[i]} → {pred} ({probs[i, pred]:.2f})", fontsize=8,
                     color=RIGHT if ok else NEGATIVE)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_color(RIGHT if ok else NEGATIVE)
    return axes


