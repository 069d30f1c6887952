"""fnn.viz's report: parameter snapshots during fit(), the report's frames, and report.html in a real browser."""
import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

import fnn
from fnn import data, optim, viz
from fnn.viz import report
from fnn.train import init_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, BATCH, FRAMES = 12, 30, 6
FRAME_SRC = re.compile(r'frames\[(\d+)\] = "data:image/png;base64,([^"]+)"')


@pytest.fixture(scope="module")
def run():
    """A 2-8-2 tanh MLP trained on 120 moons for 12 epochs, snapshotted every 2 epochs."""
    ds, _ = data.standardize_dataset(data.get_dataset("moons", key=jax.random.key(0), n=120, n_test=60))
    model = fnn.mlp([2, 8, 2], activation="tanh")
    _, params = model.init(jax.random.key(0), (-1, 2))
    calls = []
    snapshots = report.Snapshots(params, then=lambda state, history: calls.append(int(state.step)))
    result = fnn.fit(model, "softmax_cross_entropy", optim.get_optimizer("adam", learning_rate=0.05),
                     params, ds.x_train, ds.y_train, key=jax.random.key(1), epochs=EPOCHS, batch_size=BATCH,
                     validation_data=(ds.x_test, ds.y_test), progress=False, callback=snapshots,
                     chunk_steps=report.chunk_steps(len(ds.x_train), BATCH, epochs=EPOCHS, frames=FRAMES))
    return dict(ds=ds, model=model, params=params, snapshots=snapshots, result=result, calls=calls)


@pytest.fixture(scope="module")
def page(run, tmp_path_factory):
    """(path, text) of the run's report.html."""
    folder = tmp_path_factory.mktemp("report")
    path = report.write_report(folder, run["model"], "softmax_cross_entropy", run["ds"], run["snapshots"],
                               run["result"].history, summary={"model": "2-8-2 tanh", "epochs": EPOCHS},
                               resolution=50)
    with open(path, encoding="utf-8") as f:
        return path, f.read()


# --- snapshots --------------------------------------------------------------------

def test_chunk_steps_gives_whole_epochs_for_about_the_asked_frames():
    assert report.chunk_steps(120, 30, epochs=12, frames=6) == 8           # 4 steps/epoch, every 2 epochs
    assert report.chunk_steps(120, 30, steps=45, frames=6) == 8            # 45 steps -> 12 epochs
    assert report.chunk_steps(120, 30, epochs=3, frames=6) == 4            # fewer epochs than frames
    assert report.chunk_steps(4000, 100, steps=6000) == 200                # MNIST-1D default: 5 epochs
    with pytest.raises(ValueError, match="exactly one"):
        report.chunk_steps(120, 30)
    with pytest.raises(ValueError, match="batch_size 200"):
        report.chunk_steps(120, 200, epochs=1)
    with pytest.raises(ValueError, match="frames must be a positive integer, got 0"):
        report.chunk_steps(120, 30, epochs=1, frames=0)
    with pytest.raises(ValueError, match="steps must be a positive integer, got 2.5"):
        report.chunk_steps(120, 30, steps=2.5)


def test_snapshots_hold_the_parameters_at_every_chunk(run):
    snaps, result = run["snapshots"], run["result"]
    assert [s.epoch for s in snaps] == [0, 2, 4, 6, 8, 10, 12]
    assert [s.step for s in snaps] == [0, 8, 16, 24, 32, 40, 48]
    assert run["calls"] == [8, 16, 24, 32, 40, 48]                         # the chained callback ran too
    first, last = snaps[0].params, snaps[-1].params
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(run["params"])))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(last), jax.tree.leaves(result.params)))
    assert all(isinstance(a, np.ndarray) for a in jax.tree.leaves(last))   # host copies


def test_snapshots_resumed_from_a_train_state_start_at_its_step():
    params = ({"W": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)},)
    state = init_state(params, optim.get_optimizer("sgd", learning_rate=0.1), jax.random.key(0))
    state = state._replace(step=np.int32(40))
    snaps = report.Snapshots(state, history={"epoch": [1, 2, 3, 4, 5]})
    assert (snaps[0].step, snaps[0].epoch) == (40, 5)


# --- frames -----------------------------------------------------------------------

def test_frame_shows_the_boundary_the_loss_and_the_architecture(run):
    fig = report.frame_figure(run["model"], "softmax_cross_entropy", run["ds"], run["snapshots"],
                              run["result"].history, index=-1, resolution=60)
    boundary, loss_ax, arch = fig.axes
    x, y = run["ds"].x_train, run["ds"].y_train
    sides = [viz.region_of(boundary, p) for p in x[:40]]
    right = [s is not None and ((s[0] >= 0.5) == (label == 1)) for s, label in zip(sides, y[:40])]
    assert np.mean(right) >= 0.85                    # the drawn regions classify the training points
    assert [l.get_label() for l in loss_ax.lines[:2]] == ["train", "validation"]
    assert any(list(l.get_xdata()) == [EPOCHS, EPOCHS] for l in loss_ax.lines)   # this frame's epoch
    assert len([c for c in arch.collections if (c.get_gid() or "").startswith("neurons-")]) == 3
    assert "epoch 12, step 48" in fig._suptitle.get_text()


def test_frames_without_2d_inputs_show_a_confusion_matrix_and_sample_predictions():
    rng = np.random.default_rng(0)
    ds = data.Dataset(rng.normal(size=(50, 6)).astype(np.float32), rng.integers(0, 3, 50).astype(np.int32),
                      rng.normal(size=(20, 6)).astype(np.float32), rng.integers(0, 3, 20).astype(np.int32),
                      3, "signals", "classification")
    model = fnn.mlp([6, 5, 3])
    snaps = report.Snapshots(model.init(jax.random.key(0), (-1, 6))[1])
    history = {"epoch": [1], "step": [1], "train_loss": [1.0], "val_loss": [1.1],
               "train_accuracy": [0.3], "val_accuracy": [0.3]}
    fig = report.frame_figure(model, "softmax_cross_entropy", ds, snaps, history, index=0)
    confusion = [ax for ax in fig.axes if ax.images][0]
    assert confusion.images[0].get_array().sum() == 20 and confusion.get_xlabel() == "predicted class"
    titles = [ax.title.get_text() for ax in fig.axes if ax.title.get_text().startswith("true ")]
    assert len(titles) == 8


def test_frames_of_a_convolutional_model_draw_one_block_per_layer():
    rng = np.random.default_rng(1)
    ds = data.Dataset(rng.normal(size=(30, 6)).astype(np.float32), rng.integers(0, 3, 30).astype(np.int32),
                      rng.normal(size=(12, 6)).astype(np.float32), rng.integers(0, 3, 12).astype(np.int32),
                      3, "signals", "classification")
    model = fnn.serial(fnn.Reshape((6, 1)), fnn.Conv(2, 3), fnn.Activation("relu"), fnn.MaxPool(2),
                       fnn.Flatten(), fnn.Dense(3))
    snaps = report.Snapshots(model.init(jax.random.key(0), (-1, 6))[1])
    fig = report.frame_figure(model, "softmax_cross_entropy", ds, snaps, {}, index=0)
    blocks = [p.get_gid() for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith("block-")]
    assert blocks == [f"block-{i}" for i in range(6)]      # input, Reshape, Conv (· relu), MaxPool, Flatten, Dense
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("Conv") and "· relu" in t and "4 × 2" in t for t in texts), texts
    confusion = [ax for ax in fig.axes if ax.images][0]
    assert confusion.images[0].get_array().sum() == 12


def test_frames_of_a_model_with_batchnorm_use_the_snapshots_model_state():
    rng = np.random.default_rng(2)
    ds = data.Dataset(rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, 40).astype(np.int32),
                      rng.normal(size=(12, 6)).astype(np.float32), rng.integers(0, 3, 12).astype(np.int32),
                      3, "signals", "classification")
    model = fnn.serial(fnn.Reshape((6, 1)), fnn.Conv(2, 3, use_bias=False), fnn.BatchNorm(),
                       fnn.Activation("relu"), fnn.GlobalAvgPool(), fnn.Dense(3))
    params = model.init(jax.random.key(0), (-1, 6))[1]
    snaps = report.Snapshots(params)
    r = fnn.fit(model, "softmax_cross_entropy", fnn.optim.adam(0.05), params, ds.x_train, ds.y_train,
                key=jax.random.key(1), steps=20, batch_size=10, progress=False, callback=snaps)
    assert len(snaps) == 2                          # the start, and after the one chunk
    last = snaps.frames[-1]
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(last.model_state),
                                                     jax.tree.leaves(r.state.model_state)))
    fig = report.frame_figure(model, "softmax_cross_entropy", ds, snaps, r.history, index=1)
    want = fnn.evaluate(model, "softmax_cross_entropy", last.params, ds.x_test, ds.y_test,
                        model_state=last.model_state)
    assert f"test accuracy {want['accuracy']:.3f}" in fig._suptitle.get_text()


def test_regression_frames_show_the_fitted_curve():
    ds, _ = data.standardize_dataset(data.get_dataset("sine", key=jax.random.key(0), n=64, n_test=20), targets=True)
    model = fnn.mlp([1, 4, 1], activation="tanh")
    snaps = report.Snapshots(model.init(jax.random.key(0), (-1, 1))[1])
    fig = report.frame_figure(model, "mse", ds, snaps, {}, index=0)
    main = fig.axes[0]
    assert [l.get_gid() for l in main.lines] == ["model"]
    assert "no epochs recorded" in [t.get_text() for t in fig.axes[1].texts]


def test_report_rejects_missing_snapshots_and_non_datasets(run):
    with pytest.raises(ValueError, match="snapshot"):
        report.training_report(run["model"], "softmax_cross_entropy", run["ds"], [], {})
    with pytest.raises(TypeError, match="Dataset"):
        report.training_report(run["model"], "softmax_cross_entropy", (1, 2), run["snapshots"], {})


# --- the HTML file ------------------------------------------------------------------

def _frames(text):
    """{index: base64 PNG} of the frames embedded in the page (JS strings continued with \\ + newline)."""
    return {int(i): src.replace("\\\n", "") for i, src in FRAME_SRC.findall(text)}


def _frame_pixels(src):
    with Image.open(io.BytesIO(base64.b64decode(src))) as im:
        return np.asarray(im.convert("RGB"), float)


def test_report_is_one_self_contained_page_with_a_frame_per_snapshot(run, page):
    path, text = page
    assert os.path.basename(path) == "report.html"
    frames = _frames(text)
    assert sorted(frames) == list(range(len(run["snapshots"])))
    assert len(re.findall(r'<img id="_anim_img', text)) == 1
    assert 'type="range"' in text and "play_animation" in text
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)         # nothing from the network
    assert "<link" not in text
    first, last = _frame_pixels(frames[0]), _frame_pixels(frames[len(frames) - 1])
    assert first.shape == last.shape and first.std() > 10
    assert np.mean(np.abs(first - last).max(axis=2) > 40) > 0.01        # training changed the picture
    captions = json.loads(re.search(r'<script type="application/json" id="fnn-captions">(.*?)</script>',
                                    text).group(1))
    assert captions[0] == "epoch 0, step 0" and captions[-1] == "epoch 12, step 48"
    assert "2-8-2 tanh" in text                                          # the summary table
    # The template's style and script (fnn/viz/report.css, report.js) are inlined, not linked.
    assert "#fnn-report .fa-play::before" in text and 'getElementById("fnn-captions")' in text


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium); "
                             "the in-browser check of report.html needs it")


def _browser(tmp_path, url, *action):
    """Run headless Chromium on `url` with one action (--dump-dom or --screenshot=...); its stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    r = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
         "--hide-scrollbars", "--window-size=1200,900", "--virtual-time-budget=10000", *action, url],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _screenshot(tmp_path, url, name):
    shot = tmp_path / name
    _browser(tmp_path, url, f"--screenshot={shot}")
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


@needs_chromium
def test_report_in_a_browser_shows_the_frames_and_the_slider_moves_them(page, tmp_path):
    path, text = page
    url = "file://" + os.path.abspath(path)
    # The page's script moves the slider to the frame in the address, as a drag would.
    dom = _browser(tmp_path, f"{url}#frame=3", "--dump-dom")
    assert 'data-frame="3"' in dom
    assert "frame 3 of 6: epoch 6, step 24" in dom
    frames = _frames(text)
    img = re.search(r'<img id="_anim_img[^"]*" src="data:image/png;base64,([^"]+)"', dom)
    assert img is not None and img.group(1) == frames[3], "the image shown is not frame 3"
    assert 'max="6"' in re.search(r'<input id="_anim_slider[^>]*>', dom).group(0)
    # What a user sees: the report's first frame on screen, pixel for pixel (not a blank or an
    # error page); with the slider at the end, the last frame in the same place.
    first = _screenshot(tmp_path, f"{url}#frame=0", "first.png")
    final = _screenshot(tmp_path, f"{url}#frame={FRAMES}", "last.png")
    assert first.mean(axis=2).std() > 20
    picture0, picture6 = _frame_pixels(frames[0]), _frame_pixels(frames[FRAMES])
    where = _locate(first, picture0)
    assert where is not None, "frame 0 is not on the screen"
    y, x = where
    h, w, _ = picture0.shape
    shown = final[y:y + h, x:x + w]
    assert np.abs(shown - picture6).mean() < 2                 # the last frame replaced it
    assert np.mean(np.abs(shown - picture0).max(axis=2) > 40) > 0.01


# --- scripts/train.py --report ------------------------------------------------------

def test_train_script_writes_a_report(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train.py"), "--dataset", "moons",
                        "--hidden", "8", "--activation", "tanh", "--steps", "40", "--batch-size", "40",
                        "--no-progress", "--report", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    frames = int(re.search(r"report\.html \((\d+) frames\)", r.stdout).group(1))
    assert frames == 5                           # 10 steps per epoch: 4 epochs, one each, and the start
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert len(FRAME_SRC.findall(text)) == frames
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 40
