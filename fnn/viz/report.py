"""An interactive training report: one self-contained HTML file with a slider over training.

Seed 003 promises an interactive view of the network architecture, the
training data, the decision boundary and the training progress. The report
is one page whose frames (fnn.viz.frames) are the network at the moments a
`Snapshots` callback saved during fit() (fnn.viz.snapshots): the model's
predictions, the loss and accuracy curves, each layer's gradient norm, and
the network with the frame's weights (and, when small, its gradients). The
frames are palette PNGs embedded in the page, which loads nothing from the
network; its slider, buttons and arrow keys step through them, and
`report.html#frame=N` opens frame N.

While training runs, a LiveReport (fnn.viz.live) keeps a page beside the run
that shows the frames written so far and reloads them as new ones arrive.

The page is the template report.html with report.css and report.js (fnn.viz.page).

    snapshots = Snapshots(params)
    result = fit(model, loss, opt, params, x, y, key=key, epochs=50,
                 validation_data=(ds.x_test, ds.y_test),
                 chunk_steps=chunk_steps(len(x), 32, epochs=50), callback=snapshots)
    write_report("runs/moons/report.html", model, loss, dataset, snapshots, result.history)
"""
from fnn.viz.framedata import ReportData, gradient_norms
from fnn.viz.frames import Curves, Frames, frame_figure
from fnn.viz.live import LiveReport
from fnn.viz.page import (check_options, curve_record, data_uri, frame_record, render_frames, report_page,
                          report_path, write_text)
from fnn.viz.snapshots import REPORT_FRAMES, Snapshot, Snapshots, chunk_steps

__all__ = ["REPORT_FRAMES", "Snapshot", "Snapshots", "chunk_steps", "frame_figure", "gradient_norms",
           "training_report", "write_report", "LiveReport"]


def training_report(model, loss, dataset, snapshots, history, *, title=None, summary=None, split="test",
                    dpi=72, resolution=100, interval=400, progress=False):
    """The report as a string of HTML: one self-contained page, frames embedded as PNGs.

    Args:
      model, loss: the trained fnn Layer and its Loss (or loss name).
      dataset: the fnn.data.Dataset it was trained on (the inputs the model saw).
      snapshots: a Snapshots, or a list of Snapshot(step, epoch, params), one per frame.
      history: fit()'s history (per-epoch losses and accuracies).
      title: the page's heading (default: the dataset's name).
      summary: a dict shown as a table above the frames (settings, final metrics).
      split: the name of the dataset's test split, which fit() was given as validation_data
        (the history's val_* curves): the legends and the headlines call it so.
      dpi: pixels per inch of the frames; resolution: decision-boundary grid points per axis.
      interval: milliseconds per frame when playing.
      progress: show a progress bar on stderr while the frames are drawn.
    Returns:
      the page's HTML text.
    """
    resolution = check_options(dpi, interval, resolution)
    data = ReportData(model, loss, dataset, split=split, resolution=resolution).extend(snapshots, history)
    ranges = data.ranges(final=True)
    frames = Frames(data, ranges, dpi=dpi, title=dataset.name, curves=False)
    pngs = render_frames(frames, range(len(frames)), progress=progress)
    curves = Curves(data, ranges, dpi=dpi)
    records = [frame_record(frames, i, data_uri(pngs[i]), curves) for i in range(len(frames))]
    return report_page(title or f"fnn training report: {dataset.name}", summary, data, records,
                       live=False, interval=interval, curves=curve_record(curves, data_uri(curves.png())))


def write_report(path, model, loss, dataset, snapshots, history, **kwargs):
    """Write training_report(...) to `path` (a file, or a folder to hold report.html), atomically.

    Args:
      path: the file to write, or an existing folder (the file is then FOLDER/report.html).
      model, loss, dataset, snapshots, history, **kwargs: as for training_report.
    Returns:
      the path written.
    """
    path = report_path(path)
    write_text(path, training_report(model, loss, dataset, snapshots, history, **kwargs))
    return path
