"""A report that can be opened while training runs: the frames written so far, reloaded as they come.

    live = LiveReport("runs/latest", model, loss, dataset, epochs=150)
    snapshots = Snapshots(params)
    live.update(snapshots, {})                    # frame 0 on the page before training starts
    result = fit(..., callback=live.follow(snapshots), chunk_steps=chunk_steps(...))
    live.finish(snapshots, result.history, summary=metrics)

Beside report.html the folder holds, while training runs,

    report-data.js   fnnReportData({...}): the frames so far, their captions and numbers
    frames/NNN.png   one picture per frame
    frames/curves.png   the loss, accuracy and gradient-norm curves so far

and the page (opened from the file system: no server) reloads report-data.js
every second through a <script> element with a cache-busting query (browsers
refuse fetch() from file:// pages but load scripts). A frame's picture never
depends on later frames, so each is drawn once; only the curves are redrawn
as the run goes on. `finish` replaces report.html with the final
self-contained report (what training_report writes), marks report-data.js
finished (an open live page then reloads itself into the final one) and
removes frames/.

With background=True the drawing is done on a thread of the LiveReport's own
while the next chunk trains (fit's compiled chunks release the interpreter);
worth it when training does not need the CPU's cores (an accelerator). If
drawing falls behind, the latest update supersedes the ones waiting. An error
while drawing (a full disk) is raised by the next update, wait or finish.

Every file is written atomically: a page reloading at any moment reads a
whole old file or a whole new one.
"""
import os
import re
import threading

from fnn.errors import InputError
from fnn.viz.framedata import ReportData
from fnn.viz.frames import Curves, Frames
from fnn.viz.page import (check_options, curve_record, data_uri, frame_record, json_for_script, page_data,
                          render_frames, report_page, write_bytes, write_text)

__all__ = ["LiveReport", "DATA_FILE", "FRAMES_DIR"]

DATA_FILE = "report-data.js"
FRAMES_DIR = "frames"
_OWN_FILE = re.compile(r"^(\d{3,}|curves)\.png$")


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
      background: draw on a thread while training goes on (default: update draws, then returns).
    """

    def __init__(self, folder, model, loss, dataset, *, epochs=None, title=None, summary=None, split="test",
                 dpi=72, resolution=100, interval=400, poll=1.0, progress=False, background=False):
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise InputError(f"cannot write the live report in {folder}: the folder does not exist")
        resolution = check_options(dpi, interval, resolution)
        self.poll_ms = max(100, int(1000 * poll))
        self.folder, self.dpi, self.interval, self.progress = folder, dpi, interval, progress
        self.title, self.summary = title or f"fnn training report: {dataset.name}", summary
        self.data = ReportData(model, loss, dataset, split=split, resolution=resolution, epochs=epochs)
        self.path = os.path.join(folder, "report.html")
        self._frames, self._curves, self._pngs, self._curves_png = None, None, [], None
        self.finished, self.background, self._version = False, bool(background), 0
        self._cv, self._pending, self._busy, self._error, self._thread = threading.Condition(), None, False, None, None
        try:
            os.makedirs(os.path.join(folder, FRAMES_DIR), exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot make the live report's folder {folder}/{FRAMES_DIR}: {e.strerror or e}") from e
        self._write_data()
        write_text(self.path, report_page(self.title, self.summary, self.data, [], live=True,
                                          interval=self.interval, poll_ms=self.poll_ms))

    def _file(self, name):
        return os.path.join(self.folder, FRAMES_DIR, name)

    def _draw(self, snapshots, history, *, final=False):
        """Draw the new frames and the curves (laid out anew when their ranges changed)."""
        if not snapshots and not self.data.frames:
            return                                   # no snapshot yet: nothing to draw
        self.data.extend(snapshots, history)
        ranges = self.data.ranges(final=final)
        if self._frames is None:                     # frames depend on nothing that changes
            self._frames = Frames(self.data, ranges, dpi=self.dpi, title=self.data.ds.name, curves=False)
        new = range(len(self._pngs), len(self.data.frames))
        for i, png in render_frames(self._frames, new, progress=final and self.progress,
                                    what="writing the report").items():
            if not final:
                write_bytes(self._file(f"{i:03d}.png"), png)
            self._pngs.append(png)
        if self._curves is None or self._curves.ranges != ranges:
            if self._curves is not None:
                self._curves.fig.clear()
            self._curves = Curves(self.data, ranges, dpi=self.dpi)
        self._curves_png, self._version = self._curves.png(), self._version + 1
        if not final:
            write_bytes(self._file("curves.png"), self._curves_png)

    def _records(self, embed):
        return [frame_record(self._frames, i, data_uri(png) if embed else f"{FRAMES_DIR}/{i:03d}.png",
                             self._curves) for i, png in enumerate(self._pngs)]

    def _write_data(self, live=True):
        """report-data.js: fnnReportData({...}) with the frames drawn so far (none once finished)."""
        drawn = live and self._pngs
        curves = curve_record(self._curves, f"{FRAMES_DIR}/curves.png?v={self._version}") if drawn else None
        payload = page_data(self.data, self._records(embed=False) if drawn else [], live=live,
                            interval=self.interval, poll_ms=self.poll_ms, curves=curves)
        write_text(os.path.join(self.folder, DATA_FILE), f"fnnReportData({json_for_script(payload)});\n")

    def update(self, snapshots, history):
        """Draw the snapshots not drawn yet and the curves; write them and the data file the page reloads.

        Call after each chunk of fit() (see follow), and once before it for frame 0.

        Args:
          snapshots: the run's Snapshots (or list of Snapshot); those after the ones already
            drawn are new.
          history: fit()'s history so far.
        Returns:
          the number of frames given so far (with background=True some may still be drawing).
        """
        if self.finished:
            raise InputError("this LiveReport is finished; make a new one for another run")
        self._raise()
        job = (list(snapshots), {k: list(v) for k, v in (history or {}).items()})   # fit appends to both
        if not self.background:
            self._run(job)
            return len(self._pngs)
        with self._cv:
            self._pending = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="fnn-live-report", daemon=True)
                self._thread.start()
            self._cv.notify_all()
        return len(job[0])

    def _run(self, job):
        self._draw(*job)
        self._write_data()

    def _work(self):
        """The drawing thread: draw the latest job, until finish sends "stop"."""
        while True:
            with self._cv:
                while self._pending is None:
                    self._cv.wait()
                job, self._pending, self._busy = self._pending, None, True
            try:
                if job == "stop":
                    return
                if self._error is None:
                    self._run(job)
            except Exception as e:      # raised again by the caller's next update, wait or finish
                self._error = e
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def wait(self):
        """Wait until every update so far is drawn and written (raises a drawing error)."""
        with self._cv:
            while self._pending is not None or self._busy:
                self._cv.wait()
        self._raise()

    def _raise(self):
        if self._error is not None:
            error, self._error = self._error, None
            raise error

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
        self.wait()
        if self._thread is not None:
            with self._cv:
                self._pending = "stop"
                self._cv.notify_all()
            self._thread.join()
            self._thread = None
        history = history if history is not None else self.data.history
        self._draw(snapshots if snapshots is not None else [], history, final=True)
        if not self.data.frames:
            raise InputError("the report needs at least one snapshot of the parameters; pass "
                             "Snapshots(params) as fit()'s callback")
        if summary is not None:
            self.summary = summary
        write_text(self.path, report_page(self.title, self.summary, self.data, self._records(embed=True),
                                          live=False, interval=self.interval,
                                          curves=curve_record(self._curves, data_uri(self._curves_png))))
        self._write_data(live=False)
        self._remove_frame_files()
        self.finished = True
        return self.path

    def _remove_frame_files(self):
        """frames/NNN.png and curves.png (this report's files only), and the folder if then empty."""
        folder = os.path.join(self.folder, FRAMES_DIR)
        try:
            for name in os.listdir(folder):
                if _OWN_FILE.match(name):
                    os.remove(os.path.join(folder, name))
            if not os.listdir(folder):
                os.rmdir(folder)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise InputError(f"cannot remove the live report's frames in {folder}: {e.strerror or e}") from e
