"""fnn.models (the MNIST-1D paper's networks, fnn-best, torch_init) and scripts/mnist1d_table.py."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import models
from fnn.check import TOL_AUTODIFF, TOL_FD
from fnn.errors import InputError
from conftest import load_script


table = load_script("mnist1d_table")


@pytest.mark.parametrize("name, params, shapes", [
    ("logistic", 410, [(-1, 10)]),
    # PyTorch: Linear(40, 100) + Linear(100, 100) + Linear(100, 10)
    ("mlp", 4100 + 10100 + 1010, [(-1, 100), (-1, 100), (-1, 10)]),
    # Conv1d(1, 25, 5): 150; Conv1d(25, 25, 3): 1900 (twice); Linear(125, 10): 1260
    ("cnn", 150 + 1900 + 1900 + 1260, [(-1, 40, 1), (-1, 19, 25), (-1, 10, 25), (-1, 5, 25), (-1, 125)]),
    # patches Dense(4, 32) 160, positions 10 × 32; per block LayerNorm 64, attention 4 · 32² + 3 · 32
    # (no key bias), LayerNorm 64, MLP 32·128 + 128 + 128·32 + 32; final LayerNorm 64, Dense(32, 10) 330
    ("transformer", 160 + 320 + 2 * (64 + 4192 + 64 + 8352) + 64 + 330, [(-1, 10, 4), (-1, 10, 32), (-1, 32)]),
])
def test_the_paper_models_have_its_sizes(name, params, shapes):
    s = fnn.summary(models.mnist1d_model(name), (-1, 40))
    assert s.total_params == params
    assert s.output_shape == (-1, 10)
    seen = [r.output_shape for r in s.rows]
    assert all(shape in seen for shape in shapes), seen


def test_the_paper_cnn_follows_the_output_length_formula():
    # (L + 2p − k)/s + 1, floored: 40 → 19 → 10 → 5
    length = 40
    for k in (5, 3, 3):
        length = (length + 2 - k) // 2 + 1
    assert length == 5
    s = fnn.summary(models.paper_cnn(), (-1, 40))
    assert (-1, 125) in [r.output_shape for r in s.rows]


def test_unknown_model_is_named():
    with pytest.raises(InputError, match=r"'resnet'.*logistic, mlp, cnn, gru, lstm, transformer, fnn-best"):
        models.mnist1d_model("resnet")


def test_torch_init_draws_every_weight_and_bias_within_one_over_root_fan_in():
    model = models.paper_cnn()
    _, params = model.init(jax.random.key(0), (-1, 40))
    redrawn = models.torch_init(jax.random.key(1), params)
    pairs = [p for p in jax.tree.leaves(redrawn, is_leaf=lambda n: isinstance(n, dict) and "W" in n)
             if isinstance(p, dict)]
    assert len(pairs) == 4
    for fan_in, p in zip((5, 75, 75, 125), pairs):
        bound = 1 / math.sqrt(fan_in)
        for leaf in (p["W"], p["b"]):
            a = np.abs(np.asarray(leaf))
            assert a.max() <= bound
        w = np.asarray(p["W"]).ravel()
        # a uniform draw on (−bound, bound): its std is bound/√3 (loose: 125+ samples)
        assert abs(w.std() - bound / math.sqrt(3)) < 0.25 * bound
    no_bias = fnn.serial(fnn.Reshape((40, 1)), fnn.Conv(4, 3, use_bias=False))
    W = models.torch_init(jax.random.key(2), no_bias.init(jax.random.key(0), (-1, 40))[1])[1]["W"]
    assert np.abs(np.asarray(W)).max() <= 1 / math.sqrt(3)       # redrawn (He's bound would be √(6/3))
    assert np.abs(np.asarray(W)).max() > 0.5 / math.sqrt(3)
    again = models.torch_init(jax.random.key(1), params)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(redrawn), jax.tree.leaves(again)))


@pytest.mark.parametrize("name", ["mlp", "cnn", "fnn-best"])
def test_hand_written_gradients_of_the_table_models_match_jax_grad_and_finite_differences(name):
    model = models.mnist1d_model(name)
    k_init, k_x, k_y, k_fd = jax.random.split(jax.random.key(3), 4)
    with jax.enable_x64(True):
        _, params = model.init(k_init, (-1, 40), jnp.float64)
        x = jax.random.normal(k_x, (3, 40), jnp.float64)
        y = jax.random.randint(k_y, (3,), 0, 10)
        state = fnn.init_state(model, (-1, 40), jnp.float64) if model.stateful else None
        kwargs = {} if state is None else {"state": state}
        r = fnn.check_gradients(model, "softmax_cross_entropy", params, x, y, max_fd_per_leaf=6,
                                fd_key=k_fd, **kwargs)
    assert r.max_manual_vs_autodiff <= TOL_AUTODIFF
    assert r.max_manual_vs_fd <= TOL_FD


def test_the_table_script_trains_each_row_and_writes_every_run(tmp_path, capsys):
    path = tmp_path / "runs.json"
    assert table.main(["--seeds", "2", "--steps", "20", "--models", "logistic,cnn", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "paper shuffled" in out and "\ngru " in out and "\nlstm " in out
    runs = json.loads(path.read_text())["runs"]
    assert len(runs) == 2 * 2 * 2                       # models x datasets x seeds
    assert {(r["model"], r["shuffled"], r["seed"]) for r in runs} == {
        (m, s, seed) for m in ("logistic", "cnn") for s in (False, True) for seed in (0, 1)}
    for r in runs:
        assert set(r) == {"model", "shuffled", "seed", "grad", "test_accuracy", "steps", "wall_seconds"}
        assert r["grad"] == "manual" and r["steps"] == 20 and 0 <= r["test_accuracy"] <= 1


@pytest.mark.parametrize("argv, message", [
    (["--models", "rnn"], "--models"),
    (["--seeds", "0"], "--seeds"),
    (["--grad", "numeric"], "--grad"),
])
def test_the_table_script_refuses_bad_flags_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        table.parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) <= 2     # argparse: usage line + the error
