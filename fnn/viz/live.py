"""A report that can be opened while training runs: the frames written so far, reloaded as they come.

    live = LiveReport("runs/latest", model, loss, dataset, epochs=150)
    snapshots = Snapshots(params)
    live.update(snapshots, {})                    # frame 0 on the page before training starts
    result = fit(..., callback=live.follow(snapshots), chunk_steps=chunk_steps(...))
    live.finish(snapshots, result.history, summary=metrics)

Beside report.html the folder holds, while training runs,

    report-data.js   fnnReportData({...}): the frames so far, their captions and numbers
    frames/NNN.png   one picture per frame

and the page (opened from the file system: no server) reloads report-data.js
every second through a <script> element with a cache-busting query (browsers
refuse fetch() from file:// pages but load scripts). `finish` redraws the
frames whose axes changed while the run went on, replaces report.html with the
final self-contained report (the same as training_report writes), marks
report-data.js finished (an open live page then reloads itself into the final
one) and removes frames/.

Every file is written atomically: a page reloading at any moment reads a
whole old file or a whole new one.
"""
import os
import re

from fnn.errors import InputError
from fnn.viz.framedata import ReportData
from fnn.viz.frames import Frames
from fnn.viz.page import (check_options, data_uri, frame_record, json_for_script, page_data, render_frames,
                          report_page, write_bytes, write_text)

__all__ = ["LiveReport", "DATA_FILE", "FRAMES_DIR"]

DATA_FILE = "report-data.js"
FRAMES_DIR = "frames"
_FRAME_FILE = re.compile(r"^\d{3,}\.png$")


class LiveReport:
    """The training report, written as training runs; call update after each chunk, finish at the end.

    Args:
      folder: an existing folder: report.html, report-data.js and frames/ go there.
      model, loss, dataset: as for training_report.
      epochs: the run's length in epochs when known: the curves' epoch axis is fixed to it
        from the first frame (otherwise it grows in steps of 1, 2, 5 × 10^k).
      title, summary, split, dpi, resolution, interval: as for training_report.
      poll: seconds between the live page's reloads of report-data.js.
      progress: a progress bar on stderr while finish draws frames.
    """

    def __init__(self, folder, model, loss, dataset, *, epochs=None, title=None, summary=None, split="test",
                 dpi=72, resolution=100, interval=400, poll=1.0, progress=False):
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise InputError(f"cannot write the live report in {folder}: the folder does not exist")
        resolution = check_options(dpi, interval, resolution)
        self.poll_ms = max(100, int(1000 * poll))
        self.folder, self.dpi, self.interval, self.progress = folder, dpi, interval, progress
        self.title, self.summary = title or f"fnn training report: {dataset.name}", summary
        self.data = ReportData(model, loss, dataset, split=split, resolution=resolution, epochs=epochs)
        self.path = os.path.join(folder, "report.html")
        self._frames, self._ranges = None, None      # the figure, for the ranges it was laid out with
        self._drawn = []                             # per frame: (PNG bytes, the ranges it was drawn with)
        self.finished = False
        try:
            os.makedirs(os.path.join(folder, FRAMES_DIR), exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot make the live report's folder {folder}/{FRAMES_DIR}: {e.strerror or e}") from e
        self._write_data()
        write_text(self.path, report_page(self.title, self.summary, self.data, [], live=True,
                                          interval=self.interval, poll_ms=self.poll_ms))

    def _figure(self, ranges):
        if self._frames is None or ranges != self._ranges:
            if self._frames is not None:
                self._frames.fig.clear()
            self._frames = Frames(self.data, ranges, dpi=self.dpi, title=self.data.ds.name)
            self._ranges = ranges
        return self._frames

    def _frame_file(self, i):
        return os.path.join(self.folder, FRAMES_DIR, f"{i:03d}.png")

    def _records(self, embed):
        frames = self._frames
        return [frame_record(frames, i, data_uri(png) if embed else f"{FRAMES_DIR}/{i:03d}.png")
                for i, (png, _) in enumerate(self._drawn)]

    def _write_data(self, live=True):
        """report-data.js: fnnReportData({...}) with the frames drawn so far (none once finished)."""
        records = self._records(embed=False) if live and self._drawn else []
        payload = page_data(self.data, records, live=live, interval=self.interval, poll_ms=self.poll_ms)
        write_text(os.path.join(self.folder, DATA_FILE), f"fnnReportData({json_for_script(payload)});\n")

    def update(self, snapshots, history):
        """Draw the snapshots not drawn yet, write their PNGs and the data file the page reloads.

        Call after each chunk of fit() (see follow), and once before it for frame 0.

        Args:
          snapshots: the run's Snapshots (or list of Snapshot); those after the ones already
            drawn are new.
          history: fit()'s history so far.
        Returns:
          the number of frames written so far.
        """
        if self.finished:
            raise InputError("this LiveReport is finished; make a new one for another run")
        self.data.extend(snapshots, history)
        new = range(len(self._drawn), len(self.data.frames))
        if len(new):
            ranges = self.data.ranges(final=False)
            frames = self._figure(ranges)
            for i, png in render_frames(frames, new).items():
                write_bytes(self._frame_file(i), png)
                self._drawn.append((png, ranges))
        self._write_data()
        return len(self._drawn)

    def follow(self, snapshots):
        """A fit() callback: snapshots(state, history) records the frame, then update draws it."""
        def callback(state, history):
            snapshots(state, history)
            self.update(snapshots, history)
        return callback

    def finish(self, snapshots=None, history=None, *, summary=None):
        """Write the final, self-contained report.html and end the live page.

        Args:
          snapshots, history: the run's last ones (None: those of the last update).
          summary: a dict shown as a table above the frames (default: the one given at the start).
        Returns:
          the path of report.html.
        """
        if snapshots is not None:
            self.data.extend(snapshots, history if history is not None else self.data.history)
        elif history is not None:
            self.data.history = dict(history)
        if not self.data.frames:
            raise InputError("the report needs at least one snapshot of the parameters; pass "
                             "Snapshots(params) as fit()'s callback")
        ranges = self.data.ranges(final=True)
        frames = self._figure(ranges)
        stale = [i for i in range(len(self.data.frames)) if i >= len(self._drawn) or self._drawn[i][1] != ranges]
        pngs = render_frames(frames, stale, progress=self.progress, what="writing the report")
        self._drawn += [None] * (len(self.data.frames) - len(self._drawn))
        for i, png in pngs.items():
            self._drawn[i] = (png, ranges)
        if summary is not None:
            self.summary = summary
        write_text(self.path, report_page(self.title, self.summary, self.data, self._records(embed=True),
                                          live=False, interval=self.interval))
        self._write_data(live=False)
        self._remove_frame_files()
        self.finished = True
        return self.path

    def _remove_frame_files(self):
        """frames/NNN.png (this report's files only) and the folder if it is then empty."""
        folder = os.path.join(self.folder, FRAMES_DIR)
        try:
            for name in os.listdir(folder):
                if _FRAME_FILE.match(name):
                    os.remove(os.path.join(folder, name))
            if not os.listdir(folder):
                os.rmdir(folder)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise InputError(f"cannot remove the live report's frames in {folder}: {e.strerror or e}") from e
