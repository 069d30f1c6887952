"""The report's frames: one figure laid out once, its changing artists redrawn for each snapshot.

Each frame shows

    2-D classification   the decision boundary over the training points
    other classification the split's confusion matrix and sample predictions (MNIST-1D)
    1-D regression       the data and the model's curve
    other regression     predicted against true targets

beside the network drawn with the frame's weights (a network of at most 64
hidden units a second time with the frame's gradients: backpropagation's blame
on each weight and neuron), above the loss and accuracy per epoch (train and
the report's split) and each layer's gradient norm over training. Every axis
has the same range in every frame (fnn.viz.framedata.ReportData.ranges).

`Frames.png(i)` draws what all frames share once and, for each frame, only
the artists that change (blitting), then writes a palette PNG. The report's
page shows the curves as one picture for all frames (`Curves`: the same axes
and lines in every frame) on which it marks the frame's epoch, so a frame's
picture never depends on epochs still to come; `frame_figure` draws a whole
frame, curves included, as one Figure.
"""
import io

import numpy as np
from matplotlib.gridspec import GridSpec
from PIL import Image

from fnn.errors import InputError
from fnn.viz.figures import figure
from fnn.viz.framedata import FRAME_KINDS, SAMPLES, ReportData, frame_kind
from fnn.viz.panels import GradientPanel, MainPanel, MetricPanel, NetworkPanel, flat_artists

__all__ = ["FRAME_KINDS", "frame_kind", "Frames", "Curves", "frame_figure", "encode_png"]

_WIDTH, _LEFT, _RIGHT = 13.5, 0.8, 0.2       # inches; at the report's 72 dpi, 972 pixels wide
_HEADLINE = 0.5
# Each row: (its Axes' height, room above it for titles and legends, room below for labels), inches.
_ROWS = {"data": (3.4, 0.4, 0.55), "network": (3.4, 0.35, 0.1), "curves": (2.3, 0.55, 0.55)}


def encode_png(rgba):
    """PNG bytes of an (h, w, 4) uint8 image, as at most 256 colours (a quarter of the size of
    full colour for these figures, and alike to the eye)."""
    h, w, _ = rgba.shape
    image = Image.frombytes("RGB", (w, h), np.ascontiguousarray(rgba).tobytes(), "raw", "RGBX")
    image = image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _rows(names, dpi, headline):
    """A figure with one full-width GridSpec cell per named row, top to bottom (sizes in _ROWS)."""
    height = (_HEADLINE if headline else 0.1) + sum(sum(_ROWS[n]) for n in names)
    fig, top, cells = figure((_WIDTH, height), dpi=dpi), height - (_HEADLINE if headline else 0.1), {}
    for name in names:
        axes_h, above, below = _ROWS[name]
        top -= above
        cells[name] = GridSpec(1, 1, figure=fig, left=_LEFT / _WIDTH, right=1 - _RIGHT / _WIDTH,
                               top=top / height, bottom=(top - axes_h) / height)[0]
        top -= axes_h + below
    return fig, cells


def _curve_axes(fig, cell, classify):
    row = cell.subgridspec(1, 3 if classify else 2, wspace=0.28)
    return [fig.add_subplot(row[0, k]) for k in range(3 if classify else 2)]


def _curve_panels(axes, data, ranges):
    panels = [MetricPanel(axes[0], data, ranges, "loss")]
    if len(axes) == 3:
        panels.append(MetricPanel(axes[1], data, ranges, "accuracy"))
    return panels + [GradientPanel(axes[-1], data, ranges)]


class _Blitted:
    """A figure whose `changing` artists are drawn over a background drawn once."""

    def _blit(self):
        canvas = self.fig.canvas
        if self._background is None:
            for a in self.changing():
                a.set_animated(True)
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
        canvas.restore_region(self._background)

    def _encode(self):
        renderer = self.fig.canvas.get_renderer()
        for a in self.changing():
            a.set_animated(True)          # artists made for this frame (contours) too
            a.draw(renderer)
        pixels = np.asarray(self.fig.canvas.buffer_rgba())
        self.size = pixels.shape[1], pixels.shape[0]          # (width, height) of the PNG
        return encode_png(pixels)


class Frames(_Blitted):
    """The figure of a report's frames, for the frames of `data` (a ReportData).

    Args:
      data: the ReportData whose frames are drawn (at least one).
      ranges: the axis ranges every frame shares (default data.ranges()).
      dpi: pixels per inch.
      title: the headline's first words (default: the dataset's name).
      curves: include the loss, accuracy and gradient-norm panels (the report's page shows them
        as Curves instead).
    """

    def __init__(self, data, ranges=None, *, dpi=72, title=None, curves=True):
        if not data.frames:
            raise InputError("the report needs at least one snapshot of the parameters; pass "
                             "Snapshots(params) as fit()'s callback")
        self.data, self.ranges = data, ranges or data.ranges()
        self.title, self._background, self.kind = title or data.ds.name, None, data.kind
        classify = data.frames[0].test["accuracy"] is not None
        rows = (["data", "network"] if self.kind == "confusion" else ["data"]) + (["curves"] if curves else [])
        self.fig, cells = _rows(rows, dpi, headline=True)
        main_axes, net_axes = self._top(cells, data.backward)
        self.main = MainPanel.make(self.kind, main_axes, data, self.ranges)
        self.panels = [self.main, NetworkPanel(net_axes[0], data, self.ranges)]
        if data.backward:
            self.panels.append(NetworkPanel(net_axes[1], data, self.ranges, backward=True))
        if curves:
            self.panels += _curve_panels(_curve_axes(self.fig, cells["curves"], classify), data, self.ranges)
        self.headline = self.fig.suptitle(" ", fontsize=12, y=1 - 0.12 / self.fig.get_figheight())

    def _top(self, cells, backward):
        """(main panel's Axes, network Axes) in the data row (and the network row)."""
        fig = self.fig
        if self.kind == "confusion":
            top = cells["data"].subgridspec(1, 2, width_ratios=[1, 1.5], wspace=0.12)
            main_axes = [fig.add_subplot(top[0, 0])]
            sub = top[0, 1].subgridspec(2, SAMPLES // 2, hspace=0.45, wspace=0.08)
            main_axes += [fig.add_subplot(sub[i // (SAMPLES // 2), i % (SAMPLES // 2)]) for i in range(SAMPLES)]
            nets = cells["network"].subgridspec(1, 2 if backward else 3, wspace=0.1,
                                                width_ratios=[1, 1] if backward else [0.25, 1, 0.25])
            return main_axes, [fig.add_subplot(nets[0, k]) for k in ((0, 1) if backward else (1,))]
        widths = [1, 1.2, 1.2] if backward else [1, 1.9]
        top = cells["data"].subgridspec(1, len(widths), width_ratios=widths, wspace=0.12)
        return [fig.add_subplot(top[0, 0])], [fig.add_subplot(top[0, k]) for k in range(1, len(widths))]

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
        other = "" if split == "train" else f", {split} loss {f.test['loss']:.4g}"
        return f"{self.title}: {self.caption(i)} — train loss {f.train['loss']:.4g}{other}{acc}"

    def changing(self):
        """The artists that differ from frame to frame, in drawing order."""
        return flat_artists([a for p in self.panels for a in p.artists] + [self.headline])

    def draw(self, i):
        """Set every panel to frame i (a still is then drawn by savefig)."""
        for p in self.panels:
            p.update(i)
        self.headline.set_text(self.headline_text(i))

    def png(self, i):
        """Frame i as PNG bytes: the shared background, then the frame's changing artists."""
        self._blit()
        self.draw(i)
        return self._encode()


class Curves(_Blitted):
    """The loss, accuracy and gradient-norm panels as one picture: every curve up to the last frame.

    The report's page lays it under the frames and marks each frame's epoch on it: `marks(i)`
    gives the places, in the picture's pixels (origin top left).

    Args:
      data, ranges, dpi: as for Frames.
    """

    def __init__(self, data, ranges=None, *, dpi=72):
        self.data, self.ranges, self._background = data, ranges or data.ranges(), None
        classify = data.frames[0].test["accuracy"] is not None
        self.fig, cells = _rows(["curves"], dpi, headline=False)
        self.panels = _curve_panels(_curve_axes(self.fig, cells["curves"], classify), data, self.ranges)
        for p in self.panels:                      # the page draws the frame's marks over the picture
            for a in p.marks:
                a.set_visible(False)

    def changing(self):
        return flat_artists([a for p in self.panels for a in p.artists])

    def png(self):
        """The picture as PNG bytes, its curves up to the last frame."""
        self._blit()
        for p in self.panels:
            p.update(len(self.data.frames) - 1)
        return self._encode()

    def marks(self, i):
        """Where frame i goes on the picture: per panel its plot's box and the frame's epoch
        ({"x", "top", "bottom", "right"}), and the dots of the frame's values [x, y, colour]."""
        height = self.fig.bbox.height
        out = []
        for p in self.panels:
            ax = p.ax
            box = ax.bbox
            x = float(ax.transData.transform((self.data.frames[i].epoch, 1.0))[0])
            dots = [[round(float(u), 1), round(float(height - v), 1), c]
                    for (u, v), c in ((ax.transData.transform(xy), c) for xy, c in p.points(i))]
            out.append({"x": round(x, 1), "top": round(height - box.y1, 1), "bottom": round(height - box.y0, 1),
                        "right": round(box.x1, 1), "dots": dots})
        return out


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
    frames = Frames(data, data.ranges(final=True), dpi=dpi, title=title)
    frames.draw(range(len(frames))[index])
    return frames.fig
