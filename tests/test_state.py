"""Non-trainable model state (BatchNorm's running statistics): layers, gradients, training, checkpoints."""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from conftest import assert_trees_close, normal, random_params
from fnn import checkpoint, optim
from fnn.checkpoint import CheckpointError
from fnn.errors import InputError, InputTypeError
from fnn.train import TrainState, init_state, make_step
from fnn.train.ensemble import converged, train_many

SCE = "softmax_cross_entropy"
MODEL = fnn.serial(fnn.Dense(6), fnn.BatchNorm(), fnn.Activation("tanh"), fnn.Dense(3))
OPT = optim.sgd(0.5)      # not Adam: see test_manual_and_autodiff_fits_give_the_same_model_state


def _data(seed, n):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.standard_normal((n, 3)), jnp.float32), jnp.asarray(rng.integers(0, 3, n)))


X, Y = _data(0, 24)
X_VAL, Y_VAL = _data(1, 12)
PARAMS = MODEL.init(jax.random.key(0), (-1, 3))[1]


def _max_diff(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _equal(a, b):
    unwrap = lambda l: jax.random.key_data(l) if jnp.issubdtype(l.dtype, jax.dtypes.prng_key) else l
    return (jax.tree.structure(a) == jax.tree.structure(b)
            and all(np.array_equal(unwrap(u), unwrap(v)) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


# ---------------------------------------------------------------- the Layer and fnn.init_state

def test_init_state_walks_serial_one_entry_per_layer():
    state = fnn.init_state(fnn.serial(MODEL, fnn.BatchNorm()), (-1, 3))
    inner, outer = state
    assert inner[0] == inner[2] == inner[3] == () and outer["mean"].shape == (3,)
    assert inner[1]["mean"].shape == (6,)                  # BatchNorm after Dense(6) sees 6 channels
    assert fnn.init_state(fnn.mlp([3, 4, 2]), (-1, 3)) == ()
    assert MODEL.stateful and not fnn.mlp([3, 4, 2]).stateful
    with pytest.raises(InputTypeError, match=r"init_state\(serial.*input_shape must be a tuple of integers"):
        fnn.init_state(MODEL, 3)
    with pytest.raises(InputTypeError, match=r"init_state expects an fnn Layer, got str"):
        fnn.init_state("mlp", (-1, 3))


def test_a_stateless_layer_keeps_its_four_argument_forward():
    def forward(params, x, *, key=None, train=False):       # written before model state existed
        del params, key, train
        return 2 * x, None

    double = fnn.Layer("double", lambda key, shape, dtype=jnp.float32: (tuple(shape), ()), forward,
                       lambda params, saved, dy: ((), 2 * dy))
    model = fnn.serial(double, fnn.BatchNorm())
    state = fnn.init_state(model, (-1, 3))
    y = model.apply(((), {"scale": jnp.ones(3), "offset": jnp.zeros(3)}), jnp.ones((2, 3)), state=state)
    np.testing.assert_allclose(y, 2 / np.sqrt(1 + 1e-5), rtol=1e-6)
    with pytest.raises(InputError, match=r"double has no state, but forward was given a state with 1 array"):
        double.apply((), jnp.ones(2), state={"mean": jnp.zeros(2)})
    with pytest.raises(InputTypeError, match=r"update_state is given without init_state"):
        double.replace(update_state=lambda state, saved: state)


def test_inference_without_state_names_the_fix_and_training_needs_none():
    with pytest.raises(InputError, match=r"serial\(Dense\(6\), BatchNorm.*has non-trainable state.*fnn.init_state"):
        MODEL.apply(PARAMS, X)
    out, saved = MODEL.forward(PARAMS, X, train=True)     # batch statistics: no state needed
    assert out.shape == (24, 3)
    with pytest.raises(InputError, match=r"update_state\(serial.*\): state is None; start from fnn.init_state"):
        fnn.update_state(MODEL, None, saved)


# ---------------------------------------------------------------- gradients

def test_both_methods_update_the_state_from_the_same_forward(x64):
    model = fnn.serial(fnn.Dense(4), fnn.BatchNorm(momentum=0.5), fnn.Activation("tanh"), fnn.Dense(2))
    params, x, y = random_params(model, (5, 3), 0), normal(1, (5, 3)), normal(2, (5, 2))
    state = fnn.init_state(model, (-1, 3), jnp.float64)
    manual = fnn.forward_backward(model, "mse", params, x, y, state=state, method="manual")
    auto = fnn.forward_backward(model, "mse", params, x, y, state=state, method="autodiff")
    _, saved = model.forward(params, x, train=True, state=state)
    expected = fnn.update_state(model, state, saved)
    assert_trees_close(manual.state, expected, rtol=0, atol=0)
    assert_trees_close(auto.state, expected, rtol=1e-14, atol=1e-15)
    assert _max_diff(manual.state[1], state[1]) > 0.1                   # the statistics moved
    assert fnn.forward_backward(model, "mse", params, x, y).state is None   # no state given
    assert fnn.forward_backward(fnn.mlp([3, 2]), "mse", random_params(fnn.mlp([3, 2]), (5, 3), 0),
                                x, y).state == ()
    assert fnn.Backprop(1.0, 2.0, 3.0).state == ()        # the three-field construction still works
    with pytest.raises(InputError, match=r"(?s)forward_backward: model_state does not match the model .*"
                                         r"expected.*\(fnn.init_state\(model, \(-1, 3\)\)\)"):
        fnn.forward_backward(model, "mse", params, x, y, state=())


def test_differentiable_reads_the_state_in_inference(x64):
    model = fnn.serial(fnn.Dense(4), fnn.BatchNorm(), fnn.Dense(2))
    params, x = random_params(model, (3, 2), 0), normal(1, (3, 2))
    state = jax.tree.map(lambda a: a + 0.5, fnn.init_state(model, (-1, 2), jnp.float64))
    loss = lambda f: lambda p: jnp.sum(jnp.sin(f(p)))
    manual = jax.grad(loss(lambda p: fnn.differentiable(model)(p, x, None, state)))(params)
    auto = jax.grad(loss(lambda p: model.apply(p, x, state=state)))(params)
    assert_trees_close(manual, auto)


def test_check_gradients_and_check_layer_take_a_state():
    # tanh before BatchNorm: a Dense bias right before it has the gradient 0 exactly, which
    # a relative error cannot check (round-off against round-off)
    model = fnn.serial(fnn.Dense(3), fnn.Activation("tanh"), fnn.BatchNorm(), fnn.Dense(2))
    params = random_params(model, (4, 2), 0, jnp.float32)
    x, y = normal(1, (4, 2)).astype(jnp.float32), jnp.array([0, 1, 1, 0])
    r = fnn.check_gradients(model, SCE, params, x, y, state=fnn.init_state(model, (-1, 2)))
    assert r.ok(), r
    state = jax.tree.map(lambda a: a + 0.3, fnn.init_state(model, (-1, 2)))
    assert fnn.check_layer(model, params, x, key=jax.random.key(0), train=False, state=state).ok()


# ---------------------------------------------------------------- training

@pytest.fixture(scope="module")
def fits():
    """The tiny BatchNorm model fitted by both methods with early stopping (it stops at epoch 6)."""
    kw = dict(key=jax.random.key(3), epochs=30, batch_size=8, progress=False,
              validation_data=(X_VAL, Y_VAL), patience=2)
    return {m: fnn.fit(MODEL, SCE, OPT, PARAMS, X, Y, config=fnn.StepConfig(method=m), **kw)
            for m in ("manual", "autodiff")}


def test_manual_and_autodiff_fits_give_the_same_model_state(fits):
    # With Adam they would not: the bias of the Dense before BatchNorm has a zero gradient
    # in exact arithmetic, and Adam scales each method's round-off there up to full steps.
    manual, auto = fits["manual"], fits["autodiff"]
    start = fnn.init_state(MODEL, (-1, 3))
    for result in (manual, auto):
        assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(result.state.model_state))
        assert _max_diff(result.state.model_state, start) > 0.05           # it changed
    assert _max_diff(manual.state.model_state, auto.state.model_state) <= 1e-5
    assert _max_diff(manual.model_state, auto.model_state) <= 1e-5
    assert _max_diff(manual.params, auto.params) <= 1e-5


def test_early_stopping_keeps_the_best_epochs_model_state(fits):
    r = fits["manual"]
    assert r.stopped_early
    best = int(np.nanargmin(r.history["val_loss"]))
    assert best < len(r.history["epoch"]) - 1
    assert _max_diff(r.model_state, r.state.model_state) > 1e-3           # not the last epoch's
    again = fnn.evaluate(MODEL, SCE, r.params, X_VAL, Y_VAL, model_state=r.model_state)
    assert abs(again["loss"] - r.history["val_loss"][best]) <= 1e-5       # the last epoch's: 5e-3 away
    out = fnn.predict(MODEL, r.params, X_VAL, model_state=r.model_state)
    # jitted predict against eager apply: float32 round-off, absolute for the outputs near 0
    np.testing.assert_allclose(out, MODEL.apply(r.params, X_VAL, state=r.model_state), rtol=1e-6, atol=1e-6)
    for call in (lambda: fnn.evaluate(MODEL, SCE, r.params, X_VAL, Y_VAL),
                 lambda: fnn.predict(MODEL, r.params, X_VAL)):
        with pytest.raises(InputError, match=r"has non-trainable state .*pass model_state="):
            call()


def test_resume_from_a_checkpoint_with_model_state_is_exact(tmp_path):
    kw = dict(key=jax.random.key(5), batch_size=8, progress=False, chunk_steps=3)   # one epoch a chunk
    full = fnn.fit(MODEL, SCE, OPT, PARAMS, X, Y, epochs=4, **kw)
    half = fnn.fit(MODEL, SCE, OPT, PARAMS, X, Y, epochs=2, **kw)
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": half.state}, step=int(half.state.step))
    template = init_state(PARAMS, OPT, jax.random.key(9), fnn.init_state(MODEL, (-1, 3)))
    trees, _ = checkpoint.load(path, {"state": template})
    assert _equal(trees["state"], half.state)
    resumed = fnn.fit(MODEL, SCE, OPT, PARAMS, X, Y, epochs=4, state=trees["state"], **kw)
    assert _equal(resumed.state.model_state, full.state.model_state)
    assert _equal(resumed.params, full.params)
    with pytest.raises(CheckpointError, match="different architecture"):   # a stateless template
        checkpoint.load(path, {"state": init_state(PARAMS, OPT, jax.random.key(9))})


class OldTrainState(NamedTuple):       # TrainState as it was before model_state
    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array
    nonfinite_step: jax.Array


def test_an_old_format_train_state_still_loads_and_trains(tmp_path):
    model = fnn.mlp([3, 4, 3], "tanh")
    _, params = model.init(jax.random.key(0), (-1, 3))
    new = init_state(params, OPT, jax.random.key(1))
    old = OldTrainState(*new[:5])
    assert TrainState(*old) == new and new.model_state == ()      # five positional fields
    path = tmp_path / "old.npz"
    checkpoint.save(path, {"state": old}, step=0)
    trees, _ = checkpoint.load(path, {"state": init_state(params, OPT, jax.random.key(2))})
    assert _equal(trees["state"], new) and trees["state"].model_state == ()
    r = fnn.fit(model, SCE, OPT, params, X, Y, steps=3, batch_size=8, key=jax.random.key(1),
                state=TrainState(*old), progress=False)
    assert r.state.model_state == () and r.model_state == () and r.steps == 3


def test_fit_names_a_model_state_that_does_not_fit():
    kw = dict(key=jax.random.key(3), steps=1, batch_size=8, progress=False)
    stateless_start = init_state(PARAMS, OPT, jax.random.key(1))            # model_state ()
    with pytest.raises(InputError, match=r"fit: state: model_state does not match the model serial\(Dense\(6\), "
                                         r"BatchNorm(.|\n)*got +\(\)"):
        fnn.fit(MODEL, SCE, OPT, PARAMS, X, Y, state=stateless_start, **kw)
    with pytest.raises(InputError, match=r"fit got both state and model_state"):
        fnn.fit(MODEL, SCE, OPT, PARAMS, X, Y, state=stateless_start, model_state=(), **kw)
    bad = fnn.init_state(MODEL, (-1, 3))
    bad[1]["var"] = bad[1]["var"].at[2].set(jnp.nan)
    with pytest.raises(InputError, match=r"fit: model_state\[1\]\['var'\] holds 1 NaN/inf"):
        fnn.fit(MODEL, SCE, OPT, PARAMS, X, Y, model_state=bad, **kw)
    with pytest.raises(CheckpointError, match=r"state.model_state\[1\]\['var'\] holds NaN or inf"):
        checkpoint.save("unused.npz", {"state": init_state(PARAMS, OPT, jax.random.key(1), bad)})


def test_the_checked_step_rejects_a_non_finite_model_state():
    # x of 1e30: the batch variance overflows float32 to inf, yet the loss and gradients stay
    # finite (x̂ = (x − μ) · 0): only the new running variance is not.
    state = init_state(PARAMS, OPT, jax.random.key(1), fnn.init_state(MODEL, (-1, 3)))
    x = jnp.full((4, 3), 1e30, jnp.float32).at[0].set(-1e30)
    y = jnp.array([0, 1, 2, 0])
    unchecked, m = make_step(MODEL, SCE, OPT, checked=False)(state, x, y)
    assert bool(jnp.isfinite(m.loss)) and not bool(jnp.all(jnp.isfinite(unchecked.model_state[1]["var"])))
    step = jax.jit(make_step(MODEL, SCE, OPT, config=fnn.StepConfig(on_nonfinite="skip")))
    checked, _ = step(state, x, y)
    assert int(checked.nonfinite_step) == 0
    assert _equal(checked.model_state, state.model_state) and _equal(checked.params, state.params)
    after, _ = step(checked, X[:4], y)                    # a finite batch: kept, same program
    assert _max_diff(after.model_state, state.model_state) > 1e-3 and int(after.step) == 2
    assert step._cache_size() == 1                        # the model state's tree and dtypes are stable


def test_train_many_gives_each_network_its_own_running_statistics():
    r = train_many(MODEL, SCE, OPT, X, Y, keys=jax.random.split(jax.random.key(0), 2), steps=4)
    mean = r.state.model_state[1]["mean"]
    assert mean.shape == (2, 6) and bool(jnp.all(jnp.isfinite(mean)))
    assert float(jnp.max(jnp.abs(mean[0] - mean[1]))) > 1e-3
    ok = converged(MODEL, r.params, X, Y, model_state=r.state.model_state)
    assert ok.shape == (2,) and ok.dtype == jnp.bool_
    with pytest.raises(InputError, match=r"has non-trainable state"):
        converged(MODEL, r.params, X, Y)
