"""fnn.activations: values, hand-written derivatives against jax.vjp and finite differences."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from fnn import activations

# An independent reference for every registered name (jax.nn's own implementations).
REFERENCE = {
    "identity": lambda z: z,
    "linear": lambda z: z,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": partial(jax.nn.leaky_relu, negative_slope=0.1),
    "gelu": partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": partial(jax.nn.gelu, approximate=True),
    "swish": jax.nn.silu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "softmax": jax.nn.softmax,
}
# The registry plus activations built with non-default arguments.
ALL = dict(fnn.ACTIVATIONS, **{"leaky_relu(0.25)": activations.leaky_relu(0.25)})
SHAPES = [(1, 5), (2, 3, 4)]  # batch 1, and a rank-3 batch


def away_from_kinks(seed, shape, scale=2.0):
    """Random inputs with |z| ≥ 0.1, so relu and leaky_relu are differentiable there."""
    u = np.random.default_rng(seed).standard_normal(shape)
    return jnp.asarray(np.sign(u) * (0.1 + scale * np.abs(u)))


def with_manual_vjp(act):
    """act.fn as a jax function whose VJP is the hand-written act.vjp."""
    @jax.custom_vjp
    def f(z):
        return act.fn(z)

    def f_fwd(z):
        y = act.fn(z)
        return y, (z, y)

    def f_bwd(saved, dy):
        z, y = saved
        return (act.vjp(z, y, dy),)

    f.defvjp(f_fwd, f_bwd)
    return f


@jax.jit(static_argnums=0)
def _manual_and_autodiff(act, z, dy):
    """(manual vjp, jax.vjp, derivative or 0, jvp with unit tangent) at z."""
    y = act.fn(z)
    manual = act.vjp(z, y, dy)
    (auto,) = jax.vjp(act.fn, z)[1](dy)
    deriv = act.derivative(z, y) if act.derivative is not None else jnp.zeros_like(z)
    unit_jvp = jax.jvp(act.fn, (z,), (jnp.ones_like(z),))[1]
    return manual, auto, deriv, unit_jvp


def test_every_registered_name_has_a_reference():
    assert set(REFERENCE) == set(fnn.ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(fnn.ACTIVATIONS))
def test_values_match_jax_nn(x64, name):
    z = away_from_kinks(0, (3, 4))
    act = fnn.get_activation(name)
    np.testing.assert_allclose(act.fn(z), REFERENCE[name](z), rtol=1e-12, atol=1e-15)
    assert act.fn(z).dtype == jnp.float64


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(ALL))
def test_vjp_and_derivative_match_autodiff(x64, name, shape):
    act = ALL[name]
    z = away_from_kinks(1, shape)
    dy = jnp.asarray(np.random.default_rng(2).standard_normal(shape))
    manual, auto, deriv, unit_jvp = _manual_and_autodiff(act, z, dy)
    assert manual.shape == z.shape and manual.dtype == jnp.float64
    np.testing.assert_allclose(manual, auto, rtol=1e-10, atol=1e-13)
    if act.derivative is not None:  # elementwise: f'(z) is the JVP with a unit tangent
        np.testing.assert_allclose(deriv, unit_jvp, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(manual, dy * deriv, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(ALL))
def test_vjp_matches_finite_differences(x64, name):
    z = away_from_kinks(3, (3, 4))
    check_grads(with_manual_vjp(ALL[name]), (z,), order=1, modes=("rev",))


def test_only_softmax_lacks_an_elementwise_derivative():
    missing = {name for name, act in fnn.ACTIVATIONS.items() if act.derivative is None}
    assert missing == {"softmax"}


# --------------------------------------------------------------------------- stability

def test_sigmoid_is_stable_and_exact_at_large_inputs():
    sig = fnn.get_activation("sigmoid")
    z = jnp.asarray([-1e4, -30.0, 0.0, 30.0, 1e4], jnp.float32)
    y = sig.fn(z)
    assert not np.any(np.isnan(y))
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    d = sig.derivative(z, y)
    g = jax.grad(lambda z: jnp.sum(sig.fn(z)))(z)
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(g))
    assert d[0] == 0.0 and d[-1] == 0.0 and d[2] == 0.25
    np.testing.assert_allclose(g, d, atol=1e-7)
    # e^−|z| / (1 + e^−|z|) keeps the small tail that 1 − 1/(1 + e^z) would round to 0.
    np.testing.assert_allclose(y[1], np.exp(-30.0) / (1 + np.exp(-30.0)), rtol=1e-5)


@pytest.mark.parametrize("dtype, rtol", [("float32", 2 * 2.0 ** -23), ("bfloat16", 4 * 2.0 ** -8)])   # 2 and 4 ulps
def test_sigmoid_is_accurate_everywhere_against_a_float64_reference(dtype, rtol):
    z = jnp.concatenate([40 * jax.random.normal(jax.random.key(0), (20000,)), jnp.linspace(-100, 100, 4001),
                         jnp.asarray([0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, jnp.inf, -jnp.inf])]).astype(dtype)
    y = np.asarray(jax.jit(activations._sigmoid)(z), np.float64)
    zz = np.asarray(z, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):                # the branch np.where drops
        exact = np.where(zz >= 0, 1 / (1 + np.exp(-zz)), np.exp(zz) / (1 + np.exp(zz)))
    normal = exact >= np.finfo(np.float32).tiny             # below it float32 is subnormal
    assert not np.isnan(y).any() and np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(y[normal], exact[normal], rtol=rtol, atol=0)
    assert np.all(y[~normal] < 1e-37)


def test_softplus_is_stable_at_large_inputs():
    sp = fnn.get_activation("softplus")
    z = jnp.asarray([-1e4, -50.0, 0.0, 50.0, 1e4], jnp.float32)
    y = sp.fn(z)
    assert np.all(np.isfinite(y))
    assert y[0] == 0.0 and y[-1] == 1e4
    assert float(y[2]) == pytest.approx(np.log(2.0))
    np.testing.assert_allclose(y[1], np.exp(-50.0), rtol=1e-5)  # log1p keeps the tiny value
    d = sp.derivative(z, y)
    g = jax.grad(lambda z: jnp.sum(sp.fn(z)))(z)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, d, atol=1e-7)
    assert d[0] == 0.0 and d[-1] == 1.0


@pytest.mark.parametrize("name", ["swish", "gelu", "gelu_tanh", "tanh"])
def test_other_activations_are_finite_at_large_inputs(name):
    act = fnn.get_activation(name)
    z = jnp.asarray([-1e4, 1e4], jnp.float32)
    y = act.fn(z)
    dz = act.vjp(z, y, jnp.ones_like(z))
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dz))
    np.testing.assert_allclose(dz, [0.0, 1.0] if name != "tanh" else [0.0, 0.0], atol=1e-6)


# --------------------------------------------------------------------------- gelu, leaky_relu

def test_gelu_exact_and_tanh_approximation_are_both_selectable(x64):
    z = jnp.linspace(-4.0, 4.0, 33)
    exact, approx = activations.gelu(approximate=False), activations.gelu(approximate=True)
    assert fnn.get_activation("gelu").name == exact.name == "gelu"
    assert fnn.get_activation("gelu_tanh").name == approx.name == "gelu_tanh"
    tol = dict(rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(exact.fn(z), jax.nn.gelu(z, approximate=False), **tol)
    np.testing.assert_allclose(approx.fn(z), jax.nn.gelu(z, approximate=True), **tol)
    # They are different functions: the approximation is off by up to ~1e-3.
    gap = float(jnp.max(jnp.abs(exact.fn(z) - approx.fn(z))))
    assert 1e-5 < gap < 1e-2
    np.testing.assert_allclose(fnn.get_activation("gelu").fn(z), exact.fn(z), rtol=0)
    g_exact = jax.vmap(jax.grad(partial(jax.nn.gelu, approximate=False)))(z)
    g_approx = jax.vmap(jax.grad(partial(jax.nn.gelu, approximate=True)))(z)
    np.testing.assert_allclose(exact.derivative(z, None), g_exact, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(approx.derivative(z, None), g_approx, rtol=1e-12, atol=1e-15)


def test_leaky_relu_default_slope_is_point_one():
    act = fnn.get_activation("leaky_relu")
    z = jnp.asarray([-2.0, -0.5, 0.0, 3.0])
    np.testing.assert_allclose(act.fn(z), [-0.2, -0.05, 0.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(act.derivative(z, act.fn(z)), [0.1, 0.1, 1.0, 1.0], rtol=1e-6)
    assert act.name == activations.leaky_relu().name == "leaky_relu"


def test_leaky_relu_slope_argument():
    act = activations.leaky_relu(0.25)
    z = jnp.asarray([-2.0, 4.0])
    np.testing.assert_allclose(act.fn(z), [-0.5, 4.0])
    np.testing.assert_allclose(act.vjp(z, act.fn(z), jnp.asarray([2.0, 2.0])), [0.5, 2.0])
    assert "0.25" in act.name
    assert fnn.get_activation(act) is act
    relu_like = activations.leaky_relu(0.0)  # slope 0 is plain relu
    np.testing.assert_allclose(relu_like.fn(z), [0.0, 4.0])


@pytest.mark.parametrize("slope", [-0.1, 1.0, 2.0])
def test_leaky_relu_rejects_bad_slope(slope):
    with pytest.raises(ValueError, match=f"slope.*{slope}"):
        activations.leaky_relu(slope)


def test_relu_derivative_at_zero_is_zero_like_jax():
    relu = fnn.get_activation("relu")
    z = jnp.zeros((1, 3))
    np.testing.assert_array_equal(relu.vjp(z, relu.fn(z), jnp.ones_like(z)), 0.0)
    np.testing.assert_array_equal(jax.grad(lambda z: jnp.sum(jax.nn.relu(z)))(z), 0.0)


# --------------------------------------------------------------------------- lookup

@pytest.mark.parametrize("bad", ["relu6", "ReLU", "", 3, None])
def test_unknown_activation_raises_listing_valid_names(bad):
    with pytest.raises(ValueError) as info:
        fnn.get_activation(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in fnn.ACTIVATIONS:
        assert name in message


def test_aliases_are_the_same_function():
    assert fnn.get_activation("silu") is fnn.get_activation("swish")
    assert fnn.get_activation("linear") is fnn.get_activation("identity")
    assert fnn.ACTIVATIONS["softmax"].fn is fnn.softmax
