"""fnn.grads: manual backprop against jax.grad, and the custom_vjp wrappers under grad/jit/vmap."""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from conftest import assert_trees_close, dropout_key, normal, random_params, wrong_backward


def targets(loss_name, seed, batch, classes):
    """Targets for a loss: int labels, soft targets, or (batch,) regression/binary targets."""
    rng = np.random.default_rng(seed)
    if loss_name == "ce_int":
        return jnp.asarray(rng.integers(0, classes, batch), jnp.int32)
    if loss_name == "ce_soft":
        p = rng.uniform(size=(batch, classes))
        return jnp.asarray(p / p.sum(axis=-1, keepdims=True))
    if loss_name == "binary_cross_entropy":
        return jnp.asarray(rng.uniform(size=batch))
    return jnp.asarray(rng.standard_normal(batch))


LOSS_OF = {"ce_int": "softmax_cross_entropy", "ce_soft": "softmax_cross_entropy"}

# (model, loss, batch, key): every loss, batch 1 included, dropout with a fixed key.
CASES = {
    "tanh-mse-b1": (fnn.mlp([3, 6, 1], "tanh"), "mse", 1, None),
    "relu-half_se": (fnn.mlp([3, 6, 4, 1], "relu"), "half_squared_error", 5, None),
    "gelu-bce-dropout": (fnn.mlp([3, 6, 1], "gelu", dropout=0.3), "binary_cross_entropy", 5, 1),
    "swish-l1": (fnn.mlp([3, 6, 1], "swish"), "l1", 4, None),
    "sigmoid-huber": (fnn.mlp([3, 6, 1], "sigmoid"), "huber", 4, None),
    "relu-ce_int-dropout": (fnn.mlp([3, 8, 4], "relu", dropout=0.5), "ce_int", 6, 2),
    "leaky-ce_soft-b1": (fnn.mlp([3, 8, 4], "leaky_relu"), "ce_soft", 1, None),
    "softmax_output-mse": (fnn.mlp([3, 5, 4], "tanh", output="softmax"), "mse_4", 3, None),
}


def build_case(name, dtype=jnp.float64):
    model, loss_name, batch, key_seed = CASES[name]
    classes = 4 if loss_name.startswith("ce") or loss_name == "mse_4" else 1
    params = random_params(model, (-1, 3), 3, dtype)
    x = normal(4, (batch, 3)).astype(dtype)
    if loss_name == "mse_4":
        y, loss_name = normal(5, (batch, 4)).astype(dtype), "mse"
    else:
        y = targets(loss_name, 5, batch, classes)
    key = None if key_seed is None else dropout_key(key_seed)
    return model, fnn.get_loss(LOSS_OF.get(loss_name, loss_name)), params, x, y, key


@partial(jax.jit, static_argnums=(0, 1, 2))
def _jit_value_and_grad(model, loss, method, params, x, y, key):
    return fnn.make_value_and_grad(model, loss, method)(params, x, y, key=key)


# One model and batch shared by most tests below, so compiled operations are reused.
MODEL = fnn.mlp([3, 6, 4, 2], "tanh")
CE = fnn.get_loss("softmax_cross_entropy")
F = fnn.differentiable(MODEL)


@pytest.fixture(scope="module")
def mlp_case():
    """(params, x, labels) in float64 for MODEL."""
    with jax.enable_x64(True):
        params = random_params(MODEL, (-1, 3), 3)
        x = normal(6, (5, 3))
        y = jnp.asarray([0, 1, 1, 0, 1], jnp.int32)
    return params, x, y


def manual_grads(params, x, y):
    """The reference: hand-written backprop of CE(MODEL(params, x), y), compiled once a shape."""
    return _jit_value_and_grad(MODEL, CE, "manual", params, x, y, None)[1]


# --------------------------------------------------------------------------- value_and_grad

@pytest.mark.parametrize("case", sorted(CASES))
def test_manual_matches_autodiff(x64, case):
    model, loss, params, x, y, key = build_case(case)
    value_m, grads_m = _jit_value_and_grad(model, loss, "manual", params, x, y, key)
    value_a, grads_a = _jit_value_and_grad(model, loss, "autodiff", params, x, y, key)
    np.testing.assert_allclose(value_m, value_a, rtol=1e-13)
    assert_trees_close(grads_m, grads_a)
    assert any(float(jnp.max(jnp.abs(g))) > 1e-3 for g in jax.tree.leaves(grads_m))


def test_eager_value_and_grad_matches_jitted(x64, mlp_case):
    params, x, y = mlp_case
    value, grads = fnn.value_and_grad(MODEL, "softmax_cross_entropy", params, x, y)
    value_j, grads_j = _jit_value_and_grad(MODEL, CE, "autodiff", params, x, y, None)
    np.testing.assert_allclose(value, value_j, rtol=1e-13)
    assert_trees_close(grads, grads_j)
    assert_trees_close(fnn.grad(MODEL, CE, params, x, y), grads)


def test_loss_value_is_the_training_forward_loss(x64):
    model, loss, params, x, y, key = build_case("gelu-bce-dropout")
    expected = loss.fn(model.apply(params, x, key=key, train=True), y)
    value = fnn.loss_value(model, loss, params, x, y, key=key)
    np.testing.assert_allclose(value, expected, rtol=1e-14)
    value_in_step, _ = _jit_value_and_grad(model, loss, "manual", params, x, y, key)
    np.testing.assert_allclose(value_in_step, expected, rtol=1e-13)
    # A different dropout key gives a different loss: the key is really used.
    other = fnn.loss_value(model, loss, params, x, y, key=dropout_key(99))
    assert abs(float(other) - float(expected)) > 1e-6


@pytest.mark.parametrize("method", ["manual", "autodiff"])
def test_dropout_without_key_raises(method):
    model = fnn.mlp([3, 4, 1], dropout=0.5)
    params = random_params(model, (-1, 3), 3, jnp.float32)
    with pytest.raises(ValueError, match="key=jax.random.key"):
        fnn.value_and_grad(model, "mse", params, jnp.ones((2, 3)), jnp.ones(2), method=method)


def test_unknown_method_raises():
    model = fnn.mlp([3, 1])
    params = random_params(model, (-1, 3), 3, jnp.float32)
    for call in (lambda: fnn.value_and_grad(model, "mse", params, jnp.ones((2, 3)), jnp.ones(2),
                                            method="numeric"),
                 lambda: fnn.make_value_and_grad(model, "mse", method="jax")):
        with pytest.raises(ValueError) as info:
            call()
        assert "manual" in str(info.value) and "autodiff" in str(info.value)


def test_jitted_step_does_not_recompile():
    model = fnn.mlp([3, 5, 2], "tanh")
    traces = []

    def counted(params, x, y):
        traces.append(1)
        return fnn.make_value_and_grad(model, "softmax_cross_entropy")(params, x, y)

    step = jax.jit(counted)
    params = random_params(model, (-1, 3), 3, jnp.float32)
    x, y = jnp.ones((4, 3)), jnp.array([0, 1, 1, 0])
    value1, grads = step(params, x, y)
    params = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
    value2, _ = step(params, x + 1, y)
    assert len(traces) == 1
    assert float(value2) != float(value1)


# --------------------------------------------------------------------------- differentiable

def test_differentiable_gradient_equals_manual(x64, mlp_case):
    params, x, y = mlp_case
    grads = jax.grad(lambda p: CE.fn(F(p, x), y))(params)
    assert_trees_close(grads, manual_grads(params, x, y))
    np.testing.assert_array_equal(F(params, x), MODEL.apply(params, x))


def test_differentiable_uses_the_hand_written_backward(x64, mlp_case):
    params, x, y = mlp_case
    double = lambda tree: jax.tree.map(lambda g: 2 * g, tree)
    doubled = fnn.differentiable(wrong_backward(MODEL, dparams=double, dx=double))   # every gradient × 2
    grads = jax.grad(lambda p: CE.fn(doubled(p, x), y))(params)
    assert_trees_close(grads, double(manual_grads(params, x, y)))


@jax.jit
def _input_gradients(params, x, dy):
    """dx of Σ dy ⊙ model(x): through differentiable (manual) and through jax.grad of apply."""
    return (jax.grad(lambda x: jnp.sum(F(params, x) * dy))(x),
            jax.grad(lambda x: jnp.sum(MODEL.apply(params, x) * dy))(x))


def test_differentiable_input_gradient_is_backward_dx(x64, mlp_case):
    params, x, _ = mlp_case
    dy = normal(7, (5, 2))
    dx, auto = _input_gradients(params, x, dy)
    _, saved = MODEL.forward(params, x)
    np.testing.assert_allclose(dx, MODEL.backward(params, saved, dy)[1], rtol=1e-13)
    np.testing.assert_allclose(dx, auto, rtol=1e-10)


def test_differentiable_under_jit(x64, mlp_case):
    params, x, y = mlp_case
    g = jax.jit(jax.grad(lambda p, x, y: CE.fn(F(p, x), y)))(params, x, y)
    assert_trees_close(g, manual_grads(params, x, y))


def test_differentiable_per_example_grads_under_vmap(x64, mlp_case):
    params, x, y = mlp_case

    def example_loss(p, xi, yi):  # one example as a batch of one
        return CE.fn(F(p, xi.reshape(1, -1)), yi.reshape(1))

    per_example = jax.jit(jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0)))(params, x, y)
    for i in range(x.shape[0]):
        expected = manual_grads(params, x[i:i + 1], y[i:i + 1])
        assert_trees_close(jax.tree.map(lambda g: g[i], per_example), expected)
    # The batch loss is the mean of the example losses, so its gradient is their mean.
    assert_trees_close(jax.tree.map(lambda g: g.mean(axis=0), per_example),
                       manual_grads(params, x, y))


def test_differentiable_inside_a_larger_function(x64, mlp_case):
    params, x, y = mlp_case
    lam = 0.01

    def objective(p):  # loss + L2 penalty on the weights
        penalty = sum(jnp.sum(layer["W"] ** 2) for layer in p if layer)
        return CE.fn(F(p, x), y) + lam * penalty

    g = jax.grad(objective)(params)
    expected = tuple({"W": m["W"] + 2 * lam * p["W"], "b": m["b"]} if p else ()
                     for m, p in zip(manual_grads(params, x, y), params))
    assert_trees_close(g, expected)


def test_differentiable_in_training_with_a_key(x64):
    model, loss, params, x, y, key = build_case("relu-ce_int-dropout")
    f = fnn.differentiable(model, train=True)
    _, manual = _jit_value_and_grad(model, loss, "manual", params, x, y, key)
    g_jit = jax.jit(jax.grad(lambda p, k: loss.fn(f(p, x, k), y)))(params, key)
    assert_trees_close(g_jit, manual)
    g_other_key = jax.jit(jax.grad(lambda p, k: loss.fn(f(p, x, k), y)))(params, dropout_key(50))
    assert not np.allclose(g_other_key[0]["W"], manual[0]["W"])


def test_differentiable_matches_finite_differences(x64, mlp_case):
    params, x, y = mlp_case
    L = fnn.differentiable_loss(CE)
    check_grads(jax.jit(lambda p, x: L(F(p, x), y)), (params, x), order=1, modes=("rev",))


# --------------------------------------------------------------------------- differentiable_loss

LOSS_CASES = {
    "mse": ((4, 1), "regression"),
    "half_squared_error": ((1, 1), "regression"),
    "binary_cross_entropy": ((4, 1), "binary_cross_entropy"),
    "l1": ((3, 2), "l1"),
    "huber": ((4, 1), "regression"),
    "softmax_cross_entropy": ((4, 3), "ce_int"),
}


def loss_case(name, seed=8):
    shape, kind = LOSS_CASES[name]
    out = normal(seed, shape)
    if kind == "ce_int":
        return out, targets("ce_int", seed, shape[0], shape[1])
    if kind == "l1":  # residuals of at least 0.1 in size: away from the kink
        r = normal(seed + 1, shape)
        return out, out - jnp.sign(r) * (0.1 + jnp.abs(r))
    return out, targets(kind, seed, shape[0], 1)


@partial(jax.jit, static_argnums=0)
def _differentiable_loss_grads(loss, out, target):
    """Through differentiable_loss: L, jax.grad of L and of 5 L; and jax.grad of loss.fn."""
    L = fnn.differentiable_loss(loss)
    return (L(out, target), jax.grad(L)(out, target),
            jax.grad(lambda o: 5 * L(o, target))(out), jax.grad(loss.fn)(out, target))


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_differentiable_loss_gradient_is_loss_grad(x64, name):
    loss = fnn.get_loss(name)
    out, target = loss_case(name)
    value, g, g5, g_auto = _differentiable_loss_grads(loss, out, target)
    manual = loss.grad(out, target)
    np.testing.assert_allclose(value, loss.fn(out, target), rtol=1e-14)
    np.testing.assert_allclose(g, manual, rtol=1e-14)
    np.testing.assert_allclose(g5, 5 * manual, rtol=1e-13)  # the cotangent scales it
    np.testing.assert_allclose(g, g_auto, rtol=1e-10, atol=1e-14)


def test_differentiable_loss_works_eagerly(x64):
    out, target = loss_case("softmax_cross_entropy")
    L = fnn.differentiable_loss("softmax_cross_entropy")
    np.testing.assert_allclose(jax.grad(L)(out, target),
                               fnn.get_loss("softmax_cross_entropy").grad(out, target), rtol=1e-14)


def test_differentiable_loss_uses_the_hand_written_grad(x64):
    mse = fnn.get_loss("mse")
    wrong = mse._replace(grad=lambda out, target: 3 * mse.grad(out, target))
    out, target = loss_case("mse")
    _, g, _, _ = _differentiable_loss_grads(wrong, out, target)
    np.testing.assert_allclose(g, 3 * mse.grad(out, target), rtol=1e-14)


@jax.jit
def _ce_per_example_and_penalised(logits, labels):
    L = fnn.differentiable_loss("softmax_cross_entropy")
    # vmap over examples: each example is a (1, classes) batch with one label.
    per_example = jax.vmap(jax.grad(lambda z, t: L(z.reshape(1, -1), t.reshape(1))))(logits, labels)
    penalised = jax.grad(lambda z: L(z, labels) + 0.1 * jnp.sum(z ** 2))(logits)
    return per_example, penalised


def test_differentiable_loss_under_vmap_and_in_a_larger_function(x64):
    ce = fnn.get_loss("softmax_cross_entropy")
    logits, labels = loss_case("softmax_cross_entropy")
    per_example, penalised = _ce_per_example_and_penalised(logits, labels)
    p = np.asarray(jax.nn.softmax(logits))
    one_hot = np.eye(3)[np.asarray(labels)]
    np.testing.assert_allclose(per_example, p - one_hot, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(penalised, ce.grad(logits, labels) + 0.2 * logits, rtol=1e-13)


def test_differentiable_loss_with_soft_targets_and_batch_targets(x64):
    logits = normal(9, (3, 4))
    soft = jax.nn.softmax(normal(10, (3, 4)))
    _, g, _, _ = _differentiable_loss_grads(fnn.get_loss("cross_entropy"), logits, soft)
    np.testing.assert_allclose(g, (jax.nn.softmax(logits) - soft) / 3, rtol=1e-12)
    out, y = normal(11, (5, 1)), normal(12, (5,))
    _, g, _, _ = _differentiable_loss_grads(fnn.get_loss("mse"), out, y)
    np.testing.assert_allclose(g, 2 * (out - y.reshape(5, 1)) / 5, rtol=1e-13)
