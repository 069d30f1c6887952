"""The report's frames: one figure laid out once, its changing artists redrawn for each snapshot.

Each frame shows

    2-D classification   the decision boundary over the training points
    other classification the split's confusion matrix and sample predictions (MNIST-1D)
    1-D regression       the data and the model's curve
    other regression     predicted against true targets

above the loss and accuracy per epoch (train and the report's split), each
layer's gradient norm over training, and the network drawn with the frame's
weights; a network of at most 64 hidden units is drawn a second time with the
frame's gradients (backpropagation's blame on each weight and neuron). Every
axis has the same range in every frame (fnn.viz.framedata.ReportData.ranges).

`Frames.png(i)` draws what all frames share once and, for each frame, only
the artists that change (blitting), then writes a palette PNG.
"""
import io

import numpy as np
from matplotlib.gridspec import GridSpec
from PIL import Image

from fnn.errors import InputError
from fnn.viz.figures import figure
from fnn.viz.framedata import FRAME_KINDS, SAMPLES, ReportData, frame_kind
from fnn.viz.panels import GradientPanel, MainPanel, MetricPanel, NetworkPanel, flat_artists

__all__ = ["FRAME_KINDS", "frame_kind", "Frames", "frame_figure", "encode_png"]

_WIDTH = 13.5                 # inches; at the report's 72 dpi, 972 pixels


def encode_png(rgba):
    """PNG bytes of an (h, w, 4) uint8 image, as at most 256 colours (a quarter of the size of
    full colour for these figures, and alike to the eye)."""
    h, w, _ = rgba.shape
    image = Image.frombytes("RGB", (w, h), np.ascontiguousarray(rgba).tobytes(), "raw", "RGBX")
    image = image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class Frames:
    """The figure of a report's frames, for the frames of `data` (a ReportData).

    Args:
      data: the ReportData whose frames are drawn (at least one).
      ranges: the axis ranges every frame shares (default data.ranges()).
      dpi: pixels per inch.
      title: the headline's first words (default: the dataset's name).
      blit: draw for png(i) (the shared part once); False for a still to save with savefig.
    """

    def __init__(self, data, ranges=None, *, dpi=72, title=None, blit=True):
        if not data.frames:
            raise InputError("the report needs at least one snapshot of the parameters; pass "
                             "Snapshots(params) as fit()'s callback")
        self.data, self.ranges = data, ranges or data.ranges()
        self.title, self.blit, self._background = title or data.ds.name, blit, None
        self.kind = data.kind
        classify = data.frames[0].test["accuracy"] is not None
        self.fig, main_axes, curve_axes, net_axes = self._layout(dpi, classify, data.backward)
        self.main = MainPanel.make(self.kind, main_axes, data, self.ranges)
        self.panels = [self.main, MetricPanel(curve_axes[0], data, self.ranges, "loss")]
        if classify:
            self.panels.append(MetricPanel(curve_axes[1], data, self.ranges, "accuracy"))
        self.panels.append(GradientPanel(curve_axes[-1], data, self.ranges))
        self.panels.append(NetworkPanel(net_axes[0], data, self.ranges))
        if data.backward:
            self.panels.append(NetworkPanel(net_axes[1], data, self.ranges, backward=True))
        self.headline = self.fig.suptitle(" ", fontsize=12)
        if blit:
            for a in self._changing():
                a.set_animated(True)

    def _layout(self, dpi, classify, backward):
        """(figure, main panel's Axes, curve Axes, network Axes)."""
        confusion = self.kind == "confusion"
        fig = figure((_WIDTH, 11.6 if confusion else 8.6), dpi=dpi)
        rows = [1.15, 0.85, 1.0] if confusion else [1.2, 0.8]
        gs = GridSpec(len(rows), 1, figure=fig, height_ratios=rows, left=0.06, right=0.985,
                      top=0.93 if confusion else 0.915, bottom=0.035 if confusion else 0.07,
                      hspace=0.36 if confusion else 0.32)
        curves = gs[1].subgridspec(1, 3 if classify else 2, wspace=0.28)
        curve_axes = [fig.add_subplot(curves[0, k]) for k in range(3 if classify else 2)]
        net_row = gs[2] if confusion else gs[0]
        if confusion:
            top = gs[0].subgridspec(1, 2, width_ratios=[1, 1.5], wspace=0.12)
            main_axes = [fig.add_subplot(top[0, 0])]
            sub = top[0, 1].subgridspec(2, SAMPLES // 2, hspace=0.45, wspace=0.08)
            main_axes += [fig.add_subplot(sub[i // (SAMPLES // 2), i % (SAMPLES // 2)]) for i in range(SAMPLES)]
            nets = net_row.subgridspec(1, 2 if backward else 3, wspace=0.1,
                                       width_ratios=[1, 1] if backward else [0.25, 1, 0.25])
            net_axes = [fig.add_subplot(nets[0, k]) for k in ((0, 1) if backward else (1,))]
        else:
            widths = [1, 1.2, 1.2] if backward else [1, 1.9]
            top = net_row.subgridspec(1, len(widths), width_ratios=widths, wspace=0.12)
            main_axes = [fig.add_subplot(top[0, 0])]
            net_axes = [fig.add_subplot(top[0, k]) for k in range(1, len(widths))]
        return fig, main_axes, curve_axes, net_axes

    def __len__(self):
        return len(self.data.frames)

    def caption(self, i):
        """'epoch E, step S' of frame i."""
        f = self.data.frames[i]
        return f"epoch {f.epoch}, step {f.step}"

    def headline_text(self, i):
        """The frame's headline: its caption, train and split loss, the split's accuracy."""
        f, split = self.data.frames[i], self.data.split
        acc = "" if f.test["accuracy"] is None else f", {split} accuracy {f.test['accuracy']:.3f}"
        return (f"{self.title}: {self.caption(i)} — train loss {f.train['loss']:.4g}, "
                f"{split} loss {f.test['loss']:.4g}{acc}")

    def _changing(self):
        return flat_artists([a for p in self.panels for a in p.artists] + [self.headline])

    def draw(self, i):
        """Set every panel to frame i (a still is then drawn by savefig)."""
        for p in self.panels:
            p.update(i)
        self.headline.set_text(self.headline_text(i))
        if not self.blit:
            return
        for a in self._changing():
            a.set_animated(True)

    def png(self, i):
        """Frame i as PNG bytes: the shared background, then the frame's changing artists."""
        if not self.blit:
            raise InputError("Frames(blit=False) draws stills for savefig; png() needs blit=True")
        canvas = self.fig.canvas
        if self._background is None:
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
        canvas.restore_region(self._background)
        self.draw(i)
        renderer = canvas.get_renderer()
        for a in self._changing():
            a.draw(renderer)
        return encode_png(np.asarray(canvas.buffer_rgba()))


def frame_figure(model, loss, dataset, snapshots, history, index=-1, *, dpi=100, resolution=150,
                 title=None, split="test"):
    """One frame of the report as a matplotlib Figure (a still for a README or a paper).

    Args:
      model, loss, dataset, snapshots, history: as for fnn.viz.training_report.
      index: which snapshot (default the last).
      dpi: pixels per inch; resolution: decision-boundary grid points per axis.
      title: the headline's first words (default: the dataset's name).
      split: the name of the dataset's test split (the history's val_* entries).
    Returns:
      the Figure.
    """
    data = ReportData(model, loss, dataset, split=split, resolution=resolution).extend(snapshots, history)
    frames = Frames(data, dpi=dpi, title=title, blit=False)
    frames.draw(range(len(frames))[index])
    return frames.fig
