"""The seeds' worked examples: every number pinned, from scripts/seed_examples.py --json; their pictures.

The script runs once (module fixture) and its JSON is checked; the cheap
examples are also checked in-process against jax.grad. The pictures
(examples/seed_figures.py, examples/graph_plot.py) are checked at the end.
"""
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from examples import seeds
from examples.graph import backprop
from examples.graph_plot import plot_computational_graph
from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "seed_examples.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(stdout, JSON) of `python scripts/seed_examples.py --json PATH`."""
    path = tmp_path_factory.mktemp("seed_examples") / "examples.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--json", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(path.read_text())


@pytest.fixture(scope="module")
def out(run):
    return run[1]


def _close(got, want, tol=1e-6):
    assert got == pytest.approx(want, abs=tol), (got, want)


# --- seed 000 ---------------------------------------------------------------

def test_house_prices(out):
    r = out["house_prices"]
    assert abs(r["predicted_price"] - 500_000) <= 0.01 * 500_000
    assert r["price_per_sqft"] == pytest.approx(200, rel=1e-3)
    assert r["fitted_prices"] == pytest.approx([200_000, 300_000, 400_000], rel=1e-3)
    assert r["loss_last"] < 1e-6 < r["loss_first"]


# --- seed 002 ---------------------------------------------------------------

def test_single_neuron(out):
    r = out["single_neuron"]
    assert (r["x"], r["y"], r["w0"], r["b0"], r["lr"]) == (1.0, 2.0, 0.0, 0.0, 0.5)
    assert r["prediction"] == 0.0 and r["loss"] == 2.0
    assert r["dL_dyhat"] == -2.0 and r["dL_dw"] == -2.0 and r["dL_db"] == -2.0
    assert r["w1"] == 1.0 and r["b1"] == 1.0
    assert r["prediction_after"] == 2.0 and r["loss_after"] == 0.0


def test_two_layer_linear(out):
    r = out["two_layer_linear"]
    want = {"a1": 2, "a2": 7, "loss": 2, "dJ_da2": 2, "dJ_dw2": 4, "dJ_db2": 2,
            "dJ_da1": 6, "dJ_dw1": 6, "dJ_db1": 6,
            "w1_new": 1.4, "b1_new": -0.6, "w2_new": 2.6, "b2_new": 0.8,
            "a2_after_step": 2.88, "loss_after_step": 2.2472}
    for name, value in want.items():
        _close(r[name], value, 1e-5 if name == "loss_after_step" else 1e-6)
    assert r["loss_after_more_steps"] < 1e-4
    # The seed's summary slip is recorded, and differs from the computed gradient.
    assert r["seed_gradient_summary"]["dJ_da1"] == 4.0 != r["dJ_da1"]


def test_computational_graph(out):
    r = out["computational_graph"]
    a, b, c = r["a"], r["b"], r["c"]
    assert (r["d"], r["e"], r["y"]) == (a + b, b - c, (a + b) * (b - c))
    assert (r["dy_da"], r["dy_db"], r["dy_dc"]) == (b - c, (b - c) + (a + b), -(a + b))
    assert [n["name"] for n in r["nodes"]] == ["a", "b", "c", "d", "e", "y"]
    assert [n["op"] for n in r["nodes"]] == ["input", "input", "input", "add", "sub", "mul"]
    assert r["nodes"][-1]["inputs"] == ["d", "e"] and r["nodes"][1]["grad"] == r["dy_db"]


# --- seeds 003/004 ----------------------------------------------------------

def test_xor(out):
    r = out["xor"]
    assert r["hidden_layer"]["accuracies"] == [1.0] * r["inits"]
    assert np.all((np.asarray(r["hidden_layer"]["probabilities"]) > 0.5) == np.asarray(r["targets"], bool))
    assert max(r["logistic_regression"]["accuracies"]) <= 0.75
    assert r["logistic_regression"]["best_accuracy"] <= 0.75
    assert r["logistic_regression_phi"]["accuracies"] == [1.0] * r["inits"]
    grid = r["linear_grid_search"]
    assert grid["best_accuracy"] == 0.75 and grid["count_4_of_4"] == 0 and grid["count_3_of_4"] > 0


def test_script_output(run):
    stdout, data = run
    assert stdout.startswith("device: ") and data["device"] in stdout.splitlines()[0]
    slip = [line for line in stdout.splitlines() if "slip" in line]
    assert len(slip) == 1 and "2 x 3 = 6" in slip[0]
    assert "$500,000" in stdout and data["seed"] == 0


# --- in-process checks ------------------------------------------------------

@pytest.mark.parametrize("argv", [["--bogus"], ["--seed", "x"], ["--json", "/no/such/dir/out.json"],
                                  ["--json", str(ROOT)]])
def test_script_bad_args(argv, capsys):
    with pytest.raises(SystemExit) as e:
        load_script("seed_examples").main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "error" in err


def test_seed_002_gradients_match_autodiff():
    """The hand-written numbers above equal jax.grad's for the same networks."""
    model = fnn.serial(fnn.Dense(1), fnn.Dense(1))
    params = ({"W": jnp.array([[2.0]]), "b": jnp.array([0.0])},
              {"W": jnp.array([[3.0]]), "b": jnp.array([1.0])})
    x, y = jnp.array([[1.0]]), jnp.array([[5.0]])
    L, g = fnn.value_and_grad(model, "half_squared_error", params, x, y, method="autodiff")
    r = seeds.two_layer_linear()
    assert float(L) == r["loss"]
    assert [float(g[0]["W"][0, 0]), float(g[0]["b"][0]), float(g[1]["W"][0, 0]), float(g[1]["b"][0])] \
        == [r["dJ_dw1"], r["dJ_db1"], r["dJ_dw2"], r["dJ_db2"]]
    s = seeds.single_neuron(x=2.0, y=-1.0, w=0.5, b=0.25, lr=0.1)
    dw, db = jax.grad(lambda w, b: 0.5 * (w * 2.0 + b + 1.0) ** 2, argnums=(0, 1))(0.5, 0.25)
    _close(s["dL_dw"], float(dw))
    _close(s["dL_db"], float(db))
    _close(s["w1"], 0.5 - 0.1 * float(dw))


def test_computational_graph_other_point(x64):
    r = seeds.computational_graph(a=-1.5, b=0.25, c=4.0)
    f = lambda a, b, c: (a + b) * (b - c)
    want = jax.grad(f, argnums=(0, 1, 2))(-1.5, 0.25, 4.0)
    assert r["y"] == f(-1.5, 0.25, 4.0)
    assert (r["dy_da"], r["dy_db"], r["dy_dc"]) == tuple(float(w) for w in want)


def test_gradient_descent_step_on_a_tree():
    params = ({"W": jnp.array([[1.0, 2.0]]), "b": jnp.array([0.5])}, ())
    grads = ({"W": jnp.array([[0.5, -1.0]]), "b": jnp.array([2.0])}, ())
    new = seeds.gradient_descent_step(params, grads, 0.5)
    assert jax.tree.structure(new) == jax.tree.structure(params)
    np.testing.assert_array_equal(new[0]["W"], [[0.75, 2.5]])
    np.testing.assert_array_equal(new[0]["b"], [-0.5])


def test_linear_grid_search_small_grid():
    r = seeds.linear_xor_grid_search(limit=1.0, points=11)
    assert r["classifiers"] == 11 ** 3 and r["best_accuracy"] == 0.75 and r["count_4_of_4"] == 0


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="inits"):
        seeds.xor(key=jax.random.key(0), inits=0)
    with pytest.raises(ValueError, match="steps"):
        seeds.house_prices(key=jax.random.key(0), steps=2.5)
    with pytest.raises(TypeError, match="key"):
        seeds.house_prices()                                  # the key is required, never a default
    with pytest.raises(TypeError, match="PRNG key"):
        seeds.all_examples(key=0)


# --- pictures: the computational graph ---------------------------------------

def test_computational_graph_of_seed_002_shows_values_and_gradients():
    g = backprop(lambda a, b, c: (a + b) * (b - c), 2.0, 3.0, 1.0, output_name="y")
    ax = plot_computational_graph(g)
    nodes = {t.get_gid()[5:]: t for t in ax.texts if (t.get_gid() or "").startswith("node-")}
    assert sorted(nodes) == ["a", "b", "c", "d", "e", "y"]
    assert nodes["d"].get_text() == "d = a + b\n= 5"
    assert nodes["e"].get_text() == "e = b − c\n= 2"
    assert nodes["y"].get_text() == "y = d · e\n= 10"
    grads = {t.get_gid()[5:]: t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("grad-")}
    assert grads["a"] == "∂y/∂a = 2" and grads["b"] == "∂y/∂b = 7" and grads["c"] == "∂y/∂c = -5"
    edges = sorted(t.get_gid()[5:] for t in ax.texts if (t.get_gid() or "").startswith("edge-"))
    assert edges == ["a-d", "b-d", "b-e", "c-e", "d-y", "e-y"]
    columns = {k: t.get_position()[0] for k, t in nodes.items()}
    assert columns["a"] == columns["b"] == columns["c"] < columns["d"] == columns["e"] < columns["y"]
    with pytest.raises(TypeError, match="GraphResult"):
        plot_computational_graph(lambda a: a)


# --- pictures: the seeds' figures, as a user makes them ---------------------

def test_seed_figures_are_written_as_pictures(tmp_path):
    from PIL import Image

    from examples.seed_figures import SEED_FIGURES, save_seed_figures, seed_figures
    paths = save_seed_figures(tmp_path / "plots", key=jax.random.key(0), dpi=60)
    assert [Path(p).name for p in paths] == [f"{n}.png" for n in SEED_FIGURES]
    for path in paths:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("L"), float)
        assert min(pixels.shape) > 150 and pixels.std() > 10, path    # a picture, not a blank
    with pytest.raises(ValueError, match="loss_landscape"):
        seed_figures(key=jax.random.key(0), names=["loss_landscape"])
    with pytest.raises(TypeError, match="key"):
        seed_figures(key=0)                                           # an int is not a key


def test_script_rejects_a_file_for_plots(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as e:
        load_script("seed_examples").main(["--plots", str(tmp_path / "file")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "not a directory" in err and "Traceback" not in err
