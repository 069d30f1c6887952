"""Numerical edge cases (issue 13, section 5), each against a float64 reference.

1. integer labels narrower than int32 with more classes than the dtype holds;
2. the target's gradient through fnn.differentiable_loss (never silent zeros);
3. negative soft targets in softmax cross-entropy (refused; the formula as written);
4. binary cross-entropy's value in both float32 tails;
5. leaky_relu's derivative at tiny, subnormal and signed-zero pre-activations.
"""
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from conftest import normal, random_params
from fnn import activations, losses
from fnn.validate import check_targets

CE = losses.softmax_cross_entropy


def _log_softmax64(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


# --------------------------------------------------------------------------- 1. narrow labels

# More classes than each dtype holds: 2**bits + 44, so labels 0..43 would also match the
# classes 2**bits..2**bits + 43 if the class index wrapped in the label's dtype.
NARROW = {"uint8": 300, "int8": 300, "uint16": 65_580, "int16": 65_580}


@partial(jax.jit, static_argnums=0)
def _ce_value_grad_accuracy(loss, logits, labels):
    return loss.fn(logits, labels), loss.grad(logits, labels), loss.accuracy(logits, labels)


@pytest.mark.parametrize("dtype", sorted(NARROW))
def test_narrow_labels_give_the_int32_loss_and_gradient(x64, dtype):
    classes = NARROW[dtype]
    labels32 = np.array([0, 1, 43, 127, 44, 5])
    logits = np.random.default_rng(1).standard_normal((6, classes))
    logits[[0, 2], [classes - 44, classes - 1]] = 9.0   # the wrapped-onto classes win the argmax
    logits[3, 127] = 9.0                                # example 3 is predicted right
    logits = jnp.asarray(logits)
    value, grad, acc = _ce_value_grad_accuracy(CE, logits, jnp.asarray(labels32, dtype))
    value32, grad32, acc32 = _ce_value_grad_accuracy(CE, logits, jnp.asarray(labels32, jnp.int32))
    logp = _log_softmax64(logits)
    rows = np.arange(6)
    one_hot = np.zeros((6, classes))
    one_hot[rows, labels32] = 1.0
    np.testing.assert_allclose(value, -np.mean(logp[rows, labels32]), rtol=1e-13)
    np.testing.assert_allclose(grad, (np.exp(logp) - one_hot) / 6, rtol=1e-12, atol=1e-17)
    assert float(value) == float(value32)
    np.testing.assert_array_equal(grad, grad32)
    assert float(acc) == float(acc32) == pytest.approx(1 / 6)


def test_uint8_labels_through_a_model_equal_int32_labels(x64):
    model = fnn.Dense(300)
    x = normal(2, (4, 3))
    params = random_params(model, x.shape, 3)
    labels = np.array([0, 255, 44, 7])
    r8 = jax.jit(partial(fnn.forward_backward, model, "cross_entropy"))(params, x, jnp.asarray(labels, jnp.uint8))
    logp = _log_softmax64(np.asarray(x) @ np.asarray(params["W"]) + np.asarray(params["b"]))
    one_hot = np.eye(300)[labels]
    np.testing.assert_allclose(r8.value, -np.mean(logp[np.arange(4), labels]), rtol=1e-13)
    np.testing.assert_allclose(r8.grads["W"], np.asarray(x).T @ (np.exp(logp) - one_hot) / 4,
                               rtol=1e-11, atol=1e-16)


def test_check_targets_range_with_narrow_labels():
    check_targets(CE, (2, 300), jnp.array([255, 0], jnp.uint8))       # all in range: passes
    with pytest.raises(ValueError, match=r"label -3 is out of range for 300 classes; expected integers in \[0, 299\]"):
        check_targets(CE, (3, 300), jnp.array([4, -3, 127], jnp.int8))
    with pytest.raises(ValueError, match=r"label 250 is out of range for 200 classes"):
        check_targets(CE, (2, 200), jnp.array([250, 3], jnp.uint8))
    with pytest.raises(ValueError, match=r"label -32768 is out of range for 70000 classes"):
        check_targets(CE, (2, 70_000), jnp.array([-32768, 3], jnp.int16))


# --------------------------------------------------------------------------- 2. target gradients

def _plain_huber(delta, o, t):
    r = jnp.abs(o - t)
    return jnp.mean(jnp.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)))


# Each loss's formula written again with jnp, differentiated by jax.grad (no custom rules).
PLAIN = {
    "mse": lambda o, t: jnp.mean((o - t) ** 2),
    "half_squared_error": lambda o, t: 0.5 * jnp.mean((o - t) ** 2),
    "l1": lambda o, t: jnp.mean(jnp.abs(o - t)),
    "huber": partial(_plain_huber, 1.0),
    "huber(0.5)": partial(_plain_huber, 0.5),
    "binary_cross_entropy": lambda z, t: jnp.mean(jnp.logaddexp(z, 0.0) - t * z),
    "softmax_cross_entropy": lambda z, t: -jnp.sum(t * jax.nn.log_softmax(z)) / z.shape[0],
}
TARGET_LOSSES = {name: fnn.get_loss(name) for name in PLAIN if not name.startswith("huber(")}
TARGET_LOSSES["huber(0.5)"] = losses.huber(0.5)


def _target_case(name):
    """(out, target) with residuals away from the l1/huber kinks; (batch,) targets for regression."""
    if name == "softmax_cross_entropy":
        return normal(20, (3, 4)), jax.nn.softmax(normal(21, (3, 4)))
    out = normal(22, (5, 1))
    if name == "binary_cross_entropy":
        return out, jnp.asarray(np.random.default_rng(23).uniform(size=5))
    r = np.random.default_rng(24).choice([-1.0, 1.0], 5) * np.array([0.2, 0.3, 0.7, 1.4, 2.0])
    return out, out.reshape(5) - jnp.asarray(r)


@partial(jax.jit, static_argnums=0)
def _both_gradients(loss, out, target):
    L = fnn.differentiable_loss(loss)
    return jax.grad(L, argnums=(0, 1))(out, target), jax.grad(lambda t: 3 * L(out, t))(target)


@partial(jax.jit, static_argnums=0)
def _plain_gradients(plain, out, target):
    """jax.grad of the plain formula in the target and in the output."""
    return (jax.grad(lambda t: plain(out, t.reshape(out.shape)))(target),
            jax.grad(plain)(out, target.reshape(out.shape)))


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_target_gradient_matches_the_plain_formula(x64, name):
    loss = TARGET_LOSSES[name]
    out, target = _target_case(name)
    (g_out, g_target), g3 = _both_gradients(loss, out, target)
    plain = PLAIN[name]
    expected, expected_out = _plain_gradients(plain, out, target)
    assert g_target.shape == target.shape and g_target.dtype == target.dtype
    assert np.all(np.asarray(g_target) != 0)
    np.testing.assert_allclose(g_target, expected, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(g3, 3 * expected, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(g_out, expected_out, rtol=1e-12, atol=1e-16)
    L = fnn.differentiable_loss(loss)           # central finite differences of loss.fn itself
    check_grads(jax.jit(lambda t: L(out, t)), (target,), order=1, modes=("rev",))


def test_target_gradient_examples(x64):
    y = jnp.array([0.5, 0.5])
    g_mse, g_bce = jax.jit(lambda o, z, y: (jax.grad(fnn.differentiable_loss("mse"), argnums=1)(o, y),
                                            jax.grad(fnn.differentiable_loss("bce"), argnums=1)(z, y)))(
        jnp.array([[1.5], [-0.5]]), jnp.array([[2.0], [-3.0]]), y)
    np.testing.assert_allclose(g_mse, [-1.0, 1.0], rtol=1e-15)        # −2(ŷ − y)/n
    np.testing.assert_allclose(g_bce, [-1.0, 1.5], rtol=1e-15)        # −z/n


def test_target_gradient_when_the_target_depends_on_the_input(x64):
    # L(t) = mse(2t, t) = mean(t²): its gradient needs both the output's and the target's part.
    t = jnp.array([0.5, -1.0, 2.0])
    L = fnn.differentiable_loss("mse")
    g = jax.jit(jax.grad(lambda t: L(2 * t.reshape(3, 1), t)))(t)
    np.testing.assert_allclose(g, 2 * np.asarray(t) / 3, rtol=1e-14)


def test_integer_labels_get_a_float0_cotangent():
    L = fnn.differentiable_loss("cross_entropy")
    labels = jnp.array([0, 2, 1])
    g_out, g_labels = jax.jit(jax.grad(L, argnums=(0, 1), allow_int=True))(jnp.zeros((3, 3)), labels)
    assert g_labels.dtype == jax.dtypes.float0 and g_labels.shape == (3,)
    np.testing.assert_allclose(g_out, (np.full((3, 3), 1 / 3) - np.eye(3)[[0, 2, 1]]) / 3, rtol=1e-6)


def test_a_loss_without_target_grad_refuses_the_target_derivative():
    mse = losses.mse
    bare = losses.Loss("bare_mse", mse.fn, mse.grad)
    L = fnn.differentiable_loss(bare)
    out, y = jnp.array([[1.0], [3.0]]), jnp.array([0.0, 1.0])
    np.testing.assert_allclose(jax.jit(jax.grad(L))(out, y), [[1.0], [2.0]])   # in the output: fine
    with pytest.raises(TypeError, match=r"differentiable_loss\(bare_mse\): the loss has no target_grad"):
        jax.jit(jax.grad(L, argnums=1))(out, y)
    with pytest.raises(TypeError, match="no target_grad"):             # the target computed from the input
        jax.jit(jax.grad(lambda o: L(o, o.reshape(2) + 1)))(out)


def test_softmax_ce_target_gradient_at_a_masked_class(x64):
    z = jnp.array([[0.0, -jnp.inf, 1.0]])
    y = jnp.array([[0.5, 0.0, 0.5]])
    g = jax.jit(jax.grad(fnn.differentiable_loss("cross_entropy"), argnums=1))(z, y)
    logp = _log_softmax64(np.array([[0.0, -np.inf, 1.0]]))
    assert np.isposinf(g[0, 1])             # mass moved onto a masked class: the loss becomes infinite
    np.testing.assert_allclose(g[0, [0, 2]], -logp[0, [0, 2]], rtol=1e-14)


# --------------------------------------------------------------------------- 3. negative soft targets

def test_negative_soft_targets_are_refused_naming_the_value():
    with pytest.raises(ValueError, match=r"soft target -0.25 at index \(1, 2\) is negative; expected weights ≥ 0"):
        check_targets(CE, (2, 3), jnp.array([[0.2, 0.8, 0.0], [0.75, 0.5, -0.25]]))
    model = fnn.Dense(3)
    x = normal(30, (2, 4))
    params = random_params(model, x.shape, 31, jnp.float32)
    y = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.5, -1e-3]])
    with pytest.raises(ValueError, match=r"soft target -0.001 at index \(1, 2\)"):
        fnn.value_and_grad(model, "cross_entropy", params, x, y)
    with pytest.raises(ValueError, match=r"soft target -0.001"):
        fnn.evaluate(model, "cross_entropy", params, x, y)
    # Weights ≥ 0 of any row mass, and exact zeros, pass.
    check_targets(CE, (2, 3), jnp.array([[0.0, 0.0, 2.0], [0.3, 0.0, 0.3]]))


def test_soft_targets_follow_the_formula_under_jit(x64):
    # Traced targets are not checked; the value is then −Σ y log p / B as written, negative
    # terms included, and entries with y = 0 add 0 even where the logit is masked (−inf).
    z = jnp.array([[1.0, -2.0, 0.5, -jnp.inf], [0.0, 3.0, -1.0, 2.0]])
    y = jnp.array([[0.6, -0.3, 0.7, 0.0], [0.0, 1.2, 0.0, -0.2]])
    value, grad, _ = _ce_value_grad_accuracy(CE, z, y)
    logp = _log_softmax64(np.asarray(z))
    terms = np.asarray(y) * np.where(np.asarray(y) != 0, logp, 0.0)
    np.testing.assert_allclose(value, -terms.sum() / 2, rtol=1e-14)
    dlogp = -np.asarray(y) / 2
    expected = dlogp - np.exp(logp) * dlogp.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(grad, expected, rtol=1e-13, atol=1e-17)
    assert grad[0, 3] == 0


# --------------------------------------------------------------------------- 4. BCE tails

MAGNITUDES = np.geomspace(1e-3, 80.0, 97)
BCE_LOGITS = np.concatenate([-MAGNITUDES[::-1], MAGNITUDES]).astype(np.float32)
ULPS = 4


@jax.jit
def _bce_per_element(z, y):
    """The loss of each (z, y) pair as a batch of one."""
    return jax.vmap(lambda a, b: losses.binary_cross_entropy.fn(a.reshape(1, 1), b.reshape(1, 1)))(z, y)


@pytest.mark.parametrize("target", [0.0, 1.0, 0.3])
def test_bce_value_is_accurate_in_both_float32_tails(target):
    y32 = np.full_like(BCE_LOGITS, target)
    value = np.asarray(_bce_per_element(jnp.asarray(BCE_LOGITS), jnp.asarray(y32)), np.float64)
    z, y = BCE_LOGITS.astype(np.float64), y32.astype(np.float64)
    expected = y * np.logaddexp(0.0, -z) + (1 - y) * np.logaddexp(0.0, z)    # float64, no cancellation
    assert value.dtype == np.float64 and np.all(expected > 0)
    relative = np.abs(value - expected) / expected
    assert relative.max() <= ULPS * np.finfo(np.float32).eps, BCE_LOGITS[relative.argmax()]


def test_bce_confident_correct_predictions_are_not_zero():
    z = np.array([20.0, -20.0, 60.0, -60.0, 80.0], np.float32)
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0], np.float32)
    value = np.asarray(_bce_per_element(jnp.asarray(z), jnp.asarray(y)), np.float64)
    expected = np.log1p(np.exp(-np.abs(z.astype(np.float64))))        # 2.06e-9, 8.76e-27, 1.80e-35
    np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_bce_gradient_unchanged_and_jax_grad_of_the_value_agrees():
    bce = losses.binary_cross_entropy
    z = jnp.asarray(BCE_LOGITS.reshape(-1, 1))
    y = jnp.asarray(np.tile([0.0, 1.0, 0.3], len(BCE_LOGITS))[:len(BCE_LOGITS)], jnp.float32)
    g, g_auto = jax.jit(lambda z, y: (bce.grad(z, y), jax.grad(bce.fn)(z, y)))(z, y)
    g = np.asarray(g, np.float64)
    z64, y64 = BCE_LOGITS.astype(np.float64).reshape(-1, 1), np.asarray(y, np.float64).reshape(-1, 1)
    expected = (1 / (1 + np.exp(-z64)) - y64) / len(BCE_LOGITS)
    np.testing.assert_allclose(g, expected, rtol=0, atol=2 * np.finfo(np.float32).eps / len(BCE_LOGITS))
    np.testing.assert_allclose(g_auto, g, rtol=0, atol=2 * np.finfo(np.float32).eps / len(BCE_LOGITS))


# --------------------------------------------------------------------------- 5. leaky_relu at tiny z

def _tiny_inputs(dtype):
    """±(a normal z whose slope·z underflows, the smallest normal, the smallest subnormal, 0) in dtype."""
    fi = jnp.finfo(dtype)
    tiny, sub = float(fi.tiny), float(fi.smallest_subnormal)
    magnitudes = [1e-37, 4 * tiny, tiny, 0.5 * tiny, 1e-45, sub, 0.0, 1.0]
    return jnp.asarray([s * m for m in magnitudes for s in (-1.0, 1.0)], dtype)


@partial(jax.jit, static_argnums=0)
def _leaky_derivatives(act, z):
    y = act.fn(z)
    return y, act.derivative(z, y), act.vjp(z, y, jnp.ones_like(y)), jax.vmap(jax.grad(act.fn))(z)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("slope", [0.1, 0.25, 0.0])
def test_leaky_relu_derivative_decided_by_the_sign_of_z(dtype, slope):
    act = activations.leaky_relu(slope)
    z = _tiny_inputs(dtype)
    y, derivative, vjp, autodiff = jax.device_get(_leaky_derivatives(act, z))
    z64 = np.asarray(z, np.float64)                  # the value the dtype holds (±1e-45 → ±0 in float16)
    slope_d = float(jnp.asarray(slope, dtype))
    expected = np.where(z64 < 0, slope_d, 1.0)       # f'(0) = f'(−0.0) = 1, as documented
    for name, got in (("derivative", derivative), ("vjp", vjp), ("jax.grad", autodiff)):
        np.testing.assert_array_equal(np.asarray(got, np.float64), expected, err_msg=f"{name} {z64}")
    y64 = np.asarray(y, np.float64)
    np.testing.assert_allclose(y64, np.where(z64 < 0, slope_d * z64, z64), rtol=0,
                               atol=float(jnp.finfo(dtype).tiny))      # flushed subnormals at most
    assert np.all(y64[z64 > 0] > 0) and np.all(y64[z64 <= 0] <= 0)


def test_leaky_relu_examples_from_the_issue():
    act = fnn.get_activation("leaky_relu")
    z = jnp.array([-1e-37, -1e-45, -0.0, 0.0, 1e-45], jnp.float32)
    _, derivative, _, _ = _leaky_derivatives(act, z)
    np.testing.assert_array_equal(derivative, np.array([0.1, 0.1, 1.0, 1.0, 1.0], np.float32))
