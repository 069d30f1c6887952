"""An interactive training report: one self-contained HTML file with a slider over training.

Seed 003 promises an interactive view of the network architecture, the
training data, the decision boundary and the training progress. The report
shows, for each saved moment of training (a frame):

    2-D classification   the decision boundary over the training points
    other classification the test confusion matrix and sample predictions (MNIST-1D)
    1-D regression       the data and the model's curve
    other regression     predicted against true targets

beside the loss curves (with the frame's epoch marked) and the architecture
drawn with that frame's weights. matplotlib's FuncAnimation.to_jshtml makes
the slider and the play controls; the frames are PNGs embedded as base64, and
the page loads nothing from the network. `report.html#frame=N` opens frame N.

Parameters are captured during fit() by a `Snapshots` callback; `chunk_steps`
picks fit()'s chunk size so that the callback runs about `frames` times:

    snapshots = Snapshots(params)
    result = fit(model, loss, opt, params, x, y, key=key, epochs=50,
                 chunk_steps=chunk_steps(len(x), 32, epochs=50), callback=snapshots)
    write_report("runs/moons/report.html", model, loss, dataset, snapshots, result.history)
"""
import html
import json
import math
import os
import re
from typing import Any, Callable, NamedTuple, Optional

import jax
import matplotlib
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.gridspec import GridSpec

from fnn import plotting
from fnn.losses import get_loss
from fnn.train import evaluate, predict

__all__ = ["REPORT_FRAMES", "Snapshot", "Snapshots", "chunk_steps", "frame_figure",
           "training_report", "write_report"]

REPORT_FRAMES = 30           # about how many frames a report's run is cut into
_EMBED_LIMIT_MB = 200        # matplotlib's cap on the embedded frames (its default is 20 MB)
_MAX_POINTS = 600            # training points drawn under a decision boundary
_SAMPLES = 8                 # sample predictions shown for classification without 2-D inputs


class Snapshot(NamedTuple):
    """The parameters (host NumPy arrays) after `step` steps, `epoch` whole epochs."""
    step: int
    epoch: int
    params: Any


def _host_copy(params):
    return jax.tree.map(lambda a: np.array(a, copy=True), params)


class Snapshots:
    """A fit() callback that keeps a copy of the parameters each time it is called.

    fit() calls its callback after every compiled chunk (see `chunk_steps`).

    Args:
      start: the parameters before training (recorded as frame 0), or the
        TrainState a run resumes from; None to record only during training.
      history: the history being resumed, for the starting epoch.
      then: another callback to call afterwards, e.g. one that writes a checkpoint.
    """

    def __init__(self, start=None, *, history=None, then: Optional[Callable] = None):
        self.frames = []
        self.then = then
        if start is not None:
            if hasattr(start, "params") and hasattr(start, "step"):       # a TrainState
                epoch = len((history or {}).get("epoch") or [])
                self.add(start.params, int(start.step), epoch)
            else:
                self.add(start, 0, 0)

    def add(self, params, step, epoch):
        """Record `params` as the frame for `step` and `epoch`."""
        self.frames.append(Snapshot(int(step), int(epoch), _host_copy(params)))

    def __call__(self, state, history):
        epochs = history.get("epoch") or [0]
        self.add(state.params, int(state.step), epochs[-1])
        if self.then is not None:
            self.then(state, history)

    def __len__(self):
        return len(self.frames)

    def __iter__(self):
        return iter(self.frames)

    def __getitem__(self, i):
        return self.frames[i]


def chunk_steps(n_train, batch_size, *, epochs=None, steps=None, frames=REPORT_FRAMES):
    """fit()'s chunk_steps for about `frames` snapshots: a whole number of epochs per chunk.

    With E = ⌈total steps / steps per epoch⌉ epochs in the run, each chunk is
    ⌈E / frames⌉ epochs, so fit() calls its callback at most `frames` times.
    Snapshots are taken at chunk ends, so a run shorter than `frames` epochs
    gets one frame per epoch.

    Args:
      n_train: the number of training examples; batch_size: fit()'s batch size.
      epochs / steps: the run's length, as given to fit() (exactly one).
      frames: about how many frames to capture.
    """
    for name, value in (("n_train", n_train), ("batch_size", batch_size), ("frames", frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"chunk_steps: {name} must be a positive int, got {value!r}")
    if batch_size > n_train:
        raise ValueError(f"chunk_steps: batch_size {batch_size} is larger than the {n_train} examples")
    if (epochs is None) == (steps is None):
        raise ValueError(f"chunk_steps needs exactly one of epochs or steps, got epochs={epochs!r}, "
                         f"steps={steps!r}")
    length = epochs if epochs is not None else steps
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"chunk_steps: {'epochs' if epochs is not None else 'steps'} must be a "
                         f"positive int, got {length!r}")
    per_epoch = n_train // batch_size
    total_epochs = epochs if epochs is not None else math.ceil(steps / per_epoch)
    return math.ceil(total_epochs / frames) * per_epoch


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------

def _kind(dataset):
    classify = dataset.task in ("classification", "binary")
    if classify:
        return "boundary" if dataset.in_features == 2 else "confusion"
    return "fit" if dataset.in_features == 1 and dataset.out_features == 1 else "scatter"


def _probabilities(out):
    """Class probabilities (n, K) from logits: softmax, or [1 − σ(z), σ(z)] for one logit."""
    out = np.asarray(out, np.float64)
    if out.ndim == 1 or out.shape[1] == 1:
        p = 0.5 * (1 + np.tanh(0.5 * out.reshape(-1)))
        return np.stack([1 - p, p], axis=1)
    e = np.exp(out - out.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _as_snapshots(snapshots):
    frames = [s if isinstance(s, Snapshot) else Snapshot(*s) for s in snapshots]
    if not frames:
        raise ValueError("the report needs at least one snapshot of the parameters; pass "
                         "Snapshots(params) as fit()'s callback")
    return frames


class _Frames:
    """Lays out one figure and redraws it for each snapshot."""

    def __init__(self, model, loss, dataset, snapshots, history, *, dpi, resolution, title):
        self.model, self.loss, self.ds = model, get_loss(loss), dataset
        self.snaps = _as_snapshots(snapshots)
        self.history = history or {}
        self.kind = _kind(dataset)
        self.resolution = resolution
        self.title = title or dataset.name
        has_test = len(dataset.x_test) > 0
        self.x_eval, self.y_eval = ((dataset.x_test, dataset.y_test) if has_test
                                    else (dataset.x_train, dataset.y_train))
        self.eval_name = "test" if has_test else "train"
        try:
            plotting._dense_layers(self.snaps[0].params)
            self.drawable = True
        except (TypeError, ValueError):
            self.drawable = False
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
        self.metrics = [self._metrics(s.params) for s in self.snaps]

    def _metrics(self, params):
        ds = self.ds
        train = evaluate(self.model, self.loss, params, ds.x_train, ds.y_train)
        test = evaluate(self.model, self.loss, params, self.x_eval, self.y_eval)
        return train, test

    def _layout(self, dpi):
        if self.kind == "confusion":
            self.fig = plotting.figure((12, 7.6), dpi=dpi)
            gs = GridSpec(2, 2, figure=self.fig, width_ratios=[1, 1.25], height_ratios=[1, 1],
                          left=0.05, right=0.98, top=0.9, bottom=0.05, wspace=0.2, hspace=0.32)
            self.ax_main = self.fig.add_subplot(gs[0, 0])
            sub = gs[0, 1].subgridspec(2, _SAMPLES // 2, hspace=0.5, wspace=0.1)
            self.ax_samples = [self.fig.add_subplot(sub[i // (_SAMPLES // 2), i % (_SAMPLES // 2)])
                               for i in range(_SAMPLES)]
            self.ax_loss = self.fig.add_subplot(gs[1, 0])
            self.ax_arch = self.fig.add_subplot(gs[1, 1])
        else:
            self.fig = plotting.figure((14, 4.8), dpi=dpi)
            gs = GridSpec(1, 3, figure=self.fig, width_ratios=[1, 1, 1.2],
                          left=0.05, right=0.99, top=0.84, bottom=0.12, wspace=0.22)
            self.ax_main = self.fig.add_subplot(gs[0, 0])
            self.ax_samples = []
            self.ax_loss = self.fig.add_subplot(gs[0, 1])
            self.ax_arch = self.fig.add_subplot(gs[0, 2])

    def caption(self, i):
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
        params = self.snaps[i].params
        for ax in [self.ax_main, self.ax_loss, self.ax_arch] + self.ax_samples:
            ax.clear()
        getattr(self, f"_draw_{self.kind}")(params)
        if self.history.get("epoch"):
            plotting.plot_history(self.history, metrics=("loss",), axes=[self.ax_loss],
                                  mark=self.snaps[i].epoch)
            self.ax_loss.set_title("training progress: loss per epoch", fontsize=10)
        else:
            self.ax_loss.text(0.5, 0.5, "no epochs recorded", ha="center", va="center")
            self.ax_loss.set_axis_off()
        if self.drawable:
            plotting.plot_architecture(params, model=self.model, ax=self.ax_arch,
                                       title="network architecture (this frame's weights)")
        else:
            self.ax_arch.text(0.5, 0.5, self.model.name, ha="center", va="center", wrap=True, fontsize=8)
            self.ax_arch.set_axis_off()
        self.fig.suptitle(self._headline(i), fontsize=12)
        return []

    def _draw_boundary(self, params):
        plotting.plot_decision_boundary(self.model, params, self.points, self.labels, ax=self.ax_main,
                                        resolution=self.resolution, limits=self.limits,
                                        title="decision boundary over the training points")

    def _draw_confusion(self, params):
        probs = _probabilities(predict(self.model, params, self.x_eval))
        plotting.plot_confusion_matrix(self.y_eval, np.argmax(probs, axis=1),
                                       n_classes=probs.shape[1], ax=self.ax_main)
        self.ax_main.set_title(f"{self.eval_name} confusion matrix", fontsize=10)
        n = min(_SAMPLES, len(self.x_eval))
        plotting.plot_sample_predictions(self.x_eval[:n], self.y_eval[:n], probs[:n], axes=self.ax_samples)
        for ax in self.ax_samples[n:]:
            ax.set_axis_off()

    def _draw_fit(self, params):
        plotting.plot_fit_1d(self.model, params, self.points, self.targets, ax=self.ax_main,
                             title="the model's curve over the training data")
        self.ax_main.set_ylim(*self.ylim)

    def _draw_scatter(self, params):
        ax = self.ax_main
        y = np.asarray(self.y_eval, np.float64).reshape(-1)
        out = np.asarray(predict(self.model, params, self.x_eval), np.float64).reshape(-1)
        ax.scatter(y, out, s=8, color=plotting.POSITIVE, gid="predictions")
        lo, hi = y.min(), y.max()
        ax.plot([lo, hi], [lo, hi], color="0.4", ls="--", lw=1)
        ax.set_xlabel(f"{self.eval_name} target")
        ax.set_ylabel("prediction")
        ax.set_title("predicted against true targets", fontsize=10)


def frame_figure(model, loss, dataset, snapshots, history, index=-1, *, dpi=100, resolution=150,
                 title=None):
    """One frame of the report as a matplotlib Figure (a still for a README or a paper)."""
    frames = _Frames(model, loss, dataset, snapshots, history, dpi=dpi, resolution=resolution,
                     title=title)
    frames.draw(range(len(frames.snaps))[index])
    return frames.fig


# ---------------------------------------------------------------------------
# The HTML page
# ---------------------------------------------------------------------------

# FuncAnimation.to_jshtml's buttons use Font Awesome icons from a CDN; the page
# draws them with plain characters instead, so it needs no network.
_ICONS = {"minus": "\\2212", "fast-backward": "\\21E4", "step-backward": "\\2039",
          "play": "\\25B6", "pause": "\\275A\\275A", "step-forward": "\\203A",
          "fast-forward": "\\21E5", "plus": "+"}

_STYLE = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
dl.summary { columns: 3 16em; font-size: 0.85em; margin: 0.6em 0 1em 0; max-width: 70em; }
dl.summary div { break-inside: avoid; padding: 1px 0; }
dl.summary dt { display: inline; color: #666; }
dl.summary dd { display: inline; margin: 0 0 0 0.5em; }
#fnn-report .animation { display: block; text-align: left; }
#fnn-report img { max-width: 100%; height: auto; border: 1px solid #ddd; }
#fnn-report input[type=range].anim-slider { width: 60%; min-width: 300px; }
#fnn-report .anim-buttons button { width: 40px; height: 28px; font-size: 15px; }
#fnn-report i.fa { font-style: normal; }
#fnn-report .fa-flip-horizontal { display: inline-block; transform: scaleX(-1); }
#fnn-caption { font-weight: bold; margin: 0.4em 0; }
p.note { color: #666; font-size: 0.85em; max-width: 60em; }
""" + "".join(f"#fnn-report .fa-{name}::before {{ content: \"{glyph}\"; }}\n"
             for name, glyph in _ICONS.items())

# Finds the animation that to_jshtml made, keeps a caption and data-frame in step with it,
# opens the frame named in the address (report.html#frame=N) and steps with the arrow keys.
_SCRIPT = """
(function () {
  var captions = %s;
  var root = document.getElementById("fnn-report");
  function animation() {
    var slider = root.querySelector("input.anim-slider");
    return slider ? window["anim" + slider.id.replace("_anim_slider", "")] : undefined;
  }
  function show(frame) {
    root.setAttribute("data-frame", frame);
    document.getElementById("fnn-caption").textContent =
      "frame " + frame + " of " + (captions.length - 1) + ": " + captions[frame];
  }
  function fromAddress() {
    var m = /frame=(\\d+)/.exec(window.location.hash);
    if (!m) return;
    var slider = root.querySelector("input.anim-slider");
    slider.value = Math.min(parseInt(m[1], 10), captions.length - 1);
    slider.dispatchEvent(new Event("input"));          // as if the user dragged it
  }
  function start() {
    var anim = animation();
    if (!anim) { setTimeout(start, 10); return; }
    var setFrame = anim.set_frame;
    anim.set_frame = function (frame) { setFrame.call(anim, frame); show(anim.current_frame); };
    show(anim.current_frame);
    fromAddress();
    window.addEventListener("hashchange", fromAddress);
    document.addEventListener("keydown", function (e) {
      if (e.key === "ArrowRight") anim.next_frame();
      if (e.key === "ArrowLeft") anim.previous_frame();
    });
  }
  window.addEventListener("load", start);
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
{summary}
<div id="fnn-caption"></div>
<div id="fnn-report" data-frame="0">
{animation}
</div>
<p class="note">Each frame is the network after the given epoch: drag the slider, press play, or use the
arrow keys. A link to <code>report.html#frame=N</code> opens frame N. {panels}</p>
<script>{script}</script>
</body>
</html>
"""

_PANELS = {
    "boundary": "Left: the regions each class gets and the boundary between them, over the "
                "training points.",
    "confusion": "Top: how the test examples' true classes (rows) were predicted (columns), and a "
                 "few test signals with their predictions (green right, red wrong).",
    "fit": "Left: the model's curve over the training data.",
    "scatter": "Left: predictions against true test targets; the dashed line is perfect.",
}


def _offline(page):
    """to_jshtml's page without references to the network (its icon stylesheet)."""
    page = re.sub(r"<link[^>]*href=[\"']?https?:[^>]*>", "", page)
    if re.search(r"(src|href)\s*=\s*[\"']?https?:", page):
        raise RuntimeError("matplotlib's animation HTML refers to a network address the report "
                           "cannot inline; the report would not be self-contained")
    return page


def _summary_table(summary):
    if not summary:
        return ""
    rows = "".join(f"<div><dt>{html.escape(str(k))}</dt><dd>{html.escape(_fmt(v))}</dd></div>"
                   for k, v in summary.items())
    return f'<dl class="summary">{rows}</dl>'


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def training_report(model, loss, dataset, snapshots, history, *, title=None, summary=None,
                    dpi=72, resolution=100, interval=400):
    """The report as a string of HTML: one self-contained page, frames embedded as PNGs.

    Args:
      model, loss: the trained fnn Layer and its Loss (or loss name).
      dataset: the fnn.data.Dataset it was trained on (the inputs the model saw).
      snapshots: a Snapshots, or a list of Snapshot(step, epoch, params), one per frame.
      history: fit()'s history (per-epoch losses and accuracies).
      title: the page's heading (default: the dataset's name).
      summary: a dict shown as a table above the frames (settings, final metrics).
      dpi: pixels per inch of the frames; resolution: decision-boundary grid points per axis.
      interval: milliseconds per frame when playing.
    """
    if not hasattr(dataset, "task") or not hasattr(dataset, "x_train"):
        raise TypeError(f"training_report needs an fnn.data.Dataset, got {type(dataset).__name__}")
    title = title or f"fnn training report: {dataset.name}"
    frames = _Frames(model, loss, dataset, snapshots, history, dpi=dpi, resolution=resolution,
                     title=dataset.name)
    anim = FuncAnimation(frames.fig, frames.draw, frames=len(frames.snaps), interval=interval,
                         repeat=False, cache_frame_data=False)
    with matplotlib.rc_context({"animation.embed_limit": _EMBED_LIMIT_MB}):
        animation = _offline(anim.to_jshtml(default_mode="once"))
    captions = [frames.caption(i) for i in range(len(frames.snaps))]
    return _PAGE.format(title=html.escape(title), style=_STYLE, summary=_summary_table(summary),
                        animation=animation, panels=_PANELS[frames.kind],
                        script=_SCRIPT % json.dumps(captions))


def write_report(path, model, loss, dataset, snapshots, history, **kwargs):
    """Write training_report(...) to `path` (a file, or a folder to hold report.html); returns the path."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "report.html")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write the report {path}: folder {folder} does not exist")
    page = training_report(model, loss, dataset, snapshots, history, **kwargs)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path
