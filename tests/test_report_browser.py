"""report.html in headless Chromium: the slider shows the frames, a live page picks up new frames, no console errors.

Skipped where Chromium is not installed (Debian: apt-get install chromium). The
browser's console reaches its stderr (--enable-logging=stderr --v=0): the page
writes "fnn report: N frames" there whenever its number of frames changes, and
anything else there (an uncaught exception, a console.error) fails the tests.
"""
import os
import queue
import re
import shutil
import signal
import subprocess
import threading

import numpy as np
import pytest

from test_report import FRAMES, LOSS, page, page_data, png_pixels, run  # noqa: F401  (fixtures)
from fnn.viz import report


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium); "
                             "the in-browser checks of report.html need it")
CONSOLE = re.compile(r':CONSOLE(?:\(\d+\)|:\d+)?\] "(.*)", source: ')


def _command(tmp_path, *action):
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
            "--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--window-size=1200,1000", *action]


def _browser(tmp_path, url, *action):
    """Run headless Chromium on `url` with one action (--dump-dom or --screenshot=...):
    (stdout, the console messages)."""
    r = subprocess.run(_command(tmp_path, "--virtual-time-budget=5000", *action, url),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, CONSOLE.findall(r.stderr)


def _only_the_reports_messages(messages):
    others = [m for m in messages if not m.startswith("fnn report: ")]
    assert not others, f"console errors or other messages: {others}"


def _screenshot(tmp_path, url, name):
    from PIL import Image
    shot = tmp_path / name
    _, messages = _browser(tmp_path, url, f"--screenshot={shot}")
    _only_the_reports_messages(messages)
    with Image.open(shot) as im:
        return np.asarray(im.convert("RGB"), float)


def _locate(screen, picture):
    """(row, column) where `picture` appears pixel for pixel in `screen`, or None."""
    h, w, _ = picture.shape
    rows = (h // 3, h // 2, 2 * h // 3)
    for y in range(screen.shape[0] - h + 1):
        windows = np.lib.stride_tricks.sliding_window_view(screen[y + rows[1]], (w, 3))[:, 0]
        x = int(np.argmin(np.abs(windows - picture[rows[1]]).mean(axis=(1, 2))))
        if all(np.abs(screen[y + r, x:x + w] - picture[r]).mean() < 2 for r in rows) and \
                np.abs(screen[y:y + h, x:x + w] - picture).mean() < 2:
            return y, x
    return None


def test_report_in_a_browser_shows_the_frames_and_the_slider_moves_them(page, tmp_path):  # noqa: F811
    path, text = page
    url = "file://" + os.path.abspath(path)
    frames = page_data(text)["frames"]
    # The page's script opens the frame in the address, as the slider would.
    dom, messages = _browser(tmp_path, f"{url}#frame=3", "--dump-dom")
    assert messages == [f"fnn report: {FRAMES + 1} frames"]               # and nothing else: no errors
    assert 'data-frame="3"' in dom and f'data-frames="{FRAMES + 1}"' in dom
    assert "frame 3 of 6: epoch 6, step 24" in dom
    img = re.search(r'<img id="fnn-frame"[^>]*src="([^"]+)"', dom)
    assert img is not None and img.group(1) == frames[3]["src"], "the image shown is not frame 3"
    assert 'max="6"' in re.search(r'<input[^>]*id="fnn-slider"[^>]*>', dom).group(0)
    curves = re.search(r'<img id="fnn-curves"[^>]*src="([^"]+)"', dom)
    assert curves is not None and curves.group(1) == page_data(text)["curves"]["src"]
    assert dom.count('data-epoch="6"') == 3                    # the frame's epoch marked on each curve panel
    # What a user sees: the first frame on screen pixel for pixel (not a blank or an error
    # page); with the slider at the end, the last frame in the same place.
    first = _screenshot(tmp_path, f"{url}#frame=0", "first.png")
    final = _screenshot(tmp_path, f"{url}#frame={FRAMES}", "last.png")
    picture0, picture6 = png_pixels(frames[0]["src"]), png_pixels(frames[FRAMES]["src"])
    where = _locate(first, picture0)
    assert where is not None, "frame 0 is not on the screen"
    y, x = where
    h, w, _ = picture0.shape
    shown = final[y:y + h, x:x + w]
    assert np.abs(shown - picture6).mean() < 2                 # the last frame replaced it
    assert np.mean(np.abs(shown - picture0).max(axis=2) > 40) > 0.01


class _Console:
    """A headless Chromium left running on a page; its console messages as they come."""

    def __init__(self, tmp_path, url):
        self.messages, self._lines = [], queue.Queue()
        self.proc = subprocess.Popen(_command(tmp_path, url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self._lines.put(line)

    def wait_for(self, message, timeout=30):
        """Wait until the page writes `message` to the console; AssertionError after `timeout` s."""
        while message not in self.messages:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"the page did not say {message!r}; it said {self.messages}") from None
            self.messages += CONSOLE.findall(line)

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)           # the browser and its own children
        self.proc.wait(timeout=30)


def test_a_live_page_shows_new_frames_as_they_are_written_then_the_final_report(run, tmp_path):  # noqa: F811
    snaps, history = list(run["snapshots"]), run["result"].history
    folder = tmp_path / "run"
    folder.mkdir()
    live = report.LiveReport(folder, run["model"], LOSS, run["ds"], epochs=12, resolution=20, poll=0.2)
    live.update(snaps[:2], history)
    url = "file://" + str(folder / "report.html")
    browser = _Console(tmp_path, url)
    try:
        browser.wait_for("fnn report: 2 frames (live)")            # loaded from report-data.js
        live.update(snaps[:3], history)
        browser.wait_for("fnn report: 3 frames (live)")            # the open page picked up the new one
        dom, _ = _browser(tmp_path, url, "--dump-dom")              # a second look: the page's DOM
        assert 'data-live="true"' in dom and 'data-frames="3"' in dom
        assert re.search(r'<img id="fnn-frame"[^>]*src="frames/002\.png"', dom)   # following the newest
        assert re.search(r'<img id="fnn-curves"[^>]*src="frames/curves\.png\?v=\d+"', dom)
        assert dom.count('data-epoch="4"') == 3
        assert "training: 3 frames so far" in dom
        live.finish(snaps[:3], history)
        browser.wait_for("fnn report: 3 frames")                   # reloaded into the final report
    finally:
        browser.close()
    _only_the_reports_messages(browser.messages)
    assert browser.messages.count("fnn report: 3 frames") == 1
