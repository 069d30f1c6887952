"""The report's page: the HTML template around the frames, their records, and writing files.

    report_page(title, summary, data, records, live=...)   the page's HTML text
    frame_record(frames, i, src)     what the page knows of frame i (caption, metrics, norms)
    render_frames(frames, indices)   PNG bytes of the frames, with an optional progress bar
    write_text(path, text)           an atomic write (a temporary beside the file, renamed)

The template is report.html with report.css and report.js, files beside this
module (package data, read with importlib.resources).
"""
import base64
import html
import json
import math
import os
import string
import sys
from importlib import resources

from fnn.atomic_file import write_atomically
from fnn.errors import InputError
from fnn.validate import check_number, check_positive_int

__all__ = ["report_page", "page_data", "frame_record", "render_frames", "report_path", "write_text",
           "write_bytes", "json_for_script", "data_uri", "check_options"]

# The note under the frames: what the main panel of each kind of frame shows.
_PANELS = {
    "boundary": "Top left: the regions each class gets and the boundary between them, over the "
                "training points.",
    "confusion": "Top: how the {split} examples' true classes (rows) were predicted (columns), and a "
                 "few {split} signals with their predictions (green right, red wrong).",
    "fit": "Top left: the model's curve over the training data.",
    "scatter": "Top left: predictions against true {split} targets; the dashed line is perfect.",
}
_REST = ("With it, the network with the frame's weights, and a small network a second time with "
         "its gradients: the blame backpropagation assigns to each weight and neuron. Below: loss "
         "and accuracy per epoch (train, and {split}) and each layer's gradient norm on a fixed "
         "batch of training examples (hand-written backprop; a curve falling towards 0 is a "
         "vanishing gradient), the frame's epoch dotted and the epochs after it veiled. Every "
         "frame has the same axes.")


def _asset(name):
    """The text of a file shipped beside this module (report.html, report.css, report.js)."""
    return resources.files("fnn.viz").joinpath(name).read_text(encoding="utf-8")


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _summary_table(summary):
    if not summary:
        return ""
    rows = "".join(f"<div><dt>{html.escape(str(k))}</dt><dd>{html.escape(_fmt(v))}</dd></div>"
                   for k, v in summary.items())
    return f'<dl class="summary">{rows}</dl>'


def _finite(v):
    """v for JSON: None for NaN and infinities (JSON has no such numbers)."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def json_for_script(value):
    """JSON text safe inside <script>: no '<' that could close the element."""
    return json.dumps(_finite(value)).replace("<", "\\u003c")


def frame_record(frames, i, src, curves):
    """What the page knows of frame i besides its picture: caption, step, epoch, metrics, norms,
    and where its epoch goes on the curves' picture (Curves.marks)."""
    f = frames.data.frames[i]
    return {"src": src, "caption": frames.caption(i), "step": f.step, "epoch": f.epoch,
            "train": f.train, "test": f.test, "grad_norms": list(f.grad_norms), "marks": curves.marks(i)}


def curve_record(curves, src):
    """The curves' picture for the page: its src and its size in pixels (after Curves.png)."""
    width, height = curves.size
    return {"src": src, "width": width, "height": height}


def page_data(data, records, *, live, interval, poll_ms=1000, curves=None):
    """The JSON object the page reads: the frames (pictures and numbers) and how to show them."""
    return {"live": live, "poll_ms": poll_ms, "interval": interval, "split": data.split,
            "kind": data.kind, "layers": data.layer_labels if data.frames else [], "frames": records,
            "curves": curves, "ranges": data.ranges(final=not live) if data.frames else None}


def report_page(title, summary, data, records, *, live, interval, poll_ms=1000, curves=None):
    """The page's HTML around the frames' records (src: a data: URI, or a file beside the page)."""
    page = string.Template(_asset("report.html"))
    notes = (_PANELS[data.kind] + " " + _REST).format(split=data.split)
    return page.substitute(title=html.escape(title), style=_asset("report.css"),
                           summary=_summary_table(summary), panels=html.escape(notes),
                           data=json_for_script(page_data(data, records, live=live, interval=interval,
                                                          poll_ms=poll_ms, curves=curves)),
                           script=_asset("report.js"))


def data_uri(png):
    """A PNG's bytes as a data: URI for an <img> (the self-contained page)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def check_options(dpi, interval, resolution):
    """The report's drawing options checked; returns the resolution as an int."""
    check_number("dpi", dpi, 0, low_open=True)
    check_number("interval", interval, 0, low_open=True)
    return check_positive_int("resolution", resolution)


def render_frames(frames, indices, *, progress=False, what="drawing the report's frames"):
    """PNG bytes of frames[i] for each i in `indices`, with a progress bar on stderr when `progress`."""
    from tqdm.auto import tqdm
    out = {}
    with tqdm(total=len(indices), desc=what, unit="frame", disable=not progress, leave=False,
              file=sys.stderr) as bar:
        for i in indices:
            out[i] = frames.png(i)
            bar.update(1)
    return out


def report_path(path):
    """The file a report goes to: `path`, or FOLDER/report.html when `path` is a folder; the
    folder must exist."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "report.html")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise InputError(f"cannot write the report {path}: folder {folder} does not exist")
    return path


def write_text(path, text):
    """Write `text` to `path` atomically (a temporary beside it, renamed over it); InputError on failure."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path, data):
    """Write bytes to `path` atomically; InputError naming the path on failure."""
    write_atomically(path, lambda f: f.write(data), InputError, "report file")
