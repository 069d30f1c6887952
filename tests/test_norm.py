"""LayerNorm and BatchNorm: closed-form backward against jax.vjp, forward formulas, running statistics."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from conftest import normal
from fnn.check import TOL_AUTODIFF, check_layer
from fnn.errors import InputError, InputTypeError
from fnn.layers.norm import normalize_backward

KEY = jax.random.key(0)


def _params(layer, shape, seed):
    """The layer's params for inputs of `shape`, moved off γ = 1, β = 0 so that both matter."""
    _, params = layer.init(KEY, (-1,) + shape[1:], jnp.float64)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: p + 0.5 * jnp.asarray(rng.standard_normal(p.shape)), params)


def _check(layer, shape, seed, **kw):
    x = 3.0 * normal(seed, shape) + 1.0                       # not already standardized
    r = check_layer(layer, _params(layer, shape, seed + 1), x, key=jax.random.key(seed), **kw)
    assert r.max_error <= TOL_AUTODIFF, (layer.name, shape, r)
    return r


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (1, 2)], ids=str)
@pytest.mark.parametrize("scale, offset", [(True, True), (False, True), (True, False), (False, False)])
def test_layernorm_backward_matches_vjp(x64, shape, scale, offset):
    r = _check(fnn.LayerNorm(scale=scale, offset=offset), shape, 0)
    assert len(r.leaves) == scale + offset


@pytest.mark.parametrize("shape", [(2, 1), (5, 3), (2, 3, 4), (3, 2, 2, 2)], ids=str)
def test_batchnorm_training_backward_matches_vjp(x64, shape):
    _check(fnn.BatchNorm(), shape, 1)


@pytest.mark.parametrize("shape", [(1, 3), (2, 3, 4)], ids=str)
def test_batchnorm_inference_backward_matches_vjp(x64, shape):
    layer = fnn.BatchNorm()
    state = {"mean": normal(7, shape[-1:]), "var": 0.5 + jnp.abs(normal(8, shape[-1:]))}
    _check(layer, shape, 2, train=False, state=state)


def test_layernorm_forward_is_the_formula(x64):
    layer = fnn.LayerNorm(eps=1e-3)
    x = normal(0, (2, 3, 4))
    params = _params(layer, (2, 3, 4), 1)
    y = np.asarray(layer.apply(params, x))
    xn = np.asarray(x)
    mu, var = xn.mean(-1, keepdims=True), xn.var(-1, keepdims=True)
    expected = np.asarray(params["scale"]) * (xn - mu) / np.sqrt(var + 1e-3) + np.asarray(params["offset"])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_layernorm_backward_is_the_closed_form(x64):
    layer = fnn.LayerNorm()
    x, dy = normal(0, (3, 4)), normal(1, (3, 4))
    params = _params(layer, (3, 4), 2)
    _, (xhat, inv) = layer.forward(params, x)
    grads, dx = layer.backward(params, (xhat, inv), dy)
    g = np.asarray(params["scale"]) * np.asarray(dy)
    xh = np.asarray(xhat)
    expected = np.asarray(inv) * (g - g.mean(-1, keepdims=True) - xh * (g * xh).mean(-1, keepdims=True))
    np.testing.assert_allclose(dx, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grads["scale"], (np.asarray(dy) * xh).sum(0), rtol=1e-12)
    np.testing.assert_allclose(grads["offset"], np.asarray(dy).sum(0), rtol=1e-12)


def test_a_layernorm_backward_missing_the_variance_term_is_caught(x64):
    layer = fnn.LayerNorm()

    def without_variance_term(params, saved, dy):     # dx = (1/σ)(g − mean(g)): σ's share missing
        xhat, inv = saved
        grads, _ = layer.backward(params, saved, dy)
        g = dy * params["scale"].reshape(1, -1)
        return grads, inv * (g - jnp.mean(g, axis=-1, keepdims=True))

    wrong = layer.replace(backward=without_variance_term)
    x = normal(0, (3, 4))
    r = check_layer(wrong, _params(layer, (3, 4), 1), x, key=KEY)
    assert r.dx > 1e-2 and not r.ok()
    assert check_layer(layer, _params(layer, (3, 4), 1), x, key=KEY).ok()


def test_a_batchnorm_backward_without_the_batch_statistics_is_caught(x64):
    layer = fnn.BatchNorm()

    def as_if_constant_statistics(params, saved, dy):  # the inference backward used in training
        grads, _ = layer.backward(params, saved, dy)
        return grads, dy * params["scale"].reshape(1, -1) * saved[1]

    wrong = layer.replace(backward=as_if_constant_statistics)
    r = check_layer(wrong, _params(layer, (4, 3), 1), normal(0, (4, 3)), key=KEY)
    assert r.dx > 1e-2 and not r.ok()


def test_batchnorm_training_standardizes_each_channel_over_batch_and_space(x64):
    layer = fnn.BatchNorm(scale=False, offset=False)
    x = 2.0 * normal(0, (4, 3, 2)) + 5.0
    y = np.asarray(layer.apply({}, x, train=True))
    np.testing.assert_allclose(y.mean(axis=(0, 1)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 1)), 1.0, rtol=1e-4)   # σ² / (σ² + eps)


def test_batchnorm_inference_uses_the_running_statistics(x64):
    layer = fnn.BatchNorm(eps=1e-3)
    x = normal(0, (5, 2))
    params = _params(layer, (5, 2), 1)
    state = {"mean": jnp.array([1.0, -2.0]), "var": jnp.array([4.0, 0.25])}
    y = np.asarray(layer.apply(params, x, state=state))
    expected = (np.asarray(params["scale"]) * (np.asarray(x) - [1.0, -2.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-3)
                + np.asarray(params["offset"]))
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    trained = np.asarray(layer.apply(params, x, train=True, state=state))   # batch statistics instead
    assert np.max(np.abs(trained - y)) > 0.1


def test_batchnorm_running_statistics_update_from_the_biased_batch_variance(x64):
    layer = fnn.BatchNorm(momentum=0.8)
    x = normal(0, (6, 2, 3))
    state = fnn.init_state(layer, (-1, 2, 3), jnp.float64)
    assert set(state) == {"mean", "var"}
    np.testing.assert_array_equal(state["mean"], np.zeros(3))
    np.testing.assert_array_equal(state["var"], np.ones(3))
    _, saved = layer.forward(_params(layer, (6, 2, 3), 1), x, train=True)
    new = fnn.update_state(layer, state, saved)
    xn = np.asarray(x).reshape(-1, 3)
    np.testing.assert_allclose(new["mean"], 0.2 * xn.mean(0), rtol=1e-12)
    np.testing.assert_allclose(new["var"], 0.8 + 0.2 * xn.var(0), rtol=1e-12)
    assert new["mean"].shape == (3,) and new["mean"].dtype == jnp.float64


def test_batchnorm_state_keeps_its_dtype_when_the_batch_is_bfloat16():
    layer = fnn.BatchNorm()
    state = fnn.init_state(layer, (-1, 3))
    _, saved = layer.forward({"scale": jnp.ones(3, jnp.bfloat16), "offset": jnp.zeros(3, jnp.bfloat16)},
                             jnp.ones((2, 3), jnp.bfloat16), train=True)
    new = fnn.update_state(layer, state, saved)
    assert new["mean"].dtype == new["var"].dtype == jnp.float32


def test_norm_layers_are_static_stateless_or_stateful():
    ln, bn = fnn.LayerNorm(), fnn.BatchNorm()
    assert (ln.kind, bn.kind) == ("norm", "norm")
    assert not ln.stateful and bn.stateful and not ln.stochastic and not bn.stochastic
    assert fnn.init_state(ln, (-1, 4)) == ()
    _, params = ln.init(KEY, (-1, 4))
    assert set(params) == {"scale", "offset"} and params["scale"].shape == (4,)


@pytest.mark.parametrize("make, match", [
    (lambda: fnn.LayerNorm(eps=0), r"LayerNorm: eps must be a finite number in \(0, inf\), got 0"),
    (lambda: fnn.LayerNorm(scale=1), r"LayerNorm: scale must be True or False, got 1"),
    (lambda: fnn.BatchNorm(momentum=1.0), r"BatchNorm: momentum must be a finite number in \[0, 1\), got 1.0"),
    (lambda: fnn.BatchNorm(eps=-1e-5), r"BatchNorm: eps must be a finite number in \(0, inf\), got -1e-05"),
])
def test_bad_settings_are_named(make, match):
    with pytest.raises((InputError, InputTypeError), match=match):
        make()


def test_bad_inputs_are_named():
    ln, bn = fnn.LayerNorm(), fnn.BatchNorm()
    with pytest.raises(InputError, match=r"BatchNorm: input shape \(4,\) has 1 axes, expected at least 2"):
        bn.init(KEY, (4,))
    with pytest.raises(InputError, match=r"LayerNorm: the features \(last dimension\) of input shape \(-1, 0\)"):
        ln.init(KEY, (-1, 0))
    _, params = ln.init(KEY, (-1, 4))
    with pytest.raises(InputError, match=r"LayerNorm: input of shape \(2, 3\) has 3 features, expected 4"):
        ln.apply(params, jnp.ones((2, 3)))
    _, params = bn.init(KEY, (-1, 4))
    with pytest.raises(InputError, match=r"BatchNorm has non-trainable state .*fnn.init_state"):
        bn.apply(params, jnp.ones((2, 4)))
    with pytest.raises(InputError, match=r"BatchNorm: state must be \{'mean'.*got \(\)"):
        bn.apply(params, jnp.ones((2, 4)), state=())
    state = fnn.init_state(bn, (-1, 5))
    with pytest.raises(InputError, match=r"BatchNorm: input of shape \(2, 4\) has 4 features, expected 5"):
        bn.apply({}, jnp.ones((2, 4)), state=state)
    _, saved = bn.forward(params, jnp.ones((2, 4)), state=fnn.init_state(bn, (-1, 4)))
    with pytest.raises(InputError, match=r"update_state needs what a training forward \(train=True\) saved"):
        fnn.update_state(bn, fnn.init_state(bn, (-1, 4)), saved)


def test_normalize_backward_sums_to_zero_over_the_normalized_axes(x64):
    # mean(dx) = 0 and mean(dx ⊙ x̂) = 0: shifting or scaling x's group changes nothing after x̂.
    x, g = normal(0, (3, 5)), normal(1, (3, 5))
    xhat = (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True)
    dx = normalize_backward(g, xhat, jnp.ones((3, 1)), -1)
    np.testing.assert_allclose(dx.mean(-1), 0.0, atol=1e-14)
    np.testing.assert_allclose((dx * xhat).mean(-1), 0.0, atol=1e-14)
