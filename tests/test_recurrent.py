"""fnn.RNN, fnn.GRU, fnn.LSTM: BPTT backward against jax.vjp and finite differences, forward against
PyTorch's equations written as NumPy loops, wrong backwards caught, bad input named, the paper's models."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from conftest import normal, random_params
from fnn import models
from fnn.check import TOL_AUTODIFF, check_gradients, check_layer, relative_error
from fnn.errors import InputError, InputTypeError
from fnn.layers import cells
from fnn.layers.recurrent import _recurrent

KEY = jax.random.key(0, impl="rbg")          # inits and check_layer's cotangent: rbg compiles faster than threefry
CELLS = {"RNN": fnn.RNN, "GRU": fnn.GRU, "LSTM": fnn.LSTM}
SETTINGS = ("return_sequences", "bidirectional", "num_layers", "initial_state")
# Per cell, five settings of the four options in which every pair of two options' values appears (a
# covering array of strength 2; all 16 combinations take three times as long to compile).
PAIRWISE = [(True, False, 1, "zeros"), (True, True, 2, "learned"), (False, False, 2, "learned"),
            (False, True, 1, "learned"), (False, True, 2, "zeros")]
GRID = [(cell,) + settings for cell in CELLS for settings in PAIRWISE]
# (batch, T, features, hidden): the grid's shape, shared so that eager check_layer compiles each scan
# once per cell (a scan's body depends on B and H only); then the edges T = 1, batch 1, hidden 1, features 1.
SHAPE = (2, 4, 3, 5)
EDGES = {"RNN": (2, 3, 1, 1), "GRU": (1, 1, 2, 1), "LSTM": (1, 1, 3, 2)}


def test_the_grid_covers_every_pair_of_settings():
    for a, b in itertools.combinations(range(4), 2):
        values = [sorted({s[a] for s in PAIRWISE}), sorted({s[b] for s in PAIRWISE})]
        assert {(s[a], s[b]) for s in PAIRWISE} == set(itertools.product(*values))


def _check_backward(cell, settings, shape, seed):
    batch, T, F, H = shape
    layer = CELLS[cell](H, **settings)
    D = 2 if settings["bidirectional"] else 1
    out_shape = fnn.layers.core.output_shape(layer, (-1, T, F))
    assert out_shape == ((-1, T, D * H) if settings["return_sequences"] else (-1, D * H))
    params = random_params(layer, (batch, T, F), seed)    # h0, c0 too: N(0, ½²), not their zero init
    x = normal(100 + seed, (batch, T, F))
    result = check_layer(layer, params, x, key=KEY)
    assert result.max_error <= TOL_AUTODIFF, result
    learned = settings["initial_state"] == "learned"
    per_cell = 4 + (0 if not learned else 2 if cell == "LSTM" else 1)    # W_x, W_h, b_x, b_h (h0, c0)
    assert len(result.leaves) == settings["num_layers"] * D * per_cell


@pytest.mark.parametrize("cell, return_sequences, bidirectional, num_layers, initial_state", GRID)
def test_backward_matches_vjp(x64, cell, return_sequences, bidirectional, num_layers, initial_state):
    settings = dict(zip(SETTINGS, (return_sequences, bidirectional, num_layers, initial_state)))
    _check_backward(cell, settings, SHAPE, GRID.index((cell, *settings.values())))


@pytest.mark.parametrize("cell", CELLS)
def test_backward_matches_vjp_at_the_edges(x64, cell):
    settings = dict(return_sequences=False, bidirectional=True, num_layers=2, initial_state="learned")
    _check_backward(cell, settings, EDGES[cell], 99)


# --------------------------------------------------------------------------- depth: T = 64

def _long_params(cell, F, H):
    """Weights under which gradients neither vanish nor explode in 64 steps: for the RNN, small input
    weights and an orthogonal W_h (tanh' ≈ 1, ‖dh W_hᵀ‖ = ‖dh‖); for the GRU z ≈ σ(3) keeps h, for the
    LSTM f ≈ σ(3) keeps c."""
    rng = np.random.default_rng(7)
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[cell]
    p = {"W_x": 0.5 * rng.standard_normal((F, G * H)), "W_h": 0.3 * rng.standard_normal((H, G * H)),
         "b_x": 0.1 * rng.standard_normal(G * H), "b_h": 0.1 * rng.standard_normal(G * H)}
    if cell == "RNN":
        p = {"W_x": 0.1 * rng.standard_normal((F, H)), "W_h": np.linalg.qr(rng.standard_normal((H, H)))[0],
             "b_x": np.zeros(H), "b_h": np.zeros(H)}
    else:
        p["b_x"][H:2 * H] += 3.0                           # the z block of the GRU, f of the LSTM
    return ((jax.tree.map(jnp.asarray, p),),)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_through_64_steps(x64, cell):
    """Only the last state is the output: x_1's gradient has come back through all 64 steps."""
    batch, T, F, H = 2, 64, 2, 3
    layer = CELLS[cell](H, return_sequences=False)
    params = _long_params(cell, F, H)
    x = normal(5, (batch, T, F))
    dy = normal(6, (batch, H))

    @jax.jit
    def manual_and_vjp(params, x, dy):                        # one program: both gradients
        _, saved = layer.forward(params, x)
        return layer.backward(params, saved, dy), jax.vjp(layer.apply, params, x)[1](dy)
    (dparams, dx), (ref_dparams, ref_dx) = manual_and_vjp(params, x, dy)
    early = np.abs(np.asarray(ref_dx[:, :4])).max()
    assert early > 1e-3 * np.abs(np.asarray(ref_dx)).max()           # the first steps' gradient is alive
    assert relative_error(dx[:, :4], ref_dx[:, :4]) <= TOL_AUTODIFF   # and right, on its own scale
    assert relative_error(dx, ref_dx) <= TOL_AUTODIFF
    for g, r in zip(jax.tree.leaves(dparams), jax.tree.leaves(ref_dparams)):
        assert relative_error(g, r) <= TOL_AUTODIFF


# --------------------------------------------------------------------------- finite differences

def test_gradients_of_a_stack_match_finite_differences(x64):
    model = fnn.serial(fnn.GRU(2, initial_state="learned"),
                       fnn.LSTM(2, return_sequences=False, initial_state="learned", forget_bias=1.0), fnn.Dense(3))
    in_shape = (3, 4, 2)
    assert fnn.layers.core.output_shape(model, (-1, 4, 2)) == (-1, 3)
    params = random_params(model, in_shape, 11)
    x = normal(12, in_shape)
    y = jnp.asarray(np.arange(3) % 3, jnp.int32)
    result = check_gradients(model, "softmax_cross_entropy", params, x, y)
    assert result.ok(), result
    assert {"[0][0][0]['h0']", "[1][0][0]['c0']"} <= {leaf.path for leaf in result.leaves}
    assert all(leaf.fd_count == math.prod(leaf.shape) for leaf in result.leaves)


# --------------------------------------------------------------------------- wrong backwards are caught

def _no_carry_elman(W_h, aux, hs, h_prev, dhs, state0):
    """BPTT truncated to one step: dh_{t−1} is dropped."""
    da = dhs * (1 - hs * hs)
    return da, da, (jnp.zeros_like(state0[0]),)


def _gru_r_misplaced(W_h, aux, hs, h_prev, dhs, state0):
    """The GRU backward with r out of its place: dhp_n = da_n, as if n = tanh(xp_n + hp_n)."""
    dxp, dhp, ds0 = cells.GRU_CELL.backward(W_h, aux, hs, h_prev, dhs, state0)
    r = aux[0]
    H = r.shape[-1]
    return dxp, dhp.at[..., 2 * H:].set(dxp[..., 2 * H:]), ds0


def _lstm_no_dc(W_h, aux, hs, h_prev, dhs, state0):
    """The LSTM backward with dc not carried to the step before (only dh is)."""
    cs, gates = aux
    c_prev = jnp.concatenate([state0[1][None], cs[:-1]], axis=0)

    def step(dh, inputs):
        c_t, c_p, g_t, dy_t = inputs
        i, f, g, o = jnp.split(g_t, 4, axis=-1)
        dh = dh + dy_t
        tc = jnp.tanh(c_t)
        dc = dh * o * (1 - tc * tc)
        da = jnp.concatenate([dc * g * i * (1 - i), dc * c_p * f * (1 - f), dc * i * (1 - g * g),
                              dh * tc * o * (1 - o)], axis=-1)
        return da @ W_h.T, da
    dh0, da = jax.lax.scan(step, jnp.zeros_like(state0[0]), (cs, c_prev, gates, dhs), reverse=True)
    return da, da, (dh0, jnp.zeros_like(dh0))


@pytest.mark.parametrize("cell, wrong", [(cells.ELMAN, _no_carry_elman), (cells.GRU_CELL, _gru_r_misplaced),
                                         (cells.LSTM_CELL, _lstm_no_dc)])
def test_a_wrong_backward_is_caught(x64, cell, wrong):
    batch, T, F, H = SHAPE                                      # a grid setting: its scans are compiled
    settings = dict(return_sequences=True, bidirectional=True, num_layers=2, initial_state="learned",
                    W_init=None, W_h_init=None, b_init=None)
    right = _recurrent(cell, H, *settings.values())
    bad = _recurrent(cell._replace(backward=wrong), H, *settings.values())
    layer = right.replace(backward=bad.backward)
    params = random_params(right, (batch, T, F), 13)
    x = normal(14, (batch, T, F))
    assert check_layer(right, params, x, key=KEY).ok()
    assert check_layer(layer, params, x, key=KEY).max_error > 1e-3


# --------------------------------------------------------------------------- forward: PyTorch's equations

def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _torch_cell_step(cell, p, x, h, c):
    """One step of nn.RNN / nn.GRU / nn.LSTM, with PyTorch's tensors weight_ih = W_xᵀ, weight_hh = W_hᵀ."""
    w_ih, w_hh = np.asarray(p["W_x"]).T, np.asarray(p["W_h"]).T       # (G·H, F), (G·H, H)
    b_ih, b_hh = np.asarray(p["b_x"]), np.asarray(p["b_h"])
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if cell == "RNN":
        return np.tanh(gi + gh), c
    if cell == "GRU":
        i_r, i_z, i_n = np.split(gi, 3, axis=-1)
        h_r, h_z, h_n = np.split(gh, 3, axis=-1)
        r, z = _sigmoid(i_r + h_r), _sigmoid(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h, c
    i, f, g, o = np.split(gi + gh, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c), c


def _torch_forward(cell, params, x, return_sequences):
    """(output, h_n) as PyTorch computes them, batch_first, by loops over layers, directions and time."""
    seq = np.asarray(x)
    B, T, _ = seq.shape
    for layer in params:
        outs = []
        for d, p in enumerate(layer):
            H = p["W_h"].shape[0]
            h = np.broadcast_to(np.asarray(p.get("h0", np.zeros(H))), (B, H))
            c = np.broadcast_to(np.asarray(p.get("c0", np.zeros(H))), (B, H))
            out = np.zeros((B, T, H))
            for t in (range(T - 1, -1, -1) if d == 1 else range(T)):
                h, c = _torch_cell_step(cell, p, seq[:, t], h, c)
                out[:, t] = h
            outs.append((out, h))
        seq = np.concatenate([o for o, _ in outs], axis=-1)
    return seq if return_sequences else np.concatenate([h for _, h in outs], axis=-1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("return_sequences", [True, False])
def test_forward_is_pytorchs(x64, cell, return_sequences):
    layer = CELLS[cell](3, return_sequences=return_sequences, bidirectional=True, num_layers=2,
                        initial_state="learned")
    params = random_params(layer, (2, 5, 2), 15)
    x = normal(16, (2, 5, 2))
    expected = _torch_forward(cell, params, x, return_sequences)
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-12, atol=1e-12)


def test_reverse_output_h_n_is_the_state_at_the_first_step(x64):
    """return_sequences=False gives [forward h_T, reverse h_1]: the sequence output's ends."""
    full = fnn.GRU(2, bidirectional=True)
    last = fnn.GRU(2, bidirectional=True, return_sequences=False)
    params = random_params(full, (2, 4, 3), 17)
    x = normal(18, (2, 4, 3))
    seq = np.asarray(full.apply(params, x))
    np.testing.assert_array_equal(last.apply(params, x), np.concatenate([seq[:, -1, :2], seq[:, 0, 2:]], -1))


# --------------------------------------------------------------------------- init

def test_init_is_pytorchs_uniform_with_the_documented_layout():
    layer = fnn.LSTM(4, bidirectional=True, num_layers=2, forget_bias=1.0)
    assert fnn.layers.core.output_shape(layer, (-1, 7, 3)) == (-1, 7, 8)
    params = jax.jit(lambda k: layer.init(k, (-1, 7, 3))[1])(KEY)         # one program, not one per draw
    assert [[jax.tree.map(jnp.shape, p) for p in l] for l in params] == [
        [{"W_x": (3, 16), "W_h": (4, 16), "b_x": (16,), "b_h": (16,)}] * 2,
        [{"W_x": (8, 16), "W_h": (4, 16), "b_x": (16,), "b_h": (16,)}] * 2]
    bound = 1 / math.sqrt(4)
    for p in jax.tree.leaves(params, is_leaf=lambda n: isinstance(n, dict)):
        b_x = np.asarray(p["b_x"])
        assert np.all(np.abs(b_x[4:8] - 1.0) <= bound)                   # the forget block, shifted by 1
        for leaf in (p["W_x"], p["W_h"], p["b_h"], np.delete(b_x, np.s_[4:8])):
            a = np.abs(np.asarray(leaf))
            assert a.max() <= bound and a.max() > bound / 2
    learned = fnn.GRU(2, initial_state="learned").init(KEY, (-1, 3, 1))[1][0][0]
    assert set(learned) == {"W_x", "W_h", "b_x", "b_h", "h0"} and not np.any(np.asarray(learned["h0"]))
    assert fnn.RNN(5, W_init="zeros").init(KEY, (-1, 2, 2))[1][0][0]["W_h"].max() == 0   # W_h follows W_init


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("make, error, message", [
    (lambda: fnn.GRU(0), InputError, r"GRU: hidden .* must be a positive integer, got 0"),
    (lambda: fnn.LSTM(2.5), InputError, r"LSTM: hidden .* positive integer, got 2.5"),
    (lambda: fnn.RNN(True), InputError, r"positive integer, got True"),
    (lambda: fnn.GRU(3, num_layers=0), InputError, r"GRU: num_layers must be a positive integer, got 0"),
    (lambda: fnn.GRU(3, bidirectional="yes"), InputTypeError, r"GRU: bidirectional must be True or False"),
    (lambda: fnn.RNN(3, return_sequences=None), InputTypeError, r"return_sequences must be True or False"),
    (lambda: fnn.LSTM(3, initial_state="random"), InputError, r"'random'; expected one of zeros, learned"),
    (lambda: fnn.LSTM(3, forget_bias=float("nan")), InputError, r"LSTM: forget_bias must be a finite number"),
    (lambda: fnn.GRU(3, W_init="orthogonal"), InputError, r"unknown initializer 'orthogonal'"),
])
def test_bad_settings_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_shapes_are_named():
    layer = fnn.GRU(3, bidirectional=True)
    with pytest.raises(InputError, match=r"GRU\(3, bidirectional=True\): input shape \(-1, 40\); "
                                         r"expected \(batch, time, features\)"):
        layer.init(KEY, (-1, 40))
    with pytest.raises(InputError, match=r"time steps \(axis 1\) of input shape \(-1, 0, 2\)"):
        layer.init(KEY, (-1, 0, 2))
    _, params = layer.init(KEY, (-1, 4, 2))
    for x in (jnp.zeros((2, 8)), jnp.zeros((2, 4, 3)), jnp.zeros((2, 0, 2))):
        with pytest.raises(InputError, match=rf"input of shape {re_shape(x.shape)}; expected \(batch, time, "
                                             r"features\) with time ≥ 1 and 2 features"):
            layer.apply(params, x)
    with pytest.raises(InputError, match=r"one entry per layer \(1\), each a tuple with one dict per "
                                         r"direction \(2\)"):
        layer.apply(params[0], jnp.zeros((2, 4, 2)))


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


# --------------------------------------------------------------------------- the paper's models

@pytest.mark.parametrize("name, rnn_params", [
    ("gru", 2 * (3 * 6 * 1 + 3 * 6 * 6 + 2 * 3 * 6)),      # nn.GRU(1, 6, bidirectional=True): 324
    ("lstm", 2 * (4 * 6 * 1 + 4 * 6 * 6 + 2 * 4 * 6)),     # nn.LSTM(1, 6, bidirectional=True): 432
])
def test_the_paper_recurrent_models_have_pytorchs_sizes(name, rnn_params):
    s = fnn.summary(models.mnist1d_model(name), (-1, 40))
    assert [r.output_shape for r in s.rows] == [(-1, 10), (-1, 40, 1), (-1, 40, 12), (-1, 480), (-1, 10)]
    assert s.rows[2].params == rnn_params
    assert s.total_params == rnn_params + 480 * 10 + 10 == {"gru": 5134, "lstm": 5242}[name]


def test_torch_init_redraws_recurrent_cells_within_one_over_root_hidden():
    model = fnn.serial(fnn.Reshape((40, 1)), fnn.LSTM(6, bidirectional=True, forget_bias=1.0,
                                                      initial_state="learned", W_init="zeros"),
                       fnn.Flatten(), fnn.Dense(10))
    init_and_redraw = jax.jit(lambda k: models.torch_init(k, model.init(KEY, (-1, 40))[1]))
    redrawn = init_and_redraw(jax.random.key(1, impl="rbg"))      # W_x zeros and b_x's +1 redrawn
    for p in redrawn[1][0]:
        for name in ("W_x", "W_h", "b_x", "b_h"):
            a = np.abs(np.asarray(p[name]))
            assert a.max() <= 1 / math.sqrt(6) and a.max() > 0.5 / math.sqrt(6), name   # forget shift gone
        assert not np.any(np.asarray(p["h0"])) and not np.any(np.asarray(p["c0"]))      # kept
    assert np.abs(np.asarray(redrawn[3]["W"])).max() <= 1 / math.sqrt(480)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_the_paper_recurrent_models_learn(name):
    """24 Adam steps on ten balanced classes, each a fixed random signal plus noise: the loss falls
    from about log 10, below which no model blind to its input can go, to under 0.5."""
    model = models.mnist1d_model(name)
    rng = np.random.default_rng(19)
    templates = rng.standard_normal((10, 40))
    y = np.arange(200) % 10
    x = (templates[y] + 0.5 * rng.standard_normal((200, 40))).astype(np.float32)
    k_init, k_torch, k_fit = jax.random.split(jax.random.key(20, impl="rbg"), 3)
    params = jax.jit(lambda k1, k2: models.torch_init(k2, model.init(k1, (-1, 40))[1]))(k_init, k_torch)
    result = fnn.fit(model, "softmax_cross_entropy", fnn.optim.adam(1e-2), params, x, y.astype(np.int32),
                     key=k_fit, steps=24, batch_size=50, progress=False)
    losses = result.history["train_loss"]                # the mean over each epoch of 4 steps
    assert len(losses) == 6
    assert losses[-1] < 0.5 < math.log(10) < losses[0] + 0.5
