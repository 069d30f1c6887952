"""residual and parallel: backward against jax.vjp, keys and state per branch, shapes, summary, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from conftest import normal, random_params
from fnn.check import TOL_AUTODIFF, check_layer
from fnn.errors import InputError, InputTypeError
from fnn.layers import parallel, residual

KEY = jax.random.key(0)
D, T = fnn.Dense, fnn.Activation("tanh")

CASES = {
    "residual": (residual(D(4), T), (3, 4)),
    "residual-layernorm": (residual(fnn.LayerNorm(), D(4)), (2, 3, 4)),
    "parallel-sum": (parallel(D(3), fnn.serial(D(5), T, D(3))), (3, 4)),
    "parallel-concat": (parallel(D(3), T, combine="concat"), (3, 4)),
    "parallel-concat-axis1": (parallel(D(2), D(2), combine="concat", axis=1), (2, 3, 4)),
    "nested": (fnn.serial(D(4), residual(parallel(D(4), fnn.serial(T, D(4))), fnn.LayerNorm()),
                          parallel(residual(D(4)), D(2), combine="concat")), (3, 2)),
    "dropout": (parallel(fnn.serial(D(3), fnn.Dropout(0.5)), fnn.Dropout(0.3), combine="concat"), (4, 3)),
    # tanh first: a Dense bias just before BatchNorm has gradient 0, where a relative error compares
    # round-off with round-off
    "batchnorm": (residual(D(4), T, fnn.BatchNorm()), (5, 4)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_backward_matches_vjp(x64, case):
    layer, shape = CASES[case]
    r = check_layer(layer, random_params(layer, shape, 0), normal(1, shape), key=jax.random.key(2))
    assert r.max_error <= TOL_AUTODIFF, (case, r)


def test_a_stochastic_combinator_needs_a_key_and_splits_it_per_branch():
    layer = parallel(fnn.Dropout(0.5), fnn.Dropout(0.5), combine="concat")
    assert layer.stochastic and residual(fnn.Dropout(0.5)).stochastic and not CASES["residual"][0].stochastic
    with pytest.raises(InputError, match=r"Dropout\(0.5\) is stochastic in training and needs a PRNG key"):
        layer.apply(((), ()), jnp.ones((4, 8)), train=True)
    y = np.asarray(layer.apply(((), ()), jnp.ones((4, 8)), key=KEY, train=True))
    assert y.shape == (4, 16) and not np.array_equal(y[:, :8] == 0, y[:, 8:] == 0)   # two masks
    np.testing.assert_array_equal(layer.apply(((), ()), jnp.ones((4, 8))), np.ones((4, 16)))


def test_residual_adds_the_input_and_its_backward_adds_dy(x64):
    layer = residual(D(3))
    params = random_params(layer, (2, 3), 0)
    x, dy = normal(1, (2, 3)), normal(2, (2, 3))
    y, saved = layer.forward(params, x)
    np.testing.assert_allclose(y, x + fnn.Dense(3).apply(params[0], x), rtol=1e-14)
    _, dx = layer.backward(params, saved, dy)
    np.testing.assert_allclose(dx, dy + dy @ params[0]["W"].T, rtol=1e-14)


def test_a_residual_backward_without_the_skip_path_is_caught(x64):
    layer = residual(D(4), T)
    f = fnn.serial(D(4), T)
    wrong = layer.replace(backward=f.backward)           # dx = dx_f: the + dy of the skip path lost
    params, x = random_params(layer, (3, 4), 0), normal(1, (3, 4))
    assert not check_layer(wrong, params, x, key=KEY).ok()
    assert check_layer(layer, params, x, key=KEY).ok()


def test_parallel_concat_splits_dy_per_branch(x64):
    layer = parallel(D(2), D(3), combine="concat")
    params = random_params(layer, (4, 5), 0)
    x, dy = normal(1, (4, 5)), normal(2, (4, 5))
    y, saved = layer.forward(params, x)
    assert y.shape == (4, 5)
    grads, dx = layer.backward(params, saved, dy)
    np.testing.assert_allclose(grads[0]["b"], dy[:, :2].sum(0), rtol=1e-14)
    np.testing.assert_allclose(grads[1]["b"], dy[:, 2:].sum(0), rtol=1e-14)
    np.testing.assert_allclose(dx, dy[:, :2] @ params[0]["W"].T + dy[:, 2:] @ params[1]["W"].T, rtol=1e-13)


def test_stateful_branches_keep_one_state_entry_each(x64):
    layer = parallel(fnn.BatchNorm(), fnn.serial(D(4), fnn.BatchNorm(momentum=0.5)), D(4))
    assert layer.stateful and residual(fnn.BatchNorm()).stateful and not parallel(D(2), D(2)).stateful
    state = fnn.init_state(layer, (-1, 4), jnp.float64)
    assert state[2] == () and state[1][0] == () and state[0]["mean"].shape == state[1][1]["mean"].shape == (4,)
    params, x = random_params(layer, (6, 4), 0), normal(1, (6, 4))
    _, saved = layer.forward(params, x, train=True, state=state)
    new = fnn.update_state(layer, state, saved)
    np.testing.assert_allclose(new[0]["mean"], 0.1 * np.asarray(x).mean(0), rtol=1e-12)
    h = fnn.Dense(4).apply(params[1][0], x)
    np.testing.assert_allclose(new[1][1]["var"], 0.5 + 0.5 * np.asarray(h).var(0), rtol=1e-12)
    with pytest.raises(InputError, match=r"parallel\(BatchNorm.*has non-trainable state"):
        layer.apply(params, x)
    r = check_layer(layer, params, x, key=KEY, train=False, state=new)     # the running statistics
    assert r.max_error <= TOL_AUTODIFF, r
    with pytest.raises(InputError, match=r"state must be a tuple with one entry per layer \(3\), got 2"):
        layer.apply(params, x, state=state[:2])


def test_finite_differences_through_norm_layers_and_combinators():
    model = fnn.serial(D(4), T, fnn.BatchNorm(), residual(D(4), fnn.LayerNorm(), T),
                       parallel(D(2), fnn.serial(D(3), T, D(2))), fnn.Activation("sigmoid"))
    params = random_params(model, (5, 3), 0, jnp.float32)
    x, y = normal(1, (5, 3)).astype(jnp.float32), normal(2, (5, 2)).astype(jnp.float32)
    r = fnn.check_gradients(model, "mse", params, x, y)
    assert r.ok(), [l for l in r.leaves if l.manual_vs_fd > 1e-6 or l.manual_vs_autodiff > 1e-10]


def test_summary_lists_the_parts_of_combinators():
    model = fnn.serial(D(4), residual(D(4), fnn.BatchNorm()), parallel(D(2), D(3), combine="concat"))
    rows = [(r.depth, r.name, r.output_shape, r.params) for r in fnn.summary(model, (-1, 3)).rows]
    assert rows == [(0, "serial", (-1, 5), 16 + 28 + 10 + 15),
                    (1, "Dense(4)", (-1, 4), 16),
                    (1, "residual", (-1, 4), 28),
                    (2, "Dense(4)", (-1, 4), 20),
                    (2, "BatchNorm", (-1, 4), 8),
                    (1, "parallel", (-1, 5), 25),
                    (2, "Dense(2)", (-1, 2), 10),
                    (2, "Dense(3)", (-1, 3), 15)]


def test_plot_architecture_passes_over_norm_layers_and_refuses_branches():
    from fnn import viz
    model = fnn.serial(D(4), fnn.BatchNorm(), T, residual(D(4), fnn.LayerNorm()), D(2))
    _, params = model.init(KEY, (-1, 3))
    ax = viz.plot_architecture(params, model=model)
    texts = [t.get_text() for t in ax.texts]
    assert any("BatchNorm" in t for t in texts) and any("LayerNorm" in t for t in texts)
    assert len(viz.architecture.dense_layers(params)) == 3
    model = fnn.serial(D(4), parallel(D(2), D(2)))
    with pytest.raises(InputError, match=r"parallel\(Dense\(2\), Dense\(2\), combine='sum'\) has parallel branches"):
        viz.plot_architecture(model.init(KEY, (-1, 3))[1], model=model)


@pytest.mark.parametrize("make, error, match", [
    (lambda: residual(D(3)).init(KEY, (-1, 4)), InputError,
     r"residual\(Dense\(3\)\): the branch maps input shape \(-1, 4\) to \(-1, 3\)"),
    (lambda: parallel(D(3), D(2)).init(KEY, (-1, 4)), InputError,
     r"combine='sum' needs every branch's output shape to be the same, got \[\(-1, 3\), \(-1, 2\)\]"),
    (lambda: parallel(D(3), D(2), combine="concat", axis=2).init(KEY, (-1, 4)), InputError,
     r"axis 2 is out of range for branch outputs of rank 2"),
    (lambda: parallel(D(3), D(3), combine="concat", axis=0).init(KEY, (-1, 4)), InputError,
     r"along the batch axis \(axis 0\) is not supported"),
    (lambda: parallel(D(3), combine="product"), InputError,
     r"unknown parallel combine 'product'; expected one of sum, concat"),
    (lambda: parallel(D(3), combine="concat", axis=1.0), InputTypeError, r"parallel: axis must be an int"),
    (lambda: parallel(), InputTypeError, r"parallel expects one or more fnn Layers, got \(\)"),
    (lambda: residual("Dense"), InputTypeError, r"residual expects one or more fnn Layers, got \('Dense',\)"),
    (lambda: parallel(D(2), D(2)).apply((), jnp.ones((1, 3))), InputError,
     r"params must be a tuple with one entry per branch \(2\), got 0"),
])
def test_bad_combinators_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()
