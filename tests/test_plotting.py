"""fnn.viz's plots: each picture is checked for what it draws, not only that it draws."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D

import fnn
from examples import seeds
from examples.seed_figures import xor_models as train_xor_models
from fnn import viz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XOR_X = np.asarray(seeds.XOR_INPUTS)
XOR_Y = np.asarray(seeds.XOR_TARGETS)


def by_gid(artists, gid):
    return [a for a in artists if a.get_gid() == gid]


@pytest.fixture(scope="module")
def xor_models():
    """(neuron, params, 2-4-1 tanh net, params), each trained on XOR by gradient descent."""
    return train_xor_models(key=jax.random.key(0))


# --- headless, and only when asked for -----------------------------------------

def test_import_fnn_leaves_matplotlib_out_and_viz_draws_without_pyplot_or_display(tmp_path):
    code = ("import sys, fnn\n"
            "assert 'matplotlib' not in sys.modules, 'import fnn imported matplotlib'\n"
            "P = fnn.viz\n"
            "assert 'matplotlib' in sys.modules\n"
            "P.save_figure(P.plot_activations(['tanh']), sys.argv[1])\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    out = tmp_path / "tanh.png"
    r = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_old_module_names_are_the_viz_modules():
    import fnn.plotting
    import fnn.report
    from fnn import report
    assert fnn.plotting.plot_history is viz.plot_history is viz.plots.plot_history
    assert fnn.plotting.save_figure is viz.save_figure
    assert report.Snapshots is fnn.report.Snapshots is viz.report.Snapshots is viz.Snapshots
    assert report.write_report is viz.write_report and report.chunk_steps is viz.chunk_steps


# --- activations --------------------------------------------------------------

def test_activation_menu_draws_each_function_and_its_hand_written_derivative():
    fig = viz.plot_activations()
    assert len(fig.axes) == len(viz.ACTIVATION_MENU)
    for ax, name in zip(fig.axes, viz.ACTIVATION_MENU):
        assert ax.get_title().startswith(name)
        assert ax.get_xlabel() == "z"
        (f,), (df,) = [[l for l in ax.lines if l.get_label() == lab] for lab in ("f(z)", "f′(z)")]
        z, y, dy = f.get_xdata(), f.get_ydata(), df.get_ydata()
        np.testing.assert_allclose(y, np.asarray(fnn.get_activation(name).fn(jnp.asarray(z))), atol=1e-6)
        # The dashed curve is the slope of the solid one (away from relu's kink at 0).
        smooth = np.abs(z) > 0.05
        np.testing.assert_allclose(dy[smooth], np.gradient(y, z)[smooth], atol=5e-3)


def test_activation_menu_rejects_softmax_and_unknown_names():
    with pytest.raises(ValueError, match="softmax"):
        viz.plot_activations(["tanh", "softmax"])
    with pytest.raises(ValueError, match="swoosh"):
        viz.plot_activations(["swoosh"])


# --- training curves ----------------------------------------------------------

HISTORY = {"epoch": [1, 2, 3, 4, 5], "step": [10, 20, 30, 40, 50],
           "train_loss": [1.0, 0.5, 0.3, 0.2, 0.1], "val_loss": [1.1, None, 0.4, 0.35, 0.3],
           "train_accuracy": [0.5, 0.6, 0.7, 0.8, 0.9], "val_accuracy": [0.5, 0.55, 0.6, 0.65, 0.7]}


def test_history_draws_train_and_validation_loss_and_accuracy():
    fig = viz.plot_history(HISTORY)
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("epoch", "loss")
    assert acc_ax.get_ylabel() == "accuracy"
    assert loss_ax.get_yscale() == "log"
    train, val = loss_ax.lines
    assert (train.get_label(), val.get_label()) == ("train", "validation")
    assert list(train.get_xdata()) == [1, 2, 3, 4, 5]
    assert list(val.get_xdata()) == [1, 3, 4, 5]                  # the None epoch is skipped
    assert list(val.get_ydata()) == [1.1, 0.4, 0.35, 0.3]
    assert [l.get_label() for l in acc_ax.lines] == ["train", "validation"]


def test_history_names_the_split_as_told_and_labels_log_ticks_readably():
    fig = viz.plot_history({**HISTORY, "train_loss": [0.8, 0.75, 0.7, 0.66, 0.62],
                            "val_loss": [0.8, 0.78, 0.77, 0.76, 0.75]}, val_label="test")
    loss_ax = fig.axes[0]
    assert [l.get_label() for l in loss_ax.lines] == ["train", "test"]
    fig.canvas.draw()
    labels = [t.get_text() for t in loss_ax.get_yticklabels() if t.get_text()]
    assert labels == ["0.5", "1"]                  # one per tick, not "7e-01" on every minor tick
    assert loss_ax.get_ylim() == (0.5, 1.0)


def test_history_by_step_with_a_marked_frame_and_no_accuracy():
    regression = {k: v for k, v in HISTORY.items() if "accuracy" not in k}
    regression["train_accuracy"] = [None] * 5
    fig = viz.plot_history(regression, x="step", mark=30)
    (ax,) = fig.axes                                              # no accuracy panel
    assert ax.get_xlabel() == "step"
    assert list(ax.lines[0].get_xdata()) == HISTORY["step"]
    marker = [l for l in ax.lines if list(l.get_xdata()) == [30, 30]]
    assert len(marker) == 1                                       # the vertical line at step 30
    dots = [l for l in ax.lines if len(l.get_xdata()) == 1]
    assert sorted(float(d.get_ydata()[0]) for d in dots) == [0.3, 0.4]


def test_history_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'time'"):
        viz.plot_history(HISTORY, x="time")
    with pytest.raises(ValueError, match="train_loss"):
        viz.plot_history({"epoch": [1]})


# --- decision boundaries --------------------------------------------------------

def test_xor_boundary_of_the_hidden_layer_separates_the_classes(xor_models):
    _, _, net, p_net = xor_models
    ax = viz.plot_decision_boundary(net, p_net, XOR_X, XOR_Y, resolution=60)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x₁", "x₂")
    (boundary,) = by_gid(ax.collections, "decision-boundary")
    assert list(boundary.levels) == [0.5]
    for point, label in zip(XOR_X, XOR_Y):
        low, high = viz.region_of(ax, point)
        assert (low >= 0.5) if label == 1 else (high <= 0.5), (point, label, low, high)
    assert [len(by_gid(ax.collections, f"points-{k}")[0].get_offsets()) for k in (0, 1)] == [2, 2]


def test_xor_boundary_of_a_lone_neuron_gets_a_point_wrong(xor_models):
    neuron, p_neuron, _, _ = xor_models
    ax = viz.plot_decision_boundary(neuron, p_neuron, XOR_X, XOR_Y, resolution=60)
    sides = [viz.region_of(ax, p)[0] >= 0.5 for p in XOR_X]
    assert sum(side == (label == 1) for side, label in zip(sides, XOR_Y)) < 4


def test_multiclass_regions_are_the_models_predicted_classes():
    model = fnn.mlp([2, 8, 3], activation="tanh")
    _, params = model.init(jax.random.key(3), (-1, 2))
    x = np.asarray(jax.random.normal(jax.random.key(4), (30, 2)))
    y = np.arange(30) % 3
    ax = viz.plot_decision_boundary(model, params, x, y, resolution=80)
    (regions,) = by_gid(ax.collections, "decision-regions")
    assert list(regions.levels) == [-0.5, 0.5, 1.5, 2.5]
    probe = np.asarray(jax.random.uniform(jax.random.key(5), (40, 2), minval=-1.5, maxval=1.5))
    predicted = np.argmax(np.asarray(model.apply(params, jnp.asarray(probe))), axis=1)
    bands = [viz.region_of(ax, p) for p in probe]
    agree = [b is not None and b[0] < k < b[1] for b, k in zip(bands, predicted)]
    assert np.mean(agree) >= 0.9                                  # all but points on a boundary
    assert len(by_gid(ax.collections, "points-2")[0].get_offsets()) == 10


def test_decision_boundary_needs_2d_points():
    model = fnn.mlp([3, 1])
    _, params = model.init(jax.random.key(0), (-1, 3))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        viz.plot_decision_boundary(model, params, np.zeros((4, 3)), np.zeros(4))


# --- loss landscapes ------------------------------------------------------------

def quadratic(w):
    """L = ½(w − 2)², ∂L/∂w = w − 2 (seed 002's parabola with x = 1, y = 2)."""
    w = np.asarray(w)
    return 0.5 * (w - 2) ** 2, w - 2


def test_parabola_with_the_gradient_descent_path():
    path, losses = viz.descent_path(quadratic, [0.0], 0.5, 5)
    np.testing.assert_allclose(path[:, 0], 2 - 2 * 0.5 ** np.arange(6))   # halves the gap each step
    assert np.all(np.diff(losses) < 0)
    ax = viz.plot_loss_1d(lambda w: quadratic(w)[0], path[:, 0])
    (curve,) = by_gid(ax.lines, "loss-curve")
    np.testing.assert_allclose(curve.get_ydata(), quadratic(curve.get_xdata())[0])
    (dots,) = by_gid(ax.lines, "descent-path")
    np.testing.assert_allclose(dots.get_xdata(), path[:, 0])
    np.testing.assert_allclose(dots.get_ydata(), losses)
    assert len(ax.texts) == 5                                     # one arrow per step
    assert ax.get_xlabel() == "weight w" and ax.get_ylabel() == "loss L(w)"


def test_loss_surface_in_3d_with_the_path_on_it():
    def loss(w, b):
        return 0.5 * (np.asarray(w) + np.asarray(b) - 2) ** 2 + 0.1 * np.asarray(w) ** 2

    def value_and_grad(wb):
        w, b = wb
        r = w + b - 2
        return loss(w, b), np.array([r + 0.2 * w, r])

    path, losses = viz.descent_path(value_and_grad, [3.0, 2.0], 0.3, 12)
    ax = viz.plot_loss_surface(loss, path, points=20)
    assert ax.name == "3d"
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_zlabel()) == ("weight w", "bias b", "loss L")
    (line,) = by_gid(ax.lines, "descent-path")
    xs, ys, zs = line.get_data_3d()
    np.testing.assert_allclose(np.stack([xs, ys], 1), path)
    np.testing.assert_allclose(zs, losses)
    assert len(by_gid(ax.collections, "loss-surface")) == 1
    with pytest.raises(ValueError, match="3-D"):
        viz.plot_loss_surface(loss, path, ax=viz.figure().add_subplot())


# --- architecture ---------------------------------------------------------------

def test_architecture_colors_connections_by_sign_and_widens_them_by_size():
    model = fnn.mlp([2, 3, 1], activation="tanh")
    W0 = np.array([[1.0, -2.0, 0.5], [-0.25, 4.0, -1.0]], np.float32)
    W1 = np.array([[3.0], [-1.5], [0.75]], np.float32)
    params = ({"W": W0, "b": np.zeros(3, np.float32)}, (), {"W": W1, "b": np.zeros(1, np.float32)})
    ax = viz.plot_architecture(params, model=model)
    assert [len(by_gid(ax.collections, f"neurons-{l}")[0].get_offsets()) for l in range(3)] == [2, 3, 1]
    lines = by_gid(ax.collections, "weights-0")[0]
    assert len(lines.get_segments()) == 6
    w = W0.reshape(-1)                                            # segments in (input, output) order
    colors = [tuple(c[:3]) for c in lines.get_colors()]
    assert colors == [to_rgb(viz.POSITIVE if v > 0 else viz.NEGATIVE) for v in w]
    widths = lines.get_linewidths()
    assert np.argmax(widths) == np.argmax(np.abs(w)) and np.argmin(widths) == np.argmin(np.abs(w))
    assert len(by_gid(ax.collections, "weights-1")[0].get_segments()) == 3
    assert any("3 · tanh" in t.get_text() for t in ax.texts)
    assert not any("more" in t.get_text() for t in ax.texts)


def test_wide_layers_are_drawn_with_an_ellipsis():
    model = fnn.mlp([40, 100, 10])
    params = jax.jit(lambda k: model.init(k, (-1, 40))[1])(jax.random.key(0))   # one compile
    ax = viz.plot_architecture(params, model=model, max_neurons=12)
    assert [len(by_gid(ax.collections, f"neurons-{l}")[0].get_offsets()) for l in range(3)] == [10, 10, 10]
    assert [by_gid(ax.texts, f"ellipsis-{l}")[0].get_text() for l in (0, 1)] == \
        ["⋮ (30 more)", "⋮ (90 more)"]
    assert not by_gid(ax.texts, "ellipsis-2")
    assert [len(by_gid(ax.collections, f"weights-{l}")[0].get_segments()) for l in (0, 1)] == [100, 100]


def test_architecture_from_widths_and_bad_params():
    ax = viz.plot_architecture([784, 512, 10])
    assert [len(by_gid(ax.collections, f"neurons-{l}")[0].get_offsets()) for l in range(3)] == [10, 10, 10]
    with pytest.raises(ValueError, match="takes 4 inputs"):
        viz.plot_architecture(({"W": np.zeros((2, 3))}, {"W": np.zeros((4, 1))}))
    with pytest.raises(TypeError, match="without 'W'"):
        viz.plot_architecture(({"kernel": np.zeros((2, 3))},))
    conv = fnn.serial(fnn.Conv(2, 3), fnn.Flatten(), fnn.Dense(2))
    with pytest.raises(ValueError, match=r"params\[0\]\['W'\] has shape \(3, 1, 2\), a convolution kernel"):
        viz.plot_architecture(conv.init(jax.random.key(0), (-1, 5, 1))[1], model=conv)
    with pytest.raises(ValueError, match="layer width 1 must be a positive integer, got 0"):
        viz.plot_architecture([2, 0, 1])
    with pytest.raises(ValueError, match="max_neurons"):
        viz.plot_architecture([2, 4, 1], max_neurons=3)


# --- gradient agreement ---------------------------------------------------------

def test_gradient_agreement_bars_per_parameter_on_a_log_scale():
    errors = {"[0]['W']": (2e-16, 3e-9, 3e-9), "[0]['b']": (0.0, 1e-9, 1e-9), "[2]['W']": (5e-16, 4e-9, 4e-9)}
    leaves = tuple(fnn.gradcheck.LeafError(path, (2, 2), *e, 4) for path, e in errors.items())
    check = fnn.gradcheck.GradCheckResult(0.5, leaves, 5e-16, 4e-9, 4e-9, 1e-6)
    ax = viz.plot_gradient_agreement(check)
    assert ax.get_yscale() == "log"
    bars = [p for p in ax.patches if (p.get_gid() or "").startswith("bar-")]
    assert len(bars) == 3 * len(leaves)
    for path, e in errors.items():
        for s in range(3):
            (bar,) = [b for b in bars if b.get_gid() == f"bar-{s}-{path}"]
            assert bar.get_height() == pytest.approx(max(e[s], 1e-18))
    tol = {l.get_gid(): l.get_ydata()[0] for l in ax.lines}
    assert tol == {"tol-autodiff": fnn.gradcheck.TOL_AUTODIFF, "tol-fd": fnn.gradcheck.TOL_FD}
    assert [t.get_text() for t in ax.get_xticklabels()] == list(errors)
    assert [t.get_text() for t in ax.texts] == ["0"]              # the exact zero is labelled


def test_gradient_agreement_per_layer_and_exact_zeros():
    layer = fnn.Dense(3)
    _, params = layer.init(jax.random.key(0), (-1, 2))
    per_layer = {"Dense(3)": fnn.check_layer(layer, params, jnp.ones((4, 2)), key=jax.random.key(1)), "tanh": 0.0}
    with pytest.raises(TypeError, match="GradCheckResult"):
        viz.plot_gradient_agreement(per_layer)                # mixed kinds
    ax = viz.plot_gradient_agreement({"Dense(3)": 3e-17, "tanh": 0.0})
    heights = [p.get_height() for p in ax.patches if (p.get_gid() or "").startswith("bar-")]
    assert heights == [3e-17, 1e-18]
    assert [t.get_text() for t in ax.texts] == ["0"]
    ax = viz.plot_gradient_agreement(per_layer["Dense(3)"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["['W']", "['b']", "dx"]
    layers = {"Dense(3)": per_layer["Dense(3)"], "tanh": fnn.check_layer(fnn.Activation("tanh"), (),
                                                                          jnp.ones((4, 3)), key=jax.random.key(1))}
    ax = viz.plot_gradient_agreement(layers, title="per layer")
    bars = [p for p in ax.patches if (p.get_gid() or "").startswith("bar-")]
    assert [b.get_gid() for b in bars] == ["bar-0-Dense(3)", "bar-0-tanh"]
    assert bars[1].get_height() == pytest.approx(max(layers["tanh"].max_error, 1e-18))


# --- classification summaries ---------------------------------------------------

def test_confusion_matrix_counts():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0, 2])
    ax = viz.plot_confusion_matrix(labels, predicted)
    (image,) = ax.images
    np.testing.assert_array_equal(image.get_array(), [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    assert [t.get_text() for t in ax.texts] == ["1", "1", "0", "0", "2", "0", "1", "0", "2"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert "0.714" in ax.get_title()


def test_sample_predictions_are_titled_and_colored_by_correctness():
    x = np.arange(12, dtype=float).reshape(3, 4)
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]])
    axes = viz.plot_sample_predictions(x, [0, 0, 1], probs, n=3)
    assert [a.title.get_text() for a in axes] == \
        ["true 0 → 0 (0.90)", "true 0 → 1 (0.70)", "true 1 → 1 (0.80)"]
    assert [a.title.get_color() for a in axes] == ["#2e7d32", viz.NEGATIVE, "#2e7d32"]
    assert all(isinstance(a.lines[0], Line2D) and len(a.lines[0].get_xdata()) == 4 for a in axes)
