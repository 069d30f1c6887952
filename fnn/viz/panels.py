"""The panels of a report's frame, drawn once and restyled for each frame.

A panel draws what every frame shares when it is made (axes, ticks, labels,
the data) and keeps the artists that change from frame to frame; `update(i)`
sets them to frame i and `artists` lists them in drawing order. A report draws
the shared part once and only the changing artists for each frame (blitting).

    MainPanel.make(kind, ...)   the decision boundary, confusion matrix and samples, 1-D fit,
                                or predictions against targets
    MetricPanel                 loss or accuracy per epoch: train and the report's split
    GradientPanel               each layer's gradient norm ‖∂L/∂θ_l‖₂ per frame, log scale
    NetworkPanel                the architecture with the frame's weights, or its gradients
"""
import math

import numpy as np
from matplotlib.artist import Artist

from fnn.viz.architecture import WEIGHTS_NOTE, blame_colorbar, blame_norm, dense_layers, draw_architecture
from fnn.viz.blocks import plot_blocks
from fnn.viz.figures import CLASS_COLORS, NEGATIVE, POSITIVE, class_labels
from fnn.viz.framedata import SAMPLES
from fnn.viz.predictions import RIGHT, draw_points, draw_regions
from fnn.viz.scales import set_log_axis
from fnn.viz.textgrid import TextGrid

__all__ = ["MainPanel", "MetricPanel", "GradientPanel", "NetworkPanel", "SPLIT_COLOR", "flat_artists"]

SPLIT_COLOR = "#ff7f0e"       # the report's split (test) beside train (POSITIVE)


def flat_artists(artists):
    """Artists to draw one by one: a ContourSet of matplotlib < 3.8 is its collections."""
    out = []
    for a in artists:
        out.extend([a] if isinstance(a, Artist) else a.collections)
    return out


def _series(history, name, upto):
    """(epochs, values) of history[name] up to epoch `upto`, None and non-finite entries dropped."""
    pairs = [(e, v) for e, v in zip(history.get("epoch") or [], history.get(name) or [])
             if e <= upto and v is not None and math.isfinite(v)]
    return [e for e, _ in pairs], [v for _, v in pairs]


class MetricPanel:
    """Loss or accuracy against epoch: train and the report's split, up to the frame's epoch.

    The curves are fit()'s history (train: batch averages over each epoch; the split: its
    val_* entries), starting from the first frame's evaluation at epoch 0. A dotted line
    and dots mark the frame's epoch.
    """

    def __init__(self, ax, data, ranges, metric):
        self.ax, self.data, self.metric = ax, data, metric
        ax.set_xlim(*ranges["epoch"])
        if metric == "loss" and ranges["loss"][0] == "log":
            set_log_axis(ax.yaxis, *ranges["loss"][1:])
        elif metric == "loss":
            ax.set_ylim(*ranges["loss"][1:])
        else:
            ax.set_ylim(-0.02, 1.02)
        ax.set_autoscale_on(False)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.set_title(f"{metric} per epoch", fontsize=10, loc="left")
        self.series = (("train", f"train_{metric}", POSITIVE), (data.split, f"val_{metric}", SPLIT_COLOR))
        if data.split == "train":                    # a dataset without a test split: one series
            self.series = self.series[:1]
        self.lines = [ax.plot([], [], color=c, lw=1.6, label=name, gid=f"{metric}-{name}")[0]
                      for name, _, c in self.series]
        self.dots = [ax.plot([], [], "o", color=c, ms=5)[0] for _, _, c in self.series]
        self.mark = ax.axvline(0, color="0.3", lw=1, ls=":")
        # Above the plot, beside the title: drawn once, never under a curve.
        ax.legend(handles=self.lines, fontsize=8, loc="lower right", bbox_to_anchor=(1, 1), ncol=len(self.lines),
                  frameon=False, borderaxespad=0.2, handlelength=1.5)

    @property
    def artists(self):
        return self.lines + self.dots + [self.mark]

    @property
    def marks(self):
        """The artists that mark the frame (its epoch's line and dots)."""
        return self.dots + [self.mark]

    def _curve(self, i, key, split):
        frame, first = self.data.frames[i], self.data.frames[0]
        xs, ys = _series(self.data.history, key, frame.epoch)
        start = getattr(first, split)[self.metric]
        if first.epoch == 0 and start is not None and 0 not in xs:
            xs, ys = [0] + xs, [start] + ys
        return xs, ys

    def points(self, i):
        """[((epoch, value), colour)] of frame i's dots: each curve's last point at or before it."""
        out = []
        for (_, key, colour), split in zip(self.series, ("train", "test")):
            xs, ys = self._curve(i, key, split)
            out += [((xs[-1], ys[-1]), colour)] if xs else []
        return out

    def update(self, i):
        for line, dot, (_, key, _), split in zip(self.lines, self.dots, self.series, ("train", "test")):
            xs, ys = self._curve(i, key, split)
            line.set_data(xs, ys)
            dot.set_data(xs[-1:], ys[-1:])
        epoch = self.data.frames[i].epoch
        self.mark.set_xdata([epoch, epoch])


class GradientPanel:
    """Each layer's gradient norm on the fixed batch, per frame, on a log scale."""

    def __init__(self, ax, data, ranges):
        self.ax, self.data = ax, data
        ax.set_xlim(*ranges["epoch"])
        set_log_axis(ax.yaxis, *ranges["grad"])
        ax.set_autoscale_on(False)
        ax.set_xlabel("epoch")
        ax.set_ylabel("‖∂L/∂θ‖₂ of the layer")
        ax.grid(alpha=0.3)
        labels = data.layer_labels
        colors = [CLASS_COLORS[k % len(CLASS_COLORS)] for k in range(len(labels))]
        self.lines = [ax.plot([], [], color=c, lw=1.4, label=l, gid=f"grad-{k}")[0]
                      for k, (l, c) in enumerate(zip(labels, colors))]
        self.dots = [ax.plot([], [], "o", color=c, ms=4)[0] for c in colors]
        self.colors, self.mark = colors, ax.axvline(0, color="0.3", lw=1, ls=":")
        self.floor = ranges["grad"][0]
        shown = self.lines[:8]                 # above the plot, under the title: drawn once
        ax.legend(handles=shown, fontsize=7, loc="lower left", bbox_to_anchor=(0, 1), ncol=min(len(shown), 3),
                  frameon=False, borderaxespad=0.2, handlelength=1.5, columnspacing=1.0)
        rows = -(-len(shown) // 3)
        ax.set_title("backpropagation: gradient norm per layer", fontsize=10, loc="left", pad=4 + 11 * rows)

    @property
    def artists(self):
        return self.lines + self.dots + [self.mark]

    @property
    def marks(self):
        """The artists that mark the frame (its epoch's line and dots)."""
        return self.dots + [self.mark]

    def points(self, i):
        """[((epoch, norm), colour)] of frame i's dots, one per layer."""
        f = self.data.frames[i]
        return [((f.epoch, max(n, self.floor)), c) for n, c in zip(f.grad_norms, self.colors)]

    def update(self, i):
        frames = self.data.frames[:i + 1]
        xs = [f.epoch for f in frames]
        for k, (line, dot) in enumerate(zip(self.lines, self.dots)):
            ys = [max(f.grad_norms[k], self.floor) for f in frames]
            line.set_data(xs, ys)
            dot.set_data(xs[-1:], ys[-1:])
        self.mark.set_xdata([xs[-1], xs[-1]])


class NetworkPanel:
    """The network with the frame's weights, or (backward=True) the frame's gradients on it;
    a network that is not Dense layers is one block per layer, the same in every frame."""

    def __init__(self, ax, data, ranges, backward=False):
        self.data, self.backward, self.drawing = data, backward, None
        if not data.drawable:
            plot_blocks(data.model, (-1,) + tuple(data.ds.x_train.shape[1:]), ax=ax,
                        title="network architecture (one block per layer)")
            return
        if backward:
            self.norm = blame_norm(*ranges["blame"])
            self.drawing = draw_architecture(data.sizes, model=data.model, ax=ax,
                                             title="backward pass: the error signals' blame (this frame)")
            blame_colorbar(ax.inset_axes([0.25, 0.035, 0.5, 0.03]), self.norm)
        else:
            self.drawing = draw_architecture(data.sizes, model=data.model, ax=ax, note=WEIGHTS_NOTE,
                                             title="network architecture (this frame's weights)")

    @property
    def artists(self):
        return self.drawing.artists if self.drawing else []

    def update(self, i):
        if self.drawing is None:
            return
        if self.backward:
            grads = dense_layers(self.data.frames[i].grads, "grads")
            self.drawing.show_gradients([g for g, _ in grads], [b for _, b in grads], self.norm)
        else:
            self.drawing.show_weights(self.data.frames[i].weights)


class MainPanel:
    """The frame's main picture; `make` picks the class for the data's kind."""

    @staticmethod
    def make(kind, axes, data, ranges):
        return {"boundary": BoundaryPanel, "confusion": ConfusionPanel, "fit": FitPanel,
                "scatter": ScatterPanel}[kind](axes, data, ranges)


class BoundaryPanel:
    """The regions each class gets over the training points (redrawn for each frame)."""

    def __init__(self, axes, data, ranges):
        self.ax, self.data, self.drawn = axes[0], data, []
        (xx, yy), ax = data.grid, self.ax
        ax.set_xlim(xx[0, 0], xx[0, -1])
        ax.set_ylim(yy[0, 0], yy[-1, 0])
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        ax.set_title("decision boundary over the training points", fontsize=10)
        out = data.frames[0].output
        self.n_classes = max(int(data.labels.max(initial=0)) + 1, 2 if out.ndim == 1 or out.shape[1] <= 2
                             else out.shape[1])
        self.points = draw_points(ax, data.points, class_labels(data.labels), self.n_classes)
        self.legend = ax.legend(loc="upper right", fontsize=7, framealpha=0.8) if self.n_classes <= 10 else None

    @property
    def artists(self):
        return (flat_artists(self.drawn) + self.points + ([self.legend] if self.legend else [])
                + list(self.ax.spines.values()))

    def update(self, i):
        for a in self.drawn:
            a.remove()
        xx, yy = self.data.grid
        self.drawn = draw_regions(self.ax, xx, yy, self.data.frames[i].output, self.n_classes)


class ConfusionPanel:
    """The split's confusion matrix (counts written in the cells) and a few sample predictions."""

    def __init__(self, axes, data, ranges):
        ax, self.samples, self.data = axes[0], axes[1:], data
        self.ax, labels = ax, class_labels(data.y_eval)
        self.k = k = data.frames[0].output.shape[1]
        self.labels = labels
        top = int(np.bincount(labels, minlength=k).max())        # a perfect diagonal's darkest cell
        self.image = ax.imshow(np.zeros((k, k)), cmap="Blues", vmin=0, vmax=top, gid="confusion")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        self.top = top
        rows, cols = np.divmod(np.arange(k * k), k)
        self.cells = TextGrid(ax, np.stack([cols, rows], axis=1), fontsize=7 if k > 6 else 9) if k <= 12 else None
        ax.set_title(" ", fontsize=10)
        x = np.asarray(data.x_eval, np.float64).reshape(len(data.x_eval), -1)
        self.n = min(SAMPLES, len(x))
        for s, sax in enumerate(self.samples):
            sax.set_xticks([])
            sax.set_yticks([])
            if s < self.n:
                sax.plot(x[s], color="0.25", lw=1.2)
                sax.set_title(" ", fontsize=8)
            else:
                sax.set_axis_off()

    @property
    def artists(self):
        out = [self.image] + ([self.cells] if self.cells else []) + [self.ax.title]
        for sax in self.samples[:self.n]:
            out += [sax.title] + list(sax.spines.values())
        return out

    def update(self, i):
        out = self.data.frames[i].output
        predicted = np.argmax(out, axis=1)
        counts = np.zeros((self.k, self.k), np.int64)
        np.add.at(counts, (self.labels, predicted), 1)
        self.image.set_data(counts)
        self.counts = counts
        if self.cells:
            self.cells.set_texts(counts.reshape(-1), ["white" if c > 0.6 * self.top else "black"
                                                      for c in counts.reshape(-1)])
        acc = np.trace(counts) / max(counts.sum(), 1)
        self.ax.set_title(f"{self.data.split} confusion matrix (accuracy {acc:.3f})", fontsize=10)
        z = out[:self.n] - out[:self.n].max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)               # softmax (n, K)
        for s, sax in enumerate(self.samples[:self.n]):
            pred, ok = int(np.argmax(probs[s])), int(np.argmax(probs[s])) == self.labels[s]
            sax.set_title(f"true {self.labels[s]} → {pred} ({probs[s, pred]:.2f})", fontsize=8,
                          color=RIGHT if ok else NEGATIVE)
            for side in sax.spines.values():
                side.set_color(RIGHT if ok else NEGATIVE)


class FitPanel:
    """A 1-D regression: the training data and the model's curve."""

    def __init__(self, axes, data, ranges):
        self.ax = ax = axes[0]
        self.data, y = data, data.labels
        pad = 0.2 * (y.max() - y.min() or 1.0)
        ax.set_ylim(y.min() - pad, y.max() + pad)
        ax.set_xlim(data.grid[0], data.grid[-1])
        ax.set_autoscale_on(False)
        ax.scatter(data.points, y, s=10, color="0.5", label="data", gid="data")
        self.curve = ax.plot([], [], color=POSITIVE, lw=2, label="model", gid="model")[0]
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.grid(alpha=0.3)
        self.legend = ax.legend(fontsize=8, loc="upper right")
        ax.set_title("the model's curve over the training data", fontsize=10)

    @property
    def artists(self):
        return [self.curve, self.legend]

    def update(self, i):
        self.curve.set_data(self.data.grid, np.asarray(self.data.frames[i].output).reshape(-1))


class ScatterPanel:
    """Predictions against the split's true targets; the dashed line is perfect."""

    def __init__(self, axes, data, ranges):
        self.ax = ax = axes[0]
        self.data = data
        y = np.asarray(data.y_eval, np.float64).reshape(-1)
        lo, hi = y.min(), y.max()
        pad = 0.5 * (hi - lo or 1.0)
        ax.set_xlim(lo - 0.05 * (hi - lo or 1.0), hi + 0.05 * (hi - lo or 1.0))
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_autoscale_on(False)
        ax.plot([lo, hi], [lo, hi], color="0.4", ls="--", lw=1)
        self.y = y
        self.points = ax.scatter(y[:1], y[:1], s=8, color=POSITIVE, gid="predictions")
        ax.set_xlabel(f"{data.split} target")
        ax.set_ylabel("prediction")
        ax.set_title("predicted against true targets", fontsize=10)

    @property
    def artists(self):
        return [self.points]

    def update(self, i):
        out = np.asarray(self.data.frames[i].output, np.float64).reshape(-1)
        self.points.set_offsets(np.stack([self.y, out], axis=1))
