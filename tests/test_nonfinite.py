"""The non-finite guard: after fit or train_many, the parameters (and every state a callback sees) are finite.

The checked step keeps no step whose loss, gradients, updates, new params or new
optimizer state hold a NaN/inf; fit refuses to start from NaN/inf params or state
and checks every rate of a learning-rate schedule over the run before it starts.
Each case is built so that the old guard (loss and gradients only) lets it through:
finite loss and gradients, and a non-finite update, parameter or optimizer state.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import optim
from fnn.errors import InputError
from fnn.numerics import all_finite
from fnn.optim import schedules
from fnn.train import StepConfig, fit, init_state, make_step
from fnn.train.ensemble import train_many

MODEL = fnn.mlp([2, 4, 1], activation="tanh")
LOSS = fnn.get_loss("bce")
X = jnp.asarray(np.random.default_rng(0).standard_normal((16, 2)), jnp.float32)
Y = (X[:, :1] * X[:, 1:] > 0).astype(jnp.float32)
PARAMS = MODEL.init(jax.random.key(0), (-1, 2))[1]
BREAK_AT = 5          # the first update that goes wrong


def _broken(what):
    """sgd(0.1) whose update number BREAK_AT goes wrong in `what`, with finite loss and gradients."""
    base = optim.sgd(0.1)

    def init(params):
        return (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), base.init(params))

    def update(grads, state, params=None):
        count, extra, inner = state
        updates, inner = base.update(grads, inner, params)
        now = count == BREAK_AT
        if what == "update":           # an inf update: the new params are inf
            updates = jax.tree.map(lambda u: jnp.where(now, jnp.inf, u), updates)
        elif what == "one_leaf":       # a NaN in one entry of one leaf's update
            updates[0]["b"] = jnp.where(now, updates[0]["b"].at[0].set(jnp.nan), updates[0]["b"])
        elif what == "state":          # finite updates and params, a NaN in the optimizer state
            extra = jnp.where(now, jnp.nan, extra)
        return updates, (count + 1, extra, inner)

    return optim.GradientTransformation(init, update)


CASES = ["update", "one_leaf", "state"]


@pytest.mark.parametrize("what", CASES)
@pytest.mark.parametrize("on_nonfinite", ["stop", "skip"])
def test_fit_returns_finite_params_whatever_the_update_does(what, on_nonfinite):
    opt = _broken(what)
    seen = []
    result = fit(MODEL, LOSS, opt, PARAMS, X, Y, key=jax.random.key(1), steps=12, batch_size=8,
                 config=StepConfig(on_nonfinite=on_nonfinite), progress=False, chunk_steps=4,
                 callback=lambda state, history: seen.append(bool(all_finite(state))))
    assert bool(all_finite(result.params)) and bool(all_finite(result.state))
    assert seen and all(seen)                       # every state handed to a callback (a checkpoint)
    assert result.nonfinite_step == BREAK_AT
    # the bad step is not kept (and, the count not advancing, nor is any later one under "skip"):
    # the params are those of a clean run of BREAK_AT steps
    clean = fit(MODEL, LOSS, optim.sgd(0.1), PARAMS, X, Y, key=jax.random.key(1), steps=BREAK_AT,
                batch_size=8, progress=False)
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(clean.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("what", CASES)
def test_checked_step_keeps_no_part_of_a_bad_step(what):
    opt = _broken(what)
    step = jax.jit(make_step(MODEL, LOSS, opt, StepConfig(on_nonfinite="skip")))
    state = init_state(PARAMS, opt, jax.random.key(2))
    for _ in range(BREAK_AT + 3):
        before = state
        state, _ = step(state, X[:8], Y[:8])
        if int(state.nonfinite_step) == int(state.step) - 1:          # this step was dropped
            for a, b in zip(jax.tree.leaves(before.params), jax.tree.leaves(state.params)):
                np.testing.assert_array_equal(a, b)
        assert bool(all_finite((state.params, state.opt_state)))
    assert int(state.nonfinite_step) >= 0


def test_the_unchecked_step_does_let_them_through():
    """The guard is what keeps them out: without it the same run ends non-finite (so the tests above can fail)."""
    opt = _broken("state")
    step = jax.jit(make_step(MODEL, LOSS, opt, checked=False))
    state = init_state(PARAMS, opt, jax.random.key(2))
    for _ in range(BREAK_AT + 1):
        state, _ = step(state, X[:8], Y[:8])
    assert not bool(all_finite(state.opt_state))


@pytest.mark.parametrize("what", ["update", "state"])
def test_train_many_returns_finite_models_and_leaves_the_clean_ones_alone(what):
    keys = jax.random.split(jax.random.key(3), 3)
    clean = train_many(MODEL, LOSS, optim.sgd(0.1), X, Y, keys=keys, steps=BREAK_AT + 4, batch_size=8)
    broken = train_many(MODEL, LOSS, _broken(what), X, Y, keys=keys, steps=BREAK_AT + 4, batch_size=8)
    assert bool(all_finite(broken.params)) and bool(all_finite(broken.state.opt_state))
    np.testing.assert_array_equal(np.asarray(broken.state.nonfinite_step), BREAK_AT)
    # up to the bad step the models are those of the clean run
    np.testing.assert_allclose(broken.losses[:, :BREAK_AT], clean.losses[:, :BREAK_AT], rtol=1e-6)


def test_train_many_fast_path_gives_the_checked_result():
    """A clean run takes the unchecked program; its result is the checked program's."""
    from fnn.train.ensemble import _train_many_program
    keys = jax.random.split(jax.random.key(4), 2)
    result = train_many(MODEL, LOSS, optim.adam(0.05), X, Y, keys=keys, steps=6, batch_size=8)
    settings = dict(model=MODEL, loss=LOSS, optimizer=optim.adam(0.05), steps=6, input_shape=(-1, 2),
                    batch_size=8, config=StepConfig(), dtype=jnp.dtype(jnp.float32))
    state, record, clean = _train_many_program(keys, {}, X, Y, checked=True, **settings)
    assert bool(clean)
    for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rate", [float("inf"), float("nan"), 1e39, -0.1, 0.0])
@pytest.mark.parametrize("make", [optim.sgd, optim.adam, optim.momentum])
def test_learning_rates_that_are_not_finite_positive_numbers_are_refused(make, rate):
    with pytest.raises(InputError, match="learning_rate must be") as e:
        make(rate)
    assert f"got {rate!r}" in str(e.value)


@pytest.mark.parametrize("name,value", [("b1", float("nan")), ("b2", float("inf")), ("eps", float("inf")),
                                        ("eps", 1e39)])
def test_other_hyperparameters_must_be_finite_in_float32(name, value):
    with pytest.raises(InputError, match=f"{name} must be a finite number"):
        optim.adam(1e-3, **{name: value})


@pytest.mark.parametrize("schedule,at,value", [
    (lambda c: jnp.where(c >= 7, jnp.nan, 0.1), 7, "nan"),
    (lambda c: 0.1 - 0.01 * c, 11, "-0.01"),                           # negative from update 11
    (lambda c: jnp.where(c == 3, 1e39, 0.1), 3, "inf"),                # inf in float32
])
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")    # the schedule's own 1e39
def test_fit_refuses_a_schedule_with_a_bad_rate_before_training(schedule, at, value):
    calls = []
    with pytest.raises(InputError, match=rf"schedule 0 gives {value}.* at update {at}\b.*20 updates"):
        fit(MODEL, LOSS, optim.chain(optim.clip_by_global_norm(1.0), optim.adam(schedule)), PARAMS, X, Y,
            key=jax.random.key(5), steps=20, batch_size=8, progress=False,
            callback=lambda *a: calls.append(1))
    assert not calls                                                  # nothing ran


def test_a_schedule_checked_only_over_the_run():
    """Rates past the run's last update are never used: not refused."""
    late = schedules.join([schedules.constant(0.1), lambda c: -0.1 + 0 * c], [20])
    result = fit(MODEL, LOSS, optim.sgd(late), PARAMS, X, Y, key=jax.random.key(5), steps=20,
                 batch_size=8, progress=False)
    assert result.steps == 20
    with pytest.raises(InputError, match="at update 20"):
        fit(MODEL, LOSS, optim.sgd(late), PARAMS, X, Y, key=jax.random.key(5), steps=21, batch_size=8,
            progress=False)


def test_train_many_checks_each_models_schedule():
    factory = lambda learning_rate: optim.sgd(lambda c: learning_rate / (1.0 + c))
    with pytest.raises(InputError, match="model 1's learning-rate schedule 0 gives -0.2"):
        train_many(MODEL, LOSS, factory, X, Y, keys=jax.random.split(jax.random.key(6), 3), steps=4,
                   hyperparams={"learning_rate": jnp.array([0.1, -0.2, 0.3])})


@pytest.mark.parametrize("where", ["params", "opt_state"])
def test_fit_refuses_non_finite_start(where):
    params = jax.tree.map(lambda a: a, PARAMS)
    opt = optim.adam(1e-2)
    if where == "params":
        params[-1]["b"] = params[-1]["b"].at[0].set(jnp.nan)
        kwargs, match = {}, r"fit: params\[-?\d+\]\['b'\] holds 1 NaN/inf"
    else:
        state = init_state(PARAMS, opt, jax.random.key(0))
        mu = state.opt_state[0].mu
        bad_mu = jax.tree.map(lambda m: m.at[(0,) * m.ndim].set(jnp.inf), mu)
        state = state._replace(opt_state=(state.opt_state[0]._replace(mu=bad_mu),) + state.opt_state[1:])
        kwargs, match = {"state": state}, r"fit: state.*opt_state.*mu.* holds 1 NaN/inf value\(s\) \(\d+ leaf"
    with pytest.raises(InputError, match=match):
        fit(MODEL, LOSS, opt, params, X, Y, key=jax.random.key(0), steps=4, batch_size=8, progress=False,
            **kwargs)
