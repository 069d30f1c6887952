"""fnn.losses: pinned values, hand-written gradients against jax.grad and finite differences."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from fnn import losses

REGRESSION = {
    "mse": losses.mse,
    "half_squared_error": losses.half_squared_error,
    "binary_cross_entropy": losses.binary_cross_entropy,
    "l1": losses.l1,
    "huber": losses.huber(1.0),
    "huber(0.5)": losses.huber(0.5),
}
# (output shape, target shape): equal shapes, (batch,) targets for (batch, 1) outputs, batch 1.
REGRESSION_SHAPES = [((1, 1), (1,)), ((5, 1), (5,)), ((4, 3), (4, 3)), ((1, 3), (1, 3))]
CE_SHAPES = [(1, 4), (5, 3), (2, 3, 4)]


def residuals(seed, shape, delta=1.0):
    """Residuals ŷ − y, |r| in [0.1, 0.9δ] or [1.1δ, 3δ]: away from the l1 and huber kinks."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0.1, 0.9 * delta, shape)
    large = rng.uniform(1.1 * delta, 3 * delta, shape)
    magnitude = np.where(rng.random(shape) < 0.5, small, large)
    return np.where(rng.random(shape) < 0.5, -magnitude, magnitude)


def regression_case(name, out_shape, target_shape, seed=0):
    rng = np.random.default_rng(seed + 100)
    out = rng.standard_normal(out_shape)
    if name == "binary_cross_entropy":
        target = rng.uniform(0.0, 1.0, target_shape)
    else:
        delta = 0.5 if name == "huber(0.5)" else 1.0
        target = (out - residuals(seed, out_shape, delta)).reshape(target_shape)
    return jnp.asarray(out), jnp.asarray(target)


def ce_case(shape, soft, seed=0):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(2 * rng.standard_normal(shape))
    if soft:
        p = rng.uniform(0.0, 1.0, shape)
        target = jnp.asarray(p / p.sum(axis=-1, keepdims=True))
    else:
        target = jnp.asarray(rng.integers(0, shape[-1], shape[:-1]), jnp.int32)
    return logits, target


@jax.jit(static_argnums=0)
def _value_and_grads(loss, out, target):
    """(L, hand-written dL/dout, jax.grad dL/dout) in one compiled function."""
    return loss.fn(out, target), loss.grad(out, target), jax.grad(loss.fn)(out, target)


# --------------------------------------------------------------------------- pinned values

def test_mse_pinned():
    mse = fnn.get_loss("mse")
    assert float(mse.fn(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]))) == pytest.approx(2.5)
    assert float(mse.fn(jnp.array([[1.0], [2.0]]), jnp.array([0.0, 0.0]))) == pytest.approx(2.5)
    np.testing.assert_allclose(mse.grad(jnp.array([1.0, 2.0]), jnp.zeros(2)), [1.0, 2.0])


def test_half_squared_error_pinned():
    half = fnn.get_loss("half_squared_error")
    out, target = jnp.array([[7.0]]), jnp.array([5.0])
    assert float(half.fn(out, target)) == pytest.approx(2.0)
    np.testing.assert_allclose(half.grad(out, target), [[2.0]])


@pytest.mark.parametrize("target", [0.0, 1.0, 0.3])
def test_binary_cross_entropy_at_logit_zero_is_log_2(target):
    bce = fnn.get_loss("binary_cross_entropy")
    logits, y = jnp.zeros((4, 1)), jnp.full((4,), target)
    assert float(bce.fn(logits, y)) == pytest.approx(math.log(2.0))
    np.testing.assert_allclose(bce.grad(logits, y), np.full((4, 1), (0.5 - target) / 4))
    # jax.grad through the forward agrees exactly at the softplus midpoint as well.
    np.testing.assert_allclose(jax.grad(bce.fn)(logits, y), bce.grad(logits, y), atol=1e-7)


def test_binary_cross_entropy_pinned_off_zero():
    bce = fnn.get_loss("bce")
    z, y = jnp.array([[2.0], [-1.0]]), jnp.array([1.0, 0.0])
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert float(bce.fn(z, y)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("classes", [2, 3, 10])
def test_softmax_cross_entropy_of_uniform_logits_is_log_classes(classes):
    ce = fnn.get_loss("softmax_cross_entropy")
    logits = jnp.full((3, classes), 0.7)
    labels = jnp.array([0, classes - 1, 1])
    assert float(ce.fn(logits, labels)) == pytest.approx(math.log(classes), rel=1e-6)
    soft = jnp.full((3, classes), 1.0 / classes)
    assert float(ce.fn(logits, soft)) == pytest.approx(math.log(classes), rel=1e-6)
    np.testing.assert_allclose(ce.grad(logits, soft), np.zeros((3, classes)), atol=1e-7)


def test_softmax_cross_entropy_pinned():
    ce = fnn.get_loss("cross_entropy")
    logits = jnp.array([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
    assert float(ce.fn(logits, jnp.array([1]))) == pytest.approx(math.log(4 / 3), rel=1e-6)
    assert float(ce.fn(logits, jnp.array([0]))) == pytest.approx(math.log(4.0), rel=1e-6)
    np.testing.assert_allclose(ce.grad(logits, jnp.array([1])), [[0.25, -0.25]], rtol=1e-6)


def test_l1_pinned():
    l1 = fnn.get_loss("l1")
    assert float(l1.fn(jnp.array([[1.0, -2.0]]), jnp.zeros((1, 2)))) == pytest.approx(1.5)
    np.testing.assert_allclose(l1.grad(jnp.array([[1.0, -2.0]]), jnp.zeros((1, 2))), [[0.5, -0.5]])
    # At a zero residual the hand-written gradient takes the subgradient 0.
    out, target = jnp.array([[1.0, 2.0]]), jnp.array([[1.0, 3.0]])
    np.testing.assert_allclose(l1.grad(out, target), [[0.0, -0.5]])


@pytest.mark.parametrize("delta,expected", [(1.0, (0.125 + 2.5) / 2), (2.0, (0.125 + 4.0) / 2)])
def test_huber_pinned(delta, expected):
    h = losses.huber(delta)
    out, target = jnp.array([0.5, -3.0]), jnp.zeros(2)
    assert float(h.fn(out, target)) == pytest.approx(expected)
    np.testing.assert_allclose(h.grad(out, target), np.array([0.5, -min(3.0, delta)]) / 2)


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_huber_and_l1_match_numpy_formulas(x64, delta):
    rng = np.random.default_rng(1)
    out, target = rng.standard_normal((6, 3)) * 3, rng.standard_normal((6, 3))
    r = out - target
    a = np.abs(r)
    h = np.where(a <= delta, 0.5 * r ** 2, delta * (a - 0.5 * delta))
    loss = losses.huber(delta)
    np.testing.assert_allclose(loss.fn(jnp.asarray(out), jnp.asarray(target)), h.mean(), rtol=1e-12)
    np.testing.assert_allclose(loss.grad(jnp.asarray(out), jnp.asarray(target)),
                               np.clip(r, -delta, delta) / r.size, rtol=1e-12)
    l1 = fnn.get_loss("l1")
    np.testing.assert_allclose(l1.fn(jnp.asarray(out), jnp.asarray(target)), a.mean(), rtol=1e-12)
    np.testing.assert_allclose(l1.grad(jnp.asarray(out), jnp.asarray(target)), np.sign(r) / r.size)


def test_huber_is_quadratic_inside_and_linear_outside():
    h = losses.huber(1.0)
    small = jnp.array([0.3])
    big = jnp.array([5.0])
    mse_half = fnn.get_loss("half_squared_error")
    zero = jnp.zeros(1)
    assert float(h.fn(small, zero)) == pytest.approx(float(mse_half.fn(small, zero)))
    assert float(h.fn(big, jnp.zeros(1))) == pytest.approx(4.5)


# --------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("shapes", REGRESSION_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_grad_matches_jax_grad(x64, name, shapes):
    loss = REGRESSION[name]
    out, target = regression_case(name, *shapes)
    value, manual, auto = _value_and_grads(loss, out, target)
    assert value.shape == () and np.isfinite(value)
    assert manual.shape == out.shape and manual.dtype == out.dtype
    np.testing.assert_allclose(manual, auto, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("soft", [False, True], ids=["int_labels", "soft_targets"])
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
def test_softmax_cross_entropy_grad_matches_jax_grad(x64, shape, soft):
    logits, target = ce_case(shape, soft)
    value, manual, auto = _value_and_grads(losses.softmax_cross_entropy, logits, target)
    assert value.shape == () and float(value) > 0
    assert manual.shape == logits.shape
    np.testing.assert_allclose(manual, auto, rtol=1e-12, atol=1e-15)


def test_int_labels_equal_one_hot_targets(x64):
    logits, labels = ce_case((5, 4), soft=False, seed=3)
    one_hot = jax.nn.one_hot(labels, 4, dtype=logits.dtype)
    ce = losses.softmax_cross_entropy
    np.testing.assert_allclose(ce.fn(logits, labels), ce.fn(logits, one_hot), rtol=1e-14)
    np.testing.assert_allclose(ce.grad(logits, labels), ce.grad(logits, one_hot), rtol=1e-14)
    logp = jax.nn.log_softmax(logits)
    expected = -np.mean(np.asarray(logp)[np.arange(5), np.asarray(labels)])
    np.testing.assert_allclose(ce.fn(logits, labels), expected, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(REGRESSION) + ["ce_int", "ce_soft"])
def test_grad_matches_finite_differences(x64, name):
    if name.startswith("ce"):
        loss = losses.softmax_cross_entropy
        out, target = ce_case((3, 4), soft=name == "ce_soft", seed=5)
    else:
        loss = REGRESSION[name]
        out, target = regression_case(name, (4, 1), (4,), seed=5)
    f = fnn.differentiable_loss(loss)  # its VJP is the hand-written loss.grad
    check_grads(lambda o: f(o, target), (out,), order=1, modes=("rev",))


def test_grad_keeps_output_dtype_for_float64_targets(x64):
    out = jnp.ones((3, 1), jnp.float32)
    target = np.zeros(3)  # numpy float64
    for loss in REGRESSION.values():
        assert loss.grad(out, target).dtype == jnp.float32, loss.name


# --------------------------------------------------------------------------- errors, lookup

@pytest.mark.parametrize("out_shape,target_shape", [((3, 2), (2, 3)), ((4, 1), (3,)),
                                                    ((4, 2), (4,)), ((4,), (4, 1))])
@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_mismatched_target_shape_raises_naming_both_shapes(name, out_shape, target_shape):
    loss = REGRESSION[name]
    out, target = jnp.zeros(out_shape), jnp.zeros(target_shape)
    for f in (loss.fn, loss.grad):
        with pytest.raises(ValueError) as info:
            f(out, target)
        assert str(out_shape) in str(info.value) and str(target_shape) in str(info.value)


@pytest.mark.parametrize("target", [jnp.zeros((3,), jnp.int32), jnp.zeros((4, 1), jnp.int32),
                                    jnp.zeros((4, 3)), jnp.zeros((4,))], ids=str)
def test_softmax_cross_entropy_rejects_targets_that_do_not_fit(target):
    logits = jnp.zeros((4, 5))
    for f in (losses.softmax_cross_entropy.fn, losses.softmax_cross_entropy.grad):
        with pytest.raises(ValueError) as info:
            f(logits, target)
        assert "(4, 5)" in str(info.value) and str(target.shape) in str(info.value)


@pytest.mark.parametrize("delta", [0.0, -1.0])
def test_huber_rejects_non_positive_delta(delta):
    with pytest.raises(ValueError, match="delta"):
        losses.huber(delta)


@pytest.mark.parametrize("bad", ["cross-entropy", "MSE", 0])
def test_unknown_loss_raises_listing_valid_names(bad):
    with pytest.raises(ValueError) as info:
        fnn.get_loss(bad)
    for name in fnn.LOSSES:
        assert name in str(info.value)


def test_aliases_and_passthrough():
    assert fnn.get_loss("bce") is fnn.get_loss("binary_cross_entropy")
    assert fnn.get_loss("cross_entropy") is fnn.get_loss("softmax_cross_entropy")
    custom = losses.huber(0.25)
    assert fnn.get_loss(custom) is custom and custom.name == "huber(0.25)"


def test_softmax_cross_entropy_gradient_for_targets_that_do_not_sum_to_one(x64):
    import jax
    logits = jnp.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    target = jnp.array([[0.2, 0.3, 0.1], [0.0, 0.5, 0.0]])
    loss = fnn.get_loss("softmax_cross_entropy")
    np.testing.assert_allclose(loss.grad(logits, target), jax.grad(loss.fn)(logits, target),
                               rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_negative_entries_follow_the_formula(x64):
    # fnn's entries refuse negative soft targets (test_numerical_edges.py); where they get
    # through (traced), L is the formula as written, −Σ y log p / B, negative terms included
    # (they used to be dropped silently), and the hand-written gradient is that formula's.
    logits = jnp.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    target = jnp.array([[0.7, -0.4, 0.3], [-1.0, 1.0, 0.0]])
    loss = fnn.get_loss("softmax_cross_entropy")
    np.testing.assert_allclose(loss.grad(logits, target), jax.grad(loss.fn)(logits, target),
                               rtol=1e-12, atol=1e-15)
    logp = np.asarray(jax.nn.log_softmax(logits))
    np.testing.assert_allclose(loss.fn(logits, target), -np.sum(np.asarray(target) * logp) / 2, rtol=1e-14)
    f = fnn.differentiable_loss(loss)
    check_grads(lambda o: f(o, target), (logits,), order=1, modes=("rev",))
