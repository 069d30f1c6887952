"""One frame of the training report: the model's predictions, the loss curves and the network.

Each frame is one figure, redrawn for each snapshot of the parameters:

    2-D classification   the decision boundary over the training points
    other classification the test confusion matrix and sample predictions (MNIST-1D)
    1-D regression       the data and the model's curve
    other regression     predicted against true targets

beside the loss curves (with the frame's epoch marked) and the architecture
drawn with that frame's weights.
"""
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.gridspec import GridSpec

from fnn.errors import InputError
from fnn.layers import init_state as init_model_state
from fnn.losses import get_loss
from fnn.numerics import sigmoid, softmax
from fnn.train import evaluate, predict
from fnn.validate import check_positive_int
from fnn.viz.architecture import dense_layers, plot_architecture
from fnn.viz.blocks import plot_blocks
from fnn.viz.figures import POSITIVE, figure
from fnn.viz.plots import plot_history
from fnn.viz.predictions import (plot_confusion_matrix, plot_decision_boundary, plot_fit_1d,
                                 plot_sample_predictions)
from fnn.viz.snapshots import Snapshot

__all__ = ["FRAME_KINDS", "frame_kind", "Frames", "frame_figure"]

FRAME_KINDS = ("boundary", "confusion", "fit", "scatter")
_MAX_POINTS = 600            # training points drawn under a decision boundary
_SAMPLES = 8                 # sample predictions shown for classification without 2-D inputs


def frame_kind(dataset):
    """Which picture a frame shows for `dataset`: one of FRAME_KINDS (by its task and widths)."""
    if dataset.task in ("classification", "binary"):
        return "boundary" if dataset.in_features == 2 else "confusion"
    return "fit" if dataset.in_features == 1 and dataset.out_features == 1 else "scatter"


def _probabilities(out):
    """Class probabilities (n, K) from logits (n, K): softmax(z), or [1 − σ(z), σ(z)] for one logit."""
    out = jnp.asarray(out)
    if out.ndim == 1 or out.shape[1] == 1:
        p = np.asarray(sigmoid(out.reshape(-1)), np.float64)          # (n,)
        return np.stack([1 - p, p], axis=1)                           # (n, 2)
    return np.asarray(softmax(out, axis=1), np.float64)               # (n, K)


def _as_snapshots(snapshots):
    frames = [s if isinstance(s, Snapshot) else Snapshot(*s) for s in snapshots]
    if not frames:
        raise InputError("the report needs at least one snapshot of the parameters; pass "
                         "Snapshots(params) as fit()'s callback")
    return frames


def _drawable(params):
    """True when the params are Dense layers plot_architecture can draw neuron by neuron."""
    try:
        dense_layers(params)
    except (TypeError, ValueError):
        return False
    return True


class Frames:
    """One figure laid out for a run, redrawn for each snapshot by `draw(i)`.

    Args:
      model, loss: the trained fnn Layer and its Loss (or loss name).
      dataset: the fnn.data.Dataset it was trained on.
      snapshots: Snapshot(step, epoch, params) per frame (a Snapshots, or a list).
      history: fit()'s history (per-epoch losses and accuracies), or {}.
      dpi: the figure's pixels per inch; resolution: decision-boundary grid points per axis.
      title: the headline's first words (default: the dataset's name).
    """

    def __init__(self, model, loss, dataset, snapshots, history, *, dpi, resolution, title):
        self.model, self.loss, self.ds = model, get_loss(loss), dataset
        self.snaps = _as_snapshots(snapshots)
        self.history = history or {}
        self.kind = frame_kind(dataset)
        self.resolution = check_positive_int("resolution", resolution)
        self.title = title or dataset.name
        has_test = len(dataset.x_test) > 0
        self.x_eval, self.y_eval = ((dataset.x_test, dataset.y_test) if has_test
                                    else (dataset.x_train, dataset.y_train))
        self.eval_name = "test" if has_test else "train"
        self.drawable = _drawable(self.snaps[0].params)
        self._draw_main = {"boundary": self._draw_boundary, "confusion": self._draw_confusion,
                           "fit": self._draw_fit, "scatter": self._draw_scatter}[self.kind]
        self._prepare()
        self._layout(dpi)

    def _prepare(self):
        ds = self.ds
        if self.kind == "boundary":
            x = np.asarray(ds.x_train, np.float64)
            keep = np.linspace(0, len(x) - 1, min(len(x), _MAX_POINTS)).astype(int)
            self.points, self.labels = x[keep], np.asarray(ds.y_train)[keep]
            lo, hi = x.min(axis=0), x.max(axis=0)
            pad = (0.3 if len(x) <= 20 else 0.15) * np.where(hi > lo, hi - lo, 1.0)
            self.limits = ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))
        elif self.kind == "fit":
            keep = np.linspace(0, len(ds.x_train) - 1, min(len(ds.x_train), _MAX_POINTS)).astype(int)
            self.points, self.targets = ds.x_train[keep], ds.y_train[keep]
            y = np.asarray(ds.y_train, np.float64)
            pad = 0.2 * (y.max() - y.min() or 1.0)
            self.ylim = (y.min() - pad, y.max() + pad)
        self.metrics = [self._metrics(s) for s in self.snaps]

    def _state(self, snap):
        """A snapshot's model state for evaluate/predict: its own; the initial state for a stateful
        model's snapshot without one (the parameters before training); None for a stateless model."""
        state = getattr(snap, "model_state", ())
        if jax.tree.leaves(state):
            return state
        if self.model.stateful:
            return init_model_state(self.model, (-1,) + tuple(self.ds.x_train.shape[1:]))
        return None

    def _metrics(self, snap):
        ds, state = self.ds, self._state(snap)
        train = evaluate(self.model, self.loss, snap.params, ds.x_train, ds.y_train, model_state=state)
        test = evaluate(self.model, self.loss, snap.params, self.x_eval, self.y_eval, model_state=state)
        return train, test

    def _layout(self, dpi):
        if self.kind == "confusion":
            self.fig = figure((12, 7.6), dpi=dpi)
            gs = GridSpec(2, 2, figure=self.fig, width_ratios=[1, 1.25], height_ratios=[1, 1],
                          left=0.05, right=0.98, top=0.9, bottom=0.05, wspace=0.2, hspace=0.32)
            self.ax_main = self.fig.add_subplot(gs[0, 0])
            sub = gs[0, 1].subgridspec(2, _SAMPLES // 2, hspace=0.5, wspace=0.1)
            self.ax_samples = [self.fig.add_subplot(sub[i // (_SAMPLES // 2), i % (_SAMPLES // 2)])
                               for i in range(_SAMPLES)]
            self.ax_loss = self.fig.add_subplot(gs[1, 0])
            self.ax_arch = self.fig.add_subplot(gs[1, 1])
        else:
            self.fig = figure((14, 4.8), dpi=dpi)
            gs = GridSpec(1, 3, figure=self.fig, width_ratios=[1, 1, 1.2],
                          left=0.05, right=0.99, top=0.84, bottom=0.12, wspace=0.22)
            self.ax_main = self.fig.add_subplot(gs[0, 0])
            self.ax_samples = []
            self.ax_loss = self.fig.add_subplot(gs[0, 1])
            self.ax_arch = self.fig.add_subplot(gs[0, 2])

    def caption(self, i):
        """'epoch E, step S' of frame i."""
        s = self.snaps[i]
        return f"epoch {s.epoch}, step {s.step}"

    def _headline(self, i):
        (train, test), acc = self.metrics[i], ""
        if test["accuracy"] is not None:
            acc = f", {self.eval_name} accuracy {test['accuracy']:.3f}"
        return (f"{self.title}: {self.caption(i)} — train loss {train['loss']:.4g}, "
                f"{self.eval_name} loss {test['loss']:.4g}{acc}")

    def draw(self, i):
        """Redraw every panel for snapshot i; returns the artists (for FuncAnimation)."""
        params, self.model_state = self.snaps[i].params, self._state(self.snaps[i])
        for ax in [self.ax_main, self.ax_loss, self.ax_arch] + self.ax_samples:
            ax.clear()
        self._draw_main(params)
        if self.history.get("epoch"):
            plot_history(self.history, metrics=("loss",), axes=[self.ax_loss], mark=self.snaps[i].epoch)
            self.ax_loss.set_title("training progress: loss per epoch", fontsize=10)
        else:
            self.ax_loss.text(0.5, 0.5, "no epochs recorded", ha="center", va="center")
            self.ax_loss.set_axis_off()
        if self.drawable:
            plot_architecture(params, model=self.model, ax=self.ax_arch,
                              title="network architecture (this frame's weights)")
        else:                       # convolutions, normalization, residual blocks: one block a layer
            plot_blocks(self.model, (-1,) + tuple(self.ds.x_train.shape[1:]), ax=self.ax_arch,
                        title="network architecture (one block per layer)")
        self.fig.suptitle(self._headline(i), fontsize=12)
        return []

    def _draw_boundary(self, params):
        plot_decision_boundary(self.model, params, self.points, self.labels, ax=self.ax_main,
                               resolution=self.resolution, limits=self.limits, model_state=self.model_state,
                               title="decision boundary over the training points")

    def _draw_confusion(self, params):
        probs = _probabilities(predict(self.model, params, self.x_eval, model_state=self.model_state))
        plot_confusion_matrix(self.y_eval, np.argmax(probs, axis=1),
                              n_classes=probs.shape[1], ax=self.ax_main)
        self.ax_main.set_title(f"{self.eval_name} confusion matrix", fontsize=10)
        n = min(_SAMPLES, len(self.x_eval))
        plot_sample_predictions(self.x_eval[:n], self.y_eval[:n], probs[:n], axes=self.ax_samples)
        for ax in self.ax_samples[n:]:
            ax.set_axis_off()

    def _draw_fit(self, params):
        plot_fit_1d(self.model, params, self.points, self.targets, ax=self.ax_main, model_state=self.model_state,
                    title="the model's curve over the training data")
        self.ax_main.set_ylim(*self.ylim)

    def _draw_scatter(self, params):
        ax = self.ax_main
        y = np.asarray(self.y_eval, np.float64).reshape(-1)
        out = np.asarray(predict(self.model, params, self.x_eval, model_state=self.model_state),
                         np.float64).reshape(-1)
        ax.scatter(y, out, s=8, color=POSITIVE, gid="predictions")
        lo, hi = y.min(), y.max()
        ax.plot([lo, hi], [lo, hi], color="0.4", ls="--", lw=1)
        ax.set_xlabel(f"{self.eval_name} target")
        ax.set_ylabel("prediction")
        ax.set_title("predicted against true targets", fontsize=10)


def frame_figure(model, loss, dataset, snapshots, history, index=-1, *, dpi=100, resolution=150,
                 title=None):
    """One frame of the report as a matplotlib Figure (a still for a README or a paper).

    Args:
      model, loss, dataset, snapshots, history: as for fnn.viz.training_report.
      index: which snapshot (default the last).
      dpi: pixels per inch; resolution: decision-boundary grid points per axis.
      title: the headline's first words (default: the dataset's name).
    Returns:
      the Figure.
    """
    frames = Frames(model, loss, dataset, snapshots, history, dpi=dpi, resolution=resolution,
                    title=title)
    frames.draw(range(len(frames.snaps))[index])
    return frames.fig
