"""fnn.viz: pictures of networks, gradients and training (matplotlib, no display needed).

`import fnn` does not import this package (or matplotlib); `fnn.viz` loads it
on first use. Modules, one job each:

    figures       figure(), save_figure(), the colours, helpers the plots share
    plots         activations, training history, loss curve/surface with descent paths,
                  gradient agreement
    predictions   decision boundary, 1-D fit, confusion matrix, sample predictions
    architecture  plot_architecture: neurons in columns, weights by sign and size;
                  plot_backward: the same columns coloured by the gradient (the backward pass)
    blocks        plot_blocks: any network (convolutions, residual blocks) as one block per layer
    scales        axis ranges fixed over a report's frames, readable log-axis ticks
    snapshots     Snapshots (the fit() callback that saves frames) and chunk_steps
    framedata     the numbers of each frame (metrics, outputs, per-layer gradient norms)
    panels        the panels of a frame, drawn once and restyled per frame (textgrid: fast labels)
    frames        the report's frames: one figure, only its changing artists redrawn per frame
    page          the HTML page around the frames (template report.html, report.css, report.js)
    report        training_report / write_report: the self-contained HTML page
    live          LiveReport: the report written while training runs, viewable as it grows

The seeds' figures (examples/seed_figures.py) and the computational-graph
drawing (examples/graph_plot.py) are course material built on this package.
"""
from fnn.viz import architecture
from fnn.viz import blocks
from fnn.viz import figures
from fnn.viz import framedata
from fnn.viz import frames
from fnn.viz import live
from fnn.viz import plots
from fnn.viz import predictions
from fnn.viz import report
from fnn.viz import scales
from fnn.viz import snapshots
from fnn.viz.architecture import plot_architecture
from fnn.viz.architecture import plot_backward
from fnn.viz.blocks import plot_blocks
from fnn.viz.figures import CLASS_COLORS
from fnn.viz.figures import NEGATIVE
from fnn.viz.figures import POSITIVE
from fnn.viz.figures import figure
from fnn.viz.figures import save_figure
from fnn.viz.framedata import gradient_norms
from fnn.viz.frames import frame_figure
from fnn.viz.live import LiveReport
from fnn.viz.plots import ACTIVATION_MENU
from fnn.viz.plots import descent_path
from fnn.viz.plots import plot_activations
from fnn.viz.plots import plot_gradient_agreement
from fnn.viz.plots import plot_history
from fnn.viz.plots import plot_loss_1d
from fnn.viz.plots import plot_loss_surface
from fnn.viz.predictions import confusion_counts
from fnn.viz.predictions import plot_confusion_matrix
from fnn.viz.predictions import plot_decision_boundary
from fnn.viz.predictions import plot_fit_1d
from fnn.viz.predictions import plot_sample_predictions
from fnn.viz.predictions import region_of
from fnn.viz.report import training_report
from fnn.viz.report import write_report
from fnn.viz.snapshots import REPORT_FRAMES
from fnn.viz.snapshots import Snapshot
from fnn.viz.snapshots import Snapshots
from fnn.viz.snapshots import chunk_steps

__all__ = [
    "ACTIVATION_MENU",
    "CLASS_COLORS",
    "LiveReport",
    "NEGATIVE",
    "POSITIVE",
    "REPORT_FRAMES",
    "Snapshot",
    "Snapshots",
    "architecture",
    "blocks",
    "chunk_steps",
    "confusion_counts",
    "descent_path",
    "figure",
    "figures",
    "frame_figure",
    "framedata",
    "frames",
    "gradient_norms",
    "live",
    "plot_activations",
    "plot_architecture",
    "plot_backward",
    "plot_blocks",
    "plot_confusion_matrix",
    "plot_decision_boundary",
    "plot_fit_1d",
    "plot_gradient_agreement",
    "plot_history",
    "plot_loss_1d",
    "plot_loss_surface",
    "plot_sample_predictions",
    "plots",
    "predictions",
    "region_of",
    "report",
    "save_figure",
    "scales",
    "snapshots",
    "training_report",
    "write_report",
]
