"""fnn and optax: an optax optimizer trains in fnn.fit, and fnn's optimizers run inside optax.

Both libraries speak the same protocol, an (init, update) pair over parameter
pytrees, so each side is used as it is: no adapter. optax is a test-only
dependency (the dev extra); fnn never imports it.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import optim

optax = pytest.importorskip("optax")

MODEL = fnn.mlp([2, 8, 2], activation="tanh")
DATA = fnn.get_dataset("moons", key=jax.random.key(1), n=64)


def _params():
    return MODEL.init(jax.random.key(0), (-1, 2))[1]


def _fit(optimizer, steps=12):
    return fnn.fit(MODEL, "softmax_cross_entropy", optimizer, _params(), DATA.x_train, DATA.y_train,
                   key=jax.random.key(2), steps=steps, batch_size=16, progress=False)


def _quadratic_grads(params):
    """The gradient of ½ Σ (p − 3)² over every leaf: p − 3."""
    return jax.tree.map(lambda p: p - 3.0, params)


def _run(optimizer, params, apply, steps=5):
    state = optimizer.init(params)
    update = jax.jit(optimizer.update)
    for _ in range(steps):
        updates, state = update(_quadratic_grads(params), state, params)
        params = apply(params, updates)
    return params, state


def _assert_close(a, b, rtol=1e-5, atol=1e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


def test_optax_chain_of_clipping_and_adam_in_fit_trains_as_fnns_does():
    theirs = _fit(optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-2)))
    ours = _fit(optim.chain(optim.clip_by_global_norm(0.5), optim.adam(1e-2)))
    assert theirs.steps == 12 and theirs.nonfinite_step is None
    assert theirs.history["train_loss"][-1] < theirs.history["train_loss"][0]
    _assert_close(theirs.params, ours.params)          # the same update rule, step for step
    assert isinstance(theirs.state.opt_state[1][0], optax.ScaleByAdamState)


def test_fnn_optimizers_inside_optax_chain_with_optax_apply_updates():
    params = _params()
    mixed = optax.chain(optax.clip_by_global_norm(1.0), optim.adam(0.1))
    pure = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(0.1))
    got, state = _run(mixed, params, optax.apply_updates)
    want, _ = _run(pure, params, optim.apply_updates)
    _assert_close(got, want)
    assert float(optim.current_lr(state)) == pytest.approx(0.1)      # read from inside optax's chain state
    distance = lambda p: float(optim.global_norm(jax.tree.map(lambda x: x - 3.0, p)))
    assert distance(got) < distance(params)


def test_optax_transforms_inside_fnns_chain():
    params = _params()
    schedule = optim.schedules.cosine_decay(0.1, 10)
    mixed = optim.chain(optax.scale_by_adam(), optim.sgd(schedule))
    assert mixed.schedules == (schedule,)           # fnn's parts still declare their schedules
    got, _ = _run(mixed, params, optim.apply_updates)
    want, _ = _run(optim.chain(optim.scale_by_adam(), optim.sgd(schedule)), params, optim.apply_updates)
    _assert_close(got, want, rtol=1e-4, atol=1e-5)     # optax rounds Adam's bias correction its own way
    assert optim.get_optimizer(mixed) is mixed and optim.is_optimizer(optax.adam(0.1))
    assert not optim.is_optimizer(optax.adam)                       # the factory, not an optimizer
    with pytest.raises(TypeError, match="argument 1 must be a GradientTransformation"):
        optim.chain(optax.sgd(0.1), optax.adam)


def test_an_optax_state_is_checkpointed_and_restored(tmp_path):
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    _, state = _run(opt, _params(), optax.apply_updates, steps=2)
    fnn.checkpoint.save(tmp_path / "ckpt.npz", {"opt_state": state}, step=2)
    trees, meta = fnn.checkpoint.load(tmp_path / "ckpt.npz", {"opt_state": opt.init(_params())})
    assert meta["step"] == 2
    _assert_close(trees["opt_state"], state, rtol=0, atol=0)


def test_float16_loss_scaling_wraps_an_optax_optimizer():
    opt = fnn.precision.dynamic_loss_scale(optax.sgd(0.1))
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    updates, state = opt.update({"w": jnp.array([1.0, jnp.inf, 0.0])}, state, params)
    np.testing.assert_array_equal(updates["w"], 0.0)                   # a non-finite step is skipped
    assert float(fnn.precision.loss_scale(state)) == 2.0 ** 14          # and the scale backs off
    updates, _ = opt.update({"w": jnp.ones(3)}, state, params)
    np.testing.assert_allclose(updates["w"], -0.1)
