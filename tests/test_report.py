"""fnn.viz's report: parameter snapshots during fit(), the report's frames, report.html and the live report."""
import base64
import io
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from matplotlib.cm import ScalarMappable
from PIL import Image

import fnn
from fnn import data, optim, viz
from fnn.viz import live as live_module
from fnn.viz import report, scales
from fnn.viz.framedata import ReportData
from fnn.viz.frames import Curves
from fnn.train import init_state

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, BATCH, FRAMES = 12, 30, 6
LOSS = "softmax_cross_entropy"


def _moons_run(split_name="test"):
    ds, _ = data.standardize_dataset(data.get_dataset("moons", key=jax.random.key(0), n=120, n_test=60))
    model = fnn.mlp([2, 8, 2], activation="tanh")
    _, params = model.init(jax.random.key(0), (-1, 2))
    calls = []
    snapshots = report.Snapshots(params, then=lambda state, history: calls.append(int(state.step)))
    result = fnn.fit(model, LOSS, optim.get_optimizer("adam", learning_rate=0.05),
                     params, ds.x_train, ds.y_train, key=jax.random.key(1), epochs=EPOCHS, batch_size=BATCH,
                     validation_data=(ds.x_test, ds.y_test), progress=False, callback=snapshots,
                     chunk_steps=report.chunk_steps(len(ds.x_train), BATCH, epochs=EPOCHS, frames=FRAMES))
    return dict(ds=ds, model=model, params=params, snapshots=snapshots, result=result, calls=calls)


@pytest.fixture(scope="module")
def run():
    """A 2-8-2 tanh MLP trained on 120 moons for 12 epochs, snapshotted every 2 epochs."""
    return _moons_run()


def page_data(text):
    """The JSON the page reads (#fnn-data): frames with their src, caption and numbers."""
    m = re.search(r'<script type="application/json" id="fnn-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


def png_pixels(src):
    """RGB pixels (h, w, 3) of a data: URI or of PNG bytes."""
    raw = base64.b64decode(src.split(",", 1)[1]) if isinstance(src, str) else src
    with Image.open(io.BytesIO(raw)) as im:
        return np.asarray(im.convert("RGB"), float)


@pytest.fixture(scope="module")
def page(run, tmp_path_factory):
    """(path, text) of the run's report.html."""
    folder = tmp_path_factory.mktemp("report")
    path = report.write_report(folder, run["model"], LOSS, run["ds"], run["snapshots"],
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


# --- scales -----------------------------------------------------------------------

def test_log_axes_get_whole_decades_and_distinct_readable_tick_labels():
    assert scales.log_range([2.3, 0.05, 0.0, float("nan")]) == (0.01, 10.0)
    assert scales.log_range([]) == (0.1, 1.0) and scales.log_range([0.5]) == (0.1, 1.0)
    assert scales.log_ticks(0.01, 10) == [0.01, 0.1, 1.0, 10.0]
    assert scales.log_ticks(0.1, 1) == [0.1, 0.2, 0.5, 1.0]                # one decade: 1-2-5
    assert [scales.tick_label(t) for t in (0.2, 0.01, 1, 300, 2e-5, 1e6)] == \
        ["0.2", "0.01", "1", "300", "2e-5", "1e6"]
    for lo, hi in ((0.6, 0.8), (1e-9, 3), (0.2, 0.21), (40, 41)):
        ticks = scales.log_ticks(*scales.log_range([lo, hi]))
        labels = [scales.tick_label(t) for t in ticks]
        assert len(set(labels)) == len(labels) >= 2                      # not "7e-01" on every tick
        assert all(abs(float(label) - t) <= 1e-9 * t for label, t in zip(labels, ticks))


# --- frames -----------------------------------------------------------------------

def _axes_titled(fig, words):
    return [ax for ax in fig.axes if words in ax.get_title(loc="left") + ax.get_title()]


def test_frame_shows_the_boundary_loss_accuracy_gradients_and_the_network(run):
    history = run["result"].history
    fig = report.frame_figure(run["model"], LOSS, run["ds"], run["snapshots"], history, index=-1, resolution=60)
    boundary = _axes_titled(fig, "decision boundary")[0]
    x, y = run["ds"].x_train, run["ds"].y_train
    sides = [viz.region_of(boundary, p) for p in x[:40]]
    right = [s is not None and ((s[0] >= 0.5) == (label == 1)) for s, label in zip(sides, y[:40])]
    assert np.mean(right) >= 0.85                    # the drawn regions classify the training points
    loss_ax, acc_ax = _axes_titled(fig, "loss per epoch")[0], _axes_titled(fig, "accuracy per epoch")[0]
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        assert ax.get_ylabel() == metric
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]
        curve = {l.get_gid(): l for l in ax.lines if l.get_gid()}
        xs, ys = curve[f"{metric}-test"].get_data()
        assert list(xs) == [0] + history["epoch"]                        # from the start to this epoch
        assert np.allclose(ys[1:], history[f"val_{metric}"])
        assert any(list(l.get_xdata()) == [EPOCHS, EPOCHS] for l in ax.lines)   # this frame's epoch
    headline = fig._suptitle.get_text()
    assert "epoch 12, step 48" in headline and "test loss" in headline and "test accuracy" in headline
    grads = _axes_titled(fig, "gradient norm per layer")[0]
    assert [t.get_text() for t in grads.get_legend().get_texts()] == ["1: Dense(8)", "2: Dense(2)"]
    assert grads.get_yscale() == "log" and len([l for l in grads.lines if l.get_gid()]) == 2
    arch = _axes_titled(fig, "network architecture")[0]
    assert len([c for c in arch.collections if (c.get_gid() or "").startswith("neurons-")]) == 3
    assert _axes_titled(fig, "backward pass")                      # 8 hidden units: drawn with gradients


def test_the_split_is_named_alike_in_legends_and_headline(run):
    fig = report.frame_figure(run["model"], LOSS, run["ds"], run["snapshots"], run["result"].history,
                              index=2, resolution=20, split="validation")
    legend = [t.get_text() for t in _axes_titled(fig, "loss per epoch")[0].get_legend().get_texts()]
    assert legend == ["train", "validation"]
    assert "validation loss" in fig._suptitle.get_text() and "test" not in fig._suptitle.get_text()


def _limits(fig):
    return [(ax.get_xlim(), ax.get_ylim(), ax.get_yscale()) for ax in fig.axes]


def test_every_frame_has_the_same_axes_and_nothing_is_clipped(run):
    args = (run["model"], LOSS, run["ds"], run["snapshots"], run["result"].history)
    first, last = (report.frame_figure(*args, index=i, resolution=20, dpi=72) for i in (0, -1))
    assert _limits(first) == _limits(last)
    loss_ax = _axes_titled(first, "loss per epoch")[0]
    assert loss_ax.get_xlim() == (0, EPOCHS) and loss_ax.get_yscale() == "log"
    assert _axes_titled(first, "accuracy per epoch")[0].get_ylim() == (-0.02, 1.02)
    for fig in (first, last):
        renderer = fig.canvas.get_renderer()
        fig.canvas.draw()
        box = fig.bbox
        texts = [fig._suptitle] + [t for ax in fig.axes for t in [ax.title] + (
            [ax.xaxis.label, ax.yaxis.label] + ax.get_xticklabels() + ax.get_yticklabels() if ax.axison else [])]
        for t in texts:
            if t.get_text() and t.get_visible():
                e = t.get_window_extent(renderer)
                assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1, t.get_text()
    labels = [t.get_text() for t in loss_ax.get_yticklabels() if t.get_text()]
    assert len(set(labels)) == len(labels) >= 2


def test_gradient_norms_are_each_layers_norm_of_the_hand_written_gradient(run):
    model, ds, params = run["model"], run["ds"], run["snapshots"][3].params
    xb, yb = ds.x_train[:64], ds.y_train[:64]
    norms = viz.gradient_norms(model, LOSS, params, xb, yb)
    loss = fnn.get_loss(LOSS)
    grads = jax.grad(lambda p: loss.fn(model.apply(p, xb), yb))(params)       # jax.grad, not fnn's backward
    want = [np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64))) for g in (layer["W"], layer["b"])))
            for layer in grads if layer]
    assert list(norms) == ["1: Dense(8)", "2: Dense(2)"]
    np.testing.assert_allclose(list(norms.values()), want, rtol=1e-5)
    # The frames' norms are these on the first (up to) 256 training examples.
    frames = ReportData(model, LOSS, ds).extend(run["snapshots"], run["result"].history).frames
    n = min(256, len(ds.x_train))
    direct = viz.gradient_norms(model, LOSS, params, ds.x_train[:n], ds.y_train[:n])
    np.testing.assert_allclose(frames[3].grad_norms, list(direct.values()), rtol=1e-5)
    assert frames[0].grad_norms != frames[-1].grad_norms


def test_backward_pass_colours_weights_and_neurons_by_the_gradient(run):
    model, ds, params = run["model"], run["ds"], run["snapshots"][0].params
    _, grads = fnn.value_and_grad(model, LOSS, params, ds.x_train, ds.y_train, method="manual")
    norm = viz.architecture.blame_norm(1e-5, 1.0)
    drawing = viz.plot_backward(params, grads, model=model, norm=norm)
    colour = ScalarMappable(norm=norm, cmap=viz.architecture.BLAME_CMAP).to_rgba
    for lines, neurons, layer in zip(drawing.lines, drawing.neurons[1:], (grads[0], grads[2])):
        g = np.abs(np.asarray(layer["W"])).reshape(-1)              # segments in (input, output) order
        np.testing.assert_allclose(lines.get_colors(), colour(np.clip(g, 1e-5, 1.0)))
        assert np.argmax(lines.get_linewidths()) == np.argmax(g)
        np.testing.assert_allclose(neurons.get_facecolor(), colour(np.clip(np.abs(layer["b"]), 1e-5, 1.0)))
    assert np.allclose(drawing.neurons[0].get_facecolor()[:, :3], 0.85)       # inputs have no error signal
    # A network wider than 64 hidden units has no backward drawing, only the norms.
    wide = fnn.mlp([2, 40, 40, 2])
    snaps = [report.Snapshot(0, 0, wide.init(jax.random.key(0), (-1, 2))[1])]
    assert not ReportData(wide, LOSS, ds).extend(snaps).backward


def test_frames_without_2d_inputs_show_a_confusion_matrix_and_sample_predictions():
    rng = np.random.default_rng(0)
    ds = data.Dataset(rng.normal(size=(50, 6)).astype(np.float32), rng.integers(0, 3, 50).astype(np.int32),
                      rng.normal(size=(20, 6)).astype(np.float32), rng.integers(0, 3, 20).astype(np.int32),
                      3, "signals", "classification")
    model = fnn.mlp([6, 5, 3])
    snaps = report.Snapshots(model.init(jax.random.key(0), (-1, 6))[1])
    history = {"epoch": [1], "step": [1], "train_loss": [1.0], "val_loss": [1.1],
               "train_accuracy": [0.3], "val_accuracy": [0.3]}
    fig = report.frame_figure(model, LOSS, ds, snaps, history, index=0)
    confusion = [ax for ax in fig.axes if ax.images][0]
    assert confusion.images[0].get_array().sum() == 20 and confusion.get_xlabel() == "predicted class"
    assert confusion.images[0].get_clim() == (0, np.bincount(ds.y_test).max())   # the same in every frame
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
    fig = report.frame_figure(model, LOSS, ds, snaps, {}, index=0)
    blocks = [p.get_gid() for ax in fig.axes for p in ax.patches if (p.get_gid() or "").startswith("block-")]
    assert blocks == [f"block-{i}" for i in range(6)]      # input, Reshape, Conv (· relu), MaxPool, Flatten, Dense
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(t.startswith("Conv") and "· relu" in t and "4 × 2" in t for t in texts), texts
    confusion = [ax for ax in fig.axes if ax.images][0]
    assert confusion.images[0].get_array().sum() == 12
    grads = _axes_titled(fig, "gradient norm per layer")[0]
    assert [t.get_text() for t in grads.get_legend().get_texts()] == ["1: Conv(2, 3)", "2: Dense(3)"]


def test_frames_of_a_model_with_batchnorm_use_the_snapshots_model_state():
    rng = np.random.default_rng(2)
    ds = data.Dataset(rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, 40).astype(np.int32),
                      rng.normal(size=(12, 6)).astype(np.float32), rng.integers(0, 3, 12).astype(np.int32),
                      3, "signals", "classification")
    model = fnn.serial(fnn.Reshape((6, 1)), fnn.Conv(2, 3, use_bias=False), fnn.BatchNorm(),
                       fnn.Activation("relu"), fnn.GlobalAvgPool(), fnn.Dense(3))
    params = model.init(jax.random.key(0), (-1, 6))[1]
    snaps = report.Snapshots(params)
    r = fnn.fit(model, LOSS, fnn.optim.adam(0.05), params, ds.x_train, ds.y_train,
                key=jax.random.key(1), steps=20, batch_size=10, progress=False, callback=snaps)
    assert len(snaps) == 2                          # the start, and after the one chunk
    last = snaps.frames[-1]
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(last.model_state),
                                                     jax.tree.leaves(r.state.model_state)))
    fig = report.frame_figure(model, LOSS, ds, snaps, r.history, index=1)
    want = fnn.evaluate(model, LOSS, last.params, ds.x_test, ds.y_test, model_state=last.model_state)
    assert f"test accuracy {want['accuracy']:.3f}" in fig._suptitle.get_text()


def test_regression_frames_show_the_fitted_curve_and_no_accuracy():
    ds, _ = data.standardize_dataset(data.get_dataset("sine", key=jax.random.key(0), n=64, n_test=20), targets=True)
    model = fnn.mlp([1, 4, 1], activation="tanh")
    snaps = report.Snapshots(model.init(jax.random.key(0), (-1, 1))[1])
    fig = report.frame_figure(model, "mse", ds, snaps, {}, index=0)
    main = _axes_titled(fig, "the model's curve")[0]
    assert [l.get_gid() for l in main.lines] == ["model"]
    assert len(main.lines[0].get_xdata()) == 200
    assert _axes_titled(fig, "loss per epoch") and not _axes_titled(fig, "accuracy per epoch")


def test_report_rejects_missing_snapshots_and_non_datasets(run, tmp_path):
    with pytest.raises(ValueError, match="snapshot"):
        report.training_report(run["model"], LOSS, run["ds"], [], {})
    with pytest.raises(TypeError, match="Dataset"):
        report.training_report(run["model"], LOSS, (1, 2), run["snapshots"], {})
    with pytest.raises(TypeError, match="split must be the name"):
        report.training_report(run["model"], LOSS, run["ds"], run["snapshots"], {}, split=3)
    with pytest.raises(ValueError, match="does not exist"):
        report.LiveReport(tmp_path / "missing", run["model"], LOSS, run["ds"])


def test_the_curves_picture_is_shared_and_marks_each_frames_epoch_and_values(run):
    history = run["result"].history
    data = ReportData(run["model"], LOSS, run["ds"]).extend(run["snapshots"], history)
    curves = Curves(data, data.ranges(final=True))
    picture = png_pixels(curves.png())
    assert picture.shape[:2] == (round(curves.fig.bbox.height), round(curves.fig.bbox.width))
    loss, acc, grad = curves.panels
    assert list(loss.lines[1].get_xdata()) == [0] + history["epoch"]          # every epoch, not cut
    height = curves.fig.bbox.height
    marks = [curves.marks(i) for i in range(len(data.frames))]
    assert all(len(m) == 3 for m in marks)
    for panel, m in zip(curves.panels, marks[3]):                             # frame 3: epoch 6
        x, _ = panel.ax.transData.transform((6, 1.0))
        assert m["x"] == pytest.approx(x, abs=0.1) and m["right"] == pytest.approx(panel.ax.bbox.x1, abs=0.1)
        assert m["top"] < m["bottom"] <= height
    test_dot = marks[3][0]["dots"][1]
    u, v = loss.ax.transData.transform((6, history["val_loss"][5]))
    assert test_dot[:2] == pytest.approx([u, height - v], abs=0.1)           # the test loss at epoch 6
    assert len(marks[3][2]["dots"]) == 2                                      # a dot per layer
    assert [m[0]["x"] for m in marks] == sorted({m[0]["x"] for m in marks})    # later frames further right


# --- the HTML file ------------------------------------------------------------------

def test_report_is_one_self_contained_page_with_a_frame_per_snapshot(run, page):
    path, text = page
    assert os.path.basename(path) == "report.html"
    d = page_data(text)
    assert d["live"] is False and d["split"] == "test" and d["layers"] == ["1: Dense(8)", "2: Dense(2)"]
    frames = d["frames"]
    assert len(frames) == len(run["snapshots"])
    assert all(f["src"].startswith("data:image/png;base64,") for f in frames)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)         # nothing from the network
    assert "<link" not in text and "report-data.js" not in text.split("<script>")[0]
    first, last = png_pixels(frames[0]["src"]), png_pixels(frames[-1]["src"])
    assert first.shape == last.shape and first.std() > 10
    assert np.mean(np.abs(first - last).max(axis=2) > 40) > 0.01        # training changed the picture
    assert frames[0]["caption"] == "epoch 0, step 0" and frames[-1]["caption"] == "epoch 12, step 48"
    assert frames[-1]["test"]["accuracy"] > 0.8 and len(frames[-1]["grad_norms"]) == 2
    assert d["curves"]["src"].startswith("data:image/png;base64,")          # one picture of the curves
    assert png_pixels(d["curves"]["src"]).shape[:2] == (d["curves"]["height"], d["curves"]["width"])
    assert d["ranges"]["epoch"] == [0, EPOCHS] and d["ranges"]["loss"][0] == "log"
    assert [len(f["marks"]) for f in frames] == [3] * len(frames)
    assert "2-8-2 tanh" in text                                          # the summary table
    assert 'id="fnn-slider"' in text and 'getElementById("fnn-data")' in text   # style and script inline


def test_writing_shows_progress_only_when_asked(run, capsys):
    args = (run["model"], LOSS, run["ds"], run["snapshots"][:1], run["result"].history)
    report.training_report(*args, resolution=10)
    assert capsys.readouterr().err == ""
    report.training_report(*args, resolution=10, progress=True)
    assert "frame" in capsys.readouterr().err


# --- the live report ----------------------------------------------------------------

def _live_data(folder):
    text = (folder / live_module.DATA_FILE).read_text(encoding="utf-8")
    assert text.startswith("fnnReportData(") and text.endswith(");\n")
    return json.loads(text[len("fnnReportData("):-3])


def test_live_report_files_grow_with_the_snapshots_and_end_as_the_final_report(run, page, tmp_path):
    snaps, history = list(run["snapshots"]), run["result"].history
    live = report.LiveReport(tmp_path, run["model"], LOSS, run["ds"], epochs=EPOCHS, resolution=50,
                             summary={"model": "2-8-2 tanh", "epochs": EPOCHS}, background=True)
    html_live = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page_data(html_live)["live"] is True and _live_data(tmp_path)["frames"] == []
    assert live.update([], {}) == 0                                       # nothing to draw yet
    assert live.update(snaps[:2], history) == 2                           # drawn on the report's thread
    live.wait()
    d = _live_data(tmp_path)
    assert d["live"] and [f["src"] for f in d["frames"]] == ["frames/000.png", "frames/001.png"]
    early = (tmp_path / "frames" / "001.png").read_bytes()                  # drawn knowing 2 frames
    assert early[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "frames" / "curves.png").exists()
    assert d["curves"]["src"].startswith("frames/curves.png?v=")
    assert live.update(snaps[:3], history) == 3                           # only the new one is drawn
    live.wait()
    assert [f["caption"] for f in _live_data(tmp_path)["frames"]][-1] == "epoch 4, step 16"
    assert live.update(snaps, history) == len(snaps)
    path = live.finish(snaps, history)
    final = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert path == str(tmp_path / "report.html") and page_data(final)["live"] is False
    assert _live_data(tmp_path)["live"] is False                          # an open live page reloads
    assert not (tmp_path / "frames").exists()
    # The final page is the one training_report writes, frame for frame.
    want = page_data(page[1])["frames"]
    got = page_data(final)["frames"]
    assert [f["caption"] for f in got] == [f["caption"] for f in want]
    for g, w in zip(got, want):
        assert np.abs(png_pixels(g["src"]) - png_pixels(w["src"])).max() == 0
    assert base64.b64decode(got[1]["src"].split(",", 1)[1]) == early        # a frame is drawn once
    assert page_data(final)["curves"]["src"] == page_data(page[1])["curves"]["src"]
    with pytest.raises(ValueError, match="finished"):
        live.update(snaps, history)
    with pytest.raises(ValueError, match="at least one snapshot"):
        report.LiveReport(tmp_path, run["model"], LOSS, run["ds"]).finish([], history)


def test_live_report_follows_fit_chunk_by_chunk(run, tmp_path):
    ds, model = run["ds"], run["model"]
    _, params = model.init(jax.random.key(3), (-1, 2))
    snaps = report.Snapshots(params)
    live = report.LiveReport(tmp_path, model, LOSS, ds, epochs=3, resolution=10, background=False)
    seen = []
    follow = live.follow(snaps)

    def callback(state, history):
        follow(state, history)
        seen.append(len(_live_data(tmp_path)["frames"]))

    live.update(snaps, {})
    r = fnn.fit(model, LOSS, optim.adam(0.05), params, ds.x_train, ds.y_train, key=jax.random.key(1),
                epochs=3, batch_size=BATCH, progress=False, callback=callback,
                chunk_steps=report.chunk_steps(len(ds.x_train), BATCH, epochs=3, frames=3))
    assert seen == [2, 3, 4]                                              # the page's data after each chunk
    live.finish(history=r.history)
    assert len(page_data((tmp_path / "report.html").read_text(encoding="utf-8"))["frames"]) == 4


def test_a_drawing_error_on_the_live_reports_thread_is_raised_by_the_next_call(run, tmp_path):
    live = report.LiveReport(tmp_path, run["model"], LOSS, run["ds"], resolution=10, background=True)
    (tmp_path / "frames").rmdir()
    (tmp_path / "frames").write_text("not a folder")                      # the frames cannot be written
    live.update(run["snapshots"][:1], {})                                  # returns before drawing
    with pytest.raises(ValueError, match=r"frames/000\.png"):
        live.wait()


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
    assert len(page_data(text)["frames"]) == frames
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 40
