"""An interactive training report: one self-contained HTML file with a slider over training.

Seed 003 promises an interactive view of the network architecture, the
training data, the decision boundary and the training progress. The report
is one page whose frames (fnn.viz.frames) are the network at the moments a
`Snapshots` callback saved during fit() (fnn.viz.snapshots).
matplotlib's FuncAnimation.to_jshtml makes the slider and the play controls;
the frames are PNGs embedded as base64, and the page loads nothing from the
network. `report.html#frame=N` opens frame N.

The page is the template report.html with report.css and report.js, files
beside this module (package data, read with importlib.resources).

    snapshots = Snapshots(params)
    result = fit(model, loss, opt, params, x, y, key=key, epochs=50,
                 chunk_steps=chunk_steps(len(x), 32, epochs=50), callback=snapshots)
    write_report("runs/moons/report.html", model, loss, dataset, snapshots, result.history)
"""
import html
import json
import os
import re
import string
from importlib import resources

import matplotlib
from matplotlib.animation import FuncAnimation

from fnn.errors import InputError, InputTypeError
from fnn.validate import check_number, check_positive_int
from fnn.viz.frames import Frames, frame_figure
from fnn.viz.snapshots import REPORT_FRAMES, Snapshot, Snapshots, chunk_steps

__all__ = ["REPORT_FRAMES", "Snapshot", "Snapshots", "chunk_steps", "frame_figure",
           "training_report", "write_report"]

_EMBED_LIMIT_MB = 200        # matplotlib's cap on the embedded frames (its default is 20 MB)

# The note under the frames: what the main panel of each kind of frame shows.
_PANELS = {
    "boundary": "Left: the regions each class gets and the boundary between them, over the "
                "training points.",
    "confusion": "Top: how the test examples' true classes (rows) were predicted (columns), and a "
                 "few test signals with their predictions (green right, red wrong).",
    "fit": "Left: the model's curve over the training data.",
    "scatter": "Left: predictions against true test targets; the dashed line is perfect.",
}


def _asset(name):
    """The text of a file shipped beside this module (report.html, report.css, report.js)."""
    return resources.files("fnn.viz").joinpath(name).read_text(encoding="utf-8")


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


def _json_in_script(value):
    """JSON text safe inside <script>: no '<' that could close the element."""
    return json.dumps(value).replace("<", "\\u003c")


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
    Returns:
      the page's HTML text.
    """
    if not hasattr(dataset, "task") or not hasattr(dataset, "x_train"):
        raise InputTypeError(f"training_report needs an fnn.data.Dataset, got {type(dataset).__name__}")
    check_number("dpi", dpi, 0, low_open=True)
    check_number("interval", interval, 0, low_open=True)
    resolution = check_positive_int("resolution", resolution)
    title = title or f"fnn training report: {dataset.name}"
    frames = Frames(model, loss, dataset, snapshots, history, dpi=dpi, resolution=resolution,
                    title=dataset.name)
    anim = FuncAnimation(frames.fig, frames.draw, frames=len(frames.snaps), interval=interval,
                         repeat=False, cache_frame_data=False)
    with matplotlib.rc_context({"animation.embed_limit": _EMBED_LIMIT_MB}):
        animation = _offline(anim.to_jshtml(default_mode="once"))
    captions = [frames.caption(i) for i in range(len(frames.snaps))]
    page = string.Template(_asset("report.html"))
    return page.substitute(title=html.escape(title), style=_asset("report.css"),
                           summary=_summary_table(summary), animation=animation,
                           panels=_PANELS[frames.kind], captions=_json_in_script(captions),
                           script=_asset("report.js"))


def write_report(path, model, loss, dataset, snapshots, history, **kwargs):
    """Write training_report(...) to `path` (a file, or a folder to hold report.html).

    Args:
      path: the file to write, or an existing folder (the file is then FOLDER/report.html).
      model, loss, dataset, snapshots, history, **kwargs: as for training_report.
    Returns:
      the path written.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "report.html")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise InputError(f"cannot write the report {path}: folder {folder} does not exist")
    page = training_report(model, loss, dataset, snapshots, history, **kwargs)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path
