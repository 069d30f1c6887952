"""fnn.layers: Dense, Activation, Dropout, serial and mlp; each backward against jax.vjp."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from conftest import assert_trees_close, dropout_key, init_shape, normal, random_params
from fnn.layers import MISSING_KEY

KEY = jax.random.key(0)


@partial(jax.jit, static_argnums=(0, 5))
def _manual_and_autodiff(model, params, x, dy, key, train):
    """(y, manual (dparams, dx), jax.vjp (dparams, dx)) of one model at (params, x)."""
    forward = partial(model.forward, key=key, train=train)
    y, pullback, saved = jax.vjp(forward, params, x, has_aux=True)  # one forward for both
    return y, model.backward(params, saved, dy), pullback(dy)


def check_backward(model, in_shape, *, key=None, train=False, seed=0):
    """model.backward against jax.vjp of model.forward, in float64 (call under x64)."""
    params = random_params(model, in_shape, seed)
    x = normal(seed + 1, in_shape)
    out_shape = jax.eval_shape(lambda: model.forward(params, x, key=key, train=train)[0]).shape
    dy = normal(seed + 2, out_shape)
    y, manual, auto = _manual_and_autodiff(model, params, x, dy, key, train)
    assert y.dtype == jnp.float64
    assert_trees_close(manual, auto)
    return params, x


# --------------------------------------------------------------------------- Dense

@pytest.mark.parametrize("in_shape", [(5,), (1, 5), (4, 5), (2, 3, 5)], ids=str)
def test_dense_forward_and_shapes(in_shape):
    layer = fnn.Dense(3)
    out_shape, params = layer.init(KEY, init_shape(in_shape))
    assert params["W"].shape == (5, 3) and params["b"].shape == (3,)
    assert out_shape[-1] == 3 and len(out_shape) == len(in_shape)
    params = {"W": normal(1, (5, 3)).astype(jnp.float32), "b": normal(2, (3,)).astype(jnp.float32)}
    x = normal(3, in_shape).astype(jnp.float32)
    y = layer.apply(params, x)
    assert y.shape == in_shape[:-1] + (3,)
    expected = np.asarray(x) @ np.asarray(params["W"]) + np.asarray(params["b"])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("in_shape", [(5,), (1, 5), (4, 5), (2, 3, 5)], ids=str)
def test_dense_backward_matches_vjp(x64, in_shape):
    check_backward(fnn.Dense(3), in_shape)


def test_dense_backward_formulas(x64):
    layer = fnn.Dense(2)
    params = random_params(layer, (4, 3), 4)
    x, dz = normal(4, (4, 3)), normal(5, (4, 2))
    _, saved = layer.forward(params, x)
    grads, dx = layer.backward(params, saved, dz)
    np.testing.assert_allclose(grads["W"], np.asarray(x).T @ np.asarray(dz), rtol=1e-13)
    np.testing.assert_allclose(grads["b"], np.asarray(dz).sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(dx, np.asarray(dz) @ np.asarray(params["W"]).T, rtol=1e-13)


@pytest.mark.parametrize("in_shape", [(1, 4), (2, 3, 4)], ids=str)
def test_dense_backward_matches_finite_differences(x64, in_shape):
    layer = fnn.Dense(3)
    params = random_params(layer, in_shape, 1)
    check_grads(fnn.differentiable(layer), (params, normal(6, in_shape)), order=1, modes=("rev",))


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_dense_wrong_width_raises_naming_expected_width(jit):
    layer = fnn.Dense(3)
    _, params = layer.init(KEY, (-1, 5))
    apply = jax.jit(layer.apply) if jit else layer.apply
    with pytest.raises(ValueError, match=r"Dense\(3\).*\(2, 4\).*expected 5"):
        apply(params, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="expected 5"):
        apply(params, jnp.zeros(()))
    assert apply(params, jnp.zeros((2, 5))).shape == (2, 3)  # the right width still works


def test_dense_in_features_checked_at_init():
    with pytest.raises(ValueError, match=r"\(-1, 5\).*expected 4"):
        fnn.Dense(3, in_features=4).init(KEY, (-1, 5))
    shape, _ = fnn.Dense(3, in_features=4).init(KEY, (-1, 4))
    assert shape == (-1, 3)


def test_dense_gradients_keep_parameter_dtype():
    layer = fnn.Dense(3)
    _, params = layer.init(KEY, (-1, 4), jnp.bfloat16)
    y, saved = layer.forward(params, jnp.ones((2, 4), jnp.bfloat16))
    grads, dx = layer.backward(params, saved, jnp.ones_like(y))
    assert grads["W"].dtype == grads["b"].dtype == dx.dtype == jnp.bfloat16


# --------------------------------------------------------------------------- Activation

@pytest.mark.parametrize("name", ["tanh", "relu", "softmax", "gelu", "sigmoid"])
def test_activation_layer_backward_matches_vjp(x64, name):
    layer = fnn.Activation(name)
    shape, params = layer.init(KEY, (-1, 6))
    assert shape == (-1, 6) and params == ()
    for in_shape in [(1, 6), (3, 6)]:
        check_backward(layer, in_shape)


def test_activation_layer_takes_an_activation_fn():
    act = fnn.activations.leaky_relu(0.3)
    layer = fnn.Activation(act)
    assert layer.name == act.name
    np.testing.assert_allclose(layer.apply((), jnp.array([[-1.0, 2.0]])), [[-0.3, 2.0]], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown activation"):
        fnn.Activation("nope")


# --------------------------------------------------------------------------- Dropout

@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", None])
def test_dropout_rate_must_be_in_zero_one(rate):
    with pytest.raises(ValueError, match=r"\[0, 1\)") as info:
        fnn.Dropout(rate)
    assert repr(rate) in str(info.value)


def test_dropout_is_identity_without_training():
    layer = fnn.Dropout(0.5)
    x = normal(7, (3, 4)).astype(jnp.float32)
    for key in (None, KEY):
        y, saved = layer.forward((), x, key=key, train=False)
        np.testing.assert_array_equal(y, x)
        dparams, dx = layer.backward((), saved, 2 * x)
        assert dparams == ()
        np.testing.assert_array_equal(dx, 2 * x)


def test_dropout_rate_zero_needs_no_key_in_training():
    x = jnp.ones((2, 3))
    np.testing.assert_array_equal(fnn.Dropout(0.0).apply((), x, train=True), x)


def test_dropout_missing_key_in_training_shows_the_correct_call():
    x = jnp.ones((2, 3))
    for model in (fnn.Dropout(0.5), fnn.serial(fnn.Dense(3), fnn.Dropout(0.5)),
                  fnn.mlp([3, 4, 2], dropout=0.5)):
        params = random_params(model, (2, 3), 0, jnp.float32)
        with pytest.raises(ValueError) as info:
            model.forward(params, x, train=True)
        assert "key=jax.random.key" in str(info.value) and "Dropout(0.5)" in str(info.value)
    assert "key=jax.random.key" in MISSING_KEY


@pytest.fixture(scope="module")
def dropout_outputs():
    """Dropout(rate) applied in training to a large array of ones, one fixed key per rate."""
    x = jnp.ones((500, 1000), jnp.float32)
    return {rate: np.asarray(fnn.Dropout(rate).apply((), x, key=jax.random.key(1), train=True))
            for rate in (0.1, 0.5, 0.8)}


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_rate_is_the_drop_probability(dropout_outputs, rate):
    y = dropout_outputs[rate]
    assert np.mean(y == 0) == pytest.approx(rate, abs=0.003)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_inverted_dropout_keeps_the_mean(dropout_outputs, rate):
    y = dropout_outputs[rate]
    kept = y[y != 0]
    np.testing.assert_allclose(kept, np.float32(1 / (1 - rate)), rtol=1e-6)
    assert y.mean() == pytest.approx(1.0, abs=0.01)


def test_dropout_mask_depends_only_on_the_key():
    layer, x = fnn.Dropout(0.5), jnp.ones((8, 16))
    a = layer.apply((), x, key=jax.random.key(3), train=True)
    b = layer.apply((), x, key=jax.random.key(3), train=True)
    c = layer.apply((), x, key=jax.random.key(4), train=True)
    np.testing.assert_array_equal(a, b)
    assert np.any(np.asarray(a) != np.asarray(c))


@pytest.mark.parametrize("in_shape", [(1, 6), (4, 6)], ids=str)
def test_dropout_backward_matches_vjp_with_fixed_key(x64, in_shape):
    layer = fnn.Dropout(0.4)
    _, x = check_backward(layer, in_shape, key=dropout_key(5), train=True)
    y, mask = layer.forward((), x, key=dropout_key(5), train=True)
    _, dx = layer.backward((), mask, jnp.ones_like(y))
    np.testing.assert_allclose(dx, np.where(np.asarray(mask), 1 / 0.6, 0.0), rtol=1e-14)


def test_dropout_under_jit():
    layer, x = fnn.Dropout(0.5), jnp.ones((4, 8))
    f = jax.jit(partial(layer.apply, train=True))
    np.testing.assert_array_equal(f((), x, key=jax.random.key(6)),
                                  layer.apply((), x, key=jax.random.key(6), train=True))


# --------------------------------------------------------------------------- serial

def test_serial_params_and_shapes():
    model = fnn.serial(fnn.Dense(4), fnn.Activation("tanh"), fnn.Dense(2))
    out_shape, params = model.init(KEY, (-1, 3))
    assert out_shape == (-1, 2)
    assert isinstance(params, tuple) and len(params) == 3 and params[1] == ()
    assert params[0]["W"].shape == (3, 4) and params[2]["W"].shape == (4, 2)
    assert model.layers[1].name == "tanh" and "Dense(4)" in model.name


def test_serial_checks_params_length():
    model = fnn.serial(fnn.Dense(4), fnn.Activation("tanh"), fnn.Dense(2))
    params = random_params(model, (2, 3), 0, jnp.float32)
    x = jnp.ones((2, 3))
    y, saved = model.forward(params, x)
    for bad in (params[:2], params + ((),), params[0]):
        with pytest.raises(ValueError, match=r"one entry per layer \(3\)"):
            model.forward(bad, x)
        with pytest.raises(ValueError, match=r"one entry per layer \(3\)"):
            model.backward(bad, saved, jnp.ones_like(y))


@pytest.mark.parametrize("layers", [(), (fnn.Dense(3), "relu"), (fnn.get_activation("relu"),)])
def test_serial_rejects_non_layers(layers):
    with pytest.raises(TypeError, match="fnn Layers"):
        fnn.serial(*layers)


def test_serial_gives_each_layer_its_own_key():
    """Two Dropout(0.5) layers drop 75% of units only if their masks are independent."""
    model = fnn.serial(fnn.Dropout(0.5), fnn.Dropout(0.5))
    y = model.apply(((), ()), jnp.ones((400, 500)), key=jax.random.key(7), train=True)
    assert np.mean(np.asarray(y) == 0) == pytest.approx(0.75, abs=0.005)


@pytest.mark.parametrize("in_shape,train", [((1, 3), True), ((5, 3), False), ((2, 4, 3), True)],
                         ids=str)
def test_serial_backward_matches_vjp(x64, in_shape, train):
    model = fnn.serial(fnn.Dense(6), fnn.Activation("tanh"),
                       fnn.Dropout(0.3), fnn.Dense(4), fnn.Activation("softmax"))
    check_backward(model, in_shape, key=dropout_key(8) if train else None, train=train)


def test_serial_backward_matches_finite_differences(x64):
    model = fnn.serial(fnn.Dense(5), fnn.Activation("sigmoid"), fnn.Dropout(0.3), fnn.Dense(2))
    params = random_params(model, (4, 3), 2)
    f = fnn.differentiable(model, train=True)
    key = jax.random.key(9)
    check_grads(jax.jit(lambda p, x: f(p, x, key)), (params, normal(10, (4, 3))), order=1,
                modes=("rev",))


def test_apply_is_the_forward_output():
    model = fnn.serial(fnn.Dense(4), fnn.Activation("relu"))
    params = random_params(model, (2, 3), 0, jnp.float32)
    x = normal(11, (2, 3)).astype(jnp.float32)
    np.testing.assert_array_equal(model.apply(params, x), model.forward(params, x)[0])


# --------------------------------------------------------------------------- mlp

def test_mlp_structure_and_shapes():
    model = fnn.mlp([4, 8, 6, 3])
    assert [l.name for l in model.layers] == ["Dense(8)", "relu", "Dense(6)", "relu", "Dense(3)"]
    out_shape, params = model.init(KEY, (-1, 4))
    assert out_shape == (-1, 3)
    shapes = [jax.tree.map(jnp.shape, p) for p in params]
    assert shapes == [{"W": (4, 8), "b": (8,)}, (), {"W": (8, 6), "b": (6,)}, (),
                      {"W": (6, 3), "b": (3,)}]
    assert model.apply(params, jnp.ones((1, 4))).shape == (1, 3)


def test_mlp_output_activation_and_dropout():
    model = fnn.mlp([4, 5, 3], activation="tanh", output="softmax", dropout=0.2)
    names = [l.name for l in model.layers]
    assert names == ["Dense(5)", "tanh", "Dropout(0.2)", "Dense(3)", "softmax"]
    params = random_params(model, (6, 4), 0, jnp.float32)
    p = model.apply(params, normal(12, (6, 4)).astype(jnp.float32))
    np.testing.assert_allclose(np.sum(p, axis=-1), 1.0, rtol=1e-6)
    assert np.all(np.asarray(p) > 0)
    linear = fnn.mlp([4, 3], output="linear")
    assert [l.name for l in linear.layers] == ["Dense(3)"]


def test_mlp_checks_input_width_at_init():
    with pytest.raises(ValueError, match=r"\(-1, 5\).*expected 4"):
        fnn.mlp([4, 8, 3]).init(KEY, (-1, 5))


@pytest.mark.parametrize("sizes", [[4], [], [4, 0], [4, -2, 3], [4, 2.5]], ids=str)
def test_mlp_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes") as info:
        fnn.mlp(sizes)
    assert repr(tuple(sizes)) in str(info.value)


@pytest.mark.parametrize("activation,W_init,limit", [
    ("relu", None, np.sqrt(6 / 200)),                                # He-uniform for ReLU-like
    (fnn.activations.leaky_relu(0.2), None, np.sqrt(6 / 200)),
    ("tanh", None, np.sqrt(6 / 500)),                                # Glorot-uniform otherwise
    ("relu", "glorot_uniform", np.sqrt(6 / 500)),                    # an explicit choice wins
])
def test_mlp_default_weight_initializer(activation, W_init, limit):
    _, params = fnn.mlp([200, 300, 1], activation, W_init=W_init).init(KEY, (-1, 200))
    W = np.abs(np.asarray(params[0]["W"]))
    assert limit * 0.99 < W.max() <= limit


@pytest.mark.parametrize("activation,output,in_shape", [
    ("relu", "identity", (1, 4)),
    ("gelu_tanh", "sigmoid", (6, 4)),
    ("softplus", "softmax", (2, 3, 4)),
], ids=str)
def test_mlp_backward_matches_vjp(x64, activation, output, in_shape):
    model = fnn.mlp([4, 7, 5, 3], activation, output, dropout=0.25)
    check_backward(model, in_shape, key=dropout_key(10), train=True)


def test_mlp_backward_matches_finite_differences(x64):
    model = fnn.mlp([3, 5, 2], "tanh")
    params = random_params(model, (1, 3), 3)
    check_grads(jax.jit(fnn.differentiable(model)), (params, normal(13, (1, 3))), order=1,
                modes=("rev",))
