"""Figures without pyplot, the shared colours, and small helpers the plots share.

A figure is a `matplotlib.figure.Figure` on the Agg canvas: pyplot is never
imported, so nothing in fnn.viz needs a display or a GUI backend, and no
figure is left open in a global registry.
"""
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from fnn.errors import InputError

__all__ = ["figure", "save_figure", "new_axes", "lighten", "class_labels", "POSITIVE", "NEGATIVE",
           "CLASS_COLORS", "LAYER_COLORS"]

POSITIVE = "#1f77b4"    # a weight w > 0
NEGATIVE = "#d62728"    # a weight w < 0
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
LAYER_COLORS = {"input": "#f6d365", "hidden": "#8ec5e8", "output": "#9fd8a0"}


def figure(figsize=(6.4, 4.8), dpi=100, **kwargs):
    """A new matplotlib Figure on the Agg canvas (no pyplot, no display needed).

    Args:
      figsize: (width, height) in inches; dpi: pixels per inch.
      **kwargs: passed on to matplotlib.figure.Figure.
    Returns:
      the Figure.
    """
    fig = Figure(figsize=figsize, dpi=dpi, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi=None):
    """Write `fig` to `path` (format from the suffix, e.g. .png); returns the path."""
    fig.savefig(os.fspath(path), dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def new_axes(ax, figsize=(6.4, 4.8), **kwargs):
    """`ax` itself, or the Axes of a new figure of `figsize` when ax is None."""
    return figure(figsize).add_subplot(**kwargs) if ax is None else ax


def lighten(color, amount):
    """`color` mixed with white: amount 0 keeps it, 1 gives white."""
    return tuple(c + (1 - c) * amount for c in to_rgb(color))


def class_labels(y):
    """Integer class labels (n,) from int labels (n,) or 0/1 binary targets (n, 1)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise InputError(f"labels must have shape (n,) or (n, 1), got {y.shape}")
    return np.rint(y).astype(np.int64)
