"""Many short labels drawn fast: each distinct label is rendered once and then stamped as an image.

A confusion matrix of 10 classes writes 100 counts in every frame of a report;
drawn as 100 Text artists that is most of a frame's time. A TextGrid renders
each distinct (label, colour) once into a small image (matplotlib's Agg text
renderer, so it looks as Text does) and draws the images at the cells' centres.
"""
import math

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.colors import to_rgba
from matplotlib.font_manager import FontProperties

__all__ = ["TextGrid"]


class TextGrid(Artist):
    """Labels centred on points of an Axes (data coordinates), each with its own colour.

    Args:
      ax: the Axes; xy: (n, 2) label centres in data coordinates.
      fontsize: in points.
    Attributes:
      texts, colors: the n labels and their colours (set with set_texts).
    """

    def __init__(self, ax, xy, *, fontsize=8):
        super().__init__()
        self.axes, self.xy, self.fontsize = ax, np.asarray(xy, np.float64).reshape(-1, 2), fontsize
        self.set_figure(ax.figure)
        self.set_transform(ax.transData)
        self.texts, self.colors, self._sprites = [""] * len(self.xy), ["k"] * len(self.xy), {}
        ax.add_artist(self)

    def set_texts(self, texts, colors):
        """Set the labels and their colours (one each per point)."""
        self.texts, self.colors = [str(t) for t in texts], list(colors)
        self.stale = True

    def _sprite(self, text, color, dpi):
        key = (text, to_rgba(color), dpi)
        if key not in self._sprites:
            prop = FontProperties(size=self.fontsize)
            w, h, d = RendererAgg(1, 1, dpi).get_text_width_height_descent(text, prop, ismath=False)
            width, height = math.ceil(w) + 4, math.ceil(h) + 4
            r = RendererAgg(width, height, dpi)
            gc = r.new_gc()
            gc.set_foreground(color)
            r.draw_text(gc, 2, height - 2 - d, text, prop, 0)
            self._sprites[key] = np.asarray(r.buffer_rgba())[::-1].copy()   # draw_image's rows go up
        return self._sprites[key]

    def draw(self, renderer):
        if not self.get_visible():
            return
        gc = renderer.new_gc()
        gc.set_clip_rectangle(self.axes.bbox)
        centres = self.get_transform().transform(self.xy)                    # (n, 2) pixels
        for (x, y), text, color in zip(centres, self.texts, self.colors):
            if text:
                im = self._sprite(text, color, self.figure.dpi)
                renderer.draw_image(gc, round(x - im.shape[1] / 2), round(y - im.shape[0] / 2), im)
        gc.restore()
        self.stale = False
